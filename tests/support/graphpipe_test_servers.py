# SPDX-License-Identifier: Apache-2.0
"""Small threaded HTTP/1.1 GraphPipe servers for tests: a correct echo server
and the misbehaving peers a client must survive.

Every server binds 127.0.0.1 on a free port, runs in background threads, and
is a context manager::

    with EchoServer() as server:
        Client(server.url).infer(x)
        assert server.connections_accepted == 1

Behaviours (one class each, all on ``TestServer``):

- ``EchoServer``: answers an InferRequest with its own input tensors and a
  MetadataRequest with ``metadata``; keep-alive; records every request.
- ``SilentServer``: accepts, reads the request, never answers.
- ``GarbageServer``: HTTP 200 with bytes that are not a flatbuffer.
- ``TruncatingServer``: declares a Content-Length larger than what it sends
  (a valid answer cut short), then closes the connection.
- ``TextErrorServer``: a given status with a ``text/plain`` body (the Go
  servers' style for a failed model call; 503 for overload).
- ``ErrorResponseServer``: HTTP 200 (or another status) with an
  InferResponse that carries ``errors``.
- ``SlowEchoServer``: the echo server, answering after ``delay`` seconds.

``stop()`` never hangs: it wakes handlers that wait, shuts down every open
connection so blocked reads return, and joins the handler threads.
"""
from __future__ import annotations

import dataclasses
import http.server
import socket
import socketserver
import threading
from typing import Any

import numpy as np

from tf_graphpipe import _native, dtypes

ECHO_METADATA: dict[str, Any] = {
    "name": "echo",
    "version": "1.0",
    "server": "tf-graphpipe test echo",
    "description": "answers with its inputs",
    "inputs": [
        {"name": "input0", "description": "any tensor", "shape": [-1, 3], "type": 10},
        {"name": "tokens", "description": "", "shape": [-1], "type": 12},
    ],
    "outputs": [
        {"name": "output0", "description": "the input, unchanged", "shape": [-1, 3], "type": 10},
        {"name": "undeclared", "description": "", "shape": [], "type": 0},
    ],
}


@dataclasses.dataclass
class Reply:
    """What a behaviour answers: an HTTP status and body. ``declared_length``
    overrides Content-Length (to lie about it); ``close`` drops the connection
    after sending."""

    status: int = 200
    body: bytes = b""
    content_type: str = "application/octet-stream"
    declared_length: int | None = None
    close: bool = False


@dataclasses.dataclass
class SeenRequest:
    """A decoded request as the echo server received it."""

    kind: str  # "infer" or "metadata"
    config: bytes = b""
    input_names: list[str] = dataclasses.field(default_factory=list)
    output_names: list[str] = dataclasses.field(default_factory=list)
    inputs: list[np.ndarray] = dataclasses.field(default_factory=list)


_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 500: "Internal Server Error",
            503: "Service Unavailable"}


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive unless a reply says close
    server: _ThreadedServer

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        owner = self.server.owner
        owner._count_request(self.headers.get("GraphPipe-Timeout"))
        reply = owner.respond(body)
        if reply is None:  # never answer: wait until the server stops
            owner.stopping.wait()
            self.close_connection = True
            return
        self._send(reply)

    def do_GET(self) -> None:  # noqa: N802
        self._send(Reply(404, b"POST GraphPipe requests here\n", "text/plain"))

    def _send(self, reply: Reply) -> None:
        length = len(reply.body) if reply.declared_length is None else reply.declared_length
        head = (
            f"HTTP/1.1 {reply.status} {_REASONS.get(reply.status, 'Status')}\r\n"
            f"Content-Type: {reply.content_type}\r\n"
            f"Content-Length: {length}\r\n"
            + ("Connection: close\r\n" if reply.close else "")
            + "\r\n"
        ).encode("ascii")
        try:
            # One write: headers and body in the same segments (no Nagle stall).
            self.wfile.write(head + reply.body)
            self.wfile.flush()
        except OSError:
            self.close_connection = True
            return
        if reply.close:
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass  # keep test output clean


class _ThreadedServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    owner: TestServer

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, address = super().get_request()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.owner._track(conn)
        return conn, address

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self.process_request_thread, args=(request, client_address), daemon=True
        )
        self.owner._track_thread(thread)
        thread.start()

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client hanging up mid-request is routine here


