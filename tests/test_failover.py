# SPDX-License-Identifier: Apache-2.0
"""Failover across replicas: ``url`` may be a list of equivalent servers
(``Client``, ``remote_call``, ``GraphPipeLayer``, a URL variable, a
SavedModel). Calls are shared among the healthy ones; a call that finds one
unavailable (refused, reset, 503) goes on to the next within its deadline;
one found unavailable is skipped for a while; other failures (4xx) are not
failed over."""
from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

import tf_graphpipe
from tf_graphpipe import Client
from tf_graphpipe.errors import RemoteError

from support import servers
from support.graphpipe_test_servers import TextErrorServer
from support.ports import free_port

SPEC_FLAGS = ("--input-spec", "x:float32:-1,4", "--output-spec", "y:float32:-1,4")
SPECS = {"input_specs": ["x:float32:-1,4"], "output_specs": ["y:float32:-1,4"]}
X = np.arange(8, dtype=np.float32).reshape(2, 4)


class Doubling:
    """``2 * x``, counting its calls."""

    def __init__(self) -> None:
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        with self._lock:
            self.calls += 1
        return x * 2


def _dead_url() -> str:
    """A loopback port nothing listens on: every connection is refused."""
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture
def replica() -> Iterator[tuple[Doubling, str]]:
    model = Doubling()
    with tf_graphpipe.serve(model, **SPECS) as server:  # type: ignore[arg-type]
        yield model, server.url


def test_every_call_succeeds_with_one_replica_dead_and_one_killed_mid_run(replica) -> None:
    model, healthy = replica
    doomed = servers.CliServer("support.servers:double", "--port", "0", *SPEC_FLAGS)
    try:
        client = Client([_dead_url(), healthy, doomed.wait_url()], timeout=20)
        per_thread, kill_after = 150, 120
        done, failures, wrong = [0], [], []
        lock = threading.Lock()

        def calls() -> None:
            for _ in range(per_thread):
                try:
                    y = client.infer(X)
                except Exception as exc:  # noqa: BLE001 - every failure is the test's finding
                    failures.append(exc)
                else:
                    if not np.array_equal(y, X * 2):
                        wrong.append(y)
                with lock:
                    done[0] += 1

        threads = [threading.Thread(target=calls) for _ in range(4)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 60
        while done[0] < kill_after and time.monotonic() < deadline:
            time.sleep(0.005)
        killed_at = done[0]
        doomed.stop(signal.SIGKILL)  # mid-run: calls in flight on it are reset
        for thread in threads:
            thread.join(60)
    finally:
        doomed.stop(signal.SIGKILL)
    assert not failures and not wrong, failures[:3]
    assert done[0] == 4 * per_thread and killed_at < done[0]
    # Both live replicas shared the calls before the kill.
    assert 0 < model.calls < 4 * per_thread


def test_a_replica_found_unavailable_is_skipped_for_a_while(replica) -> None:
    model, healthy = replica
    with TextErrorServer(503, "overloaded\n") as busy:
        client = Client([busy.url, healthy], timeout=10, retries=0)
        for _ in range(40):
            np.testing.assert_array_equal(client.infer(X), X * 2)
    assert model.calls == 40
    assert 1 <= busy.requests_received <= 3  # not every other call


def test_a_refusal_is_not_failed_over(replica) -> None:
    model, healthy = replica
    with TextErrorServer(400, "bad input\n") as refusing:
        client = Client([refusing.url, healthy], timeout=10)
        refused = 0
        for _ in range(10):
            try:
                client.infer(X)
            except RemoteError as exc:
                assert exc.status == 400
                refused += 1
    # Calls take turns; one that the refusing replica answered went nowhere else.
    assert refused == refusing.requests_received > 0
    assert model.calls == 10 - refused


def test_metadata_fails_over_too(replica) -> None:
    _, healthy = replica
    metadata = Client(f"{_dead_url()} {healthy}", timeout=10).metadata()
    assert [entry["name"] for entry in metadata["inputs"]] == ["x"]


def test_v2_replicas(replica) -> None:
    model, healthy = replica
    client = Client([f"{_dead_url()}/v2/models/Doubling", f"{healthy}/v2/models/Doubling"], timeout=10)
    for _ in range(4):
        np.testing.assert_array_equal(client.infer(X), X * 2)
    assert model.calls == 4


def test_a_list_url_in_tf_function(replica) -> None:
    model, healthy = replica
    urls = [_dead_url(), healthy]

    @tf.function
    def call(x: tf.Tensor) -> tf.Tensor:
        return tf_graphpipe.remote_call(urls, [x], output_dtypes=[tf.float32], output_shapes=[[None, 4]])[0]

    for _ in range(6):
        np.testing.assert_array_equal(call(tf.constant(X)).numpy(), X * 2)
    assert model.calls == 6


def test_a_saved_model_with_a_list_reloads_and_is_repointed(replica, tmp_path: Path) -> None:
    model, healthy = replica

    class Remote(tf.Module):
        def __init__(self, url: list[str]) -> None:
            super().__init__()
            self.url = tf_graphpipe.make_url_variable(url)

        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32)])
        def __call__(self, x: tf.Tensor) -> tf.Tensor:
            return tf_graphpipe.remote_call(self.url, [x], output_dtypes=[tf.float32],
                                            output_shapes=[[None, 4]])[0]

    dead = _dead_url()
    tf.saved_model.save(Remote([dead, healthy]), str(tmp_path / "remote"))
    loaded = tf.saved_model.load(str(tmp_path / "remote"))
    np.testing.assert_array_equal(loaded(tf.constant(X)).numpy(), X * 2)
    assert model.calls == 1
    other = Doubling()
    with tf_graphpipe.serve(other, **SPECS) as second:  # type: ignore[arg-type]
        assert tf_graphpipe.repoint(loaded, [second.url, dead], old=[dead, healthy]) == 1
        for _ in range(3):
            np.testing.assert_array_equal(loaded(tf.constant(X)).numpy(), X * 2)
    assert other.calls == 3 and model.calls == 1


def test_a_layer_with_a_list(replica) -> None:
    model, healthy = replica
    layer = tf_graphpipe.GraphPipeLayer([_dead_url(), healthy], output_dtypes=["float32"],
                                        output_shapes=[[None, 4]])
    np.testing.assert_array_equal(np.asarray(layer(tf.constant(X))), X * 2)
    assert len(layer.url.split()) == 2
    rebuilt = tf_graphpipe.GraphPipeLayer.from_config(layer.get_config())
    np.testing.assert_array_equal(np.asarray(rebuilt(tf.constant(X))), X * 2)
    assert model.calls == 2


def test_bad_lists_are_refused_before_sending() -> None:
    with pytest.raises(ValueError, match="'ftp://b'"):
        Client(["http://127.0.0.1:1", "ftp://b"])
    with pytest.raises(ValueError, match="different protocols"):
        Client(["http://127.0.0.1:1", "http://127.0.0.1:2/v2/models/m"])
    with pytest.raises(ValueError):
        Client([])
