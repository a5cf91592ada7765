# SPDX-License-Identifier: Apache-2.0
"""The one request path of the server, which both front ends (``http_server``
and the ASGI app of ``app``) call and which decides everything they do not:

* **route**: ``begin`` asks the route pieces of ``routes`` in order, from the
  request's method and path alone;
* **refuse**: a body over ``max_request_bytes`` (413) or past the budget of
  request bytes in flight (503) is refused from the head; an unknown route,
  model or method (404, 405) is answered in the protocol its path speaks;
  refusals a front end meets (bad HTTP, slow clients) are rendered here too;
* **schedule**: ``finish`` runs a call in the model's batcher, inline on the
  event loop (small calls to a fast model), or on a model worker, whose
  result comes back to the loop: only the loop thread answers. A call whose
  caller said how long it waits (``GraphPipe-Timeout``, v2's ``timeout``)
  carries that deadline, counted from its head's arrival; wherever it waited
  (batch window, worker queue), it is answered 504 instead of run once the
  deadline has passed (``inference.expired``).

Every answer is an ``Answer``; every error goes through the table of
``errors``. Models are found through a ``ModelLookup`` (``name, version ->
ServedModel``): ``SingleModel`` serves one, a model repository serves many.

A front end calls, on the event loop thread::

    request = dispatcher.begin(method, path, content_length, header_length)
    if request.refused: send it, stop reading, close
    else: write the body into request.lease; dispatcher.finish(request, reply)
    ... reply(answer) runs once, on the loop; send it, then request.done()
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Callable
from typing import Any

from tf_graphpipe import deadlines, tracing
from tf_graphpipe.server.answer import Answer
from tf_graphpipe.server.bodies import BodyBudget, BodyLease
from tf_graphpipe.server.errors import NotFound, ServerError, failure
from tf_graphpipe.server.inference import Call
from tf_graphpipe.server.observe import Observation
from tf_graphpipe.server.production import Production
from tf_graphpipe.server.routes import (
    TEXT_WIRE,
    GraphPipeRoutes,
    HealthRoutes,
    ModelLookup,
    Routes,
    Target,
    V2Routes,
)
from tf_graphpipe.server.served import ServedModel
from tf_graphpipe.server.v2_endpoint import V2_WIRE, is_v2_path
from tf_graphpipe.server.workers import ModelWorkers

__all__ = ["Dispatcher", "Request", "SingleModel"]

Reply = Callable[[Answer], None]
# Run on a model worker with the answer: writes what it can straight to the
# client; returns what is left for the loop ([] when all of it went), or
# None when it wrote nothing. Only a front end that has handed the worker its
# connection's write side for this one answer passes one (http_server).
DirectWrite = Callable[[Answer], "list[Any] | None"]


class SingleModel:
    """A ``ModelLookup`` of one model: every GraphPipe path serves it, v2
    addresses it by its name (and version)."""

    def __init__(self, served: ServedModel) -> None:
        self.served = served

    def get(self, name: str | None, version: str | None = None) -> ServedModel:
        served = self.served
        if name is None or (name == served.name and (version is None or version == served.version)):
            return served
        what = f"'{name}'" if version is None else f"'{name}' version {version}"
        raise NotFound(f"Request for unknown model: {what} is not found (this server serves "
                       f"'{served.name}' version {served.version})")

    def models(self) -> list[ServedModel]:
        return [self.served]


class Request:
    """One request between its head and its answer (event loop thread only).

    Attributes:
        refused: the answer when the head alone decided it (the body is not
            read and the connection closes after it); else None.
        lease: where the body goes (``BodyLease``); released by ``done``.
    """

    __slots__ = ("answer", "arrived", "call", "failed", "header_length", "held", "lease", "method", "outcome",
                 "path", "refused", "reply", "seen", "size_class", "target", "timeout_us", "unsent", "write")

    def __init__(self, method: bytes, path: bytes, target: Target, header_length: int | None) -> None:
        self.method = method
        self.path = path
        self.target = target
        self.header_length = header_length
        self.lease: BodyLease | None = None
        self.refused: Answer | None = None
        self.call: Call | None = None
        self.outcome: Any = None
        self.failed: BaseException | None = None
        self.size_class: int | None = None  # the inline policy's, when it times this call
        self.reply: Reply | None = None
        self.answer: Answer | None = None
        self.write: DirectWrite | None = None
        self.unsent: list[Any] | None = None
        self.held: ServedModel | None = None  # the model version this request holds a lease on
        self.seen: Observation | None = None  # metrics, access log and trace (production.py)
        self.arrived = time.monotonic()  # the caller's remaining time counts from here
        self.timeout_us: int | None = None  # the GraphPipe-Timeout header's value

    def done(self) -> None:
        """The answer is handed to the transport: the body's budget goes
        back, and the model version's lease."""
        if self.lease is not None:
            self.lease.release()
            self.lease = None
        if self.held is not None:
            self.held.exit()
            self.held = None

    @property
    def where(self) -> str:
        return f"{self.method.decode('latin-1')} {self.path.decode('latin-1')}"


