# SPDX-License-Identifier: Apache-2.0
"""What clients see when the cluster changes under them: a worker node lost
while four clients call without pause (no wrong answer, every failure an
Unavailable, no call past its deadline, every call after the replica is
back answered), and autoscaling from one replica to more under load and
back."""
from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pytest

import tf_graphpipe

from support import ray_models
from support.ray_cluster import RayTestCluster, wait_until

pytestmark = pytest.mark.slow

DEADLINE = 20.0      # each client call's timeout
SLACK = 5.0          # how far past its deadline a call may return (a loaded 2-core machine)


def running_replicas(app: str) -> int:
    from ray import serve
    from ray.serve.schema import ReplicaState

    status = serve.status().applications.get(app)
    if status is None:
        return 0
    return status.deployments["GraphPipeModel"].replica_states.get(ReplicaState.RUNNING, 0)


@dataclass
class Outcome:
    started: float
    seconds: float
    error: BaseException | None = None
    replica: str = ""  # "NODE ACTOR" of the replica that answered


@dataclass
class Callers:
    """Clients calling ``url`` without pause, each with its own inputs, until stopped."""

    url: str
    count: int
    outcomes: list[Outcome] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._call, args=(i,), daemon=True) for i in range(self.count)]
        for thread in self._threads:
            thread.start()

    def _call(self, index: int) -> None:
        client = tf_graphpipe.Client(self.url, timeout=DEADLINE)
        n = 0
        while not self.stop.is_set() and n < 2000:  # bounded in count, and by the test's own clock
            n += 1
            x = np.full((1, 4), index * 10000 + n, np.float32)
            started = time.monotonic()
            outcome = Outcome(started, 0.0)
            try:
                y, replica = client.infer(x)
                outcome.replica = replica[0].decode()
                if not np.array_equal(y, 2 * x):
                    with self._lock:
                        self.wrong.append(f"client {index} call {n}: sent {x}, got {y}")
            except tf_graphpipe.GraphPipeError as exc:
                outcome.error = exc
            outcome.seconds = time.monotonic() - started
            with self._lock:
                self.outcomes.append(outcome)

    def finish(self) -> list[Outcome]:
        self.stop.set()
        for thread in self._threads:
            thread.join(DEADLINE + SLACK + 10)
        assert not any(t.is_alive() for t in self._threads), "a client call hung"
        return self.outcomes


def is_unavailable(error: BaseException) -> bool:
    return isinstance(error, tf_graphpipe.ServerUnavailable) or (
        isinstance(error, tf_graphpipe.RemoteError) and error.status == 503)


