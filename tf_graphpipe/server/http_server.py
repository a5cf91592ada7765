# SPDX-License-Identifier: Apache-2.0
"""The HTTP/1.1 server ``serve()`` runs: an asyncio ``BufferedProtocol`` with
``httptools`` (llhttp) parsing, on uvloop when installed.

Why not uvicorn: its protocol copies every ~64 KiB chunk into a bytes object
and passes each through an ASGI message dict, so a 77 MB body costs ~1200
Python round trips and as many copies (bench/README.md has the numbers).
Here a body with a Content-Length is received by the kernel straight into one
buffer of that size (``get_buffer`` hands out the unfilled part of it, so
each ``recv_into`` takes everything the socket holds); the parser only sees
the head and the first bytes of the body. Answers are written as the native
message's memory (or a v2 answer's buffers), with no copy. Paths under
``/v2`` go to the Open Inference Protocol side (``v2_endpoint``).

HTTP behaviour:

* keep-alive; pipelined requests are answered one at a time, in order;
  reading pauses while too many wait or while the client does not read;
* chunked request bodies (collected, size-checked as they grow);
* ``Expect: 100-continue`` answered before reading the body;
* limits: the head (request line + headers) at ``max_header_bytes`` (431); a
  body over ``max_request_bytes`` gets 413 from its Content-Length before it
  is read; after a refusal the server stops reading, sends the answer with
  ``Connection: close``, half-closes and discards what still arrives for a
  moment (a lingering close, so the client sees the answer, not a reset);
* timeouts: a head not complete, or a body making no progress, within
  ``request_timeout`` gets 408 and is closed (slow clients); an idle
  connection is closed after ``keep_alive_timeout``; a client that does not
  read its answer for ``request_timeout`` is dropped;
* shutdown: stop accepting, close idle connections, let requests in flight
  finish (up to ``graceful_timeout``), then close the rest.
"""
from __future__ import annotations

import asyncio
import collections
import logging
import os
import socket
import sys
import threading
import time
from typing import Any

import httptools
import numpy as np

from tf_graphpipe.server.endpoint import (
    HEALTH_PATHS,
    NOT_ALLOWED,
    OCTET_STREAM,
    Endpoint,
    Refused,
    too_large,
)
from tf_graphpipe.server.http_framing import CONTINUE, answer_head, framed_answer
from tf_graphpipe.server.inference import INVALID_ARGUMENT, Call
from tf_graphpipe.server.v2_endpoint import is_v2_path
from tf_graphpipe.server.v2_wire import V2Answer

__all__ = ["HttpServer"]

log = logging.getLogger("tf_graphpipe.server")

READ_CHUNK = 256 << 10  # the shared buffer heads and small bodies land in
SMALL_ANSWER = 64 << 10  # answers up to this size are joined to their head: one write
MAX_WAITING = 8  # pipelined requests parsed ahead before reading pauses
LINGER_SECONDS = 2.0
BLOB_ALIGNMENT = 64  # a v2 body's first blob lands at this alignment: inputs are views, not copies
REUSE_MIN_BYTES = 1 << 20  # bodies this large reuse the connection's previous buffer when free
SPARE_IDLE_SECONDS = 5.0  # an idle connection gives its spare buffer back after this
SWEEP_SECONDS = 1.0

_HEALTH = frozenset(p.encode() for p in HEALTH_PATHS)
def _aligned(buffer: np.ndarray, size: int, align_at: int) -> np.ndarray:
    """``size`` bytes of ``buffer`` (BLOB_ALIGNMENT longer) with byte ``align_at`` aligned."""
    shift = -(buffer.ctypes.data + align_at) % BLOB_ALIGNMENT
    return buffer[shift:shift + size]


