# SPDX-License-Identifier: Apache-2.0
"""The server under bad input, black-box over HTTP on 127.0.0.1: every bad
body gets a clear 4xx (or the connection is closed), the server's memory stays
bounded, and the next valid request succeeds.

The server runs in this process (``tf_graphpipe.serve``), so its memory is
this process's: peaks are read from /proc/self/status after resetting them
through /proc/self/clear_refs.
"""
from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import tf_graphpipe
from tf_graphpipe import Client, RemoteError, _native

from support import wire_builder as wb

LIMIT = 8 << 20  # the served max_request_bytes
MiB = 1 << 20


def double(x: np.ndarray) -> np.ndarray:
    return x * 2


@pytest.fixture(scope="module")
def server() -> Iterator[tf_graphpipe.server.RunningServer]:
    with tf_graphpipe.serve(double, name="double", max_request_bytes=LIMIT) as running:
        yield running


# ---- what the tests observe ------------------------------------------------------


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"{field} not in /proc/self/status")


def reset_peak_rss() -> int:
    """Resets this process's peak RSS (VmHWM) to its current RSS; returns it in bytes."""
    Path("/proc/self/clear_refs").write_text("5")
    return _status_kib("VmRSS") * 1024


def peak_rss() -> int:
    return _status_kib("VmHWM") * 1024


def valid_body(x: np.ndarray | None = None) -> bytes:
    x = np.arange(6, dtype=np.float32).reshape(2, 3) if x is None else x
    return bytes(_native.encode_infer_request([x], [10], [], [], b""))


def assert_serving(url: str) -> None:
    """The next valid request succeeds."""
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(Client(url, timeout=30, retries=0).infer(x), x * 2)


