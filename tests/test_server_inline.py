# SPDX-License-Identifier: Apache-2.0
"""Calls to a fast model run on the event loop thread (no hand-off to a
worker), each body size class judged on its own; bodies over 16 MiB, slow
models and models that turn slow do not, so the loop keeps answering other
connections."""
from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Callable

import numpy as np
import pytest

import tf_graphpipe
from tf_graphpipe import Client
from tf_graphpipe.server.inline import (
    FIRST_PENALTY,
    MAX_INLINE_BODY_BYTES,
    SMALLEST_CLASS_BYTES,
    WARM_UP_CALLS,
    InlinePolicy,
)

SPECS = {"input_specs": ["x:float32:-1,-1"], "output_specs": ["y:float32:-1,-1"]}


class ThreadRecorder:
    """A model answering x + 1 that records which thread ran each call;
    ``delay(call_number)`` seconds of sleep first."""

    def __init__(self, delay: Callable[[int], float] = lambda n: 0.0) -> None:
        self.delay = delay
        self.threads: list[str] = []

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.threads.append(threading.current_thread().name)
        pause = self.delay(len(self.threads))
        if pause:
            time.sleep(pause)
        return x + 1


def _on_loop(thread_name: str) -> bool:
    return thread_name.startswith("graphpipe-server-")


# ---- the policy ---------------------------------------------------------------------


def test_policy_waits_for_warm_up_then_admits_a_fast_model() -> None:
    policy = InlinePolicy(200)
    for _ in range(WARM_UP_CALLS - 1):
        policy.record(20e-6, inline=False)
        assert not policy.admits()
    policy.record(20e-6, inline=False)
    assert policy.admits()


def test_policy_refuses_a_model_slower_than_the_limit_on_average() -> None:
    policy = InlinePolicy(200)
    for _ in range(50):
        policy.record(500e-6, inline=False)
    assert not policy.admits()
    for _ in range(50):  # it became fast: the average follows
        policy.record(20e-6, inline=False)
    assert policy.admits()


def test_one_preempted_call_pauses_inlining_for_a_few_calls_only() -> None:
    policy = InlinePolicy(200)
    for _ in range(20):
        policy.record(20e-6, inline=True)
    policy.record(2e-3, inline=True)  # a scheduler hiccup, below the stall limit: no penalty
    for _ in range(5):
        policy.record(20e-6, inline=False)
    assert policy.admits()


def test_a_stall_on_the_loop_sends_calls_to_workers_for_a_growing_penalty() -> None:
    policy = InlinePolicy(200)
    for _ in range(20):
        policy.record(20e-6, inline=False)
    for penalty in (FIRST_PENALTY, 2 * FIRST_PENALTY):
        policy.record(0.5, inline=True)
        for _ in range(200):  # fast again, but the penalty holds
            policy.record(20e-6, inline=False)
        refused = 0
        while not policy.admits():
            refused += 1
        assert refused == penalty


def test_a_slow_call_on_a_worker_costs_no_penalty() -> None:
    policy = InlinePolicy(200)
    policy.record(0.5, inline=False)
    for _ in range(200):
        policy.record(20e-6, inline=False)
    assert policy.admits()


def test_zero_turns_inlining_off_and_negative_is_refused() -> None:
    assert InlinePolicy(0).size_class(10) is None
    assert InlinePolicy(200).size_class(MAX_INLINE_BODY_BYTES) is not None
    assert InlinePolicy(200).size_class(MAX_INLINE_BODY_BYTES + 1) is None
    with pytest.raises(ValueError, match="inline_max_us"):
        InlinePolicy(-1)


def test_bodies_fall_in_classes_four_times_larger_each() -> None:
    policy = InlinePolicy(200)
    classes = [policy.size_class(n) for n in (0, SMALLEST_CLASS_BYTES, SMALLEST_CLASS_BYTES + 1,
                                              4 * SMALLEST_CLASS_BYTES, 4 * SMALLEST_CLASS_BYTES + 1,
                                              MAX_INLINE_BODY_BYTES)]
    assert classes == [0, 0, 1, 1, 2, 4]