class HttpServer:
    """Serves one ``Endpoint`` on listening sockets, on the running loop.

    Args:
        endpoint: what to answer.
        keep_alive_timeout: seconds an idle connection stays open.
        request_timeout: seconds allowed for a request's head, and for a body
            or an answer to make progress.
        max_header_bytes: largest request line + headers.
        graceful_timeout: seconds ``shutdown`` waits for requests in flight.
    """

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        keep_alive_timeout: float = 75.0,
        request_timeout: float = 60.0,
        max_header_bytes: int = 64 << 10,
        graceful_timeout: float = 10.0,
    ) -> None:
        self.endpoint = endpoint
        self.keep_alive_timeout = keep_alive_timeout
        self.request_timeout = request_timeout
        self.max_header_bytes = max_header_bytes
        self.graceful_timeout = graceful_timeout
        self.connections: set[_Connection] = set()
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
            self._servers.append(await self.loop.create_server(lambda: _Connection(self), sock=sock, backlog=2048))
        self._sweeper = self.loop.call_later(SWEEP_SECONDS, self._sweep)

    def _sweep(self) -> None:
        self.clock = now = self.loop.time()
        for connection in list(self.connections):
            connection.check_timeouts(now)
        self._sweeper = self.loop.call_later(SWEEP_SECONDS, self._sweep)

    async def shutdown(self) -> None:
        """Stops accepting; finishes requests in flight (up to
        ``graceful_timeout``); closes every connection."""
        self.endpoint.ready = False
        for server in self._servers:
            server.close()
        for connection in list(self.connections):
            connection.close_when_idle()
        deadline = self.loop.time() + self.graceful_timeout
        while self.connections and self.loop.time() < deadline:
            await asyncio.sleep(0.02)
        for connection in list(self.connections):
            connection.abort()
        if self._sweeper is not None:
            self._sweeper.cancel()
        await asyncio.sleep(0)  # let connection_lost callbacks run