class RawHttp:
    """One TCP connection on which a test writes exactly the bytes it wants."""

    def __init__(self, server: tf_graphpipe.server.RunningServer, timeout: float = 30) -> None:
        self.sock = socket.create_connection((server.host, server.port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def send(self, data: bytes) -> bool:
        """False when the server already closed the connection on us."""
        try:
            self.sock.sendall(data)
            return True
        except (BrokenPipeError, ConnectionResetError):
            return False

    def post_head(self, content_length: int | None, extra: str = "") -> None:
        length = "" if content_length is None else f"Content-Length: {content_length}\r\n"
        self.send(f"POST / HTTP/1.1\r\nHost: test\r\n{length}{extra}\r\n".encode())

    def read_answer(self) -> tuple[int, bytes] | None:
        """(status, body) of one answer, or None if the server closed first."""
        data = b""
        try:
            while b"\r\n\r\n" not in data:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return None
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split()[1])
            headers = dict(line.split(":", 1) for line in lines[1:])
            length = int({k.lower(): v for k, v in headers.items()}.get("content-length", 0))
            while len(body) < length:
                chunk = self.sock.recv(65536)
                if not chunk:
                    break
                body += chunk
            return status, body
        except ConnectionResetError:
            return None

    def closed_by_peer(self, timeout: float = 10) -> bool:
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False

    def close(self) -> None:
        self.sock.close()


def error_text(body: bytes) -> str:
    with pytest.raises(RemoteError) as caught:
        _native.decode_infer_response(body)
    return caught.value.message


def post(server: tf_graphpipe.server.RunningServer, body: bytes) -> tuple[int, str]:
    raw = RawHttp(server)
    try:
        raw.post_head(len(body))
        raw.send(body)
        answer = raw.read_answer()
    finally:
        raw.close()
    assert answer is not None, "the server closed the connection without answering"
    status, payload = answer
    return status, error_text(payload) if status != 200 else ""


# ---- bodies that lie ---------------------------------------------------------------

T = wb.RawTensor

LYING_BODIES = {
    "truncated-valid-request": valid_body()[: len(valid_body()) // 2],
    "only-the-root-offset": valid_body()[:4],
    "empty": b"",
    "shape-product-overflows-int64": wb.request(tensors=[T(type=10, shape=[1 << 32, 1 << 32, 1 << 32], data=b"")]),
    "shape-claims-terabytes": wb.request(tensors=[T(type=11, shape=[1 << 20, 1 << 20], data=b"\0" * 64)]),
    "zero-dim-beside-an-absurd-one": wb.request(tensors=[T(type=10, shape=[0, 1 << 62], data=b"")]),
    "negative-dimension": wb.request(tensors=[T(type=10, shape=[2, -3], data=b"\0" * 24)]),
    "minus-one-dimension-no-data": wb.request(tensors=[T(type=10, shape=[-1], data=b"")]),
    "data-shorter-than-shape": wb.request(tensors=[T(type=10, shape=[2, 3], data=b"\0" * 20)]),
    "data-longer-than-shape": wb.request(tensors=[T(type=10, shape=[2, 3], data=b"\0" * 28)]),
    "null-dtype": wb.request(tensors=[T(type=0, shape=[1], data=b"\0")]),
    "unknown-dtype-13": wb.request(tensors=[T(type=13, shape=[1], data=b"\0")]),
    "unknown-dtype-255": wb.request(tensors=[T(type=255, shape=[1], data=b"\0")]),
    "strings-fewer-than-shape": wb.request(tensors=[T(type=12, shape=[3], data=None, string_val=[b"a"])]),
    "unknown-union-type-3": wb.request(3),
    "unknown-union-type-255": wb.request(255),
    "union-none": wb.request(0),
    "infer-request-without-its-table": wb.request(wb.REQ_INFER, with_table=False),
}


@pytest.mark.parametrize("body", LYING_BODIES.values(), ids=LYING_BODIES.keys())
def test_lying_body_gets_400_and_the_server_keeps_serving(server, body: bytes) -> None:
    status, message = post(server, body)
    assert status == 400, message
    assert "not a GraphPipe Request" in message
    assert_serving(server.url)


def test_rank_beyond_64_gets_400(server) -> None:
    status, message = post(server, wb.request(tensors=[T(type=1, shape=[1] * 65, data=b"\1")]))
    assert status == 400 and "rank 65, over the limit of 64" in message
    assert_serving(server.url)


def test_terabyte_claims_take_no_memory(server) -> None:
    """Shapes claiming 2^40 elements are refused before anything is allocated."""
    bodies = [LYING_BODIES[k] for k in ("shape-product-overflows-int64", "shape-claims-terabytes",
                                         "zero-dim-beside-an-absurd-one")]
    before = reset_peak_rss()
    for _ in range(50):
        for body in bodies:
            assert post(server, body)[0] == 400
    assert peak_rss() - before < 32 * MiB
    assert_serving(server.url)


# ---- bodies that do not arrive as announced ----------------------------------------


def test_body_shorter_than_content_length_then_close_is_dropped(server) -> None:
    body = valid_body()
    raw = RawHttp(server)
    raw.post_head(len(body) + 1000)
    raw.send(body)
    raw.sock.shutdown(socket.SHUT_WR)  # no more bytes will come
    answer = raw.read_answer()
    raw.close()
    # Either an error answer or a closed connection; never a 200 or a hang.
    assert answer is None or 400 <= answer[0] < 500
    assert_serving(server.url)


def test_content_length_near_the_limit_then_close_takes_no_memory(server) -> None:
    """Announcing LIMIT bytes and sending 1 KiB must not commit LIMIT bytes of RAM."""
    before = reset_peak_rss()
    for _ in range(16):
        raw = RawHttp(server)
        raw.post_head(LIMIT)
        raw.send(b"\0" * 1024)
        raw.close()
    time.sleep(0.5)  # let the server notice the closes
    assert peak_rss() - before < 16 * MiB
    assert_serving(server.url)


def test_client_disconnecting_mid_body_leaves_the_server_serving(server) -> None:
    body = valid_body(np.zeros((4096, 3), np.float32))
    for cut in (1, len(body) // 2, len(body) - 1):
        raw = RawHttp(server)
        raw.post_head(len(body))
        raw.send(body[:cut])
        raw.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
        raw.close()  # linger 0: a reset, not a clean close
    assert_serving(server.url)


def test_slow_client_trickling_bytes_is_answered_and_blocks_no_one(server) -> None:
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    body = valid_body(x)
    raw = RawHttp(server)
    raw.post_head(len(body))
    others: list[np.ndarray] = []

    def other_client() -> None:
        others.append(Client(server.url, timeout=10, retries=0).infer(x))

    started = time.monotonic()
    thread = None
    for i, byte in enumerate(body):
        assert raw.send(bytes([byte]))
        if i == 10:  # the slow request is mid-body: others are served meanwhile
            thread = threading.Thread(target=other_client)
            thread.start()
        time.sleep(0.01)
    assert thread is not None
    thread.join(15)
    assert not thread.is_alive() and len(others) == 1
    np.testing.assert_array_equal(others[0], x * 2)
    answer = raw.read_answer()
    raw.close()
    assert answer is not None and answer[0] == 200
    np.testing.assert_array_equal(_native.decode_infer_response(answer[1])[0], x * 2)
    assert time.monotonic() - started > len(body) * 0.01


def test_many_stalled_bodies_do_not_stop_the_server(server) -> None:
    """Connections that announce a body and stall hold no worker: others are served."""
    stalled = []
    for _ in range(32):
        raw = RawHttp(server)
        raw.post_head(4096)
        raw.send(b"\0" * 100)
        stalled.append(raw)
    try:
        for _ in range(5):
            assert_serving(server.url)
    finally:
        for raw in stalled:
            raw.close()
    assert_serving(server.url)


# ---- more than max_request_bytes ----------------------------------------------------


def test_body_over_the_limit_gets_413_and_the_connection_closed(server) -> None:
    raw = RawHttp(server)
    raw.post_head(LIMIT + 1)
    raw.send(b"\0" * 65536)  # the server answers from the header; this may be refused
    answer = raw.read_answer()
    assert answer is not None and answer[0] == 413
    assert f"exceeds the server's limit of {LIMIT} bytes" in error_text(answer[1])
    assert raw.closed_by_peer()
    raw.close()
    assert_serving(server.url)


def test_body_at_the_limit_is_read(server) -> None:
    """The limit is inclusive: a request of exactly LIMIT bytes is read and answered."""
    x = np.zeros((2, 3), np.float32)
    config = b""
    for _ in range(8):  # grow the config until the message is LIMIT bytes (padding moves)
        body = bytes(_native.encode_infer_request([x], [10], [], [], config))
        if len(body) == LIMIT:
            break
        config = b"c" * (len(config) + LIMIT - len(body))
    assert len(body) == LIMIT
    status, message = post(server, body)
    assert status == 200, message


def test_chunked_body_over_the_limit_stops_memory_at_the_limit(server) -> None:
    before = reset_peak_rss()
    raw = RawHttp(server)
    raw.post_head(None, "Transfer-Encoding: chunked\r\n")
    chunk = b"100000\r\n" + b"\0" * MiB + b"\r\n"
    for _ in range(4 * LIMIT // MiB):  # four times the limit, if the server kept reading
        if not raw.send(chunk):
            break
    answer = raw.read_answer()
    raw.close()
    assert answer is None or answer[0] == 413
    assert peak_rss() - before < 3 * LIMIT
    assert_serving(server.url)


def test_malformed_http_gets_4xx_or_close(server) -> None:
    for head in (
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: -5\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 12abc\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 99999999999999999999999\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nContent-Length: 8\r\n\r\n\0\0\0\0",
        b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + b"\0" * 64,  # a TLS hello
        b"GARBAGE\r\n\r\n",
    ):
        raw = RawHttp(server, timeout=10)
        raw.send(head)
        answer = raw.read_answer()
        raw.close()
        assert answer is None or 400 <= answer[0] < 500, (head, answer)
    assert_serving(server.url)
