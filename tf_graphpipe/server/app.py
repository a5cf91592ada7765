# SPDX-License-Identifier: Apache-2.0
"""The GraphPipe HTTP binding (SPEC section 2) as a raw ASGI application, for
mounting a model in an ASGI server (uvicorn, hypercorn...). ``serve()`` does
not use it: its own server (``http_server``) receives large bodies without
copying them chunk by chunk and is measurably faster (bench/README.md).

* ``POST`` any path: a ``Request`` flatbuffer; the answer is an
  ``InferResponse`` or ``MetadataResponse`` flatbuffer. Errors are an
  ``InferResponse`` whose ``errors`` carry the message: 400 for the caller's
  mistakes and bodies that are not valid flatbuffers, 413 for bodies over
  ``max_request_bytes`` (refused from Content-Length before anything is read),
  500 when the model fails.
* ``GET`` / ``HEAD`` any path: the metadata as JSON (keys of ``Client.metadata()``).
* ``/control/is_alive``, ``/control/is_ready``: ``ok`` (``is_ready`` answers
  503 once the server is shutting down).
* ``/v2`` and below: the Open Inference Protocol (KServe v2) routes of
  ``v2_endpoint``, for the same model.

Example::

    from tf_graphpipe.server import load_model
    from tf_graphpipe.server.app import GraphPipeApp
    app = GraphPipeApp.for_model(load_model("demo"))   # uvicorn module:app
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import numpy as np

from tf_graphpipe.server.endpoint import (
    DEFAULT_MAX_REQUEST_BYTES,
    HEALTH_PATHS,
    NOT_ALLOWED,
    OCTET_STREAM,
    Endpoint,
    Refused,
    too_large,
)
from tf_graphpipe.server.inference import INVALID_ARGUMENT, Call, ModelRunner
from tf_graphpipe.server.model import Model
from tf_graphpipe.server.v2_endpoint import is_v2_path
from tf_graphpipe.server.workers import ModelWorkers

__all__ = ["GraphPipeApp", "DEFAULT_MAX_REQUEST_BYTES"]

log = logging.getLogger("tf_graphpipe.server")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class GraphPipeApp:
    """ASGI app serving one ``Endpoint``."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint

    @classmethod
    def for_model(cls, model: Model, *, workers: int | None = None, debug: bool = False,
                  **options: Any) -> GraphPipeApp:
        """An app for ``model``; ``options`` as ``Endpoint`` takes them
        (``max_request_bytes``, ``max_batch_size``, ``batch_timeout_ms``)."""
        pool = ModelWorkers(workers or min(8, (os.cpu_count() or 1) + 2))
        return cls(Endpoint(ModelRunner(model, debug=debug), pool, **options))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await _lifespan(receive, send)
            return
        if kind != "http":
            return
        method, path = scope["method"], scope["path"]
        if is_v2_path(path):
            await self._v2(scope, receive, send)
            return
        if method == "POST" and path not in HEALTH_PATHS:
            await self._post(scope, receive, send)
            return
        if path in HEALTH_PATHS or method in ("GET", "HEAD"):
            status, body, content_type = self.endpoint.get(path)
            await _respond(send, status, body, content_type)
        else:
            status = 405
            await _respond(send, status, NOT_ALLOWED, b"text/plain", [(b"allow", b"GET, HEAD, POST")])
        log.debug("%s %s -> %d", method, path, status)

    async def _post(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        size = 0
        try:
            body = await self._read_body(scope, receive)
            if body is None:
                return  # the client went away
            size = len(body)
            prepared = self.endpoint.prepare(body)
            if type(prepared) is not Call:
                status, answer = 200, prepared
            elif self.endpoint.batcher is not None:
                status, answer = 200, await self.endpoint.batcher.submit(prepared)
            else:
                loop = asyncio.get_running_loop()
                status, answer = await loop.run_in_executor(self.endpoint.workers, self.endpoint.execute, prepared)
        except Exception as exc:  # noqa: BLE001 - every failure becomes an answer
            status, answer = self.endpoint.error_answer(exc)
        extra = [(b"connection", b"close")] if status == 413 else []
        await _respond(send, status, memoryview(answer), OCTET_STREAM, extra)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("POST %s -> %d (%d bytes in, %d out, %.2f ms)", scope["path"], status, size,
                      len(answer), (time.perf_counter() - started) * 1e3)

    async def _v2(self, scope: Scope, receive: Receive, send: Send) -> None:
        v2 = self.endpoint.v2
        try:
            body = await self._read_body(scope, receive) if scope["method"] == "POST" else b""
            if body is None:
                return  # the client went away
            header_length = _header(scope, b"inference-header-content-length")
            if header_length is not None:  # not a number: out of range for the v2 decoder
                header_length = int(header_length) if header_length.isdigit() else -1
            result = v2.handle(scope["method"].encode(), scope["path"], body, header_length)
            if type(result) is Call:
                if self.endpoint.batcher is not None:
                    result = 200, await self.endpoint.batcher.submit(result)
                else:
                    loop = asyncio.get_running_loop()
                    result = await loop.run_in_executor(self.endpoint.workers, v2.execute, result)
        except Exception as exc:  # noqa: BLE001 - every failure becomes an answer
            result = v2.error_answer(exc)
        status, answer = result
        headers = [(b"content-type", answer.content_type), (b"content-length", b"%d" % len(answer))]
        headers += [tuple(line.split(b": ", 1)) for line in answer.headers.split(b"\r\n") if line]
        if status == 413:
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        parts = [] if scope["method"] == "HEAD" else answer.parts
        for i, part in enumerate(parts):  # each buffer as it is: no joining copy
            await send({"type": "http.response.body", "body": memoryview(part), "more_body": i < len(parts) - 1})
        if not parts:
            await send({"type": "http.response.body", "body": b""})
        log.debug("%s %s -> %d (v2)", scope["method"], scope["path"], status)

    async def _read_body(self, scope: Scope, receive: Receive) -> np.ndarray | bytearray | None:
        """The whole body in one buffer, or None if the client disconnected.
        Raises _Refused (413) before reading when it would be too large."""
        length = _content_length(scope)
        limit = self.endpoint.max_request_bytes
        if length is not None and length > limit:
            raise too_large(length, limit)
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
                    raise Refused(400, INVALID_ARGUMENT, "request body longer than its Content-Length")
                view[filled:end] = chunk
                filled = end
                if not message.get("more_body", False):
                    break
            if filled != length:
                raise Refused(400, INVALID_ARGUMENT, f"request body of {filled} bytes, Content-Length {length}")
            return buffer
        grown = bytearray()
        while True:  # chunked: no size known in advance
            message = await receive()
            if message["type"] != "http.request":
                return None
            grown += message.get("body", b"")
            if len(grown) > limit:
                raise too_large(None, limit)
            if not message.get("more_body", False):
                return grown


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return value
    return None


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                raise Refused(400, INVALID_ARGUMENT, f"bad Content-Length {value[:40]!r}") from None
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
