# SPDX-License-Identifier: Apache-2.0
"""remote_call: the GraphPipe op inside TensorFlow, eager and in tf.function,
against real servers on 127.0.0.1 that answer well and badly."""
from __future__ import annotations

import threading

import numpy as np
import pytest
import tensorflow as tf

import tf_graphpipe
from tf_graphpipe import remote_call

from support.graphpipe_test_servers import (
    ECHO_METADATA,
    EchoServer,
    ErrorResponseServer,
    GarbageServer,
    Reply,
    SilentServer,
    TestServer,
    TextErrorServer,
    TruncatingServer,
    echo_reply,
)

WIRE_DTYPES = [tf.uint8, tf.int8, tf.uint16, tf.int16, tf.uint32, tf.int32,
               tf.uint64, tf.int64, tf.float16, tf.float32, tf.float64]


@pytest.fixture
def echo():
    with EchoServer() as server:
        yield server


def echo_call(url, x, **kwargs):
    return remote_call(url, [x], output_dtypes=[x.dtype], **kwargs)[0]


@pytest.mark.parametrize("dtype", WIRE_DTYPES, ids=lambda d: d.name)
def test_every_wire_dtype_round_trips_eagerly(echo, dtype):
    x = tf.cast(tf.reshape(tf.range(24), [2, 3, 4]), dtype)
    y = echo_call(echo.url, x)
    assert y.dtype == dtype
    np.testing.assert_array_equal(y.numpy(), x.numpy())


def test_strings_keep_nul_and_high_bytes(echo):
    x = tf.constant([[b"a\x00b", b""], [b"\xff\xfe\x00", b"plain"]])
    y = echo_call(echo.url, x)
    assert y.numpy().tolist() == x.numpy().tolist()


def test_rank0_and_empty_tensors(echo):
    scalar = tf.constant(7, tf.int64)
    empty = tf.zeros([0, 3], tf.float32)
    a, b = remote_call(echo.url, [scalar, empty], output_dtypes=[tf.int64, tf.float32])
    assert a.shape == [] and a.numpy() == 7
    assert b.shape == [0, 3]


def test_inside_tf_function_with_static_shapes(echo):
    @tf.function
    def double_trip(x):
        y = remote_call(echo.url, [x], output_dtypes=["float32"], output_shapes=[[None, 3]])[0]
        assert y.shape.as_list() == [None, 3]  # from the shape function, at trace time
        return remote_call(echo.url, [y * 2.0], output_dtypes=[tf.float32])[0]

    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(double_trip(x).numpy(), x * 2)


@pytest.mark.parametrize("elements", [16_000, 16_400, 1 << 20], ids=["63KiB", "64KiB+", "4MiB"])
def test_small_and_large_answers_fill_outputs_exactly_in_tf_function(echo, elements):
    # Answers up to 64 KiB are finished on the transfer thread, larger ones
    # on TensorFlow's pool: both must hand back the same bytes.
    @tf.function
    def chained(x):
        return echo_call(echo.url, echo_call(echo.url, x) + 1.0)

    x = np.random.default_rng(elements).standard_normal(elements).astype(np.float32)
    for _ in range(3):
        np.testing.assert_array_equal(chained(x).numpy(), x + 1.0)


def test_names_and_config_reach_the_server(echo):
    seen = echo.seen
    remote_call(echo.url, [tf.ones([1, 3])], output_dtypes=[tf.float32],
                input_names=["input0"], output_names=["output0"], config="cfg=1")
    assert seen[-1].input_names == ["input0"]
    assert seen[-1].output_names == ["output0"]
    assert seen[-1].config == b"cfg=1"


class BarrierServer(TestServer):
    """Answers only once `parties` requests are in flight at the same time:
    if the calls were serialised, the barrier breaks and every call fails."""

    def __init__(self, parties: int) -> None:
        super().__init__()
        self.barrier = threading.Barrier(parties, timeout=20)

    def respond(self, body: bytes) -> Reply | None:
        try:
            self.barrier.wait()
        except threading.BrokenBarrierError:
            return Reply(503, b"calls did not arrive concurrently", "text/plain")
        return echo_reply(body, ECHO_METADATA)


@pytest.mark.parametrize("url_kind", ["string", "shared_variable"])
def test_fan_out_inside_tf_function_runs_concurrently(url_kind):
    with BarrierServer(parties=8) as server:
        # A variable is one resource shared by all 8 calls: only the op's
        # read-only registration keeps auto control deps from chaining them.
        url = server.url if url_kind == "string" else tf_graphpipe.make_url_variable(server.url)

        @tf.function
        def fan_out(x):
            return [remote_call(url, [x + float(i)], output_dtypes=[tf.float32],
                                retries=0)[0] for i in range(8)]

        results = fan_out(tf.zeros([2]))
        assert [float(r.numpy()[0]) for r in results] == [float(i) for i in range(8)]


