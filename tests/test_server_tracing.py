# SPDX-License-Identifier: Apache-2.0
"""Request tracing: the caller's traceparent in the access log, handed to a
Python model whose own calls carry it on, and OpenTelemetry spans."""
from __future__ import annotations

import http.client
import logging
import re
from collections.abc import Iterator

import numpy as np
import pytest
import tensorflow as tf

import tf_graphpipe
from tf_graphpipe import Client, _native, tracing
from tf_graphpipe.server import RunningServer

FLOAT32 = 10  # GraphPipe wire type of float32
INCOMING = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
ACCESS = "tf_graphpipe.access"


def double(x: tf.TensorSpec([None, 2], tf.float32)) -> tf.TensorSpec([None, 2], tf.float32):
    return x * 2


def post(server: RunningServer, headers: dict[str, str]) -> int:
    body = bytes(_native.encode_infer_request([np.ones((1, 2), np.float32)], [FLOAT32], [], [], b""))
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        connection.request("POST", "/", body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def access_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == ACCESS]


@pytest.fixture
def logged_server(caplog: pytest.LogCaptureFixture) -> Iterator[RunningServer]:
    caplog.set_level(logging.INFO, logger=ACCESS)
    with tf_graphpipe.serve(double, name="double", access_log=True) as running:
        yield running


def test_access_log_line_carries_the_callers_traceparent(logged_server: RunningServer,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    assert post(logged_server, {"traceparent": INCOMING}) == 200
    (line,) = [line for line in access_lines(caplog) if INCOMING in line]
    assert re.search(r'"POST /" 200 ', line), line


def test_a_call_without_or_with_a_malformed_traceparent_gets_a_new_trace(
        logged_server: RunningServer, caplog: pytest.LogCaptureFixture) -> None:
    post(logged_server, {})
    post(logged_server, {"traceparent": "00-nonsense"})
    lines = access_lines(caplog)
    assert len(lines) == 2
    ids = [tracing.parse(re.search(r"traceparent=(\S+)", line).group(1)) for line in lines]
    assert all(ids) and ids[0].trace_id != ids[1].trace_id
    assert "nonsense" not in "".join(lines)


def test_access_log_is_off_unless_asked_for(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=ACCESS)
    with tf_graphpipe.serve(double) as running:
        post(running, {"traceparent": INCOMING})
    assert access_lines(caplog) == []


def test_client_sends_a_traceparent_on_every_call(logged_server: RunningServer,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    client = Client(logged_server.url)
    client.infer(np.ones((1, 2), np.float32))
    with tracing.use(INCOMING):
        client.infer(np.ones((1, 2), np.float32))
    lines = access_lines(caplog)
    assert len(lines) == 2
    assert INCOMING not in lines[0] and re.search(r"traceparent=00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]", lines[0])
    assert INCOMING in lines[1]


def test_a_chained_model_carries_the_trace_to_the_models_it_calls(
        logged_server: RunningServer, caplog: pytest.LogCaptureFixture) -> None:
    downstream = Client(logged_server.url)

    def front(x: tf.TensorSpec([None, 2], tf.float32)) -> tf.TensorSpec([None, 2], tf.float32):
        return downstream.infer(x) + 1  # a Python model calling another model

    with tf_graphpipe.serve(front, name="front", access_log=True) as chain:
        assert post(chain, {"traceparent": INCOMING}) == 200
    lines = access_lines(caplog)
    assert len(lines) == 2  # the downstream call, then the front call
    downstream_line, front_line = lines
    assert INCOMING in front_line
    outgoing = tracing.parse(re.search(r"traceparent=(\S+)", downstream_line).group(1))
    assert outgoing.trace_id == TRACE_ID  # one trace across the chain
    assert outgoing.span_id != "00f067aa0ba902b7"  # under the front server's span, not the caller's


def test_opentelemetry_spans_for_queue_and_model_time_under_the_callers_parent() -> None:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)  # process-wide, once: later servers in this run trace too
    with tf_graphpipe.serve(double, name="double") as running:
        assert post(running, {"traceparent": INCOMING}) == 200
    provider.force_flush()
    spans = {span.name: span for span in exporter.get_finished_spans()}
    assert {"graphpipe.infer", "graphpipe.queue", "graphpipe.model"} <= set(spans)
    server_span = spans["graphpipe.infer"]
    assert f"{server_span.context.trace_id:032x}" == TRACE_ID
    assert f"{server_span.parent.span_id:016x}" == "00f067aa0ba902b7"
    assert server_span.attributes["http.response.status_code"] == 200
    assert server_span.attributes["graphpipe.model"] == "double"
    for name in ("graphpipe.queue", "graphpipe.model"):
        child = spans[name]
        assert child.parent.span_id == server_span.context.span_id
        assert server_span.start_time <= child.start_time <= child.end_time <= server_span.end_time
