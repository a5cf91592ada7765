# SPDX-License-Identifier: Apache-2.0
"""The server as a raw ASGI application, for mounting a model in an ASGI
server (uvicorn, hypercorn, Ray Serve...). It answers exactly what
``serve()`` answers (the same ``Dispatcher``: routes, refusals, scheduling,
error answers), and only moves bytes between ASGI messages and it.
``serve()`` does not use it: its own front end (``http_server``) receives
large bodies without copying them chunk by chunk and is measurably faster
(bench/README.md).

The ASGI server owns the connections: their number, timeouts, the Date
header and ``Expect: 100-continue`` are its business (uvicorn:
``--limit-concurrency``, ``--timeout-keep-alive``...). The budget of request
bytes in flight is the dispatcher's, so it holds here too.

Example::

    from tf_graphpipe.server import load_model
    from tf_graphpipe.server.app import GraphPipeApp
    app = GraphPipeApp.for_model(load_model("demo"))   # uvicorn module:app
    app = GraphPipeApp.for_repository("/models")       # a model repository
"""
from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from tf_graphpipe.server.answer import Answer
from tf_graphpipe.server.bodies import (
    DEFAULT_MAX_REQUEST_BYTES,
    BodyBudget,
    default_inflight_bytes,
)
from tf_graphpipe.server.dispatcher import Dispatcher, Request, SingleModel
from tf_graphpipe.server.errors import BadRequest, ServerError
from tf_graphpipe.server.inline import DEFAULT_INLINE_MAX_US
from tf_graphpipe.server.model import Model
from tf_graphpipe.server.production import Production, ProductionOptions
from tf_graphpipe.server.repository import DEFAULT_POLL_SECONDS, ModelRepository
from tf_graphpipe.server.repository_routes import open_repository, repository_dispatcher
from tf_graphpipe.server.served import ServedModel
from tf_graphpipe.server.workers import ModelWorkers

if TYPE_CHECKING:
    from tf_graphpipe.server.onnx_models import SessionSettings

__all__ = ["DEFAULT_MAX_REQUEST_BYTES", "GraphPipeApp"]

