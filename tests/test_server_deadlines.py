# SPDX-License-Identifier: Apache-2.0
"""Deadlines that travel: every call tells the server how long its caller
still waits (GraphPipe: ``GraphPipe-Timeout``; v2: the ``timeout``
parameter), each attempt the time left at that attempt; the server drops a
call whose deadline passed while it waited (worker queue, batch window)
without running the model; a Python model's own ``Client`` calls inherit
what is left, so a chain of servers gives up together."""
from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

import tf_graphpipe
from tf_graphpipe import Client, deadlines
from tf_graphpipe.errors import DeadlineExceeded, RemoteError

from support import servers
from support.graphpipe_test_servers import TextErrorServer

SPECS = {"name": "model", "input_specs": ["x:float32:-1,1"], "output_specs": ["y:float32:-1,1"]}


class SlowCounter:
    """A model that takes ``seconds`` per call and records the value of every
    row it ran (so a test knows which calls ran), and each call's remaining
    time as the server handed it (``deadlines.remaining()``)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.ran: list[float] = []
        self.left: list[float | None] = []
        self.started = threading.Event()
        self._lock = threading.Lock()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        with self._lock:
            self.ran.extend(float(v) for v in x[:, 0])
            self.left.append(deadlines.remaining())
        self.started.set()
        time.sleep(self.seconds)
        return x + 1


def _row(value: float) -> np.ndarray:
    return np.full((1, 1), value, np.float32)


@pytest.fixture(params=["worker", "batching"])
def busy_server(request: pytest.FixtureRequest) -> Iterator[tuple[SlowCounter, str]]:
    """A 1 s model behind a queue: one worker busy, or a batch window that
    can only run once that worker is free."""
    model = SlowCounter(1.0)
    batching = {"max_batch_size": 8, "batch_timeout_ms": 20.0} if request.param == "batching" else {}
    with tf_graphpipe.serve(model, workers=1, **SPECS, **batching) as server:  # type: ignore[arg-type]
        yield model, server.url


@pytest.mark.parametrize("v2", [False, True], ids=["graphpipe", "v2"])
def test_a_call_whose_deadline_passes_in_the_queue_is_never_run(busy_server, v2) -> None:
    model, url = busy_server
    url = url.rstrip("/") + "/v2/models/model" if v2 else url
    first = threading.Thread(target=lambda: Client(url, timeout=20).infer(_row(1.0)))
    first.start()
    try:
        assert model.started.wait(20), "the first call never reached the model"
        with pytest.raises(DeadlineExceeded):
            Client(url, timeout=0.3, retries=0).infer(_row(2.0))
    finally:
        first.join(30)
    # Queued behind the dropped call: once this one is answered, the worker
    # has long taken the other off the queue.
    np.testing.assert_array_equal(Client(url, timeout=20).infer(_row(3.0)), _row(4.0))
    assert model.ran == [1.0, 3.0]


def test_a_call_without_deadline_waits_as_long_as_it_takes(busy_server) -> None:
    model, url = busy_server
    first = threading.Thread(target=lambda: Client(url, timeout=20).infer(_row(1.0)))
    first.start()
    try:
        assert model.started.wait(20)
        np.testing.assert_array_equal(Client(url, timeout=None).infer(_row(2.0)), _row(3.0))
    finally:
        first.join(30)
    assert sorted(model.ran) == [1.0, 2.0] and model.left[-1] is None


def test_the_server_answers_504_deadline_exceeded_to_a_late_call() -> None:
    """What a caller that did wait reads: the raw header, a deadline that has
    passed by the time the worker is free."""
    model = SlowCounter(0.5)
    with tf_graphpipe.serve(model, workers=1, **SPECS) as server:  # type: ignore[arg-type]
        first = threading.Thread(target=lambda: Client(server.url, timeout=20).infer(_row(1.0)))
        first.start()
        try:
            assert model.started.wait(20)
            body = tf_graphpipe._native.encode_infer_request([_row(2.0)], [10], [], [], b"")  # noqa: SLF001
            status, _, answer = servers.request(server.url, "POST", "/", bytes(body),
                                                {"GraphPipe-Timeout": "100000"})
        finally:
            first.join(30)
        assert status == 504 and b"deadline passed" in answer
        assert model.ran == [1.0]


def test_a_python_model_calling_on_inherits_the_remaining_time() -> None:
    """Server A's model calls server B through Client with a 30 s timeout of
    its own; B's model sees less than the first call's 2 s, and more than 0."""
    second = SlowCounter(0.0)
    with tf_graphpipe.serve(second, **SPECS) as hop2:  # type: ignore[arg-type]
        inner = Client(hop2.url, timeout=30)
        inner_v2 = Client(hop2.url.rstrip("/") + "/v2/models/model", timeout=30)

        def first(x: np.ndarray) -> np.ndarray:
            inner.infer(x)
            return inner_v2.infer(x)  # type: ignore[return-value]

        with tf_graphpipe.serve(first, **SPECS) as hop1:  # type: ignore[arg-type]
            np.testing.assert_array_equal(Client(hop1.url, timeout=2.0).infer(_row(5.0)), _row(6.0))
    assert len(second.left) == 2
    for left in second.left:  # GraphPipe hop, then v2 hop
        assert left is not None and 0 < left < 2.0


def test_a_chain_gives_up_together() -> None:
    """A's caller waits 0.3 s; A's model waits before calling B: its call
    fails at once with DeadlineExceeded, and B never runs anything."""
    second = SlowCounter(0.0)
    with tf_graphpipe.serve(second, **SPECS) as hop2:  # type: ignore[arg-type]
        inner = Client(hop2.url, timeout=30)
        failures: list[BaseException] = []

        def first(x: np.ndarray) -> np.ndarray:
            time.sleep(0.5)
            try:
                return inner.infer(x)  # type: ignore[return-value]
            except DeadlineExceeded as exc:
                failures.append(exc)
                raise

        with tf_graphpipe.serve(first, **SPECS) as hop1:  # type: ignore[arg-type]
            with pytest.raises(DeadlineExceeded):
                Client(hop1.url, timeout=0.3, retries=0).infer(_row(1.0))
            deadline = time.monotonic() + 10
            while not failures and time.monotonic() < deadline:
                time.sleep(0.05)
    assert failures and "deadline passed" in str(failures[0])
    assert second.ran == []


def test_a_model_whose_remote_call_times_out_answers_deadline_exceeded_not_500() -> None:
    """A's model calls B with a short timeout of its own while A's caller has
    time: A answers 504 DEADLINE_EXCEEDED (as a gateway would) with B's
    timeout in the message, not 500 as for a model that failed."""
    second = SlowCounter(1.0)
    with tf_graphpipe.serve(second, **SPECS) as hop2:  # type: ignore[arg-type]
        inner = Client(hop2.url, timeout=0.2, retries=0)

        def first(x: np.ndarray) -> np.ndarray:
            return inner.infer(x)  # type: ignore[return-value]

        with tf_graphpipe.serve(first, **SPECS) as hop1:  # type: ignore[arg-type]
            with pytest.raises(RemoteError, match="a remote call of the model ran out of time") as caught:
                Client(hop1.url, timeout=30, retries=0).infer(_row(1.0))
    assert caught.value.status == 504, caught.value


def test_each_attempt_sends_the_time_left_then() -> None:
    """Retries on 503: every attempt carries GraphPipe-Timeout, in
    microseconds, below the call's timeout and falling."""
    with TextErrorServer(503, "busy\n") as server:
        with pytest.raises(RemoteError):
            Client(server.url, timeout=5.0, retries=2).infer(_row(1.0))
    sent = [int(value) for value in server.timeouts if value is not None]
    assert len(sent) == 3 == len(server.timeouts)
    assert 5_000_000 > sent[0] > sent[1] > sent[2] > 0


def test_no_timeout_sends_no_deadline() -> None:
    with TextErrorServer(400, "no\n") as server:
        with pytest.raises(RemoteError):
            Client(server.url, timeout=None).infer(_row(1.0))
    assert server.timeouts == [None]


def test_use_caps_a_client_timeout_and_never_extends_it() -> None:
    with TextErrorServer(400, "no\n") as server:
        client = Client(server.url, timeout=5.0)
        with deadlines.use(time.monotonic() + 1.0):
            with deadlines.use(time.monotonic() + 60.0):  # an inner deadline cannot extend the outer one
                with pytest.raises(RemoteError):
                    client.infer(_row(1.0))
        with deadlines.use(time.monotonic() - 1.0), pytest.raises(DeadlineExceeded, match="deadline passed"):
            client.infer(_row(1.0))
    assert server.requests_received == 1
    assert 0 < int(server.timeouts[0] or 0) <= 1_000_000
