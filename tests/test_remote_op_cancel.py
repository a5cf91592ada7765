# SPDX-License-Identifier: Apache-2.0
"""A cancelled TensorFlow step aborts the op's calls in flight: another op of
the step fails, or a tf.data iterator is destroyed, while a call waits on a
server that never answers (timeout 30 s). The step ends long before that
deadline, the server sees its connection closed, and no retry follows.
Real servers on 127.0.0.1; the elapsed times are printed, not asserted
beyond "not at the deadline" (timing is measured in bench/)."""
from __future__ import annotations

import gc
import time
from collections.abc import Callable

import numpy as np
import pytest
import tensorflow as tf

from tf_graphpipe import remote_call

from support.graphpipe_test_servers import TextErrorServer
from support.hung_server import HungServer

DEADLINE = 30.0
# Far below DEADLINE: a cancelled call did not run to its deadline.
NOT_AT_THE_DEADLINE = 10.0


def fail_once(seen: Callable[[], bool], failed_at: list[float]) -> None:
    """The other op of the step: fails once `seen()` is true (bounded wait),
    so the remote call is in flight when it does; notes when."""
    for _ in range(400):
        if seen():
            break
        time.sleep(0.025)
    else:
        raise AssertionError("the remote call never reached the server")
    failed_at.append(time.monotonic())
    raise ValueError("the other op of the step failed")


def test_a_failing_op_cancels_the_call_in_flight_and_closes_its_connection():
    with HungServer() as hung:
        failed_at: list[float] = []

        def other_op() -> tf.Tensor:
            fail_once(lambda: hung.requests >= 1, failed_at)
            return tf.zeros([2])

        @tf.function
        def step(x):
            y = remote_call(hung.url, [x], output_dtypes=[tf.float32], output_shapes=[[2]],
                            timeout=DEADLINE, retries=0)[0]
            return y + tf.py_function(other_op, [], tf.float32)

        with pytest.raises(tf.errors.OpError, match="the other op of the step failed"):
            step(tf.ones([2]))
        step_ended = time.monotonic() - failed_at[0]
        assert hung.wait_closed(1, timeout=NOT_AT_THE_DEADLINE), "the connection was left open"
        closed = hung.closed_at[0] - failed_at[0]
        print(f"after the other op failed: step ended in {step_ended:.3f} s, "
              f"connection closed in {closed:.3f} s")
        assert step_ended < NOT_AT_THE_DEADLINE and closed < NOT_AT_THE_DEADLINE


def test_retries_stop_when_the_step_is_cancelled():
    with TextErrorServer(503, "overloaded") as server:
        def other_op() -> tf.Tensor:
            fail_once(lambda: server.requests_received >= 1, [])
            return tf.zeros([2])

        @tf.function
        def step(x):
            # Backoff from 50 ms doubling: ~6 attempts in 2 s if nothing stopped them.
            y = remote_call(server.url, [x], output_dtypes=[tf.float32], output_shapes=[[2]],
                            timeout=DEADLINE, retries=20)[0]
            return y + tf.py_function(other_op, [], tf.float32)

        with pytest.raises(tf.errors.OpError, match="the other op of the step failed"):
            step(tf.ones([2]))
        attempts = server.requests_received
        time.sleep(2.0)
        assert server.requests_received == attempts <= 2


def test_destroying_a_dataset_iterator_cancels_its_call_in_flight():
    with HungServer() as hung:
        def element(i: tf.Tensor) -> tf.Tensor:
            # Element 0 is local; element 1 calls the server that never answers.
            return tf.cond(i == 0, lambda: tf.zeros([2]),
                           lambda: remote_call(hung.url, [tf.ones([2])], output_dtypes=[tf.float32],
                                               output_shapes=[[2]], timeout=DEADLINE, retries=0)[0])

        dataset = tf.data.Dataset.range(2).map(element, num_parallel_calls=2, deterministic=True)
        iterator = iter(dataset)
        np.testing.assert_array_equal(next(iterator).numpy(), [0.0, 0.0])
        assert hung.wait_requests(1, timeout=NOT_AT_THE_DEADLINE)
        started = time.monotonic()
        del iterator
        gc.collect()
        assert hung.wait_closed(1, timeout=NOT_AT_THE_DEADLINE), "the connection was left open"
        print(f"iterator destroyed, connection closed after {hung.closed_at[0] - started:.3f} s")
