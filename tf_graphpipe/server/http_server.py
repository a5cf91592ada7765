# SPDX-License-Identifier: Apache-2.0
"""The HTTP/1.1 front end ``serve()`` runs: an asyncio ``BufferedProtocol``
with ``httptools`` (llhttp) parsing, on uvloop when installed. It moves bytes
between sockets and the ``Dispatcher`` and decides nothing about what is
answered: routes, refusals, scheduling and error answers are the
dispatcher's.

Why not uvicorn: its protocol copies every ~64 KiB chunk into a bytes object
and passes each through an ASGI message dict, so a 77 MB body costs ~1200
Python round trips and as many copies (bench/README.md has the numbers).
Here a body with a Content-Length is received by the kernel straight into its
lease's buffer (``get_buffer`` hands out the part the byte budget has
granted, so each ``recv_into`` takes what the socket holds); the parser only
sees the head and the first bytes of the body. Answers are written as their
own buffers, with no copy.

Threads: everything here runs on the event loop thread, with one exception
made by construction. When the loop hands a call to a model worker on a
connection whose transport has nothing queued (keep-alive, not a HEAD), it
also hands that worker the write side for that one answer: a
``_SocketWriter``, a dup of the socket and the answer heads, nothing else of
the connection. The worker writes the answer with one non-blocking write
and returns what did not fit; the loop writes the rest, then takes the write
side back (``_reply``). Until then the loop writes nothing to that
connection (its 100 Continue, refusals and closes wait, as for any answer
in progress) and keeps the dup open even if the transport closes. This saves
the loop wake-up in front of the answer: the 1x4 call on a worker (with
``--inline-max-us 0``) in bench/README.md.

HTTP behaviour:

* keep-alive; pipelined requests are answered one at a time, in order;
  reading pauses while too many wait or while the client does not read;
* chunked request bodies (size-checked as they grow);
* ``Expect: 100-continue`` answered before reading the body, once every
  earlier answer on the connection is out (never ahead of one);
* limits: the head (request line + headers) at ``max_header_bytes`` (431);
  at most ``max_connections`` open connections (one more is answered 503
  and closed); bodies over ``max_request_bytes`` (413) or past the budget of
  request bytes in flight (503) as the dispatcher decides. After a refusal
  the server stops reading, sends the answer with ``Connection: close``,
  half-closes and discards what still arrives for a moment (a lingering
  close, so the client sees the answer, not a reset);
* timeouts: a head not complete, or a body making no progress, within
  ``request_timeout`` gets 408 and is closed (slow clients); an idle
  connection is closed after ``keep_alive_timeout``; a client that does not
  read its answer for ``request_timeout`` is dropped;
* every answer carries ``Date``;
* shutdown: stop accepting, close idle connections, let requests in flight
  finish (up to ``graceful_timeout``), then close the rest.
"""
from __future__ import annotations

import asyncio
import collections
import logging
import os
import socket
import ssl
import time
from typing import Any

import httptools

from tf_graphpipe.server.answer import Answer
from tf_graphpipe.server.dispatcher import Dispatcher, Request
from tf_graphpipe.server.errors import (
    BadRequest,
    HeadTooLarge,
    Overloaded,
    RequestTimeout,
    ServerError,
)
from tf_graphpipe.server.http_framing import CONTINUE, Heads

__all__ = ["DEFAULT_MAX_CONNECTIONS", "HttpServer"]

log = logging.getLogger("tf_graphpipe.server")

DEFAULT_MAX_CONNECTIONS = 1024
READ_CHUNK = 256 << 10  # the shared buffer heads and small bodies land in
SMALL_ANSWER = 64 << 10  # answers up to this size are joined to their head: one write
MAX_WAITING = 8  # pipelined requests parsed ahead before reading pauses
LINGER_SECONDS = 2.0
SWEEP_SECONDS = 1.0


