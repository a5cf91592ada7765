# SPDX-License-Identifier: Apache-2.0
"""The GraphPipe HTTP binding (SPEC section 2) as a raw ASGI application.

* ``POST`` any path: a ``Request`` flatbuffer; the answer is an
  ``InferResponse`` or ``MetadataResponse`` flatbuffer. Errors are an
  ``InferResponse`` whose ``errors`` carry the message: 400 for the caller's
  mistakes and bodies that are not valid flatbuffers, 413 for bodies over
  ``max_request_bytes`` (refused from Content-Length before anything is read),
  500 when the model fails.
* ``GET`` / ``HEAD`` any path: the metadata as JSON (keys of ``Client.metadata()``).
* ``/control/is_alive``, ``/control/is_ready``: ``ok`` (``is_ready`` answers
  503 once the server is shutting down).

The body is read straight into one preallocated buffer; decoded arrays view
it; the model runs on a thread pool, so several requests are in flight and
the event loop only moves bytes.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import Executor
from typing import Any

import numpy as np

from tf_graphpipe import __version__, _native
from tf_graphpipe.errors import ProtocolError
from tf_graphpipe.server.batching import Batcher
from tf_graphpipe.server.inference import INVALID_ARGUMENT, RESOURCE_EXHAUSTED, CallError, ModelRunner

__all__ = ["GraphPipeApp", "DEFAULT_MAX_REQUEST_BYTES"]

log = logging.getLogger("tf_graphpipe.server")

DEFAULT_MAX_REQUEST_BYTES = 1 << 30
SERVER_NAME = f"tf-graphpipe/{__version__}"

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

_OCTET = b"application/octet-stream"
_HEALTH = {"/control/is_alive", "/control/is_ready"}


class _Refused(Exception):
    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class GraphPipeApp:
    """ASGI app serving one model.

    Args:
        runner: checks, runs and encodes calls to the model.
        executor: where model calls run.
        max_request_bytes: larger bodies are refused with 413.
        max_batch_size: > 0 turns dynamic batching on.
        batch_timeout_ms: how long a batch waits for more calls.
    """

    def __init__(
        self,
        runner: ModelRunner,
        executor: Executor,
        *,
        max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
        max_batch_size: int = 0,
        batch_timeout_ms: float = 5.0,
    ) -> None:
        if max_request_bytes < 1:
            raise ValueError(f"max_request_bytes must be >= 1, got {max_request_bytes}")
        if max_batch_size < 0:
            raise ValueError(f"max_batch_size must be >= 0 (0: no batching), got {max_batch_size}")
        self.runner = runner
        self.executor = executor
        self.max_request_bytes = max_request_bytes
        self.batcher = (
            Batcher(runner, executor, max_batch_size, batch_timeout_ms / 1000.0) if max_batch_size > 0 else None
        )
        self.ready = True
        model = runner.model
        self.metadata: dict[str, Any] = {
            "name": model.name,
            "version": model.version,
            "server": SERVER_NAME,
            "description": model.description,
        }
        wire = dict(self.metadata, inputs=[s.wire_metadata() for s in model.inputs],
                    outputs=[s.wire_metadata() for s in model.outputs])
        self._metadata_message = _native.encode_metadata_response(wire)
        self._metadata_json = json.dumps(
            dict(self.metadata, inputs=[s.json_metadata() for s in model.inputs],
                 outputs=[s.json_metadata() for s in model.outputs]),
            indent=2,
        ).encode() + b"\n"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await _lifespan(receive, send)
            return
        if kind != "http":
            return
        method, path = scope["method"], scope["path"]
        if method == "POST" and path not in _HEALTH:
            await self._post(scope, receive, send)
            return
        if path in _HEALTH:
            ok = self.ready or path.endswith("is_alive")
            status = 200 if ok else 503
            await _respond(send, status, b"ok" if ok else b"shutting down", b"text/plain")
        elif method in ("GET", "HEAD"):
            status = 200
            await _respond(send, status, self._metadata_json, b"application/json")
        else:
            status = 405
            await _respond(send, status, b"use POST (GraphPipe) or GET (metadata)\n", b"text/plain",
                           [(b"allow", b"GET, HEAD, POST")])
        log.debug("%s %s -> %d", method, path, status)

    async def _post(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        size = 0
        try:
            body = await self._read_body(scope, receive)
            if body is None:
                return  # the client went away
            size = len(body)
            answer = await self._answer(body)
            status = 200
        except CallError as exc:
            status, answer = exc.status, _native.encode_error_response(exc.message, exc.code)
            log.warning("%s %s -> %d: %s", scope["method"], scope["path"], status, exc.message)
        except _Refused as exc:
            status, answer = exc.status, _native.encode_error_response(exc.message, exc.code)
            log.warning("%s %s -> %d: %s", scope["method"], scope["path"], status, exc.message)
        except Exception as exc:  # a bug of ours: answer, log, keep serving
            message = self.runner.describe(exc, "server error")
            status, answer = 500, _native.encode_error_response(message)
            log.exception("%s %s -> 500", scope["method"], scope["path"])
        extra = [(b"connection", b"close")] if status == 413 else []
        await _respond(send, status, memoryview(answer), _OCTET, extra)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("POST %s -> %d (%d bytes in, %d out, %.2f ms)", scope["path"], status, size,
                      len(answer), (time.perf_counter() - started) * 1e3)

    async def _answer(self, body: np.ndarray | bytearray) -> Any:
        try:
            request = _native.decode_request(body)
        except ProtocolError as exc:
            raise _Refused(400, INVALID_ARGUMENT, f"request body is not a GraphPipe Request: {exc}") from exc
        if request[0] == "metadata":
            return self._metadata_message
        _, config, input_names, inputs, output_names = request
        call = self.runner.prepare(config, input_names, inputs, output_names)
        if self.batcher is not None:
            return await self.batcher.submit(call)
        return await asyncio.get_running_loop().run_in_executor(self.executor, self.runner.execute, call)

    async def _read_body(self, scope: Scope, receive: Receive) -> np.ndarray | bytearray | None:
        """The whole body in one buffer, or None if the client disconnected.
        Raises _Refused (413) before reading when it would be too large."""
        length = _content_length(scope)
        limit = self.max_request_bytes
        if length is not None and length > limit:
            raise _Refused(413, RESOURCE_EXHAUSTED,
                           f"request body of {length} bytes exceeds the server's limit of {limit} bytes")
        if length is not None:
            # np.empty: no memset; pages are touched once, when the bytes land.
            buffer = np.empty(length, dtype=np.uint8)
            view = memoryview(buffer)
            filled = 0
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    return None
                chunk = message.get("body", b"")
                end = filled + len(chunk)
                if end > length:
                    raise _Refused(400, INVALID_ARGUMENT, "request body longer than its Content-Length")
                view[filled:end] = chunk
                filled = end
                if not message.get("more_body", False):
                    break
            if filled != length:
                raise _Refused(400, INVALID_ARGUMENT, f"request body of {filled} bytes, Content-Length {length}")
            return buffer
        grown = bytearray()
        while True:  # chunked: no size known in advance
            message = await receive()
            if message["type"] != "http.request":
                return None
            grown += message.get("body", b"")
            if len(grown) > limit:
                raise _Refused(413, RESOURCE_EXHAUSTED,
                               f"request body exceeds the server's limit of {limit} bytes")
            if not message.get("more_body", False):
                return grown


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                raise _Refused(400, INVALID_ARGUMENT, f"bad Content-Length {value[:40]!r}") from None
    return None


async def _respond(send: Send, status: int, body: Any, content_type: bytes,
                   extra_headers: list[tuple[bytes, bytes]] | None = None) -> None:
    headers = [(b"content-type", content_type), (b"content-length", b"%d" % len(body))]
    if extra_headers:
        headers.extend(extra_headers)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
