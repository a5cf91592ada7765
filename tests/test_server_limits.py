# SPDX-License-Identifier: Apache-2.0
"""The limits a production server needs, each refused with a clear status
while everyone else is served: a cap on open connections, a budget of
request bytes in flight (taken as bytes arrive, never from Content-Length),
and the error table's codes on 408 and 431. Answers carry Date; 100 Continue
never overtakes an earlier answer on its connection.

The servers run in this process, so their memory is this process's: peaks
are read from /proc/self/status after resetting them through
/proc/self/clear_refs."""
from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Iterator
from email.utils import parsedate_to_datetime
from pathlib import Path

import numpy as np
import pytest

import tf_graphpipe
from tf_graphpipe import Client, RemoteError, _native
from tf_graphpipe.server import RunningServer, load_model

MiB = 1 << 20
X = np.arange(6, dtype=np.float32).reshape(2, 3)


def double(x: np.ndarray) -> np.ndarray:
    return x * 2


def _infer_body(x: np.ndarray = X) -> bytes:
    return bytes(_native.encode_infer_request([x], [10], [], [], b""))


def _post(body: bytes, extra: bytes = b"") -> bytes:
    return b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n%s\r\n" % (len(body), extra) + body


class Raw:
    """One TCP connection reading HTTP/1.1 answers (Content-Length framed)."""

    def __init__(self, server: RunningServer, timeout: float = 30) -> None:
        self.sock = socket.create_connection((server.host, server.port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.data = b""

    def send(self, data: bytes) -> bool:
        """False once the server has closed the connection on us."""
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            return False

    def answer(self) -> tuple[int, dict[str, str], bytes] | None:
        """(status, headers, body), or None if the server closed first."""
        try:
            while b"\r\n\r\n" not in self.data:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return None
                self.data += chunk
            head, _, self.data = self.data.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
            length = int(headers.get("content-length", "0"))
            while len(self.data) < length:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return None
                self.data += chunk
            body, self.data = self.data[:length], self.data[length:]
            return int(lines[0].split()[1]), headers, body
        except (ConnectionResetError, TimeoutError):
            return None

    def close(self) -> None:
        self.sock.close()


def _error(body: bytes) -> RemoteError:
    with pytest.raises(RemoteError) as caught:
        _native.decode_infer_response(body)
    return caught.value


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"{field} not in /proc/self/status")


def _reset_peak_rss() -> int:
    Path("/proc/self/clear_refs").write_text("5")
    return _rss_kib("VmRSS") << 10


def _peak_rss() -> int:
    return _rss_kib("VmHWM") << 10


def _served_within(url: str, seconds: float) -> np.ndarray:
    """A normal call, with ``seconds`` as its deadline (no retry)."""
    return Client(url, timeout=seconds, retries=0).infer(X)


# ---- open connections ---------------------------------------------------------------


def test_a_connection_past_the_cap_gets_503_and_the_others_are_served() -> None:
    with tf_graphpipe.serve(double, max_connections=4) as server:
        held = [Raw(server) for _ in range(4)]
        try:
            for raw in held:  # all four are accepted and served
                assert raw.send(_post(_infer_body()))
                assert raw.answer()[0] == 200  # type: ignore[index]
            extra = Raw(server)
            status, headers, body = extra.answer()  # type: ignore[misc]
            extra.close()
            assert status == 503 and headers["connection"] == "close" and headers["retry-after"] == "1"
            assert b"connections open, its limit (max_connections)" in body
            with pytest.raises(RemoteError) as caught:  # the project's client: Unavailable, retried, then raised
                Client(server.url, timeout=5, retries=0).infer(X)
            assert caught.value.status == 503
            for raw in held:  # the admitted connections keep being served
                assert raw.send(_post(_infer_body()))
                assert raw.answer()[0] == 200  # type: ignore[index]
        finally:
            for raw in held:
                raw.close()
        deadline = time.monotonic() + 10  # a closed connection frees its place
        while time.monotonic() < deadline:
            try:
                np.testing.assert_array_equal(Client(server.url, timeout=5, retries=0).infer(X), X * 2)
                break
            except RemoteError:
                time.sleep(0.05)
        else:
            raise AssertionError("closed connections did not free their places")


# ---- request bytes in flight ----------------------------------------------------------


def test_clients_trickling_huge_bodies_hold_bounded_memory_and_others_are_served() -> None:
    budget = 64 * MiB
    tricklers, burst, trickle = 32, 4 * MiB, 64 << 10
    with tf_graphpipe.serve(double, max_request_bytes=1 << 30, max_inflight_bytes=budget) as server:
        _served_within(server.url, 5)  # warm: the first call imports and compiles
        before = _reset_peak_rss()
        stop = threading.Event()
        refused: list[tuple[int, bytes]] = []
        lock = threading.Lock()
        chunk = b"\0" * trickle

        def trickler() -> None:
            raw = Raw(server, timeout=10)
            try:
                raw.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (1 << 30))
                sent = 0
                while not stop.is_set():
                    if select.select([raw.sock], [], [], 0)[0]:  # answered (refused): read it before a reset
                        answer = raw.answer()
                        if answer is not None:
                            with lock:
                                refused.append((answer[0], answer[2]))
                        return
                    if not raw.send(chunk):
                        return
                    sent += trickle
                    if sent >= burst:
                        stop.wait(0.05)
            finally:
                raw.close()

        threads = [threading.Thread(target=trickler) for _ in range(tricklers)]
        for thread in threads:
            thread.start()
        try:
            time.sleep(1.0)  # the bursts are in; the survivors trickle
            for _ in range(5):  # a normal client is answered within a second, meanwhile
                np.testing.assert_array_equal(_served_within(server.url, 1.0), X * 2)
                time.sleep(0.2)
            grown = _peak_rss() - before
        finally:
            stop.set()
            for thread in threads:
                thread.join(30)
        # Without the budget: 32 x 4 MiB and growing. With it: the budget plus a margin.
        assert grown < budget + 48 * MiB, f"RSS grew by {grown / MiB:.0f} MiB"
        assert refused, "no trickler was refused"
        for status, body in refused:
            error = _error(body)
            assert status == 503 and error.code == 14 and "max_inflight_bytes" in error.message
        deadline = time.monotonic() + 10  # every lease is given back once its connection is gone
        while server.dispatcher.budget.in_flight and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.dispatcher.budget.in_flight == 0