class Dispatcher:
    """Routes, refuses and schedules every request of a server.

    Args:
        models: where models are found.
        workers: the threads model calls run on.
        budget: request bytes in flight, and the per-body limit.
        debug: tracebacks in error answers.
        models_ready: whether every model is loaded (a model repository's
            readiness); the readiness routes say ready only then.
        production: tokens, metrics, access log and tracing (``production``).

    Attributes:
        ready: False once the server is shutting down (readiness routes say so).
    """

    def __init__(self, models: ModelLookup, workers: ModelWorkers, budget: BodyBudget | None = None, *,
                 debug: bool = False, models_ready: Callable[[], bool] | None = None,
                 production: Production | None = None) -> None:
        self.models = models
        self.workers = workers
        self.budget = budget or BodyBudget()
        self.debug = debug
        self.ready = True
        self.models_ready = models_ready
        production = production or Production()
        self.auth = production.auth
        self.observer = production.observer
        is_ready = self.is_ready
        self.routes: list[Routes] = [HealthRoutes(is_ready), production.metrics_routes,
                                     V2Routes(models, is_ready, lambda: self.ready),
                                     GraphPipeRoutes(models)]
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def max_request_bytes(self) -> int:
        return self.budget.max_request_bytes

    def is_ready(self) -> bool:
        return self.ready and (self.models_ready is None or self.models_ready())

    # ---- the request path -----------------------------------------------------------

    def begin(self, method: bytes, path: bytes, content_length: int | None, header_length: int | None,
              authorization: bytes | None = None, traceparent: bytes | None = None, peer: str = "-", *,
              timeout: bytes | None = None) -> Request:
        """A request whose head has arrived (``path`` without the query;
        ``content_length`` None: chunked or unknown; ``header_length``: v2's
        Inference-Header-Content-Length, -1 when not a number;
        ``authorization``, ``traceparent``, ``timeout``: the values of those
        headers (``timeout``: ``GraphPipe-Timeout``); ``peer``: the client's
        address, for the access log). Never raises."""
        target = self._resolve(method, path)
        if target.served is not None and not target.served.enter():
            # The version was retired since the lookup; the table that replaced it is published.
            target = self._resolve(method, path)
            if target.served is not None and not target.served.enter():
                target = _failing(target.wire, NotFound(f"{path.decode('latin-1')}: the model is being unloaded"))
        request = Request(method, path, target, header_length)
        request.held = target.served
        if timeout is not None:
            request.timeout_us = deadlines.parse_header(timeout)
        try:
            if self.auth is not None:
                refusal = self.auth.refusal(path, authorization)
                if refusal is not None:
                    raise refusal
            request.lease = self.budget.lease(content_length, header_length if header_length else 0)
        except ServerError as exc:
            request.refused = target.wire.error(failure(exc, request.where, close=True))
            request.done()  # no call will run: the model version's lease goes back now
        observer = self.observer
        if observer.active or traceparent is not None:
            model = _model_labels(method, path, target)
            request.seen = seen = observer.begin(traceparent, model, content_length or 0,
                                                 request.refused.status if request.refused is not None else 0)
            seen.peer = peer
            if request.refused is not None:
                observer.answered(seen, method, path, request.refused.status, 0, request.refused.length)
        return request

    def _resolve(self, method: bytes, path: bytes) -> Target:
        for routes in self.routes:
            try:
                target = routes.resolve(method, path)
            except ServerError as exc:
                return _failing(routes.wire, exc)
            if target is not None:
                return target
        return _failing(TEXT_WIRE, NotFound(f"no route for {path.decode('latin-1')!r}"))

    def finish(self, request: Request, reply: Reply, write: DirectWrite | None = None) -> None:
        """The body has arrived: ``reply(answer)`` is called once, on the
        event loop thread (maybe before this returns). With ``write``, a
        call run on a model worker is written from there, and ``reply`` finds
        what is left of it in ``request.unsent`` (None: nothing was written)."""
        lease = request.lease
        body = lease.body() if lease is not None else b""
        if request.seen is not None:  # answers go out through the observer
            reply, write = self._observed(request, reply, write, len(body))
        try:
            outcome = request.target.respond(body, request.header_length)
        except Exception as exc:  # noqa: BLE001 - the caller's mistake, or ours: an answer
            reply(self._error(request, exc))
            return
        if isinstance(outcome, Answer):
            reply(outcome)
            return
        if isinstance(outcome, concurrent.futures.Future):  # answered later, on another thread
            self._when_done(request, outcome, reply)
            return
        served: ServedModel = request.target.served  # type: ignore[assignment]
        timeout_us = outcome.timeout_us or request.timeout_us
        if timeout_us:
            outcome.deadline = request.arrived + timeout_us / 1e6
        request.call = outcome
        request.reply = reply
        request.write = write
        if request.seen is not None:
            request.seen.submitted = time.perf_counter()
        if served.batcher is not None:
            task = asyncio.get_running_loop().create_task(self._batched(served, request))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return
        request.size_class = served.inline.size_class(len(body))
        if request.size_class is not None and served.inline.admits(request.size_class):
            self._run(request, inline=True)
            self._answer(request)
            return
        self.workers.call_soon(self._run, request, asyncio.get_running_loop(), self._answer)

    def refusal(self, exc: ServerError, method: bytes = b"", path: bytes | None = None) -> Answer:
        """The answer to a refusal a front end meets (malformed HTTP, a head
        too large, a slow client, the connection cap), in the protocol
        ``path`` speaks (plain text when no path is known); it closes the
        connection."""
        wire = TEXT_WIRE if path is None else V2_WIRE if is_v2_path(path) else self.routes[-1].wire
        where = f"{method.decode('latin-1')} {path.decode('latin-1')}" if path is not None else "connection"
        return wire.error(failure(exc, where, close=True))

    def close(self) -> None:
        """Shutting down: readiness routes answer not ready from now on."""
        self.ready = False

    # ---- scheduling -----------------------------------------------------------------

    def _run(self, request: Request, inline: bool = False) -> Request:
        """On a worker (or inline, on the loop): runs the call and renders
        its answer; on a worker, writes it when the front end allows. Never raises."""
        served: ServedModel = request.target.served  # type: ignore[assignment]
        seen = request.seen
        rows = _rows(request.call) if seen is not None else 0  # type: ignore[arg-type]
        start = time.perf_counter()
        try:
            if seen is not None and seen.trace is not None:
                with tracing.use(seen.trace):  # the model's own calls carry the request's trace on
                    request.outcome = served.runner.execute(request.call)  # type: ignore[arg-type]
            else:
                request.outcome = served.runner.execute(request.call)  # type: ignore[arg-type]
        except Exception as exc:  # noqa: BLE001 - every failure becomes an answer
            request.failed = exc
        end = time.perf_counter()
        # The call's inputs are views of the body: drop them before the answer.
        request.call = None
        if request.size_class is not None:
            served.inline.record(end - start, inline, request.size_class)
        if seen is not None:
            self.observer.ran(seen, start, end, rows)
        answer = request.answer = self._rendered(request)
        write, request.write = request.write, None
        if write is not None and not inline and not answer.close:
            request.unsent = write(answer)
            if request.unsent == [] and request.lease is not None:
                # All of it is in the kernel and this worker still holds the
                # request: the body's buffer may go back to its pool now, before
                # the loop hears of it (the client may be sending its next body).
                request.lease.let_go()
        return request

    def _rendered(self, request: Request) -> Answer:
        if request.failed is None:
            answer: Answer = request.target.wire.ok(request.outcome)
        else:
            answer = self._error(request, request.failed)
            request.failed = None
        request.outcome = None
        return answer

    def _answer(self, request: Request) -> None:
        """On the loop: hands the call's answer to the front end."""
        reply, request.reply = request.reply, None
        answer, request.answer = request.answer, None
        reply(answer)  # type: ignore[misc, arg-type]

    async def _batched(self, served: ServedModel, request: Request) -> None:
        try:
            request.outcome = await served.batcher.submit(request.call)  # type: ignore[union-attr, arg-type]
        except Exception as exc:  # noqa: BLE001 - every failure becomes an answer
            request.failed = exc
        if request.seen is not None and request.call is not None and request.call.ran is not None:
            self.observer.ran(request.seen, *request.call.ran)  # as the batcher timed it
        request.call = None
        request.write = None
        request.answer = self._rendered(request)
        self._answer(request)

    def _when_done(self, request: Request, future: concurrent.futures.Future[Answer], reply: Reply) -> None:
        """Replies, on the loop, once ``future`` (a model repository's load or
        unload) resolves."""
        loop = asyncio.get_running_loop()

        def answer(done: concurrent.futures.Future[Answer]) -> None:  # on the loop
            error = done.exception()
            reply(done.result() if error is None else self._error(request, error))

        def resolved(done: concurrent.futures.Future[Answer]) -> None:
            try:
                loop.call_soon_threadsafe(answer, done)
            except RuntimeError:  # the loop is gone (shutdown): nobody to answer
                pass

        future.add_done_callback(resolved)

    def _error(self, request: Request, exc: BaseException) -> Answer:
        return request.target.wire.error(failure(exc, request.where, debug=self.debug))

    def _observed(self, request: Request, reply: Reply, write: DirectWrite | None,
                  body_bytes: int) -> tuple[Reply, DirectWrite | None]:
        """``reply`` and ``write``, telling the observer (metrics, access log,
        spans) of the answer once, on the loop, before the client can see it:
        a scrape of /metrics made after an answer arrived counts that answer.
        ``write`` is kept only when the observer lets workers write."""
        seen: Observation = request.seen  # type: ignore[assignment]
        told = False

        def tell(answer: Answer) -> None:  # on the loop
            nonlocal told
            if not told:
                told = True
                self.observer.answered(seen, request.method, request.path, answer.status, body_bytes, answer.length)

        def observed(answer: Answer) -> None:
            tell(answer)
            reply(answer)

        if write is None or not self.observer.lets_workers_write:
            return observed, None
        loop = asyncio.get_running_loop()
        direct = write

        def observed_write(answer: Answer) -> list[Any] | None:  # on a worker
            # Queued before the first byte goes out, so the loop runs it before
            # it can read anything the client sends after seeing the answer.
            loop.call_soon_threadsafe(tell, answer)
            return direct(answer)

        return observed, observed_write


def _rows(call: Call) -> int:
    """The rows a call runs on, for the batch-size metric (0: not known)."""
    if call.rows:
        return call.rows
    first = call.inputs[0] if call.inputs else None
    return int(first.shape[0]) if first is not None and first.ndim > 0 else 0


def _model_labels(method: bytes, path: bytes, target: Target) -> tuple[str, str, str] | None:
    """(model, version, protocol) of an inference request, for metrics; None
    for the others. A v2 call to a model this server does not serve counts
    under model "" (label values never come from the caller)."""
    if method != b"POST":
        return None
    served = target.served
    if served is not None:
        return served.name, served.version, target.wire.name
    return ("", "", "v2") if is_v2_path(path) else None


def _failing(wire: Any, exc: ServerError) -> Target:
    """A target that answers ``exc`` once the body has arrived."""

    def respond(body: Any, header_length: int | None) -> Answer:
        raise exc

    return Target(wire, respond)
