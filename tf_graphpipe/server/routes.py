# SPDX-License-Identifier: Apache-2.0
"""The server's routes: what a request's method and path ask for, found once
from its head, before any body byte is read.

Each group of routes is one piece with ``resolve(method, path)``: a
``Target``, None (not mine: the next piece is asked), or a ``ServerError``
(404, 405) rendered in the piece's own ``wire``. The dispatcher asks them in
order; a new family of routes (metrics, the model repository API) is one
more piece in that list.

* ``HealthRoutes``: ``/control/is_alive``, ``/control/is_ready`` (any method);
* ``V2Routes``: ``/v2`` and below, the Open Inference Protocol (SPEC_V2
  section 1): server metadata, health, and per model (by name, optionally
  ``/versions/<v>``) metadata, ``ready`` and ``infer``;
* ``GraphPipeRoutes``: every other path serves the default model (SPEC
  section 2): POST a ``Request`` flatbuffer, GET or HEAD the metadata as JSON.
"""
from __future__ import annotations

import concurrent.futures
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import unquote

from tf_graphpipe.server.answer import TEXT, Answer
from tf_graphpipe.server.endpoint import GRAPHPIPE_WIRE
from tf_graphpipe.server.errors import Failure, MethodNotAllowed, NotFound
from tf_graphpipe.server.inference import Call
from tf_graphpipe.server.served import ServedModel
from tf_graphpipe.server.v2_endpoint import V2_WIRE, is_v2_path, server_answers

__all__ = ["TEXT_WIRE", "GraphPipeRoutes", "HealthRoutes", "ModelLookup", "Routes", "Target", "V2Routes"]

GET = (b"GET", b"HEAD")

# A call for the model, the answer itself, or an answer that comes later
# (a model repository's load and unload, done on its own thread).
Respond = Callable[[Any, "int | None"], "Answer | Call | concurrent.futures.Future[Answer]"]


class Wire(Protocol):
    """How one protocol renders a call's result and an error."""

    name: str

    def ok(self, result: Any) -> Answer: ...

    def error(self, failure: Failure) -> Answer: ...


class TextWire:
    """Plain text answers (health routes, and refusals no route claimed)."""

    name = "http"

    @staticmethod
    def ok(result: Any) -> Answer:
        return Answer(200, [result], TEXT)

    @staticmethod
    def error(failure: Failure) -> Answer:
        return Answer(failure.status, [failure.message.encode() + b"\n"], TEXT, failure.headers, close=failure.close)


TEXT_WIRE = TextWire()


class Target:
    """What a request's head asked for.

    Attributes:
        wire: renders its answers and errors.
        respond: ``(body, header_length) -> Answer | Call | Future[Answer]``; may raise ServerError.
        served: the model a ``Call`` goes to (None for routes that answer themselves).
    """

    __slots__ = ("respond", "served", "wire")

    def __init__(self, wire: Wire, respond: Respond, served: ServedModel | None = None) -> None:
        self.wire, self.respond, self.served = wire, respond, served


def answering(wire: Wire, answer: Answer) -> Target:
    """A target whose answer does not depend on the body."""
    return Target(wire, lambda body, header_length: answer)


class ModelLookup(Protocol):
    """Where the dispatcher finds models: the seam a model repository fills."""

    def get(self, name: str | None, version: str | None = None) -> ServedModel:
        """The model ``name`` (None: the default model, which GraphPipe paths
        serve) at ``version`` (None: the default version). Raises NotFound."""
        ...

    def models(self) -> list[ServedModel]:
        """Every model served now."""
        ...


class Routes(Protocol):
    """One group of routes."""

    @property
    def wire(self) -> Wire:
        """Renders the errors ``resolve`` raises."""
        ...

    def resolve(self, method: bytes, path: bytes) -> Target | None: ...


class HealthRoutes:
    """``/control/is_alive`` and ``/control/is_ready`` (503 once shutting down)."""

    wire = TEXT_WIRE

    def __init__(self, ready: Callable[[], bool]) -> None:
        self.ready = ready
        self._alive = answering(TEXT_WIRE, Answer(200, [b"ok"], TEXT))
        ok, shutting_down = Answer(200, [b"ok"], TEXT), Answer(503, [b"shutting down"], TEXT)
        self._ready = Target(TEXT_WIRE, lambda body, header_length: ok if self.ready() else shutting_down)

    def resolve(self, method: bytes, path: bytes) -> Target | None:
        if path == b"/control/is_alive":
            return self._alive
        if path == b"/control/is_ready":
            return self._ready
        return None


