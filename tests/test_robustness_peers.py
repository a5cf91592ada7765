# SPDX-License-Identifier: Apache-2.0
"""The client and the op under bad peers: a server killed mid-answer, one that
accepts and never reads, one that restarts on the same port, plus garbage and
cut answers, all on 127.0.0.1. Each ends in the documented error class within
the deadline (or succeeds, through a retry, where that is safe), and leaves no
thread behind. tests/test_client.py and tests/test_remote_op.py cover the
simpler peers one by one; here every case also checks the thread count.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator

import numpy as np
import pytest
import tensorflow as tf

import tf_graphpipe
from tf_graphpipe import Client, DeadlineExceeded, ProtocolError, ServerUnavailable, remote_call

from support.graphpipe_test_servers import GarbageServer, SilentServer, TruncatingServer

X = np.arange(6, dtype=np.float32).reshape(2, 3)
SLACK = 5.0  # seconds past a deadline a call may take to report it


def double(x: np.ndarray) -> np.ndarray:
    return x * 2


def native_threads() -> int:
    return len(os.listdir("/proc/self/task"))


@pytest.fixture
def no_thread_left() -> Iterator[None]:
    """Python threads back to their number before the test, native threads
    (libcurl's loop, TF's pools) not growing past a small allowance."""
    # Warm up what starts threads once per process (TF eager pools, the client loop).
    with tf_graphpipe.serve(double) as warm:
        Client(warm.url).infer(X)
        remote_call(warm.url, [X], output_dtypes=[tf.float32])
    python_before, native_before = threading.active_count(), native_threads()
    yield
    deadline = time.monotonic() + 10
    while threading.active_count() > python_before and time.monotonic() < deadline:
        time.sleep(0.05)
    # Native threads that end on their own (a resolver's, a pool's) get the same time.
    while native_threads() > native_before + 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    leftover = [t.name for t in threading.enumerate()][python_before:]
    assert threading.active_count() <= python_before, f"threads left behind: {leftover}"
    assert native_threads() <= native_before + 2, f"native threads {native_before} -> {native_threads()}"


def returns_within(seconds: float, fn: Callable[[], object]) -> BaseException | object:
    """Runs ``fn`` on a thread; fails the test if it has not returned in time.
    Returns what it returned, or the exception it raised."""
    box: list[object] = []

    def run() -> None:
        try:
            box.append(fn())
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            box.append(exc)

    thread = threading.Thread(target=run, name="call-under-test")
    started = time.monotonic()
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"the call did not return within {seconds} s"
    box.append(time.monotonic() - started)
    return box[0]


def op_call(url: str, timeout: float, retries: int = 0) -> object:
    return remote_call(url, [X], output_dtypes=[tf.float32], timeout=timeout, retries=retries)[0].numpy()


def client_call(url: str, timeout: float, retries: int = 0) -> object:
    return Client(url, timeout=timeout, retries=retries).infer(X)


# ---- a server killed with SIGKILL while it streams a large answer ---------------------

STREAMER = textwrap.dedent(
    """
    import socket, sys
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    print(listener.getsockname()[1], flush=True)
    conn, _ = listener.accept()
    head = b""
    while b"\\r\\n\\r\\n" not in head:
        head += conn.recv(65536)
    conn.sendall(b"HTTP/1.1 200 OK\\r\\nContent-Type: application/octet-stream\\r\\n"
                 b"Content-Length: 1000000000\\r\\n\\r\\n")
    chunk = b"\\0" * 65536
    for i in range(100000):
        conn.sendall(chunk)
        if i == 16:
            print("streaming", flush=True)
    """
)


class StreamingPeer:
    """A subprocess that answers one call with a 1 GB body, sent slowly enough
    to be killed in the middle."""

    def __init__(self) -> None:
        self.process = subprocess.Popen([sys.executable, "-c", STREAMER], stdout=subprocess.PIPE, text=True)
        self.url = f"http://127.0.0.1:{int(self.process.stdout.readline())}/"

    def kill_once_streaming(self) -> None:
        assert self.process.stdout.readline().strip() == "streaming"
        self.process.kill()
        self.process.wait(10)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)


@pytest.mark.parametrize(("call", "expected"), [(client_call, ServerUnavailable),
                                               (op_call, tf.errors.UnavailableError)],
                         ids=["client", "op"])
def test_server_killed_mid_answer_is_unavailable(no_thread_left, call, expected) -> None:
    peer = StreamingPeer()
    try:
        killer = threading.Thread(target=peer.kill_once_streaming)
        killer.start()
        result = returns_within(30 + SLACK, lambda: call(peer.url, timeout=30, retries=2))
        killer.join(10)
    finally:
        peer.close()
    assert isinstance(result, expected), repr(result)


# ---- a server that accepts the connection and never reads -----------------------------


class AcceptingPeer:
    """Accepts TCP connections and never reads or answers (until closed)."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/"
        self.listener.settimeout(0.05)
        self.stopping = threading.Event()
        self.accepted: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                self.accepted.append(self.listener.accept()[0])
            except TimeoutError:
                continue
            except OSError:
                return

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(5)
        self.listener.close()
        for conn in self.accepted:
            conn.close()


