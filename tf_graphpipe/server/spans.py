# SPDX-License-Identifier: Apache-2.0
"""OpenTelemetry spans for the calls a server answers, when the application
has installed and configured the SDK (``tf-graphpipe[tracing]``, then
``trace.set_tracer_provider(...)``, or ``opentelemetry-instrument
tf-graphpipe serve ...``) before the server starts.

Each inference call gets a server span (``graphpipe.infer``) under the
caller's ``traceparent``, with two children timed by the dispatcher:
``graphpipe.queue`` (waiting for a worker or a batch) and ``graphpipe.model``
(the model running). The model runs inside the server span, so the calls it
makes to other models are children of it. Without a configured SDK nothing
here runs and nothing is imported.
"""
from __future__ import annotations

import time
from typing import Any

from tf_graphpipe.tracing import TraceParent

__all__ = ["RequestSpans"]

TRACER_NAME = "tf_graphpipe.server"


class RequestSpans:
    """Makes the spans of a server's calls with the configured tracer."""

    def __init__(self, tracer: Any) -> None:
        from opentelemetry import trace
        from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags

        self._tracer = tracer
        self._trace = trace
        self._remote = (NonRecordingSpan, SpanContext, TraceFlags)
        self._server_kind = SpanKind.SERVER
        self._error = (Status, StatusCode.ERROR)
        # perf_counter() seconds -> epoch nanoseconds, the unit of span times.
        self._epoch_ns = time.time_ns() - int(time.perf_counter() * 1e9)

    @classmethod
    def configured(cls) -> RequestSpans | None:
        """Spans with the application's tracer provider; None when
        OpenTelemetry is not installed or no provider is configured."""
        try:
            from opentelemetry import trace
        except ImportError:
            return None
        provider = trace.get_tracer_provider()
        if isinstance(provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider)):
            return None
        return cls(provider.get_tracer(TRACER_NAME))

    def start(self, parent: TraceParent | None, started: float, attributes: dict[str, Any]) -> tuple[Any, TraceParent]:
        """Opens the server span of a call that arrived at ``started``
        (``perf_counter`` seconds) under ``parent`` (the caller's
        traceparent, or None: a new trace). Returns the span and the trace the
        model runs in (the span's ids)."""
        context = None
        if parent is not None:
            non_recording, span_context, flags = self._remote
            remote = span_context(int(parent.trace_id, 16), int(parent.span_id, 16), is_remote=True,
                                  trace_flags=flags(parent.flags))
            context = self._trace.set_span_in_context(non_recording(remote))
        span = self._tracer.start_span("graphpipe.infer", context=context, kind=self._server_kind,
                                       attributes=attributes, start_time=self._ns(started))
        ids = span.get_span_context()
        return span, TraceParent(f"{ids.trace_id:032x}", f"{ids.span_id:016x}", int(ids.trace_flags))

    def finish(self, span: Any, status: int, finished: float, *, queued: tuple[float, float] | None = None,
               model: tuple[float, float] | None = None) -> None:
        """Closes a call's span at ``finished`` with its HTTP ``status``, and
        records its queue and model intervals (``perf_counter`` seconds)."""
        context = self._trace.set_span_in_context(span)
        for name, interval in (("graphpipe.queue", queued), ("graphpipe.model", model)):
            if interval is not None:
                child = self._tracer.start_span(name, context=context, start_time=self._ns(interval[0]))
                child.end(end_time=self._ns(interval[1]))
        span.set_attribute("http.response.status_code", status)
        if status >= 500:
            status_type, error = self._error
            span.set_status(status_type(error))
        span.end(end_time=self._ns(finished))

    def _ns(self, seconds: float) -> int:
        return self._epoch_ns + int(seconds * 1e9)
