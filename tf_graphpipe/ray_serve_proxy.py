# SPDX-License-Identifier: Apache-2.0
"""Ray Serve's HTTP proxy answering a lost replica's calls with 503
Unavailable, at no cost to the calls that succeed.

When Ray cannot get an answer from a replica (its actor died or became
unreachable: the replica's process or node is gone), Ray Serve's proxy logs
the error and returns without starting a response, and the HTTP server under
it sends a plain ``500 Internal Server Error``, which clients read as a
model failure and do not retry. Every other outcome starts a response: the
replica's own answers (including a replica's 500 for an exception in user
code) and the proxy's own refusals (404, 408, 503...). ``LostReplicaAnswers``
wraps the proxy's ASGI app and, when the app returned without starting a
response, answers 503 Unavailable (with Retry-After) in the request's
protocol instead: a GraphPipe error ``InferResponse``, or a v2
``{"error": ...}``, from the server's error table, which ``Client``,
``remote_call`` and the Keras layer retry and report as Unavailable.

Ray loads proxy middlewares from ``RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH``
in the proxy's environment (``PROXY_CALLBACK`` names ``middlewares`` here):
``tf_graphpipe.ray_serve.start_serve`` sets it when it starts Serve, or
give it to ``ray start --head`` (docs/scaling.md). It answers
``GET /-/tf-graphpipe`` itself, so a deployer can tell whether it is there.

The proxy imports this module: it needs nothing beyond the error table and
the two protocols' error encoders (no model, no TensorFlow).
"""
from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from tf_graphpipe.server.app import Receive, Scope, Send
from tf_graphpipe.server.endpoint import GRAPHPIPE_WIRE
from tf_graphpipe.server.errors import Overloaded, failure
from tf_graphpipe.server.v2_endpoint import V2_WIRE, is_v2_path

__all__ = ["PROBE_PATH", "PROXY_CALLBACK", "PROXY_CALLBACK_VARIABLE", "LostReplicaAnswers", "ReplicaLost",
           "error_messages", "middlewares"]

PROXY_CALLBACK_VARIABLE = "RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH"
PROXY_CALLBACK = "tf_graphpipe.ray_serve_proxy:middlewares"
PROBE_PATH = "/-/tf-graphpipe"
PROBE_ANSWER = b"tf-graphpipe: lost replicas are answered 503 Unavailable\n"


class ReplicaLost(Overloaded):
    """No replica will answer this call (its actor died, or went silent):
    the error table's Unavailable row, as for any server out of capacity."""


def error_messages(method: str, path: str, exc: BaseException) -> list[MutableMapping[str, Any]]:
    """The ASGI messages of the error answer to ``exc`` in the protocol of
    ``path`` (the path below the application's prefix), from the server's
    error table: 503 Unavailable for ``ReplicaLost``, 500 for anything else.
    Bodies are ``bytes``: Ray pickles messages between its actors."""
    wire = V2_WIRE if is_v2_path(path) else GRAPHPIPE_WIRE
    answer = wire.error(failure(exc, f"{method} {path}"))
    headers = [(b"content-type", answer.content_type), (b"content-length", b"%d" % answer.length)]
    headers += answer.header_pairs()
    if answer.close:
        headers.append((b"connection", b"close"))
    body = b"" if method == "HEAD" else b"".join(bytes(memoryview(p).cast("B")) for p in answer.parts)
    return [{"type": "http.response.start", "status": answer.status, "headers": headers},
            {"type": "http.response.body", "body": body}]


class LostReplicaAnswers:
    """ASGI middleware around Ray Serve's proxy (see the module docstring)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] == PROBE_PATH and scope["method"] in ("GET", "HEAD"):
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(PROBE_ANSWER))]})
            await send({"type": "http.response.body", "body": PROBE_ANSWER if scope["method"] == "GET" else b""})
            return
        started = False

        async def watched(message: MutableMapping[str, Any]) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except Exception:
            if started:
                raise  # the answer is under way: the server closes the connection, as it would have
            lost: BaseException = ReplicaLost("no answer from the model replica (Ray's proxy failed the call)")
        else:
            if started:
                return
            lost = ReplicaLost("the model replica is gone: Ray could not reach its actor")
        for message in error_messages(scope["method"], _path_below_prefix(scope), lost):
            await send(message)


def _path_below_prefix(scope: Scope) -> str:
    """The path the application sees: Ray's proxy sets ``root_path`` to the
    application's route prefix once it has routed the call."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root):] or "/" if root and path.startswith(root) else path


def middlewares() -> list[Any]:
    """What Ray's proxy loads from ``RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH``."""
    from starlette.middleware import Middleware

    return [Middleware(LostReplicaAnswers)]
