# SPDX-License-Identifier: Apache-2.0
"""Splitting a call's time between client and server, for the benches.

The raw loopback ceiling (``bench_e2e.Ceiling``) says what moving the bytes
costs; these say where the rest of a call's time goes:

* ``CannedServer``: an HTTP server that answers every POST with the same
  pre-encoded bytes as soon as the body is in. A client calling it pays its
  own cost only (HTTP, codec, libcurl, TensorFlow), the server's is ~zero.
* ``bench_e2e.RawHttp``: a keep-alive raw-socket HTTP client (one ``sendall``
  of the encoded request, ``recv_into`` a reused buffer). Calling
  ``tf-graphpipe serve`` with it shows the server's cost with the client's
  at its least; calling ``CannedServer(..., event_loop=True)`` shows what
  any server on a Python event loop pays before its own work.

Both run the same loops as the ceiling (Python sockets into reused
buffers), so their differences to it are the protocol's and the server's.

Run as a helper process: ``python request_bounds.py canned-server FILE``
(or ``asyncio-canned-server``) prints its port, then serves the bytes in FILE
(stdlib only, uvloop when installed).
"""
from __future__ import annotations

import os
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable

from bench_e2e import Process, content_length

HEAD_LIMIT = 64 << 10


def _read_head(conn: socket.socket, pending: bytearray) -> tuple[int, bytearray] | None:
    """(Content-Length, bytes read past the head), None at end of stream."""
    while b"\r\n\r\n" not in pending:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        pending += chunk
        if len(pending) > HEAD_LIMIT:
            raise ValueError("request head too large")
    head, _, rest = bytes(pending).partition(b"\r\n\r\n")
    length = content_length(head)
    return (0 if length is None else length), bytearray(rest)


def canned_server(answer_file: str) -> None:
    """Answers every POST on a connection with ``answer_file``'s bytes, after
    reading the body into a reused buffer; a thread per connection."""
    with open(answer_file, "rb") as f:
        body = f.read()
    answer = (b"HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\n"
              b"content-length: %d\r\n\r\n" % len(body)) + body
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    print(sock.getsockname()[1], flush=True)

    def serve(conn: socket.socket) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buffer = memoryview(bytearray(1 << 20))
        pending = bytearray()
        with conn:
            while True:
                head = _read_head(conn, pending)
                if head is None:
                    return
                length, pending = head
                if len(buffer) < length:
                    buffer = memoryview(bytearray(length))
                filled = min(len(pending), length)
                buffer[:filled] = pending[:filled]
                pending = pending[filled:]
                while filled < length:
                    got = conn.recv_into(buffer[filled:length])
                    if not got:
                        return
                    filled += got
                conn.sendall(answer)

    threading.Thread(target=_exit_with_parent, daemon=True).start()
    while True:
        conn, _ = sock.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


def asyncio_canned_server(answer_file: str) -> None:
    """``canned_server`` on an asyncio event loop (uvloop when installed, as
    ``tf-graphpipe serve`` runs): the body read with ``BufferedProtocol``
    into a reused buffer, the answer written by the transport. What any
    server on a Python event loop costs before its own work."""
    import asyncio

    with open(answer_file, "rb") as f:
        body = f.read()
    answer = memoryview((b"HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\n"
                         b"content-length: %d\r\n\r\n" % len(body)) + body)

    class Connection(asyncio.BufferedProtocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport: asyncio.Transport = transport  # type: ignore[assignment]
            transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.scratch = memoryview(bytearray(HEAD_LIMIT))
            self.head = bytearray()
            self.body = memoryview(bytearray(1 << 20))
            self.length = -1  # reading the head
            self.filled = 0

        def get_buffer(self, sizehint: int) -> memoryview:
            return self.scratch if self.length < 0 else self.body[self.filled:self.length]

        def buffer_updated(self, nbytes: int) -> None:
            if self.length >= 0:
                self.filled += nbytes
            else:
                self.head += self.scratch[:nbytes]
                end = self.head.find(b"\r\n\r\n")
                if end < 0:
                    return
                self.length = content_length(bytes(self.head[:end])) or 0
                rest = self.head[end + 4:]
                self.head = bytearray()
                if len(self.body) < self.length:
                    self.body = memoryview(bytearray(self.length))
                self.filled = len(rest)
                self.body[:self.filled] = rest
            if self.filled >= self.length:
                self.length, self.filled = -1, 0
                self.transport.write(answer)

    async def serve() -> None:
        try:
            import uvloop  # type: ignore[import-not-found]
            uvloop.install()
        except ImportError:
            pass
        server = await asyncio.get_running_loop().create_server(Connection, "127.0.0.1", 0)
        print(server.sockets[0].getsockname()[1], flush=True)
        await server.serve_forever()

    threading.Thread(target=_exit_with_parent, daemon=True).start()
    asyncio.run(serve())


def _exit_with_parent() -> None:
    """In a helper process: the parent holds our stdin, so EOF means it is gone."""
    sys.stdin.read()
    os._exit(0)


class CannedServer:
    """``canned_server`` (threads, blocking sockets) or, with
    ``event_loop=True``, ``asyncio_canned_server``, in its own process,
    answering ``answer``; ``url``."""

    def __init__(self, answer: bytes, event_loop: bool = False) -> None:
        with tempfile.NamedTemporaryFile(prefix="canned-answer-", delete=False) as f:
            f.write(answer)
            self.answer_file = f.name
        role = "asyncio-canned-server" if event_loop else "canned-server"
        # stdin=True: the server exits when it reads EOF there, with us.
        self.process = Process([sys.executable, os.path.abspath(__file__), role, self.answer_file], stdin=True)
        self.url = f"http://127.0.0.1:{int(self.process.line)}"

    def close(self) -> None:
        self.process.close()
        os.unlink(self.answer_file)


class SeedOnly:
    """A bench_e2e path timed on the seed call only: one of the rows that
    split the seed call's time between client and server."""

    def __init__(self, name: str, call: Callable[[], object], closing: Callable[[], object]) -> None:
        self.name, self.call, self.closing = name, call, closing

    def seed(self) -> float:
        start = time.perf_counter()
        self.call()
        return time.perf_counter() - start

    def threads(self, count: int, calls: int) -> None:
        return None

    def small(self, count: int) -> None:
        return None

    def close(self) -> None:
        self.closing()

if __name__ == "__main__":
    roles = {"canned-server": canned_server, "asyncio-canned-server": asyncio_canned_server}
    if len(sys.argv) != 3 or sys.argv[1] not in roles:
        sys.exit(f"usage: request_bounds.py {{{'|'.join(roles)}}} ANSWER_FILE")
    roles[sys.argv[1]](sys.argv[2])