class TestServer:
    """A GraphPipe HTTP server whose answers come from ``respond(body)``.

    Subclasses override ``respond``; returning None means never answer.

    Attributes:
        url: ``http://127.0.0.1:PORT/``.
        connections_accepted: TCP connections accepted so far.
        requests_received: POST requests read so far.
        timeouts: each POST's ``GraphPipe-Timeout`` header (None if absent).
    """

    __test__ = False  # not a pytest test class

    def __init__(self) -> None:
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._connections: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._connections_accepted = 0
        self._requests_received = 0
        self.timeouts: list[str | None] = []
        self._httpd: _ThreadedServer | None = None
        self._port: int | None = None
        self._serve_thread: threading.Thread | None = None

    # -- behaviour -------------------------------------------------------
    def respond(self, body: bytes) -> Reply | None:
        raise NotImplementedError

    # -- life cycle ------------------------------------------------------
    def start(self) -> TestServer:
        self._httpd = _ThreadedServer(("127.0.0.1", 0), _Handler)
        self._httpd.owner = self
        self._port = self._httpd.server_address[1]
        self._serve_thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._serve_thread.start()
        return self

    def stop(self, join_timeout: float = 5.0) -> None:
        if self._httpd is None:
            return
        self.stopping.set()
        self._httpd.shutdown()
        with self._lock:
            connections, threads = list(self._connections), list(self._threads)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._httpd.server_close()
        for thread in [self._serve_thread, *threads]:
            if thread is not None:
                thread.join(join_timeout)
        hung = [t for t in threads if t.is_alive()]
        self._httpd = None
        if hung:
            raise RuntimeError(f"{len(hung)} handler thread(s) of {self!r} did not stop")

    def __enter__(self) -> TestServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- facts for tests -------------------------------------------------
    @property
    def port(self) -> int:
        """The port it listens on (kept after stop, for messages)."""
        assert self._port is not None, "server never started"
        return self._port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def connections_accepted(self) -> int:
        with self._lock:
            return self._connections_accepted

    @property
    def requests_received(self) -> int:
        with self._lock:
            return self._requests_received

    def __repr__(self) -> str:
        where = self.url if self._httpd is not None else "stopped"
        return f"{type(self).__name__}({where})"

    def _track(self, conn: socket.socket) -> None:
        with self._lock:
            self._connections_accepted += 1
            self._connections.append(conn)

    def _track_thread(self, thread: threading.Thread) -> None:
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)

    def _count_request(self, timeout: str | None = None) -> None:
        with self._lock:
            self._requests_received += 1
            self.timeouts.append(timeout)


def echo_reply(body: bytes, metadata: dict[str, Any], seen: list[SeenRequest] | None = None) -> Reply:
    """The answer of a correct echo server to one request body."""
    try:
        decoded = _native.decode_request(body)
    except Exception as exc:  # noqa: BLE001 - a bad request is answered, not raised
        return Reply(400, str(exc).encode("utf-8"), "text/plain")
    if decoded[0] == "metadata":
        if seen is not None:
            seen.append(SeenRequest("metadata"))
        return Reply(200, bytes(_native.encode_metadata_response(metadata)))
    _, config, input_names, inputs, output_names = decoded
    if seen is not None:
        seen.append(SeenRequest("infer", config, input_names, output_names,
                                [np.array(a, copy=True) for a in inputs]))
    wire_types = [dtypes.wire_array(a)[1] for a in inputs]
    return Reply(200, bytes(_native.encode_infer_response(inputs, wire_types)))


class EchoServer(TestServer):
    """A correct GraphPipe server: infer answers with the inputs, in order."""

    def __init__(self, metadata: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.metadata = ECHO_METADATA if metadata is None else metadata
        self.seen: list[SeenRequest] = []

    def respond(self, body: bytes) -> Reply | None:
        return echo_reply(body, self.metadata, self.seen)


class SlowEchoServer(EchoServer):
    """The echo server, answering ``delay`` seconds after each request."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay

    def respond(self, body: bytes) -> Reply | None:
        if self.stopping.wait(self.delay):
            return None
        return super().respond(body)


class SilentServer(TestServer):
    """Accepts and reads every request, never answers (until stopped)."""

    def respond(self, body: bytes) -> Reply | None:
        return None


class GarbageServer(TestServer):
    """HTTP 200 whose body is not a GraphPipe message."""

    def __init__(self, body: bytes = b"\xde\xad\xbe\xef not a flatbuffer \x00\xff" * 4) -> None:
        super().__init__()
        self.body = body

    def respond(self, body: bytes) -> Reply | None:
        return Reply(200, self.body)


class TruncatingServer(TestServer):
    """Starts a valid echo answer, declares ``missing`` more bytes than it
    sends, then closes the connection."""

    def __init__(self, missing: int = 1000) -> None:
        super().__init__()
        self.missing = missing

    def respond(self, body: bytes) -> Reply | None:
        full = echo_reply(body, ECHO_METADATA).body
        return Reply(200, full, declared_length=len(full) + self.missing, close=True)


class TextErrorServer(TestServer):
    """Answers every request with ``status`` and a text/plain body."""

    def __init__(self, status: int = 400, text: str | bytes = "model failed: bad input\n",
                 content_type: str = "text/plain; charset=utf-8") -> None:
        super().__init__()
        self.status = status
        self.text = text.encode("utf-8") if isinstance(text, str) else text
        self.content_type = content_type

    def respond(self, body: bytes) -> Reply | None:
        return Reply(self.status, self.text, self.content_type)


class ErrorResponseServer(TestServer):
    """Answers with an InferResponse carrying one Error(code, message)."""

    def __init__(self, message: str = "no such output 'nope'", code: int = 3,
                 status: int = 200) -> None:
        super().__init__()
        self.message = message
        self.code = code
        self.status = status

    def respond(self, body: bytes) -> Reply | None:
        return Reply(self.status, bytes(_native.encode_error_response(self.message, self.code)))
