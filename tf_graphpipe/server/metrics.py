# SPDX-License-Identifier: Apache-2.0
"""The server's Prometheus metrics, served at ``/metrics`` (``prometheus-client``,
the ``tf-graphpipe[metrics]`` extra).

Labels: ``model``, ``version`` and ``protocol`` (``graphpipe`` or ``v2``),
plus ``code`` (the HTTP status) on the request counter. A call that names no
served model (an unknown v2 model, say) counts under ``model=""``: label
values never come from what a caller typed, so a caller cannot grow the
series without bound. Each server has its own registry, so two servers in
one process (tests, a notebook) report only their own calls.

Why not ``prometheus_client.Counter``/``Histogram`` objects: each update
takes its own lock and a Python loop over the buckets, ~1-3 µs apiece, and a
call updates nine of them: 5-10 % of a small call's latency. Here a call's
numbers are added to plain per-model tallies by the event loop thread, which
alone touches them (buckets found with ``bisect``), and a
``prometheus_client`` collector turns the tallies into metric families when
``/metrics`` is scraped, on the same thread; the text format, names and
types are prometheus-client's own.
"""
from __future__ import annotations

import bisect
import threading
from collections.abc import Iterator
from typing import Any

from tf_graphpipe.server.answer import Answer
from tf_graphpipe.server.errors import MethodNotAllowed, NotFound
from tf_graphpipe.server.routes import TEXT_WIRE, Target

__all__ = ["CONTENT_TYPE", "MetricsRoutes", "ModelMetrics", "ServerMetrics", "metrics_available"]

EXTRA_HINT = "install tf-graphpipe[metrics] (prometheus-client)"
# Seconds: a small model answers in ~100 µs, a large call takes seconds.
SECONDS_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                   1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
BATCH_BUCKETS = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0)
CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"
LABELS = ("model", "version", "protocol")


def metrics_available() -> bool:
    """Whether prometheus-client is installed."""
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        return False
    return True