@pytest.mark.parametrize(("call", "expected"), [(client_call, DeadlineExceeded),
                                               (op_call, tf.errors.DeadlineExceededError)],
                         ids=["client", "op"])
def test_server_that_accepts_and_never_reads_hits_the_deadline(no_thread_left, call, expected) -> None:
    peer = AcceptingPeer()
    try:
        result = returns_within(1.5 + SLACK, lambda: call(peer.url, timeout=1.5, retries=2))
    finally:
        peer.close()
    assert isinstance(result, expected), repr(result)


# ---- garbage, cut and silent answers, for the thread count ----------------------------

BAD_PEERS = {
    "garbage": (GarbageServer, ProtocolError, tf.errors.DataLossError),
    "truncated": (TruncatingServer, ServerUnavailable, tf.errors.UnavailableError),
    "silent": (SilentServer, DeadlineExceeded, tf.errors.DeadlineExceededError),
}


@pytest.mark.parametrize("kind", BAD_PEERS, ids=BAD_PEERS.keys())
@pytest.mark.parametrize("caller", ["client", "op"])
def test_bad_peer_gives_its_error_class_and_leaves_no_thread(no_thread_left, kind: str, caller: str) -> None:
    server_class, client_error, op_error = BAD_PEERS[kind]
    call, expected = (client_call, client_error) if caller == "client" else (op_call, op_error)
    with server_class() as peer:
        for _ in range(3):  # repeated: nothing accumulates
            result = returns_within(1.5 + SLACK, lambda: call(peer.url, timeout=1.5, retries=1))
            assert isinstance(result, expected), repr(result)


# ---- a server that restarts on the same port ------------------------------------------


@pytest.mark.parametrize("call", [client_call, op_call], ids=["client", "op"])
def test_server_restarting_on_the_same_port_is_reached_by_a_retry(no_thread_left, port: int, call) -> None:
    first = tf_graphpipe.serve(double, port=port)
    try:
        np.testing.assert_array_equal(call(first.url, timeout=10), X * 2)  # a pooled connection now exists
    finally:
        first.close()
    restarted: list[tf_graphpipe.server.RunningServer] = []
    starter = threading.Timer(0.4, lambda: restarted.append(tf_graphpipe.serve(double, port=port)))
    starter.start()
    try:
        # Refused until the restart (0.4 s later); retries back off 50, 100, 200, 400... ms.
        result = returns_within(20 + SLACK, lambda: call(first.url, timeout=20, retries=8))
        starter.join(30)
    finally:
        starter.join(30)
        for server in restarted:
            server.close()
    assert not isinstance(result, BaseException), repr(result)
    np.testing.assert_array_equal(result, X * 2)


@pytest.mark.parametrize(("call", "expected"), [(client_call, ServerUnavailable),
                                               (op_call, tf.errors.UnavailableError)],
                         ids=["client", "op"])
def test_server_gone_for_good_is_unavailable_after_the_retries(no_thread_left, port: int, call, expected) -> None:
    with tf_graphpipe.serve(double, port=port) as server:
        call(server.url, timeout=10)
    result = returns_within(10 + SLACK, lambda: call(f"http://127.0.0.1:{port}", timeout=10, retries=3))
    assert isinstance(result, expected), repr(result)
