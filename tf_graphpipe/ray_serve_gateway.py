# SPDX-License-Identifier: Apache-2.0
"""The gateway: the HTTP ingress of a model's Ray Serve application, which
hands each request to a model replica and turns the loss of that replica
into an answer the clients already know how to handle.

Ray Serve's proxy alone answers a call whose replica died with a plain
``500 Internal Server Error`` (the client reads a model failure, and does
not retry), and a call sent to a replica whose node has gone waits until
Ray notices. The gateway instead answers ``503`` in the protocol of the
request (a GraphPipe error ``InferResponse`` with code Unavailable, or a v2
``{"error": ...}``), which ``Client``, ``remote_call`` and the Keras layer
retry and report as Unavailable, when

* Ray reports the replica's actor dead or unreachable (``RayActorError``),
  the replica or the deployment unavailable, or its queue full;
* the replica has yielded nothing, not even its heartbeat
  (``ray_serve_replica.HEARTBEAT_SECONDS``), for ``lost_after_s``: its node
  is gone, or so loaded that it cannot answer.

The gateway decides nothing else: it moves the request (scope and body)
to a replica, whose ``GraphPipeApp`` answers everything, including a body
over the size limit (forwarded without its bytes: the app refuses it from
Content-Length, as it does on its own port). It runs on the head node,
beside the proxy, so that losing a worker node never takes it down.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any

import numpy as np

from tf_graphpipe.ray_serve_proxy import ReplicaLost, error_messages
from tf_graphpipe.ray_serve_replica import Answer, mounted_scope
from tf_graphpipe.server.app import Receive, Scope, Send

__all__ = ["DEFAULT_LOST_AFTER_S", "Gateway"]

log = logging.getLogger("tf_graphpipe.ray_serve")

DEFAULT_LOST_AFTER_S = 10.0

# The parts of an ASGI scope a replica's app reads; the rest (server state,
# extensions) stays with the gateway.
_FORWARDED_SCOPE_KEYS = ("type", "asgi", "http_version", "method", "scheme", "path", "raw_path",
                         "query_string", "root_path", "headers", "client", "server")


class Gateway:
    """Forwards HTTP calls to the model replicas behind ``replica``.

    Args:
        replica: the ``DeploymentHandle`` of the model's ``ModelReplica``
            deployment (Ray passes it for the bound deployment).
        max_request_bytes: the replicas' size limit; a body announced larger
            is not read, and the replica's app answers 413.
        lost_after_s: how long a call may go without a word from its
            replica before it is answered Unavailable.
    """

    def __init__(self, replica: Any, max_request_bytes: int, lost_after_s: float = DEFAULT_LOST_AFTER_S) -> None:
        from ray.exceptions import RayActorError
        from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError, ReplicaUnavailableError

        self._forward = replica.options(stream=True, method_name="forward")
        self._max_request_bytes = max_request_bytes
        self._lost_after_s = lost_after_s
        # Ray's words for "no replica will answer": the actor died or is
        # unreachable, the replica was stopped, the deployment is down, or
        # every replica is at max_ongoing_requests with the queue full.
        self._lost: tuple[type[BaseException], ...] = (
            RayActorError, ReplicaUnavailableError, DeploymentUnavailableError, BackPressureError)

    def __serve_build_asgi_app__(self) -> Any:
        # A function, not a bound method: uvicorn (which runs the lifespan
        # in Ray's replica) takes a bound method for an ASGI 2 app.
        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            await self._asgi(scope, receive, send)

        return app

    async def _asgi(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                kind = (await receive())["type"]
                await send({"type": kind + ".complete"})  # lifespan.startup / lifespan.shutdown
                if kind == "lifespan.shutdown":
                    return
        if scope["type"] != "http":
            return
        body = await self._read_body(scope, receive)
        if body is None:
            return  # the client went away
        forwarded = mounted_scope({key: scope[key] for key in _FORWARDED_SCOPE_KEYS if key in scope})
        try:
            status, headers, parts = await self._call(forwarded, body)
        except Exception as exc:  # noqa: BLE001 - lost replicas (503), else a bug (500); logged by the table
            for message in error_messages(scope["method"], forwarded["path"], exc):
                await send(message)
            return
        await send({"type": "http.response.start", "status": status, "headers": headers})
        if scope["method"] == "HEAD":
            parts = []
        for i, part in enumerate(parts):  # bytes: Ray pickles the messages to the proxy
            await send({"type": "http.response.body", "body": part.tobytes(), "more_body": i < len(parts) - 1})
        if not parts:
            await send({"type": "http.response.body", "body": b""})

    async def _call(self, scope: Scope, body: Any) -> Answer:
        answer: Answer | None = None
        try:
            items = self._forward.remote(scope, body)
            iterator = items.__aiter__()
            while answer is None:
                try:
                    answer = await asyncio.wait_for(iterator.__anext__(), self._lost_after_s)
                except StopAsyncIteration:
                    raise ReplicaLost("the model replica ended the call without an answer") from None
        except asyncio.TimeoutError:
            items.cancel()
            raise ReplicaLost(f"no word from the model replica for {self._lost_after_s:g} s") from None
        except self._lost as exc:
            raise ReplicaLost(f"the model replica is gone ({type(exc).__name__})") from exc
        return answer

    async def _read_body(self, scope: Scope, receive: Receive) -> np.ndarray | bytearray | None:
        """The body as received (its checks are the app's), or None if the
        client went away. A body announced over the limit is not read."""
        length = _content_length(scope)
        if length is not None and length > self._max_request_bytes:
            return bytearray()
        if length is not None:
            buffer = np.empty(length, dtype=np.uint8)
            filled = 0
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    return None
                chunk = message.get("body", b"")
                if filled + len(chunk) > length:  # longer than announced: the app says so
                    return np.concatenate([buffer[:filled], np.frombuffer(chunk, np.uint8)])
                buffer[filled:filled + len(chunk)] = np.frombuffer(chunk, np.uint8)
                filled += len(chunk)
                if not message.get("more_body", False):
                    return buffer[:filled]
        grown = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return None
            grown += message.get("body", b"")
            if len(grown) > self._max_request_bytes or not message.get("more_body", False):
                return grown  # past the limit: enough for the app to refuse it


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else None  # not a number: the app refuses it
    return None