def test_each_size_class_is_judged_on_its_own_times() -> None:
    """A model fast on small bodies but slow on large ones runs the small
    ones inline only; a class without its own warm-up is never inlined."""
    policy = InlinePolicy(200)
    for _ in range(20):
        policy.record(20e-6, inline=False, size_class=0)
        policy.record(900e-6, inline=False, size_class=2)
    assert policy.admits(0)
    assert not policy.admits(2)
    assert not policy.admits(1)  # never timed
    for _ in range(WARM_UP_CALLS):
        policy.record(50e-6, inline=False, size_class=1)
    assert policy.admits(1)


def test_a_stall_in_one_size_class_sends_every_class_to_workers() -> None:
    policy = InlinePolicy(200)
    for _ in range(20):
        policy.record(20e-6, inline=False, size_class=0)
        policy.record(20e-6, inline=False, size_class=3)
    policy.record(0.5, inline=True, size_class=3)
    assert not policy.admits(0)


# ---- the server ---------------------------------------------------------------------


def test_small_calls_to_a_fast_model_run_on_the_loop_thread() -> None:
    model = ThreadRecorder()
    with tf_graphpipe.serve(model, **SPECS) as server, Client(server.url) as client:
        for i in range(30):
            np.testing.assert_array_equal(client.infer(np.full((1, 4), i, np.float32)), np.full((1, 4), i + 1))
    assert not any(_on_loop(t) for t in model.threads[:WARM_UP_CALLS])
    assert all(_on_loop(t) for t in model.threads[WARM_UP_CALLS + 1:]), model.threads


def test_inline_max_us_zero_keeps_every_call_on_workers() -> None:
    model = ThreadRecorder()
    with tf_graphpipe.serve(model, inline_max_us=0, **SPECS) as server, Client(server.url) as client:
        for _ in range(30):
            client.infer(np.ones((1, 4), np.float32))
    assert model.threads and not any(_on_loop(t) for t in model.threads)


def test_large_bodies_run_inline_after_their_own_warm_up_and_never_over_16_mib() -> None:
    model = ThreadRecorder()
    medium = np.ones((1, 4 * SMALLEST_CLASS_BYTES // 4), np.float32)  # 256 KiB: class 1
    huge = np.ones((1, MAX_INLINE_BODY_BYTES // 4 + 1), np.float32)
    with tf_graphpipe.serve(model, inline_max_us=50_000, **SPECS) as server, Client(server.url) as client:
        for _ in range(20):
            client.infer(np.ones((1, 4), np.float32))
        for _ in range(20):
            np.testing.assert_array_equal(client.infer(medium), medium + 1)
        for _ in range(3):
            np.testing.assert_array_equal(client.infer(huge), huge + 1)
    assert all(_on_loop(t) for t in model.threads[WARM_UP_CALLS + 1:20])
    assert not any(_on_loop(t) for t in model.threads[20:20 + WARM_UP_CALLS])  # class 1 warms up on workers
    assert all(_on_loop(t) for t in model.threads[20 + WARM_UP_CALLS + 1:40])
    assert not any(_on_loop(t) for t in model.threads[40:])


def test_a_model_that_turns_slow_leaves_the_loop_free_for_other_connections() -> None:
    fast_calls = 20
    model = ThreadRecorder(lambda n: 0.4 if n > fast_calls else 0.0)
    with tf_graphpipe.serve(model, **SPECS) as server, Client(server.url, timeout=10) as client:
        for _ in range(fast_calls + 1):  # the last one is slow, and ran on the loop
            client.infer(np.ones((1, 4), np.float32))
        assert _on_loop(model.threads[fast_calls])
        slow = threading.Thread(target=client.infer, args=(np.ones((1, 4), np.float32),))
        slow.start()
        while len(model.threads) < fast_calls + 2:
            time.sleep(0.005)
        host, port = server.url.removeprefix("http://").rsplit(":", 1)
        health = http.client.HTTPConnection(host, int(port), timeout=5)
        started = time.perf_counter()
        health.request("GET", "/control/is_alive")
        answer = health.getresponse().read()
        answered_in = time.perf_counter() - started
        health.close()
        slow.join(10)
    assert answer == b"ok"
    assert answered_in < 0.3, f"the loop was blocked for {answered_in:.3f} s"
    assert not _on_loop(model.threads[fast_calls + 1])