log = logging.getLogger("tf_graphpipe.server")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class GraphPipeApp:
    """ASGI app over a ``Dispatcher``.

    Args:
        dispatcher: what to answer (``for_model`` builds one for a model).
    """

    def __init__(self, dispatcher: Dispatcher, repository: ModelRepository[ServedModel] | None = None) -> None:
        self.dispatcher = dispatcher
        self.repository = repository

    @classmethod
    def for_model(
        cls,
        model: Model,
        *,
        workers: int | None = None,
        debug: bool = False,
        max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
        max_inflight_bytes: int | None = None,
        max_batch_size: int = 0,
        batch_timeout_ms: float = 5.0,
        inline_max_us: float = DEFAULT_INLINE_MAX_US,
        production: ProductionOptions | None = None,
    ) -> GraphPipeApp:
        """An app serving ``model``; the options are ``serve()``'s (TLS is the
        ASGI server's own: ``production`` takes tokens, metrics, the access
        log)."""
        built = _production(production)
        pool = _workers(workers)
        try:
            served = ServedModel(model, pool, debug=debug, max_batch_size=max_batch_size,
                                 batch_timeout_ms=batch_timeout_ms, inline_max_us=inline_max_us)
            budget = BodyBudget(max_inflight_bytes or default_inflight_bytes(max_request_bytes), max_request_bytes)
        except BaseException:
            pool.shutdown(wait=False)
            raise
        return cls(Dispatcher(SingleModel(served), pool, budget, debug=debug, production=built))

    @classmethod
    def for_repository(
        cls,
        root: str | os.PathLike[str],
        *,
        poll_seconds: float = DEFAULT_POLL_SECONDS,
        onnx: SessionSettings | None = None,
        changes_refused: str | None = None,
        workers: int | None = None,
        debug: bool = False,
        max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
        max_inflight_bytes: int | None = None,
        max_batch_size: int = 0,
        batch_timeout_ms: float = 5.0,
        inline_max_us: float = DEFAULT_INLINE_MAX_US,
        production: ProductionOptions | None = None,
    ) -> GraphPipeApp:
        """An app serving every model of the model repository ``root``
        (docs/model_repository.md), loaded before this returns and polled
        every ``poll_seconds``; the options are ``serve(repository=...)``'s.
        ``changes_refused``: why the v2 load/unload requests are refused
        (None: they are served), for a repository that several apps serve
        each on its own, which one request would change in one app only.
        ``close`` stops the polling.

        Raises:
            FileNotFoundError: ``root`` is not a directory.
            tf_graphpipe.server.repository_config.ConfigError: a model's
                ``config.json`` is invalid (file and key named).
        """
        built = _production(production)
        pool = _workers(workers)
        repository: ModelRepository[ServedModel] | None = None
        try:
            budget = BodyBudget(max_inflight_bytes or default_inflight_bytes(max_request_bytes), max_request_bytes)
            repository = open_repository(root, pool, poll_seconds=poll_seconds, onnx=onnx, debug=debug,
                                         max_batch_size=max_batch_size, batch_timeout_ms=batch_timeout_ms,
                                         inline_max_us=inline_max_us)
            dispatcher = repository_dispatcher(repository, pool, budget, debug=debug, production=built,
                                               changes_refused=changes_refused)
        except BaseException:
            if repository is not None:
                repository.close()
            pool.shutdown(wait=False)
            raise
        return cls(dispatcher, repository)

    def close(self) -> None:
        """Answers not ready from now on, stops polling the repository (if
        any) and stops the model workers."""
        self.dispatcher.close()
        if self.repository is not None:
            self.repository.close()
        self.dispatcher.workers.shutdown()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(receive, send)
            return
        if kind != "http":
            return
        method = scope["method"].encode("latin-1")
        raw_path = scope.get("raw_path")
        path = raw_path.partition(b"?")[0] if raw_path else scope["path"].encode()
        try:
            content_length = _number(_header(scope, b"content-length"), "Content-Length")
        except BadRequest as exc:
            await _send(send, self.dispatcher.refusal(exc, method, path), method)
            return
        header_length = _header(scope, b"inference-header-content-length")
        client = scope.get("client")
        request = self.dispatcher.begin(
            method, path, content_length,
            None if header_length is None else int(header_length) if header_length.isdigit() else -1,
            _header(scope, b"authorization"), _header(scope, b"traceparent"),
            f"{client[0]}:{client[1]}" if client else "-", timeout=_header(scope, b"graphpipe-timeout"))
        if request.refused is not None:
            await _send(send, request.refused, method)
            return
        try:
            try:
                if not await _receive_body(request, receive):
                    return  # the client went away
            except ServerError as exc:  # the body broke a limit: refused, the rest unread
                await _send(send, self.dispatcher.refusal(exc, method, path), method)
                return
            await _send(send, await self._answer(request), method)
        finally:
            request.done()

    async def _answer(self, request: Request) -> Answer:
        answered: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()

        def reply(answer: Answer) -> None:
            if not answered.done():
                answered.set_result(answer)

        self.dispatcher.finish(request, reply)
        return await answered

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.dispatcher.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


def _production(options: ProductionOptions | None) -> Production:
    built = (options or ProductionOptions()).build()
    if built.ssl_context is not None:
        raise ValueError("TLS is the ASGI server's to set up (e.g. uvicorn --ssl-certfile), not the app's")
    return built


def _workers(count: int | None) -> ModelWorkers:
    return ModelWorkers(count or min(8, (os.cpu_count() or 1) + 2))


async def _receive_body(request: Request, receive: Receive) -> bool:
    """Copies the body's chunks into its lease; False if the client left.
    Raises ServerError when the lease refuses a chunk (size, budget)."""
    lease = request.lease
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return False
        chunk = message.get("body", b"")
        if chunk and lease is not None:
            lease.write(chunk)
        if not message.get("more_body", False):
            break
    if lease is not None and lease.size is not None and not lease.complete:
        raise BadRequest(f"request body of {lease.filled} bytes, Content-Length {lease.size}")
    return True


async def _send(send: Send, answer: Answer, method: bytes) -> None:
    headers = [(b"content-type", answer.content_type), (b"content-length", b"%d" % answer.length)]
    headers += answer.header_pairs()
    if answer.close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    parts = [] if method == b"HEAD" else answer.parts
    for i, part in enumerate(parts):  # each buffer as it is: no joining copy
        await send({"type": "http.response.body", "body": memoryview(part).cast("B"),
                    "more_body": i < len(parts) - 1})
    if not parts:
        await send({"type": "http.response.body", "body": b""})


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return value  # type: ignore[no-any-return]
    return None


def _number(value: bytes | None, what: str) -> int | None:
    if value is None:
        return None
    if not value.isdigit():
        raise BadRequest(f"bad {what} {value[:40]!r}")
    return int(value)