class HttpServer:
    """Serves a ``Dispatcher`` on listening sockets, on the running loop.

    Args:
        dispatcher: what to answer.
        keep_alive_timeout: seconds an idle connection stays open.
        request_timeout: seconds allowed for a request's head, and for a body
            or an answer to make progress.
        max_header_bytes: largest request line + headers.
        max_connections: connections open at once; one more is answered 503.
        graceful_timeout: seconds ``shutdown`` waits for requests in flight.
        ssl_context: serve TLS with it (asyncio's SSL transport: a body is
            still decrypted straight into its lease's buffer).
    """

    def __init__(
        self,
        dispatcher: Dispatcher,
        *,
        keep_alive_timeout: float = 75.0,
        request_timeout: float = 60.0,
        max_header_bytes: int = 64 << 10,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        graceful_timeout: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if max_connections < 1:
            raise ValueError(f"max_connections must be >= 1, got {max_connections}")
        self.dispatcher = dispatcher
        self.keep_alive_timeout = keep_alive_timeout
        self.request_timeout = request_timeout
        self.max_header_bytes = max_header_bytes
        self.max_connections = max_connections
        self.graceful_timeout = graceful_timeout
        self.ssl_context = ssl_context
        self.connections: set[_Connection] = set()
        self.admitted = 0  # connections counted against max_connections
        self.heads = Heads()
        # One read buffer for every connection: the loop runs one callback at
        # a time and everything read into it is parsed (or copied) at once.
        self.read_view = memoryview(bytearray(READ_CHUNK))
        self.clock = 0.0  # loop.time(), refreshed by the sweeper: activity stamps
        self.loop: asyncio.AbstractEventLoop | None = None
        self._servers: list[asyncio.AbstractServer] = []
        self._sweeper: asyncio.TimerHandle | None = None

    async def start(self, sockets: list[socket.socket]) -> None:
        """Starts accepting on ``sockets`` (already bound and listening)."""
        self.loop = asyncio.get_running_loop()
        self.clock = self.loop.time()
        for sock in sockets:
            self._servers.append(await self.loop.create_server(lambda: _Connection(self), sock=sock, backlog=2048,
                                                               ssl=self.ssl_context))
        self._sweep()

    def _sweep(self) -> None:
        loop: asyncio.AbstractEventLoop = self.loop  # type: ignore[assignment]
        self.clock = now = loop.time()
        wall = time.time()
        self.heads.refresh(wall)
        for connection in list(self.connections):
            connection.check_timeouts(now)
        self.dispatcher.budget.pool.trim()
        # Next just after the wall clock's next second, so Date is never a second late.
        self._sweeper = loop.call_later(SWEEP_SECONDS - wall % 1.0 + 0.001, self._sweep)

    async def shutdown(self) -> None:
        """Stops accepting; finishes requests in flight (up to
        ``graceful_timeout``); closes every connection."""
        loop: asyncio.AbstractEventLoop = self.loop  # type: ignore[assignment]
        self.dispatcher.close()
        for server in self._servers:
            server.close()
        for connection in list(self.connections):
            connection.close_when_idle()
        deadline = loop.time() + self.graceful_timeout
        while self.connections and loop.time() < deadline:
            await asyncio.sleep(0.02)
        for connection in list(self.connections):
            connection.abort()
        if self._sweeper is not None:
            self._sweeper.cancel()
        await asyncio.sleep(0)  # let connection_lost callbacks run


class _Connection(asyncio.BufferedProtocol):
    """One client connection: parse, hand each request to the dispatcher in
    order, write its answer. Event loop thread only."""

    def __init__(self, server: HttpServer) -> None:
        self.server = server
        self.dispatcher = server.dispatcher
        self.loop = server.loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.last_io = server.clock
        self.admitted = False
        # Requests whose body has arrived, answered one at a time in order; an
        # Answer instead of a request is a refusal, answered in its turn.
        self.waiting: collections.deque[tuple[Request | Answer, bool]] = collections.deque()
        self.answering: Request | None = None  # the request the dispatcher is answering
        self.answering_keep_alive = True
        self.dispatching = False  # inside _next: a reply made meanwhile does not recurse
        self.closing = False  # close once the current answers are out
        self.discarding = False  # refused: read and drop whatever still comes
        self.reading_paused = False
        self.writing_paused_since: float | None = None
        self.linger: asyncio.TimerHandle | None = None
        self.continue_owed = False  # 100 Continue to send once earlier answers are out
        self.writer: _SocketWriter | None = None  # what a worker may write with
        self.write_granted = False  # a worker holds the write side (for the answer in progress)
        self.peer = "-"  # host:port of the client, for the access log
        self._reset_message()

    def _reset_message(self) -> None:
        self.in_message = False
        self.head_complete = False
        self.direct = False  # the body is being received straight into its lease
        self.request: Request | None = None  # the request whose body is arriving
        self.url = b""
        self.head_bytes = 0
        self.head_fed = 0
        self.content_length: int | None = None
        self.chunked = False
        self.header_length: int | None = None  # v2 Inference-Header-Content-Length
        self.authorization: bytes | None = None
        self.traceparent: bytes | None = None
        self.timeout: bytes | None = None  # GraphPipe-Timeout
        self.expect_continue = False
        self.keep_alive = True
        self.started = self.server.clock

    @property
    def busy(self) -> bool:
        return self.answering is not None

    # ---- asyncio.BufferedProtocol ---------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        server = self.server
        server.connections.add(self)
        if server.admitted >= server.max_connections:
            self._refuse(Overloaded(f"the server has {server.admitted} connections open, its limit "
                                    f"(max_connections): retry later"), known_path=False)
            return
        server.admitted += 1
        self.admitted = True
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) >= 2:
            self.peer = f"{peer[0]}:{peer[1]}"
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                # A descriptor of our own, valid until we close it, for a worker's
                # write; never under TLS, whose bytes only the transport makes.
                if server.ssl_context is None:
                    self.writer = _SocketWriter(os.dup(sock.fileno()), server.heads)
            except (OSError, AttributeError, ValueError):
                pass

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        if self.admitted:
            self.server.admitted -= 1
            self.admitted = False
        self.transport = None
        if not self.write_granted:
            self._close_writer()
        self._drop_incoming()
        for item, _ in self.waiting:
            if type(item) is Request:
                item.done()
        self.waiting.clear()
        # A request being answered keeps its lease until the dispatcher replies
        # (the model may still be reading its body).
        if self.linger is not None:
            self.linger.cancel()

    def get_buffer(self, sizehint: int) -> memoryview:
        if self.direct:
            try:
                return self.request.lease.writable()  # type: ignore[union-attr]
            except ServerError as exc:
                self._refuse(exc)
        return self.server.read_view

    def buffer_updated(self, nbytes: int) -> None:
        self.last_io = self.server.clock
        if self.direct:
            lease = self.request.lease  # type: ignore[union-attr]
            lease.received(nbytes)  # type: ignore[union-attr]
            if lease.complete:  # type: ignore[union-attr]
                # The parser was left mid-body; the next request gets a fresh one.
                self.parser = httptools.HttpRequestParser(self)
                self.on_message_complete()
            return
        if self.discarding:
            return
        try:
            self.parser.feed_data(self.server.read_view[:nbytes])
        except httptools.HttpParserUpgrade:
            self._refuse(BadRequest("protocol upgrades are not supported"))
            return
        except httptools.HttpParserError as exc:
            self._refuse(BadRequest(f"malformed HTTP request: {exc}"))
            return
        if self.discarding:
            return
        if self.head_complete:
            if self.request is not None and self.content_length:
                self.direct = True  # the rest of the body goes straight into its lease
        elif self.in_message:
            # llhttp keeps an unfinished header line to itself: bound what it may hold.
            self.head_fed += nbytes
            if self.head_fed > self.server.max_header_bytes:
                self._refuse(self._head_too_large())

    def eof_received(self) -> bool | None:
        # A client may half-close after its request: answer what is complete.
        if self.in_message or not (self.busy or self.waiting):
            return None  # close
        self.closing = True
        return True

    def pause_writing(self) -> None:
        self.writing_paused_since = self.server.clock
        self._pause_reading()

    def resume_writing(self) -> None:
        self.writing_paused_since = None
        self._next()

    # ---- httptools callbacks --------------------------------------------------------

    def on_message_begin(self) -> None:
        self._reset_message()
        self.in_message = True

    def on_url(self, url: bytes) -> None:
        self.url += url
        self.head_bytes += len(url)
        if self.head_bytes > self.server.max_header_bytes:
            self._refuse(self._head_too_large())

    def on_header(self, name: bytes, value: bytes) -> None:
        self.head_bytes += len(name) + len(value) + 4
        if self.head_bytes > self.server.max_header_bytes:
            self._refuse(self._head_too_large())
            return
        size = len(name)
        if size == 14 and name.lower() == b"content-length":
            self.content_length = int(value)  # llhttp has checked it is digits
        elif size == 17 and name.lower() == b"transfer-encoding":
            self.chunked = True
        elif size == 6 and name.lower() == b"expect":
            self.expect_continue = value.lower() == b"100-continue"
        elif size == 31 and name.lower() == b"inference-header-content-length":
            self.header_length = int(value) if value.isdigit() else -1  # -1: refused by the v2 decoder
        elif size == 13 and name.lower() == b"authorization":
            self.authorization = value
        elif size == 11 and name.lower() == b"traceparent":
            self.traceparent = value
        elif size == 17 and name.lower() == b"graphpipe-timeout":
            self.timeout = value

    def on_headers_complete(self) -> None:
        if self.discarding:
            return
        self.head_complete = True
        self.keep_alive = self.parser.should_keep_alive()
        length = self.content_length if self.content_length is not None or self.chunked else 0
        request = self.dispatcher.begin(self.parser.get_method(), self.url.partition(b"?")[0], length,
                                        self.header_length, self.authorization, self.traceparent, self.peer,
                                        timeout=self.timeout)
        if request.refused is not None:
            self._refuse_with(request.refused)
            return
        self.request = request
        if self.expect_continue and self.transport is not None:
            if self.busy or self.waiting:
                self.continue_owed = True  # after the earlier answers, in order
            else:
                self.transport.write(CONTINUE)

    def on_body(self, chunk: bytes) -> None:
        if self.discarding or self.request is None:
            return
        try:
            self.request.lease.write(chunk)  # type: ignore[union-attr]
        except ServerError as exc:
            self._refuse(exc)

    def on_message_complete(self) -> None:
        if self.discarding:
            return
        request = self.request
        self._reset_message()
        self.waiting.append((request, self.keep_alive))  # type: ignore[arg-type]
        if len(self.waiting) >= MAX_WAITING:
            self._pause_reading()
        self._next()

    # ---- answering ------------------------------------------------------------------

    def _next(self) -> None:
        if self.dispatching:
            return
        self.dispatching = True
        try:
            while (self.answering is None and self.waiting and self.transport is not None
                   and self.writing_paused_since is None):
                item, keep_alive = self.waiting.popleft()
                if type(item) is Answer:  # a refusal, answered in its turn
                    self._send_refusal(item)
                    return
                self.answering, self.answering_keep_alive = item, keep_alive  # type: ignore[assignment]
                writer = self.writer
                if (writer is not None and keep_alive and not self.closing and item.method != b"HEAD"  # type: ignore[union-attr]
                        and not self.transport.get_write_buffer_size()):
                    self.write_granted = True  # until _reply: the loop writes nothing here
                    self.dispatcher.finish(item, self._reply, writer)  # type: ignore[arg-type]
                else:
                    self.dispatcher.finish(item, self._reply)  # type: ignore[arg-type]
        finally:
            self.dispatching = False
        transport = self.transport
        if transport is None or self.answering is not None:
            return
        if self.continue_owed and not self.waiting and self.request is not None:
            self.continue_owed = False
            transport.write(CONTINUE)
        if self.reading_paused and len(self.waiting) < MAX_WAITING // 2 and self.writing_paused_since is None \
                and not self.discarding:
            self.reading_paused = False
            transport.resume_reading()

    def _reply(self, answer: Answer) -> None:
        """The dispatcher's answer to the request being answered (on the loop)."""
        request, self.answering = self.answering, None
        self.write_granted = False
        transport = self.transport
        if transport is None or transport.is_closing():  # the client went away while we worked
            if transport is None:
                self._close_writer()
            if request is not None:
                request.done()
            return
        close = answer.close or not self.answering_keep_alive or self.closing
        unsent = request.unsent if request is not None else None
        if unsent is not None:  # a worker wrote the answer, or its start: the rest
            if unsent:
                transport.writelines(unsent)
        elif request is not None and request.method == b"HEAD":
            transport.write(self.server.heads.head(answer, close))
        elif answer.length <= SMALL_ANSWER:
            transport.write(b"".join((self.server.heads.head(answer, close), *answer.parts)))
        else:
            transport.writelines((self.server.heads.head(answer, close),
                                  *(memoryview(p).cast("B") for p in answer.parts)))
        if request is not None:
            if log.isEnabledFor(logging.DEBUG):
                log.debug("%s -> %d (%d bytes out)", request.where, answer.status, answer.length)
            request.done()
        if close:
            transport.close()
            return
        self._next()

    # ---- refusals, timeouts, closing ------------------------------------------------

    def _close_writer(self) -> None:
        if self.writer is not None:
            os.close(self.writer.fd)
            self.writer = None

    def _head_too_large(self) -> HeadTooLarge:
        return HeadTooLarge(f"request head exceeds the server's limit of {self.server.max_header_bytes} bytes")

    def _refuse(self, exc: ServerError, known_path: bool = True) -> None:
        """Stops reading this connection; the refusal is answered in turn,
        then the connection is closed."""
        if self.discarding:
            return
        path = self.url.partition(b"?")[0] if known_path else None
        method = self.parser.get_method() if known_path and self.head_complete else b""
        self._refuse_with(self.dispatcher.refusal(exc, method, path))

    def _refuse_with(self, answer: Answer) -> None:
        if self.discarding:
            return
        self.discarding = True
        self._drop_incoming()
        self.waiting.append((answer, False))
        self._next()

    def _drop_incoming(self) -> None:
        self.direct = False
        if self.request is not None:
            self.request.done()
            self.request = None

    def _send_refusal(self, answer: Answer) -> None:
        transport = self.transport
        if transport is None:
            return
        transport.write(b"".join((self.server.heads.head(answer, True), *answer.parts)))
        # Lingering close: a client still sending its body gets our answer
        # rather than a reset; what it sends is read and dropped for a while.
        if transport.can_write_eof():
            transport.write_eof()
            self.linger = self.loop.call_later(LINGER_SECONDS, self.abort)  # type: ignore[union-attr]
        else:
            transport.close()

    def check_timeouts(self, now: float) -> None:
        """Called by the server's sweeper about once a second."""
        server = self.server
        if self.transport is None or self.discarding:
            return
        if self.writing_paused_since is not None:
            if now - self.writing_paused_since > server.request_timeout:
                log.warning("dropping a client that does not read its answer")
                self.abort()
            return
        if self.in_message:
            stalled = now - (self.last_io if self.head_complete else self.started)
            if stalled > server.request_timeout:
                what = "body made no progress" if self.head_complete else "head not complete"
                self._refuse(RequestTimeout(f"request timed out: {what} within {server.request_timeout:g} s"))
        elif not self.busy and not self.waiting and now - self.last_io > server.keep_alive_timeout:
            self.transport.close()

    def close_when_idle(self) -> None:
        """Shutdown: close now if nothing is in progress, else after the answer."""
        self.closing = True
        if self.transport is not None and not (self.busy or self.waiting or self.in_message):
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def _pause_reading(self) -> None:
        if not self.reading_paused and self.transport is not None:
            self.reading_paused = True
            self.transport.pause_reading()



class _SocketWriter:
    """All a model worker gets of a connection, and only while the loop has
    handed it the write side for one answer: a dup of the socket (valid until
    the loop closes it) and the server's answer heads."""

    __slots__ = ("fd", "heads")

    def __init__(self, fd: int, heads: Heads) -> None:
        self.fd, self.heads = fd, heads

    def __call__(self, answer: Answer) -> list[Any] | None:
        """On the worker: writes ``answer`` with one non-blocking write; what
        did not fit ([] if nothing), or None if nothing went (socket full)."""
        buffers = [self.heads.head(answer, False), *answer.parts]
        total = len(buffers[0]) + answer.length
        try:
            if answer.length <= SMALL_ANSWER:
                written = os.write(self.fd, b"".join(buffers))
            else:
                written = os.writev(self.fd, buffers)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError:  # the client is gone: the loop sees it too, nothing left to send
            return []
        if written >= total:
            return []
        rest = []
        for view in (memoryview(b).cast("B") for b in buffers):
            if written < len(view):
                rest.append(view[written:])
            written = max(0, written - len(view))
        return rest
