# SPDX-License-Identifier: Apache-2.0
"""One Ray Serve replica of a served model: the model loaded once, and the
server's own ASGI app (``GraphPipeApp``) answering every call. Nothing about
either protocol is decided here; this module only moves ASGI messages
between Ray and that app, in the two ways a replica is reached:

* from the gateway (``ray_serve_gateway``), as a streaming handle call
  ``forward(scope, body)``: the whole body arrives as one array (read from
  Ray's object store without a copy), the answer leaves as one item, and
  while the app works the replica yields a heartbeat every
  ``HEARTBEAT_SECONDS``, by which the gateway tells a slow call from a
  replica that is gone;
* from Ray's HTTP proxy directly (no gateway), as an ASGI ingress, with the
  app's ``memoryview`` bodies turned into ``bytes``: Ray pickles every ASGI
  message between the proxy and a replica, and a memoryview does not pickle.

Imported only where Ray is installed (``tf_graphpipe.ray_serve`` checks).
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, MutableMapping, Sequence
from typing import Any

import numpy as np

from tf_graphpipe.server.app import GraphPipeApp, Receive, Scope, Send
from tf_graphpipe.server.loading import load_model
from tf_graphpipe.server.specs import IOSpec, parse_spec

__all__ = ["HEARTBEAT_SECONDS", "Answer", "ModelReplica", "changes_refused", "mounted_scope"]

log = logging.getLogger("tf_graphpipe.ray_serve")

# How often a replica still working on a call says so to the gateway: far
# below the gateway's ``lost_after_s``, far above the cost of one tiny item.
HEARTBEAT_SECONDS = 0.5

# (status, headers, body parts): what ``forward`` yields last. Parts are
# arrays so that Ray hands them to the gateway out of band, without a copy.
Answer = tuple[int, list[tuple[bytes, bytes]], list[np.ndarray]]


def mounted_scope(scope: Scope) -> Scope:
    """``scope`` with the application's route prefix taken off ``path``:
    Ray Serve mounts an application at ``root_path`` and, as ASGI says,
    keeps that prefix in ``path``; the app routes on the path below it
    (``/v2/...``, ``/control/...``)."""
    root = scope.get("root_path", "")
    path = scope.get("path", "")
    if not root or not path.startswith(root):
        return scope
    mounted = dict(scope)
    mounted["path"] = path[len(root):] or "/"
    mounted["root_path"] = ""
    raw = scope.get("raw_path")
    if raw:  # the app routes on the raw path when there is one
        prefix = root.encode()
        mounted["raw_path"] = raw[len(prefix):] or b"/" if raw.startswith(prefix) else raw
    return mounted


class ModelReplica:
    """Loads ``model`` (or a model repository) and serves it with ``GraphPipeApp``.

    Args:
        model: what ``tf-graphpipe serve`` takes (see ``load_model``); None
            with ``repository``.
        load_options: ``name``, ``signature``, ``input_specs``,
            ``output_specs`` (specs as ``"name:dtype:shape"`` strings),
            ``onnx`` (ONNX Runtime's settings).
        app_options: what ``GraphPipeApp.for_model`` takes
            (``max_request_bytes``, ``max_batch_size``, ``batch_timeout_ms``,
            ``workers``, ``debug``, ``inline_max_us``).
        repository: ``root`` and ``poll_seconds`` of a model repository this
            replica serves instead of ``model``. Every replica reads the
            directory on its own; the v2 load/unload requests are refused
            (one would reach one replica), the directory is what they follow.
    """

    def __init__(self, model: Any, load_options: dict[str, Any], app_options: dict[str, Any],
                 repository: dict[str, Any] | None = None) -> None:
        options = dict(load_options)
        # Not ``self.app``: Ray's ingress wrapper has a property of that name.
        if repository is not None:
            poll = repository["poll_seconds"]
            self._graphpipe = GraphPipeApp.for_repository(
                repository["root"], poll_seconds=poll, onnx=options.get("onnx"),
                changes_refused=changes_refused(poll), **app_options)
            log.info("replica serving model repository %s, polled every %s", repository["root"],
                     f"{poll:g} s" if poll > 0 else "never")
            return
        for key in ("input_specs", "output_specs"):
            if options.get(key) is not None:
                options[key] = _specs(options[key])
        loaded = load_model(model, **options)
        self._graphpipe = GraphPipeApp.for_model(loaded, **app_options)
        log.info("replica serving model %r (%d inputs, %d outputs)", loaded.name, len(loaded.inputs),
                 len(loaded.outputs))

    def __del__(self) -> None:
        """Ray Serve stops a replica: the repository's polling and the model
        workers stop with it."""
        graphpipe = getattr(self, "_graphpipe", None)
        if graphpipe is not None:
            graphpipe.close()

    def __serve_build_asgi_app__(self) -> Any:
        """The app Ray's proxy calls when there is no gateway."""
        # A function, not a bound method: uvicorn (which runs the lifespan
        # in Ray's replica) takes a bound method for an ASGI 2 app.
        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            await self._asgi(scope, receive, send)

        return app

    async def _asgi(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_bytes(message: MutableMapping[str, Any]) -> None:
            body = message.get("body")
            if body is not None and type(body) is not bytes:
                message = dict(message, body=bytes(body))
            await send(message)

        await self._graphpipe(mounted_scope(scope) if scope["type"] == "http" else scope, receive, send_bytes)

    async def forward(self, scope: Scope, body: Any) -> AsyncIterator[Answer | None]:
        """One call from the gateway: yields ``None`` every
        ``HEARTBEAT_SECONDS`` while the app works, then the ``Answer``."""
        answer = asyncio.ensure_future(self._answer(scope, body))
        try:
            while True:
                done, _ = await asyncio.wait({answer}, timeout=HEARTBEAT_SECONDS)
                if done:
                    break
                yield None
            yield answer.result()
        finally:
            answer.cancel()  # the gateway went away: nobody reads the answer

    async def _answer(self, scope: Scope, body: Any) -> Answer:
        delivered = False

        async def receive() -> MutableMapping[str, Any]:
            nonlocal delivered
            if delivered:
                return {"type": "http.disconnect"}
            delivered = True
            # A buffer, as ASGI bodies are (the array is a view of Ray's object store).
            return {"type": "http.request", "body": memoryview(body), "more_body": False}

        status = 500
        headers: list[tuple[bytes, bytes]] = []
        parts: list[np.ndarray] = []

        async def send(message: MutableMapping[str, Any]) -> None:
            nonlocal status, headers
            if message["type"] == "http.response.start":
                status, headers = message["status"], list(message.get("headers", ()))
            elif message["type"] == "http.response.body" and len(message.get("body", b"")):
                # A view of the app's answer buffer (the view keeps it alive).
                parts.append(np.frombuffer(message["body"], dtype=np.uint8))

        await self._graphpipe(scope, receive, send)
        return status, headers, parts


def changes_refused(poll_seconds: float) -> str:
    """Why a replica refuses the v2 repository load/unload requests."""
    reads = (f"each reads it every {poll_seconds:g} s" if poll_seconds > 0
             else "each reads it when it starts (poll_seconds=0)")
    return ("on Ray Serve every replica serves the model repository on its own, and this request would change "
            f"one of them: change the repository directory instead ({reads})")


def _specs(specs: Sequence[IOSpec | str]) -> list[IOSpec]:
    return [s if isinstance(s, IOSpec) else parse_spec(s) for s in specs]