class V2Routes:
    """The Open Inference Protocol under ``/v2``."""

    wire = V2_WIRE

    def __init__(self, models: ModelLookup, ready: Callable[[], bool],
                 serving: Callable[[], bool] | None = None) -> None:
        self.models = models
        self.ready = ready
        # A model's own readiness: not while shutting down, whatever else is loading.
        self.serving = serving or ready
        answers = server_answers()
        self._metadata = answering(V2_WIRE, answers["metadata"])
        self._live = answering(V2_WIRE, answers["live"])
        ready_answer, not_ready = answers["ready"], answers["not_ready"]
        self._ready = Target(V2_WIRE, lambda body, header_length: ready_answer if self.ready() else not_ready)

    def resolve(self, method: bytes, path: bytes) -> Target | None:
        if not is_v2_path(path):
            return None
        text = path.decode("latin-1")
        parts = text.rstrip("/").split("/")[2:]  # after "", "v2"
        if not parts:
            return _only_get(method, self._metadata)
        if parts[0] == "health" and len(parts) == 2 and parts[1] in ("live", "ready"):
            return _only_get(method, self._live if parts[1] == "live" else self._ready)
        if parts[0] != "models" or len(parts) < 2:
            raise NotFound(f"unknown v2 path {text!r}")
        name, rest = unquote(parts[1]), parts[2:]
        version = None
        if len(rest) >= 2 and rest[0] == "versions":
            version, rest = unquote(rest[1]), rest[2:]
        if len(rest) > 1 or (rest and rest[0] not in ("ready", "infer")):
            raise NotFound(f"unknown v2 path {text!r}")
        metadata, readiness, infer = self._model_targets(self.models.get(name, version))
        if not rest:
            return _only_get(method, metadata)
        if rest[0] == "ready":
            return _only_get(method, readiness)
        if method != b"POST":
            raise MethodNotAllowed(f"{method.decode('latin-1')} {text}: infer takes POST", "POST")
        return infer

    def _model_targets(self, served: ServedModel) -> tuple[Target, Target, Target]:
        targets: tuple[Target, Target, Target] | None = served.targets.get("v2")
        if targets is None:
            v2 = served.v2
            targets = served.targets["v2"] = (
                Target(V2_WIRE, v2.metadata),
                Target(V2_WIRE, lambda body, header_length: v2.readiness(self.serving() and served.ready)),
                Target(V2_WIRE, v2.prepare, served),
            )
        return targets


class GraphPipeRoutes:
    """Every path: the default model over GraphPipe."""

    wire = GRAPHPIPE_WIRE

    def __init__(self, models: ModelLookup) -> None:
        self.models = models
        self._last: tuple[ServedModel | None, tuple[Target, Target] | None] = (None, None)

    def resolve(self, method: bytes, path: bytes) -> Target | None:
        served = self.models.get(None)
        last, targets = self._last
        if last is not served or targets is None:  # the hot path asks for the same model each time
            targets = graphpipe_targets(served)
            self._last = (served, targets)
        return graphpipe_target(method, targets)


def graphpipe_targets(served: ServedModel) -> tuple[Target, Target]:
    """The inference and metadata targets of ``served`` over GraphPipe, made
    once per served model (every route that serves it over GraphPipe)."""
    targets: tuple[Target, Target] | None = served.targets.get("graphpipe")
    if targets is None:
        endpoint = served.graphpipe
        targets = served.targets["graphpipe"] = (Target(GRAPHPIPE_WIRE, endpoint.prepare, served),
                                           Target(GRAPHPIPE_WIRE, endpoint.metadata))
    return targets


def graphpipe_target(method: bytes, targets: tuple[Target, Target]) -> Target:
    """POST infers, GET and HEAD read the metadata; anything else is refused."""
    if method == b"POST":
        return targets[0]
    if method in GET:
        return targets[1]
    raise MethodNotAllowed(f"{method.decode('latin-1')}: use POST (GraphPipe) or GET (metadata)",
                           "GET, HEAD, POST")


def _only_get(method: bytes, target: Target) -> Target:
    if method not in GET:
        raise MethodNotAllowed(f"{method.decode('latin-1')}: this v2 route takes GET", "GET, HEAD")
    return target