@pytest.fixture(params=[None, True], ids=["proxy-middleware", "gateway"])
def slow_app(ray_cluster: RayTestCluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """Two replicas of a slow model, lost replicas answered 503 by the
    proxy's middleware (the default here: the cluster's proxy has it) or by
    the gateway."""
    from ray import serve

    from tf_graphpipe.ray_serve import deployment

    serve.run(deployment("support.ray_models:slow_scale", name="scale", input_specs=ray_models.SCALE_INPUTS,
                         output_specs=ray_models.SCALE_OUTPUTS, num_replicas=2, gateway=request.param,
                         ray_actor_options={"num_cpus": 0.5}), name="failover", route_prefix="/failover")
    try:
        deployments = serve.status().applications["failover"].deployments
        assert ("GraphPipeGateway" in deployments) == (request.param is True), list(deployments)
        yield ray_cluster.url + "/failover"
    finally:
        serve.delete("failover")


def test_worker_node_lost_while_four_clients_call(ray_cluster: RayTestCluster, slow_app: str) -> None:
    callers = Callers(slow_app, 4)
    try:
        def replicas() -> set[str]:
            return {o.replica for o in list(callers.outcomes) if o.replica}

        before = wait_until(lambda: replicas() if len(replicas()) == 2 else None, 60, "both replicas answering")
        lost = sorted(before)[0].split()[0]
        assert lost in ray_cluster.workers and len({r.split()[0] for r in before}) == 2
        ray_cluster.remove_worker(lost)  # SIGKILL: its raylet, its replica, calls in flight
        wait_until(lambda: replicas() - before, 90, "a new replica answering")
        back_at = time.monotonic()
        wait_until(lambda: sum(o.started > back_at + 1 for o in callers.outcomes) >= 20, 60,
                   "20 calls after the replica is back")
    finally:
        outcomes = callers.finish()
        ray_cluster.add_worker()  # for the tests after this one
    assert not callers.wrong, callers.wrong[:3]
    failures = [o for o in outcomes if o.error is not None]
    assert all(is_unavailable(o.error) for o in failures if o.error is not None), \
        [repr(o.error) for o in failures][:5]
    assert max(o.seconds for o in outcomes) <= DEADLINE + SLACK, "a call outlived its deadline"
    after = [o for o in outcomes if o.started > back_at + 1]
    assert after and all(o.error is None for o in after), [repr(o.error) for o in after if o.error][:3]


def test_the_proxy_answers_a_dead_replicas_calls_unavailable_in_both_protocols(
        ray_cluster: RayTestCluster) -> None:
    from ray import serve

    from tf_graphpipe.ray_serve import deployment, proxy_answers_lost_replicas

    assert proxy_answers_lost_replicas(ray_cluster.url)
    serve.run(deployment("support.ray_models:scale_or_exit", name="scale", input_specs=ray_models.SCALE_INPUTS,
                         output_specs=ray_models.SCALE_OUTPUTS, ray_actor_options={"num_cpus": 0.25}),
              name="exits", route_prefix="/exits")
    try:
        assert "GraphPipeGateway" not in serve.status().applications["exits"].deployments
        x = np.ones((1, 4), np.float32)
        for url, protocol in ((ray_cluster.url + "/exits", "graphpipe"),
                              (ray_cluster.url + "/exits/v2/models/scale", "v2")):
            client = tf_graphpipe.Client(url, timeout=60, retries=0)
            with pytest.raises(tf_graphpipe.RemoteError) as lost:
                client.infer(-x, output_names=["y"])  # the replica's process exits during the call
            assert lost.value.status == 503, (protocol, lost.value)
            assert protocol == "v2" or lost.value.code == 14, lost.value  # GraphPipe's Unavailable
            assert "the model replica is gone" in str(lost.value), protocol
            deadline = time.monotonic() + 90
            while True:  # Ray replaces the replica; calls are answered again
                try:
                    np.testing.assert_array_equal(client.infer(x, output_names=["y"]), 2 * x)
                    break
                except tf_graphpipe.GraphPipeError as exc:
                    assert is_unavailable(exc), exc
                    assert time.monotonic() < deadline, "no replica answering within 90 s"
                    time.sleep(0.5)
    finally:
        serve.delete("exits")


def test_autoscaling_adds_replicas_under_load_and_removes_them_after(ray_cluster: RayTestCluster) -> None:
    from ray import serve

    from tf_graphpipe.ray_serve import deployment

    scaling = {"min_replicas": 1, "max_replicas": 3, "target_ongoing_requests": 1, "upscale_delay_s": 1,
               "downscale_delay_s": 3, "look_back_period_s": 2}
    serve.run(deployment("support.ray_models:slow_scale", name="scale", input_specs=ray_models.SCALE_INPUTS,
                         output_specs=ray_models.SCALE_OUTPUTS, autoscaling_config=scaling,
                         ray_actor_options={"num_cpus": 0.25}), name="autoscaled", route_prefix="/autoscaled")
    try:
        assert running_replicas("autoscaled") == 1
        callers = Callers(ray_cluster.url + "/autoscaled", 4)
        try:
            wait_until(lambda: running_replicas("autoscaled") > 1, 90, "more than one replica under load")
        finally:
            outcomes = callers.finish()
        assert not callers.wrong and all(o.error is None for o in outcomes)
        wait_until(lambda: running_replicas("autoscaled") == 1, 90, "back to one replica once idle")
    finally:
        serve.delete("autoscaled")
