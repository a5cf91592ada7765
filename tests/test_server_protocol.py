# SPDX-License-Identifier: Apache-2.0
"""The server's HTTP/1.1 machinery on raw sockets: pipelining, 100-continue,
head limits, slow and idle clients, lingering 413, disconnects mid-body,
bodies in many pieces, reused body buffers, HEAD, graceful shutdown."""
from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

import tf_graphpipe
from tf_graphpipe import Client, _native
from tf_graphpipe.server import RunningServer, load_model

from support import servers


def _infer_body(x: np.ndarray) -> bytes:
    return bytes(_native.encode_infer_request([x], [10], [], [], b""))


def _post(body: bytes, extra: bytes = b"") -> bytes:
    return b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n%s\r\n" % (len(body), extra) + body


class _Reader:
    """Reads HTTP/1.1 responses (Content-Length framed) off a socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.data = sock, b""

    def response(self) -> tuple[int, dict[str, str], bytes]:
        while b"\r\n\r\n" not in self.data:
            self._more()
        head, _, self.data = self.data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        length = int(headers.get("content-length", "0"))
        while len(self.data) < length:
            self._more()
        body, self.data = self.data[:length], self.data[length:]
        return int(lines[0].split()[1]), headers, body

    def closed(self, timeout: float = 10) -> bool:
        """True if the server closes (EOF or reset) within ``timeout``."""
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.data += chunk
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False

    def _more(self) -> None:
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError("server closed the connection")
        self.data += chunk


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    with tf_graphpipe.serve(servers.double, max_request_bytes=8 << 20) as running:
        yield running


@pytest.fixture()
def strict() -> Iterator[RunningServer]:
    """Short timeouts: 1 s for a request head / a stalled body, 2 s idle."""
    with RunningServer(load_model(servers.double), request_timeout=1.0, keep_alive_timeout=2.0) as running:
        yield running


def _connect(server: RunningServer) -> socket.socket:
    sock = socket.create_connection((server.host, server.port), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def test_pipelined_requests_are_answered_in_order(server) -> None:
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    with _connect(server) as sock:
        sock.sendall(b"GET /control/is_alive HTTP/1.1\r\nHost: x\r\n\r\n" + _post(_infer_body(x))
                     + _post(_infer_body(x + 1)) + b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        reader = _Reader(sock)
        assert reader.response()[0::2] == (200, b"ok")
        for expected in (2 * x, 2 * (x + 1)):
            status, _, body = reader.response()
            assert status == 200
            np.testing.assert_array_equal(_native.decode_infer_response(body)[0], expected)
        status, headers, _ = reader.response()
        assert status == 200 and headers["content-type"] == "application/json"


def test_expect_100_continue_is_answered_before_the_body(server) -> None:
    body = _infer_body(np.ones((1, 3), np.float32))
    with _connect(server) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(body))
        reader = _Reader(sock)
        assert reader.response()[0] == 100
        sock.sendall(body)
        status, _, answer = reader.response()
        assert status == 200
        np.testing.assert_array_equal(_native.decode_infer_response(answer)[0], [[2, 2, 2]])


def test_head_over_the_limit_gets_431_and_close(server) -> None:
    with _connect(server) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (80 << 10) + b"\r\n\r\n")
        reader = _Reader(sock)
        status, headers, _ = reader.response()
        assert status == 431 and headers["connection"] == "close"
        assert reader.closed()


def test_endless_header_line_gets_431_and_close(server) -> None:
    with _connect(server) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Endless: ")
        try:
            for _ in range(40):  # 160 KiB of one header value, never finished
                sock.sendall(b"a" * 4096)
        except OSError:
            pass
        reader = _Reader(sock)
        assert reader.response()[0] == 431
        assert reader.closed()


def test_malformed_request_gets_400_and_close(server) -> None:
    with _connect(server) as sock:
        sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        reader = _Reader(sock)
        assert reader.response()[0] == 400
        assert reader.closed()


def test_head_request_gets_headers_without_body(server) -> None:
    with _connect(server) as sock:
        sock.sendall(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\nGET /control/is_ready HTTP/1.1\r\nHost: x\r\n\r\n")
        head = b""
        while head.count(b"\r\n\r\n") < 2 or not head.endswith(b"ok"):
            head += sock.recv(65536)
        first, _, rest = head.partition(b"\r\n\r\n")
        assert first.startswith(b"HTTP/1.1 200") and b"content-length: " in first.lower()
        assert rest.startswith(b"HTTP/1.1 200")  # no metadata bytes in between


def test_oversized_body_sent_anyway_still_gets_413(server) -> None:
    body = b"\0" * (12 << 20)  # over the 8 MiB limit, sent whole without waiting
    with _connect(server) as sock:
        sender = threading.Thread(target=_send_ignoring_errors, args=(sock, _post(body)))
        sender.start()
        status, headers, answer = _Reader(sock).response()
        sender.join()
    assert status == 413 and headers["connection"] == "close"
    assert "exceeds the server's limit" in answer.decode(errors="replace")
    np.testing.assert_array_equal(Client(server.url).infer(np.ones((1, 3), np.float32)), [[2, 2, 2]])


def _send_ignoring_errors(sock: socket.socket, data: bytes) -> None:
    try:
        sock.sendall(data)
    except OSError:
        pass


def test_client_leaving_mid_body_does_not_disturb_the_server(server) -> None:
    body = _infer_body(np.ones((1000, 3), np.float32))
    for cut in (10, len(body) // 2, len(body) - 1):
        with _connect(server) as sock:
            sock.sendall(_post(body)[: cut + 60])
    np.testing.assert_array_equal(Client(server.url).infer(np.ones((1, 3), np.float32)), [[2, 2, 2]])


def test_body_arriving_in_many_pieces_is_whole(server) -> None:
    x = np.random.default_rng(1).standard_normal((300, 3)).astype(np.float32)
    request = _post(_infer_body(x))
    with _connect(server) as sock:
        for start in range(0, len(request), 97):
            sock.sendall(request[start:start + 97])
        status, _, answer = _Reader(sock).response()
    assert status == 200
    np.testing.assert_array_equal(_native.decode_infer_response(answer)[0], 2 * x)


def test_large_inputs_kept_by_the_model_are_never_overwritten() -> None:
    kept: list[np.ndarray] = []

    def keep(x: np.ndarray) -> np.ndarray:
        kept.append(x)  # holds a view of the request body
        return x[:1]

    with tf_graphpipe.serve(keep) as running:
        client = Client(running.url)
        inputs = [np.full((1 << 18, 2), i, np.float32) for i in range(4)]  # 2 MiB each
        for x in inputs:
            client.infer(x)
        for x, seen in zip(inputs, kept):
            np.testing.assert_array_equal(seen, x)


def test_repeated_large_calls_reuse_and_stay_correct() -> None:
    with tf_graphpipe.serve(servers.echo) as running:
        client = Client(running.url)
        rng = np.random.default_rng(2)
        for rows in (1 << 17, 1 << 17, 3 << 15, 1 << 17):  # same, smaller, larger again
            x = rng.standard_normal((rows, 4)).astype(np.float32)
            np.testing.assert_array_equal(client.infer(x), x)


def test_slow_request_head_gets_408(strict) -> None:
    with _connect(strict) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\n")  # ... and never the rest
        reader = _Reader(sock)
        status, headers, _ = reader.response()
        assert status == 408 and headers["connection"] == "close"
        assert reader.closed()


def test_stalled_body_gets_408(strict) -> None:
    body = _infer_body(np.ones((100, 3), np.float32))
    with _connect(strict) as sock:
        sock.sendall(_post(body)[:-50])
        reader = _Reader(sock)
        assert reader.response()[0] == 408
        assert reader.closed()


def test_idle_connection_is_closed_after_keep_alive_timeout(strict) -> None:
    with _connect(strict) as sock:
        sock.sendall(b"GET /control/is_alive HTTP/1.1\r\nHost: x\r\n\r\n")
        reader = _Reader(sock)
        assert reader.response()[0] == 200
        started = time.monotonic()
        assert reader.closed(timeout=10)
        assert time.monotonic() - started > 1.0


def test_close_lets_a_call_in_flight_finish() -> None:
    inside = threading.Event()

    def slow(x: np.ndarray) -> np.ndarray:
        inside.set()
        time.sleep(0.5)
        return x + 1

    running = tf_graphpipe.serve(slow)
    result: list[np.ndarray] = []
    caller = threading.Thread(target=lambda: result.append(Client(running.url).infer(np.zeros(2, np.float32))))
    caller.start()
    assert inside.wait(20)
    running.close()
    caller.join(20)
    np.testing.assert_array_equal(result[0], [1, 1])
    assert not running.running