class _Connection(asyncio.BufferedProtocol):
    """One client connection: parse, dispatch in order, answer."""

    def __init__(self, server: HttpServer) -> None:
        self.server = server
        self.endpoint = server.endpoint
        self.loop = server.loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.last_io = server.clock
        self.waiting: collections.deque[tuple[Any, ...]] = collections.deque()
        self.busy = False  # a request is being answered
        # The worker that ran the model writes a small answer itself when the
        # connection is quiet (saves a wake-up of the loop thread, the largest
        # part of a small call's latency). It writes to a dup of the socket,
        # which stays valid until connection_lost, under this lock.
        self.lock = threading.Lock()
        self.fd = -1
        # The last large body buffer, reused by the next large body once
        # nothing (the model, a view of an input) references it any more:
        # fresh pages cost a page fault and a kernel memset each.
        self.spare: np.ndarray | None = None
        self.closing = False  # close once the current answers are out
        self.discarding = False  # refused: read and drop whatever still comes
        self.reading_paused = False
        self.writing_paused_since: float | None = None
        self.linger: asyncio.TimerHandle | None = None
        self.task: asyncio.Task[None] | None = None
        self.current = (b"", b"")  # method and path being answered, for the debug log
        self.handler: Any = self.endpoint  # the Endpoint or its v2 side, for the request being answered
        self.timed = False  # the model time of the call in flight feeds the inline policy
        self._reset_message()

    def _reset_message(self) -> None:
        self.in_message = False
        self.head_complete = False
        self.direct = False  # the body is being received straight into self.body
        self.url = b""
        self.head_bytes = 0
        self.head_fed = 0
        self.content_length: int | None = None
        self.header_length: int | None = None  # v2 Inference-Header-Content-Length
        self.chunked: bytearray | None = None
        self.body: np.ndarray | None = None
        self.body_view: memoryview | None = None
        self.filled = 0
        self.expect_continue = False
        self.method = b""
        self.keep_alive = True
        self.started = self.server.clock

    # ---- asyncio.BufferedProtocol ---------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.server.connections.add(self)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self.fd = os.dup(sock.fileno())
            except (OSError, AttributeError, ValueError):
                pass

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        with self.lock:
            self.transport = None
            if self.fd >= 0:
                os.close(self.fd)
                self.fd = -1
        self.body = self.body_view = self.chunked = self.spare = None
        self.waiting.clear()
        if self.linger is not None:
            self.linger.cancel()
        if self.task is not None:
            self.task.cancel()

    def get_buffer(self, sizehint: int) -> memoryview:
        if self.direct:
            return self.body_view[self.filled:]  # type: ignore[index]
        return self.server.read_view

    def buffer_updated(self, nbytes: int) -> None:
        self.last_io = self.server.clock
        if self.direct:
            self.filled += nbytes
            if self.filled == self.content_length:
                # The parser was left mid-body; the next request gets a fresh one.
                self.parser = httptools.HttpRequestParser(self)
                self.on_message_complete()
            return
        if self.discarding:
            return
        try:
            self.parser.feed_data(self.server.read_view[:nbytes])
        except httptools.HttpParserUpgrade:
            self._refuse(Refused(400, INVALID_ARGUMENT, "protocol upgrades are not supported"))
            return
        except httptools.HttpParserError as exc:
            self._refuse(Refused(400, INVALID_ARGUMENT, f"malformed HTTP request: {exc}"))
            return
        if self.discarding:
            return
        if self.head_complete:
            if self.body is not None:
                self.direct = True  # the rest of the body goes straight into its buffer
        elif self.in_message:
            # llhttp keeps an unfinished header line to itself: bound what it may hold.
            self.head_fed += nbytes
            if self.head_fed > self.server.max_header_bytes:
                self._refuse(Refused(431, INVALID_ARGUMENT, "request head exceeds the server's limit of "
                                     f"{self.server.max_header_bytes} bytes"))

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
            self._refuse(Refused(431, INVALID_ARGUMENT,
                                 f"request head exceeds the server's limit of {self.server.max_header_bytes} bytes"))

    def on_header(self, name: bytes, value: bytes) -> None:
        self.head_bytes += len(name) + len(value) + 4
        if self.head_bytes > self.server.max_header_bytes:
            self._refuse(Refused(431, INVALID_ARGUMENT,
                                 f"request head exceeds the server's limit of {self.server.max_header_bytes} bytes"))
            return
        if len(name) == 14 and name.lower() == b"content-length":
            self.content_length = int(value)  # llhttp has checked it is digits
        elif len(name) == 6 and name.lower() == b"expect":
            self.expect_continue = value.lower() == b"100-continue"
        elif len(name) == 31 and name.lower() == b"inference-header-content-length":
            self.header_length = int(value) if value.isdigit() else -1  # -1: refused by the v2 decoder

    def on_headers_complete(self) -> None:
        if self.discarding:
            return
        self.head_complete = True
        self.method = self.parser.get_method()
        self.keep_alive = self.parser.should_keep_alive()
        limit = self.endpoint.max_request_bytes
        if self.content_length is not None:
            if self.content_length > limit:
                self._refuse(too_large(self.content_length, limit))
                return
            if self.content_length:
                self.body = self._body_buffer(self.content_length, self.header_length or 0)
                self.body_view = memoryview(self.body)
        if self.expect_continue and self.transport is not None:
            self.transport.write(CONTINUE)

    def _body_buffer(self, size: int, align_at: int) -> np.ndarray:
        """A buffer for a body of ``size`` bytes whose byte ``align_at`` (a v2
        body's first blob) sits at a BLOB_ALIGNMENT boundary."""
        spare = self.spare
        padded = size + BLOB_ALIGNMENT
        # References to a free spare: self.spare, the local, getrefcount's argument.
        if spare is not None and padded <= spare.size < 2 * padded and sys.getrefcount(spare) == 3:
            return _aligned(spare, size, align_at)
        # np.empty: no memset; each page is first touched by the kernel's copy.
        buffer = np.empty(padded, np.uint8)
        if size >= REUSE_MIN_BYTES:
            self.spare = buffer
        return _aligned(buffer, size, align_at)

    def on_body(self, chunk: bytes) -> None:
        if self.discarding:
            return
        if self.body_view is not None:
            end = self.filled + len(chunk)
            self.body_view[self.filled:end] = chunk
            self.filled = end
            return
        if self.chunked is None:
            self.chunked = bytearray()
        self.chunked += chunk
        if len(self.chunked) > self.endpoint.max_request_bytes:
            self._refuse(too_large(None, self.endpoint.max_request_bytes))

    def on_message_complete(self) -> None:
        if self.discarding:
            return
        if self.body is not None:
            body: Any = self.body
        elif self.chunked is not None:
            body = self.chunked
        else:
            body = b""
        with self.lock:  # a worker may be finishing the previous answer
            self.waiting.append((self.method, self.url, body, self.keep_alive, self.header_length))
            busy = self.busy
        self._reset_message()
        if len(self.waiting) >= MAX_WAITING:
            self._pause_reading()
        if not busy:
            self._next()

    # ---- answering ------------------------------------------------------------------

    def _next(self) -> None:
        while not self.busy and self.waiting and self.transport is not None and self.writing_paused_since is None:
            with self.lock:
                item = self.waiting.popleft()
                self.busy = True
            if item[0] is None:  # a refusal, answered in its turn
                self._send_refusal(item[1], item[2])
                return
            self._dispatch(*item)
        if self.reading_paused and len(self.waiting) < MAX_WAITING // 2 and self.writing_paused_since is None \
                and not self.discarding and self.transport is not None:
            self.reading_paused = False
            self.transport.resume_reading()

    def _dispatch(self, method: bytes, url: bytes, body: Any, keep_alive: bool, header_length: int | None) -> None:
        self.keep_alive = keep_alive and not self.closing
        path = url.partition(b"?")[0]
        self.current = (method, path)
        endpoint = self.handler = self.endpoint
        if is_v2_path(path):  # the Open Inference Protocol side: a call, or the answer itself
            self.handler = endpoint.v2
            result = endpoint.v2.handle(method, path.decode("latin-1"), body, header_length)
            if type(result) is Call:
                self._submit(result, len(body))
            else:
                self._send(result[0], OCTET_STREAM, result[1], head_only=method == b"HEAD")
        elif method == b"POST" and path not in _HEALTH:
            try:
                prepared = endpoint.prepare(body)
            except Exception as exc:  # noqa: BLE001 - the caller's mistake, or ours: an answer
                self._answered(endpoint.error_answer(exc))
                return
            if type(prepared) is Call:
                self._submit(prepared, len(body))
                return
            self._send(200, OCTET_STREAM, prepared)
        elif method in (b"GET", b"HEAD") or path in _HEALTH:
            status, answer, content_type = endpoint.get(path.decode("latin-1"))
            self._send(status, content_type, answer, head_only=method == b"HEAD")
        else:
            self._send(405, b"text/plain", NOT_ALLOWED, extra=b"allow: GET, HEAD, POST\r\n")

    def _submit(self, call: Call, body_bytes: int) -> None:
        """To the batcher, to a model worker, or (small calls to a fast model) run right here."""
        endpoint = self.endpoint
        if endpoint.batcher is not None:
            self.task = self.loop.create_task(self._batched(call))
            return
        self.timed = endpoint.inline.small(body_bytes)  # one request at a time: the worker reads it
        if self.timed and endpoint.inline.admits():
            self._execute(call, inline=True)
        else:
            endpoint.workers.call_soon(self._execute, call, None, None)

    async def _batched(self, call: Call) -> None:
        try:
            answer = await self.endpoint.batcher.submit(call)  # type: ignore[union-attr]
        except Exception as exc:  # noqa: BLE001
            self._answered(self.handler.error_answer(exc))
        else:
            self._answered((200, answer))
        finally:
            self.task = None

    def _execute(self, call: Call, inline: bool = False) -> None:
        """On a worker thread (or the loop, inline): run the model, then
        answer from here when the connection allows, else from the loop."""
        start = time.perf_counter()
        result = self.handler.execute(call)
        if self.timed:
            self.endpoint.inline.record(time.perf_counter() - start, inline)
        if self._write_from_worker(*result):
            return
        try:
            self.loop.call_soon_threadsafe(self._answered, result)
        except RuntimeError:  # the loop is gone (shutdown): nobody to answer
            pass

    def _write_from_worker(self, status: int, answer: Any) -> bool:
        """Writes the whole answer with one non-blocking write if nothing else
        is queued on this connection; False (nothing written) otherwise."""
        with self.lock:
            transport = self.transport
            if (self.fd < 0 or transport is None or self.waiting or self.closing or not self.keep_alive
                    or self.writing_paused_since is not None or transport.is_closing()
                    or transport.get_write_buffer_size()):
                return False
            length = len(answer)
            buffers = framed_answer(status, answer, False)
            total = len(buffers[0]) + length
            try:
                if length <= SMALL_ANSWER:
                    written = os.write(self.fd, b"".join(buffers))
                else:
                    written = os.writev(self.fd, buffers)
            except (BlockingIOError, InterruptedError):
                written = 0
            except OSError:  # the client is gone; the loop sees it too
                written = total
            if written < total:  # the loop writes the rest (busy stays set until then)
                self.loop.call_soon_threadsafe(self._write_rest, buffers, written)
                return True
            self.busy = False
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s %s -> %d (%d bytes out)", self.current[0].decode(), self.current[1].decode("latin-1"),
                      status, length)
        return True

    def _write_rest(self, buffers: list[Any], written: int) -> None:
        """On the loop: the part of an answer a worker could not write at once."""
        transport = self.transport
        if transport is not None and not transport.is_closing():
            rest = []
            for view in (memoryview(b).cast("B") for b in buffers):
                if written < len(view):
                    rest.append(view[written:])
                written = max(0, written - len(view))
            transport.writelines(rest)
        with self.lock:
            self.busy = False
        self._next()

    def _answered(self, result: tuple[int, Any]) -> None:
        """A POST's (status, answer), on the loop."""
        status, answer = result
        self._send(status, OCTET_STREAM, answer)

    def _send(self, status: int, content_type: bytes, answer: Any, *, head_only: bool = False,
              extra: bytes = b"") -> None:
        """Answers with ``answer`` (a v2 answer brings its own content type and headers)."""
        transport = self.transport
        if transport is None or transport.is_closing():  # the client went away while we worked
            return
        close = not self.keep_alive or self.closing
        length = len(answer)
        parts = (answer,)
        if type(answer) is V2Answer:
            content_type, extra, parts = answer.content_type, answer.headers, answer.parts
        head = answer_head(status, content_type, length, close, extra)
        if head_only:
            transport.write(head)
        elif length <= SMALL_ANSWER:
            transport.write(b"".join((head, *parts)))
        else:
            transport.writelines((head, *(memoryview(p).cast("B") for p in parts)))
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s %s -> %d (%d bytes out)", self.current[0].decode(), self.current[1].decode("latin-1"),
                      status, length)
        self.busy = False
        if close:
            transport.close()
            return
        self._next()

    # ---- refusals, timeouts, closing ------------------------------------------------

    def _refuse(self, refusal: Refused) -> None:
        """Stops reading this connection; the refusal is answered in turn,
        then the connection is closed."""
        if self.discarding:
            return
        self.discarding = True
        self.direct = False
        self.body = self.body_view = self.chunked = None
        self.waiting.append((None, refusal, is_v2_path(self.url.partition(b"?")[0])))
        self._next()

    def _send_refusal(self, refusal: Refused, v2: bool) -> None:
        transport = self.transport
        if transport is None:
            return
        status, answer = (self.endpoint.v2 if v2 else self.endpoint).error_answer(refusal)
        transport.write(b"".join(framed_answer(status, answer, True)))
        # Lingering close: a client still sending its body gets our answer
        # rather than a reset; what it sends is read and dropped for a while.
        if transport.can_write_eof():
            transport.write_eof()
            self.linger = self.loop.call_later(LINGER_SECONDS, self.abort)
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
                self._refuse(Refused(408, INVALID_ARGUMENT,
                                     f"request timed out: {what} within {server.request_timeout:g} s"))
        elif not self.busy and not self.waiting:
            idle = now - self.last_io
            if idle > server.keep_alive_timeout:
                self.transport.close()
            elif idle > SPARE_IDLE_SECONDS:
                self.spare = None

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