def test_a_budget_below_the_largest_body_is_warned_about(caplog) -> None:
    caplog.set_level("WARNING", logger="tf_graphpipe.server")
    with tf_graphpipe.serve(double, max_request_bytes=64 * MiB, max_inflight_bytes=16 * MiB):
        pass
    assert any("can never be received" in r.getMessage() for r in caplog.records)
    with pytest.raises(ValueError, match="max_inflight_bytes must be >= 1"):
        tf_graphpipe.serve(double, max_inflight_bytes=0)


# ---- the error table on slow and oversized heads -------------------------------------


@pytest.fixture()
def strict() -> Iterator[RunningServer]:
    with RunningServer(load_model(double), request_timeout=1.0, keep_alive_timeout=2.0) as running:
        yield running


def test_a_stalled_body_gets_408_with_deadline_exceeded(strict) -> None:
    raw = Raw(strict)
    raw.send(_post(_infer_body())[:-10])
    status, headers, body = raw.answer()  # type: ignore[misc]
    raw.close()
    assert status == 408 and headers["connection"] == "close"
    error = _error(body)
    assert error.code == 4 and "body made no progress within 1 s" in error.message


def test_a_head_over_the_limit_gets_431_with_resource_exhausted(strict) -> None:
    raw = Raw(strict)
    raw.send(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (80 << 10) + b"\r\n\r\n")
    status, headers, body = raw.answer()  # type: ignore[misc]
    raw.close()
    assert status == 431 and headers["connection"] == "close"
    error = _error(body)
    assert error.code == 8 and "request head exceeds the server's limit" in error.message


# ---- Date, and 100 Continue in order -----------------------------------------------


def test_every_answer_carries_a_current_date(strict) -> None:
    raw = Raw(strict)
    try:
        for request in (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"GET /v2/models/zzz HTTP/1.1\r\nHost: x\r\n\r\n",
                        _post(_infer_body()), _post(b"junk")):
            raw.send(request)
            status, headers, _ = raw.answer()  # type: ignore[misc]
            assert abs(parsedate_to_datetime(headers["date"]).timestamp() - time.time()) < 5, (status, headers)
    finally:
        raw.close()


def test_100_continue_waits_for_the_earlier_answer_on_the_connection() -> None:
    release = threading.Event()

    def slow_first(x: np.ndarray) -> np.ndarray:
        if x[0, 0] == 1:  # the first request is held until the test has looked
            release.wait(20)
        return x * 2

    with tf_graphpipe.serve(slow_first, inline_max_us=0) as server:
        first, second = _infer_body(np.ones((1, 3), np.float32)), _infer_body(np.full((1, 3), 5, np.float32))
        raw = Raw(server, timeout=10)
        try:
            raw.send(_post(first))
            # Pipelined: the second request's head asks to continue while the first is answered.
            raw.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n"
                     % len(second))
            raw.sock.settimeout(0.5)
            try:
                early = raw.sock.recv(65536)
            except TimeoutError:
                early = b""
            assert early == b"", "the server sent something before the first answer was ready"
            raw.sock.settimeout(10)
            release.set()
            status, _, body = raw.answer()  # type: ignore[misc]
            assert status == 200
            np.testing.assert_array_equal(_native.decode_infer_response(body)[0], np.full((1, 3), 2, np.float32))
            interim = raw.answer()  # the 100 Continue, only now
            assert interim is not None and interim[0] == 100
            raw.send(second)
            status, _, body = raw.answer()  # type: ignore[misc]
            assert status == 200
            np.testing.assert_array_equal(_native.decode_infer_response(body)[0], np.full((1, 3), 10, np.float32))
        finally:
            release.set()
            raw.close()
