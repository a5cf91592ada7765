# SPDX-License-Identifier: Apache-2.0
"""``/metrics``: the Prometheus text format, parsed with prometheus-client's
own parser; counters move by exactly the calls made, errors by code."""
from __future__ import annotations

import http.client
import json
from collections.abc import Iterator

import numpy as np
import pytest
import tensorflow as tf
from prometheus_client.parser import text_string_to_metric_families

import tf_graphpipe
from tf_graphpipe import Client, RemoteError
from tf_graphpipe.server import RunningServer


def checked(x: tf.TensorSpec([None, 3], tf.float32)) -> tf.TensorSpec([None, 3], tf.float32):
    if np.isnan(x).any():
        raise RuntimeError("input holds NaN")
    return x + 1


@pytest.fixture
def server() -> Iterator[RunningServer]:
    with tf_graphpipe.serve(checked, name="checked", max_request_bytes=1 << 16) as running:
        yield running


def scrape(server: RunningServer) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``/metrics`` by (name, sorted labels)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        connection.request("GET", "/metrics")
        response = connection.getresponse()
        text = response.read().decode()
        assert response.status == 200, text
        assert response.getheader("content-type").startswith("text/plain")
    finally:
        connection.close()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


GRAPHPIPE = {"model": "checked", "version": "1", "protocol": "graphpipe"}
V2 = {"model": "checked", "version": "1", "protocol": "v2"}


def test_counters_move_by_exactly_the_calls_made(server: RunningServer) -> None:
    before = scrape(server)
    n = 7
    graphpipe, v2 = Client(server.url), Client(server.url + "/v2/models/checked")
    for _ in range(n):
        graphpipe.infer(np.zeros((2, 3), np.float32))
    for _ in range(n - 2):
        v2.infer(np.zeros((1, 3), np.float32))
    after = scrape(server)
    assert value(after, "graphpipe_requests_total", code="200", **GRAPHPIPE) - \
        value(before, "graphpipe_requests_total", code="200", **GRAPHPIPE) == n
    assert value(after, "graphpipe_requests_total", code="200", **V2) - \
        value(before, "graphpipe_requests_total", code="200", **V2) == n - 2
    for name in ("graphpipe_request_duration_seconds_count", "graphpipe_model_duration_seconds_count",
                 "graphpipe_queue_duration_seconds_count", "graphpipe_batch_size_count"):
        assert value(after, name, **GRAPHPIPE) - value(before, name, **GRAPHPIPE) == n, name
    # Each call had 2 rows: the batch-size sum moved by 2n; the bytes moved both ways.
    assert value(after, "graphpipe_batch_size_sum", **GRAPHPIPE) - value(before, "graphpipe_batch_size_sum",
                                                                         **GRAPHPIPE) == 2 * n
    assert value(after, "graphpipe_request_bytes_total", **GRAPHPIPE) > value(
        before, "graphpipe_request_bytes_total", **GRAPHPIPE)
    assert value(after, "graphpipe_response_bytes_total", **V2) > value(
        before, "graphpipe_response_bytes_total", **V2)
    assert value(after, "graphpipe_inflight_requests", **GRAPHPIPE) == 0


def test_histograms_are_cumulative_and_end_at_their_count(server: RunningServer) -> None:
    Client(server.url).infer(np.zeros((1, 3), np.float32))
    samples = scrape(server)
    buckets = sorted(((float(dict(labels)["le"]), v) for (name, labels), v in samples.items()
                      if name == "graphpipe_request_duration_seconds_bucket" and ("protocol", "graphpipe") in labels))
    counts = [v for _, v in buckets]
    assert counts == sorted(counts) and buckets[-1][0] == float("inf")
    assert counts[-1] == value(samples, "graphpipe_request_duration_seconds_count", **GRAPHPIPE) == 1
    assert 0 < value(samples, "graphpipe_request_duration_seconds_sum", **GRAPHPIPE) < 60


def test_errors_are_counted_by_code(server: RunningServer) -> None:
    client = Client(server.url, retries=0)
    for _ in range(3):
        with pytest.raises(RemoteError):
            client.infer(np.full((1, 3), np.nan, np.float32))  # the model raises: 500
    for _ in range(2):
        with pytest.raises(RemoteError):
            client.infer(np.zeros((1, 4), np.float32))  # wrong shape: 400
    with pytest.raises(RemoteError):
        client.infer(np.zeros((1, 1 << 15), np.float32))  # 128 KiB body over the 64 KiB limit: 413
    samples = scrape(server)
    assert value(samples, "graphpipe_requests_total", code="500", **GRAPHPIPE) == 3
    assert value(samples, "graphpipe_requests_total", code="400", **GRAPHPIPE) == 2
    assert value(samples, "graphpipe_requests_total", code="413", **GRAPHPIPE) == 1
    assert value(samples, "graphpipe_model_duration_seconds_count", **GRAPHPIPE) == 3  # only the model's own runs


def test_calls_to_unknown_models_count_under_an_empty_model_label(server: RunningServer) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    body = json.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 3], "data": [1, 2, 3]}]})
    for name in ("nope-a", "nope-b"):
        connection.request("POST", f"/v2/models/{name}/infer", body=body)
        response = connection.getresponse()
        response.read()
        assert response.status == 404
    connection.close()
    samples = scrape(server)
    assert value(samples, "graphpipe_requests_total", code="404", model="", version="", protocol="v2") == 2
    assert not any("nope" in str(labels) for _, labels in samples)


def test_batched_calls_report_their_batch_sizes() -> None:
    with tf_graphpipe.serve(checked, name="checked", max_batch_size=8, batch_timeout_ms=1) as running:
        client = Client(running.url)
        for rows in (1, 3):
            client.infer(np.zeros((rows, 3), np.float32))
        samples = scrape(running)
    assert value(samples, "graphpipe_batch_size_sum", **GRAPHPIPE) == 4
    assert value(samples, "graphpipe_requests_total", code="200", **GRAPHPIPE) == 2


def test_no_metrics_turns_the_route_off() -> None:
    with tf_graphpipe.serve(checked, metrics=False) as running:
        connection = http.client.HTTPConnection("127.0.0.1", running.port, timeout=30)
        connection.request("GET", "/metrics")
        response = connection.getresponse()
        response.read()
        connection.close()
        assert response.status == 404
        np.testing.assert_array_equal(Client(running.url).infer(np.zeros((1, 3), np.float32)), [[1, 1, 1]])


def test_a_scrape_after_an_answer_counts_it_when_a_worker_wrote_the_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    """Calls run on a model worker (inline off), observed (metrics on, and
    our Client sends a traceparent), are written by the worker itself; the
    loop still hears of each answer before the client can scrape."""
    from tf_graphpipe.server import http_server

    direct_writes = 0
    write = http_server._SocketWriter.__call__

    def counted(self: http_server._SocketWriter, answer: object) -> object:
        nonlocal direct_writes
        direct_writes += 1
        return write(self, answer)  # type: ignore[arg-type]

    monkeypatch.setattr(http_server._SocketWriter, "__call__", counted)
    with tf_graphpipe.serve(checked, name="checked", inline_max_us=0) as running:
        client = Client(running.url)
        before = value(scrape(running), "graphpipe_requests_total", code="200", **GRAPHPIPE)
        for i in range(1, 21):
            client.infer(np.zeros((2, 3), np.float32))
            counted_now = value(scrape(running), "graphpipe_requests_total", code="200", **GRAPHPIPE)
            assert counted_now - before == i
    assert direct_writes >= 10, "the worker wrote no answers itself: the test does not test the direct write"
