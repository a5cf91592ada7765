# SPDX-License-Identifier: Apache-2.0
"""What the dispatcher records about each request: Prometheus metrics, the
access log, the trace the model runs in and its OpenTelemetry spans. One
object, called at three points of the request path (the head arrived, the
model ran, the answer went out), so the dispatcher holds no metrics or
tracing logic of its own, and each part costs nothing when it is off.

The trace a request runs in is the caller's ``traceparent`` (or a new one
when it sent none or a malformed one). When the access log or spans are on,
the server takes a span of its own in that trace; the model runs inside it
(``tracing.current()``), so the calls a Python model makes carry the trace on.
"""
from __future__ import annotations

import time
from typing import Any

from tf_graphpipe import tracing
from tf_graphpipe.server.access_log import AccessLog
from tf_graphpipe.server.metrics import ModelMetrics, ServerMetrics
from tf_graphpipe.server.spans import RequestSpans
from tf_graphpipe.tracing import TraceParent

__all__ = ["Observation", "RequestObserver"]


class Observation:
    """One request as observed: when it arrived, its trace, its recorder."""

    __slots__ = ("header", "model", "peer", "recorder", "run", "span", "started", "submitted", "trace")

    def __init__(self, started: float) -> None:
        self.started = started
        self.peer = "-"
        self.submitted = started  # when the call was handed to a worker or a batch
        self.trace: TraceParent | None = None  # the trace the model runs in
        self.header = ""  # the traceparent the access log writes
        self.span: Any = None
        self.recorder: ModelMetrics | None = None
        self.model: tuple[float, float] | None = None  # the model's run, perf_counter seconds
        self.run: tuple[float, float, int, int] | None = None  # for the metrics: queued, ran, rows, counted


class RequestObserver:
    """Metrics, access log and spans of one server; each part optional.

    Args:
        metrics: the server's ``/metrics`` tallies (None: off).
        access_log: writes one line per request (None: off).
        spans: OpenTelemetry spans (None: no SDK configured).
    """

    def __init__(self, metrics: ServerMetrics | None = None, access_log: AccessLog | None = None,
                 spans: RequestSpans | None = None) -> None:
        self.metrics = metrics
        self.access_log = access_log
        self.spans = spans
        self._traced = access_log is not None or spans is not None
        self.active = self._traced or metrics is not None  # else only a caller's traceparent is looked at
        # A worker may write an answer itself once its record is queued on the
        # loop when all that is recorded is read through the loop (/metrics);
        # the access log and spans are read elsewhere, so they are written
        # before the client can see the answer, from the loop.
        self.lets_workers_write = not self._traced

    def begin(self, traceparent: bytes | None, model: tuple[str, str, str] | None, body_bytes: int,
              refused: int = 0) -> Observation:
        """A request's head arrived. ``model``: (name, version, protocol) of an
        inference request (None for others: health, metadata, metrics);
        ``refused``: the status when the head alone answered it (401, 413)."""
        observation = Observation(time.perf_counter())
        parent = tracing.parse(traceparent) if traceparent is not None else None
        if self._traced:
            if self.spans is not None and model is not None:
                attributes = {"graphpipe.model": model[0], "graphpipe.version": model[1],
                              "graphpipe.protocol": model[2]}
                observation.span, observation.trace = self.spans.start(parent, observation.started, attributes)
            else:
                observation.trace = parent.child() if parent is not None else tracing.new_trace()
            observation.header = parent.header if parent is not None else observation.trace.header
        else:  # nothing records a span here: the model's calls are the caller's children
            observation.trace = parent
        if model is not None and self.metrics is not None:
            recorder = observation.recorder = self.metrics.model(*model)
            if refused:
                recorder.refused(refused, 0)
                observation.recorder = None
            else:
                recorder.started(body_bytes)
        return observation

    def ran(self, observation: Observation, started: float, ended: float, rows: int, counted: bool = True) -> None:
        """The model ran on this request's call from ``started`` to ``ended``
        (``perf_counter``), on ``rows`` rows (0: not known). ``counted``:
        False for the other calls of a merged batch, so the model's runs and
        batch sizes are counted once per run, the queue time once per call."""
        observation.model = (started, ended)
        observation.run = (max(0.0, started - observation.submitted), ended - started, rows, 1 if counted else 0)

    def answered(self, observation: Observation, method: bytes, path: bytes, status: int, bytes_in: int,
                 bytes_out: int) -> None:
        """The answer was handed to the transport."""
        finished = time.perf_counter()
        if observation.recorder is not None:
            observation.recorder.finished(status, finished - observation.started, bytes_out, observation.run)
        if observation.span is not None:
            model = observation.model
            queued = (observation.submitted, model[0]) if model is not None else None
            spans: RequestSpans = self.spans  # type: ignore[assignment]
            spans.finish(observation.span, status, finished, queued=queued, model=model)
        if self.access_log is not None:
            self.access_log.write(observation.peer, method, path, status, bytes_in, bytes_out,
                                  finished - observation.started, observation.header)