def test_url_from_tensor_and_from_variable(echo):
    x = tf.ones([1, 3])
    np.testing.assert_array_equal(echo_call(tf.constant(echo.url), x).numpy(), x.numpy())
    with EchoServer() as other:
        variable = tf_graphpipe.make_url_variable(echo.url)

        @tf.function
        def call(x):
            return remote_call(variable, [x], output_dtypes=[tf.float32])[0]

        call(x)
        variable.assign(other.url)  # re-point without retracing
        call(x)
        assert other.requests_received == 1


def test_thousand_calls_reuse_connections(echo):
    x = tf.ones([4])

    @tf.function
    def call(x):
        return remote_call(echo.url, [x], output_dtypes=[tf.float32])[0]

    for _ in range(1000):
        call(x)
    assert echo.requests_received == 1000
    assert echo.connections_accepted <= 2


def test_call_inside_dataset_map(echo):
    dataset = tf.data.Dataset.range(6).map(
        lambda i: remote_call(echo.url, [tf.fill([3], i)], output_dtypes=[tf.int64],
                              output_shapes=[[3]])[0]
    )
    assert [row.tolist() for row in dataset.as_numpy_iterator()] == [[i] * 3 for i in range(6)]


def test_no_gradient_flows_through_the_remote_call(echo):
    x = tf.Variable([1.0, 2.0, 3.0])
    with tf.GradientTape() as tape:
        y = remote_call(echo.url, [x * 2.0], output_dtypes=[tf.float32])[0]
        loss = tf.reduce_sum(y) + tf.reduce_sum(x)
    # Only the local term contributes: the remote output is a constant.
    np.testing.assert_array_equal(tape.gradient(loss, x).numpy(), [1.0, 1.0, 1.0])


# ---- errors: the right tf.errors class, with the server's text ----

def test_dead_server_is_unavailable(port):
    with pytest.raises(tf.errors.UnavailableError, match="cannot reach"):
        echo_call(f"http://127.0.0.1:{port}", tf.ones([1]), retries=1)


def test_silent_server_exceeds_the_deadline():
    with SilentServer() as server:
        with pytest.raises(tf.errors.DeadlineExceededError, match="deadline"):
            echo_call(server.url, tf.ones([1]), timeout=0.5, retries=0)


@pytest.mark.parametrize(
    "status, error",
    [(400, tf.errors.InvalidArgumentError), (404, tf.errors.InvalidArgumentError),
     (500, tf.errors.InternalError), (503, tf.errors.UnavailableError)],
)
def test_http_error_text_reaches_the_caller(status, error):
    with TextErrorServer(status, "model says: input 'x' has the wrong rank\n") as server:
        with pytest.raises(error, match="model says: input 'x' has the wrong rank") as info:
            echo_call(server.url, tf.ones([1]), retries=0)
        assert f"HTTP {status}" in info.value.message


def test_error_response_is_invalid_argument_with_its_message():
    with ErrorResponseServer("no such output 'nope'", code=3) as server:
        with pytest.raises(tf.errors.InvalidArgumentError, match="no such output 'nope'"):
            echo_call(server.url, tf.ones([1]))


def test_garbage_answer_is_data_loss():
    with GarbageServer() as server:
        with pytest.raises(tf.errors.DataLossError, match="malformed GraphPipe message"):
            echo_call(server.url, tf.ones([1]))


def test_answer_cut_short_is_unavailable():
    with TruncatingServer() as server:
        with pytest.raises(tf.errors.UnavailableError):
            echo_call(server.url, tf.ones([1]), retries=0)


def test_output_mismatches_say_expected_and_got(echo):
    x = tf.ones([2, 3])
    with pytest.raises(tf.errors.InvalidArgumentError, match="expected dtype int32, got float32"):
        remote_call(echo.url, [x], output_dtypes=[tf.int32])
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"expected shape \[\?,4\], got \[2,3\]"):
        remote_call(echo.url, [x], output_dtypes=[tf.float32], output_shapes=[[None, 4]])
    with pytest.raises(tf.errors.InvalidArgumentError, match="returned 1 outputs, expected 2"):
        remote_call(echo.url, [x], output_dtypes=[tf.float32, tf.float32])


@pytest.mark.parametrize("dtype", [tf.bool, tf.bfloat16, tf.complex64])
def test_input_without_wire_type_is_refused_before_sending(echo, dtype):
    x = tf.zeros([2], dtype)
    with pytest.raises(tf.errors.InvalidArgumentError, match="has no GraphPipe wire type"):
        remote_call(echo.url, [x], output_dtypes=[tf.float32])
    assert echo.requests_received == 0


def test_errors_inside_tf_function_keep_their_class():
    with TextErrorServer(500, "the model raised ZeroDivisionError") as server:

        @tf.function
        def call(x):
            return remote_call(server.url, [x], output_dtypes=[tf.float32])[0]

        with pytest.raises(tf.errors.InternalError, match="the model raised ZeroDivisionError"):
            call(tf.ones([1]))
