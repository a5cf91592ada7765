# SPDX-License-Identifier: Apache-2.0
"""Dynamic batching: concurrent calls are merged along axis 0, run once, and
each caller gets exactly its own rows back.

Windows here close on size (timeouts of a minute), so what is merged is
deterministic: a window that did not fill would fail the calls by deadline."""
from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import numpy as np
import pytest

import tf_graphpipe
from tf_graphpipe import Client, RemoteError

NEVER_MS = 60_000


class Recorder:
    """A model that records the shape of every batch it runs."""

    def __init__(self, fn: Callable[[np.ndarray], object]) -> None:
        self.fn = fn
        self.batches: list[tuple[int, ...]] = []
        self._lock = threading.Lock()

    def __call__(self, x: np.ndarray) -> object:
        with self._lock:
            self.batches.append(x.shape)
        return self.fn(x)


def _concurrently(url: str, inputs: Sequence[np.ndarray]) -> list[object]:
    """Calls the server with each input from its own thread, all at once;
    each result, or the exception it raised."""
    start = threading.Barrier(len(inputs))
    results: list[object] = [None] * len(inputs)

    def call(i: int) -> None:
        client = Client(url, timeout=30, retries=0)
        start.wait()
        try:
            results[i] = client.infer(inputs[i])
        except RemoteError as exc:
            results[i] = exc

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(inputs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_each_caller_gets_exactly_its_rows_from_one_merged_run() -> None:
    model = Recorder(lambda x: x * 2 + 1)
    rows = [1, 2, 3, 4, 2, 1, 3, 2]  # 18 rows: one full window
    inputs = [np.full((n, 3), i, dtype=np.float32) + np.arange(n)[:, None] / 10 for i, n in enumerate(rows)]
    with tf_graphpipe.serve(model, max_batch_size=sum(rows), batch_timeout_ms=NEVER_MS) as server:
        results = _concurrently(server.url, inputs)
    assert model.batches == [(sum(rows), 3)]
    for x, y in zip(inputs, results):
        np.testing.assert_array_equal(y, x * 2 + 1)


def test_windows_close_on_timeout_and_every_row_runs_once() -> None:
    model = Recorder(lambda x: -x)
    inputs = [np.full((1, 2), i, dtype=np.int64) for i in range(12)]
    with tf_graphpipe.serve(model, max_batch_size=1000, batch_timeout_ms=100) as server:
        results = _concurrently(server.url, inputs)
    for x, y in zip(inputs, results):
        np.testing.assert_array_equal(y, -x)
    assert sum(shape[0] for shape in model.batches) == 12
    assert len(model.batches) < 12, "no calls were merged"


def test_calls_differing_beyond_the_first_dimension_are_not_merged() -> None:
    model = Recorder(lambda x: x)
    inputs = [np.zeros((1, 3), np.float32)] * 4 + [np.zeros((1, 5), np.float32)] * 4 + [np.zeros((1, 3), np.int32)] * 4
    with tf_graphpipe.serve(model, max_batch_size=4, batch_timeout_ms=NEVER_MS) as server:
        results = _concurrently(server.url, inputs)
    assert sorted(model.batches) == [(4, 3), (4, 3), (4, 5)]
    for x, y in zip(inputs, results):
        assert y.dtype == x.dtype and y.shape == x.shape


def test_one_failing_caller_does_not_fail_the_batch() -> None:
    def positive_only(x: np.ndarray) -> np.ndarray:
        if (x < 0).any():
            raise ValueError("negative input")
        return np.sqrt(x)

    model = Recorder(positive_only)
    inputs = [np.full((1, 2), 4.0), np.full((1, 2), -1.0), np.full((1, 2), 9.0), np.full((1, 2), 16.0)]
    with tf_graphpipe.serve(model, max_batch_size=4, batch_timeout_ms=NEVER_MS) as server:
        results = _concurrently(server.url, inputs)
    assert model.batches[0] == (4, 2)  # merged first, then each call on its own
    assert isinstance(results[1], RemoteError) and results[1].status == 500
    assert "negative input" in results[1].message
    for i, root in ((0, 2.0), (2, 3.0), (3, 4.0)):
        np.testing.assert_array_equal(results[i], np.full((1, 2), root))


def test_outputs_without_the_batch_dimension_fall_back_to_single_calls() -> None:
    model = Recorder(lambda x: x.sum(axis=0))  # [n, 2] -> [2]: cannot be split back
    inputs = [np.full((1, 2), 1.0), np.full((2, 2), 2.0), np.full((1, 2), 3.0)]
    with tf_graphpipe.serve(model, max_batch_size=4, batch_timeout_ms=NEVER_MS) as server:
        results = _concurrently(server.url, inputs)
    assert model.batches[0] == (4, 2)
    for x, y in zip(inputs, results):
        np.testing.assert_array_equal(y, x.sum(axis=0))


def test_batching_is_off_by_default() -> None:
    model = Recorder(lambda x: x)
    with tf_graphpipe.serve(model) as server:
        _concurrently(server.url, [np.zeros((1, 1))] * 4)
    assert model.batches == [(1, 1)] * 4


@pytest.mark.parametrize(("size", "timeout"), [(-1, 5.0), (4, -1.0)], ids=["size", "timeout"])
def test_bad_batching_options_are_refused(size: int, timeout: float) -> None:
    with pytest.raises(ValueError, match="must be >= 0"):
        tf_graphpipe.serve(lambda x: x, max_batch_size=size, batch_timeout_ms=timeout)