class _Tally:
    """A histogram's counts (one slot per bucket, then +Inf) and sum."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0

    def add(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1  # bucket i holds bounds[i-1] < v <= bounds[i]
        self.total += value

    def cumulative(self) -> list[tuple[str, float]]:
        buckets, running = [], 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += count
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), float(running)))
        return buckets


class ModelMetrics:
    """What the dispatcher records for one model, version and protocol.

    Called on the server's event loop thread only, as the ``/metrics`` route
    that reads them is: the dispatcher records a request when its head
    arrives and when its answer goes out, both on the loop (a worker only
    times the model run, on the request), so no lock is taken.
    """

    __slots__ = (
        "batch_size",
        "codes",
        "inflight",
        "labels",
        "model_seconds",
        "queue_seconds",
        "request_bytes",
        "request_seconds",
        "response_bytes",
    )

    def __init__(self, labels: tuple[str, str, str]) -> None:
        self.labels = labels
        self.codes: dict[int, int] = {}
        self.inflight = 0
        self.request_bytes = 0
        self.response_bytes = 0
        self.request_seconds = _Tally(SECONDS_BUCKETS)
        self.queue_seconds = _Tally(SECONDS_BUCKETS)
        self.model_seconds = _Tally(SECONDS_BUCKETS)
        self.batch_size = _Tally(BATCH_BUCKETS)

    def started(self, body_bytes: int) -> None:
        """A request for the model arrived (``body_bytes``: its body)."""
        self.inflight += 1
        self.request_bytes += body_bytes

    def finished(self, status: int, seconds: float, answer_bytes: int, model: tuple[float, float, int, int] | None
                 ) -> None:
        """The request of a ``started`` was answered with HTTP ``status``,
        ``seconds`` after it arrived, with ``answer_bytes`` of body. ``model``:
        (seconds queued, seconds the model ran, rows, 1 if the run counts
        here else 0: the other calls of a merged batch), None when the model
        did not run."""
        # The tallies' add() written out: this runs once per request.
        self.inflight -= 1
        codes = self.codes
        codes[status] = codes.get(status, 0) + 1
        tally = self.request_seconds
        tally.counts[bisect.bisect_left(tally.bounds, seconds)] += 1
        tally.total += seconds
        self.response_bytes += answer_bytes
        if model is not None:
            queued, ran, rows, counted = model
            tally = self.queue_seconds
            tally.counts[bisect.bisect_left(tally.bounds, queued)] += 1
            tally.total += queued
            if counted:
                tally = self.model_seconds
                tally.counts[bisect.bisect_left(tally.bounds, ran)] += 1
                tally.total += ran
                if rows > 0:
                    self.batch_size.add(rows)

    def refused(self, status: int, body_bytes: int = 0) -> None:
        """A request answered without reaching the model (401, 413 ...) and
        never ``started``: counted by code, not timed."""
        self.codes[status] = self.codes.get(status, 0) + 1
        self.request_bytes += body_bytes


class ServerMetrics:
    """The metrics of one server, in a registry of its own.

    Raises:
        ImportError: prometheus-client is not installed (the message names the extra).
    """

    def __init__(self) -> None:
        try:
            from prometheus_client import CollectorRegistry
        except ImportError as exc:
            raise ImportError(f"the server's /metrics needs prometheus-client: {EXTRA_HINT}") from exc
        self._models: dict[tuple[str, str, str], ModelMetrics] = {}
        self._lock = threading.Lock()
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Collector(self))

    def model(self, model: str, version: str | int | None, protocol: str) -> ModelMetrics:
        """The recorder for one model, version and protocol (made once, then cached)."""
        key = (model, "" if version is None else str(version), protocol)
        found = self._models.get(key)
        if found is None:
            with self._lock:
                found = self._models.setdefault(key, ModelMetrics(key))
        return found

    def snapshot(self) -> list[ModelMetrics]:
        with self._lock:
            return list(self._models.values())

    def exposition(self) -> bytes:
        """The Prometheus text format of every metric (the body of ``/metrics``)."""
        from prometheus_client import generate_latest

        return generate_latest(self.registry)


class _Collector:
    """Turns the tallies into prometheus-client metric families at scrape time."""

    def __init__(self, metrics: ServerMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

        requests = CounterMetricFamily("graphpipe_requests", "Inference requests answered, by HTTP status code",
                                       labels=(*LABELS, "code"))
        inflight = GaugeMetricFamily("graphpipe_inflight_requests",
                                     "Inference requests received and not yet answered", labels=LABELS)
        bytes_in = CounterMetricFamily("graphpipe_request_bytes", "Bytes of inference request bodies received",
                                       labels=LABELS)
        bytes_out = CounterMetricFamily("graphpipe_response_bytes", "Bytes of inference answer bodies sent",
                                        labels=LABELS)
        histograms = {
            "request_seconds": HistogramMetricFamily(
                "graphpipe_request_duration_seconds",
                "Time from a request's arrival to its answer being handed to the socket", labels=LABELS),
            "queue_seconds": HistogramMetricFamily(
                "graphpipe_queue_duration_seconds", "Time a call waited for a model worker or a batch",
                labels=LABELS),
            "model_seconds": HistogramMetricFamily(
                "graphpipe_model_duration_seconds", "Time the model ran on a call or a batch", labels=LABELS),
            "batch_size": HistogramMetricFamily(
                "graphpipe_batch_size", "Rows in each call or batch the model ran on", labels=LABELS),
        }
        for model in self.metrics.snapshot():
            labels = list(model.labels)
            for status, count in sorted(model.codes.items()):
                requests.add_metric([*labels, str(status)], count)
            inflight.add_metric(labels, model.inflight)
            bytes_in.add_metric(labels, model.request_bytes)
            bytes_out.add_metric(labels, model.response_bytes)
            for attribute, family in histograms.items():
                tally: _Tally = getattr(model, attribute)
                family.add_metric(labels, tally.cumulative(), tally.total)
        yield requests
        yield inflight
        yield bytes_in
        yield bytes_out
        yield from histograms.values()


class MetricsRoutes:
    """``GET /metrics``: the Prometheus text format; 404 naming the reason
    when metrics are off (``--no-metrics``, or prometheus-client missing)."""

    PATH = b"/metrics"

    def __init__(self, metrics: ServerMetrics | None, off_reason: str = "metrics are off (--no-metrics)") -> None:
        self.wire = TEXT_WIRE
        self.metrics = metrics
        self.off_reason = off_reason

    def resolve(self, method: bytes, path: bytes) -> Target | None:
        if path != self.PATH:
            return None
        if method not in (b"GET", b"HEAD"):
            raise MethodNotAllowed(f"{method.decode('latin-1')} /metrics: use GET", "GET, HEAD")
        metrics = self.metrics
        if metrics is None:
            raise NotFound(self.off_reason)
        return Target(self.wire, lambda body, header_length: Answer(200, [metrics.exposition()], CONTENT_TYPE))
