# SPDX-License-Identifier: Apache-2.0
"""A real multi-node Ray cluster on this machine for the Ray Serve tests: a
head node and worker nodes (``ray.cluster_utils.Cluster``), each its own
raylet and object store, all on 127.0.0.1.

Facts about Ray 2.60 these rely on (checked on a 2-core VM):

* Ray swaps ``127.0.0.1`` for the machine's interface address unless
  ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` is set before ``ray`` is imported
  (and every node gets ``node_ip_address="127.0.0.1"``); with the interface
  address, start-up hung. ``RAY_USAGE_STATS_ENABLED=0`` keeps it offline.
* Head plus two workers start in 11-25 s, depending on the machine's load.
* The cluster runs in a keeper process started in its own session, which
  this process drives over a pipe (add or remove a worker node, quit):
  Ray's process reaper calls ``setpgrp`` in the process that starts the
  head, and a killed test run would otherwise leave raylets behind. On
  close, whatever is left of that session is killed by pid.
* Ray adds the driver's working directory to every worker's ``sys.path``
  (ahead of site-packages): a driver started in the checkout would make the
  replicas import the source tree, which has no compiled parts. The driver
  here connects from a temporary directory.
* Ray Serve's proxy runs on the head only (``proxy_location="HeadOnly"``),
  on 127.0.0.1 and a free port, started by ``start_serve`` (its middleware
  answers a lost replica's calls 503), so deployments default to no gateway.
* The head node has no CPUs: replicas (which reserve CPUs) land on the
  worker nodes, and the head keeps Serve's controller, the proxy and the
  gateway (which reserve none), so removing a worker never takes the
  proxy down.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"

from support.ports import free_port  # noqa: E402

TESTS = Path(__file__).resolve().parent.parent
START_SECONDS = 180
MB = 1 << 20
HEAD_OBJECT_STORE = 400 * MB   # the gateway's copies of request bodies land here
WORKER_OBJECT_STORE = 250 * MB
WORKER_CPUS = 1


class RayTestCluster:
    """The keeper process and what this process needs to use its cluster.

    Attributes:
        address: the GCS address (``ray.init(address=...)``).
        workers: node ids of the live worker nodes, in the order added.
    """

    def __init__(self, workers: int = 2) -> None:
        env = dict(os.environ)
        # Replicas import test models (`support.servers:double`) from here.
        env["PYTHONPATH"] = os.pathsep.join(p for p in [str(TESTS), env.get("PYTHONPATH", "")] if p)
        self._log = open(os.devnull, "wb")
        self.process = subprocess.Popen(
            [sys.executable, __file__, str(workers)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, env=env,
            text=True, start_new_session=True,
        )
        try:
            started = json.loads(self._answer(START_SECONDS))
        except BaseException:
            self.close()
            raise
        self.address: str = started["address"]
        self.workers: list[str] = started["workers"]
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        try:
            self._connect()
        except BaseException:
            self.close()
            raise

    def _connect(self) -> None:
        import ray

        here = os.getcwd()
        with tempfile.TemporaryDirectory() as elsewhere:
            os.chdir(elsewhere)
            try:
                ray.init(address=self.address, logging_level="warning", log_to_driver=False)
            finally:
                os.chdir(here)
        from tf_graphpipe.ray_serve import start_serve

        start_serve("127.0.0.1", self.port, proxy_location="HeadOnly")  # with the lost-replica middleware

    def _answer(self, timeout: float) -> str:
        import selectors

        assert self.process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            if not selector.select(timeout):
                raise TimeoutError(f"the Ray cluster keeper did not answer within {timeout:g} s")
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the Ray cluster keeper exited (code {self.process.poll()})")
        return line.strip()

    def _command(self, text: str, timeout: float = START_SECONDS) -> str:
        assert self.process.stdin is not None
        self.process.stdin.write(text + "\n")
        self.process.stdin.flush()
        return self._answer(timeout)

    def remove_worker(self, node_id: str, graceful: bool = False) -> None:
        """Stops a worker node's raylet and workers (SIGKILL unless graceful)."""
        self._command(f"remove {node_id} {int(graceful)}")
        self.workers.remove(node_id)

    def add_worker(self) -> str:
        node_id = self._command("add")
        self.workers.append(node_id)
        return node_id

    def close(self) -> None:
        """Shuts the cluster down; kills by pid whatever its session left."""
        import ray

        if ray.is_initialized():
            from ray import serve

            try:
                serve.shutdown()
            finally:
                ray.shutdown()
        if self.process.poll() is None:
            try:
                self._command("quit", timeout=60)
            except (OSError, RuntimeError, TimeoutError):
                pass
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            pass
        for pid in _session_pids(self.process.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait()
        self._log.close()

    def __enter__(self) -> RayTestCluster:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _session_pids(session: int) -> list[int]:
    """Processes of the keeper's session (it is the session leader)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == session:  # field 6 of stat, after the command's ")"
            pids.append(int(entry.name))
    return pids


def _keep(workers: int) -> None:
    """The keeper: starts the cluster, answers commands, shuts it down."""
    from ray.cluster_utils import Cluster

    def node_args(cpus: int, store: int) -> dict[str, Any]:
        return {"num_cpus": cpus, "node_ip_address": "127.0.0.1", "object_store_memory": store}

    cluster = Cluster(initialize_head=True,
                      head_node_args=dict(node_args(0, HEAD_OBJECT_STORE), include_dashboard=False))
    nodes = {}
    for _ in range(workers):
        node = cluster.add_node(**node_args(WORKER_CPUS, WORKER_OBJECT_STORE))
        nodes[node.node_id] = node
    cluster.wait_for_nodes()
    print(json.dumps({"address": cluster.address, "workers": list(nodes)}), flush=True)
    for line in sys.stdin:
        command = line.split()
        if command[0] == "remove":
            cluster.remove_node(nodes.pop(command[1]), allow_graceful=command[2] == "1")
            print("removed", flush=True)
        elif command[0] == "add":
            node = cluster.add_node(**node_args(WORKER_CPUS, WORKER_OBJECT_STORE))
            cluster.wait_for_nodes()
            nodes[node.node_id] = node
            print(node.node_id, flush=True)
        else:
            break
    cluster.shutdown()
    print("bye", flush=True)


def wait_until(predicate: Any, timeout: float, what: str, interval: float = 0.5) -> Any:
    """Polls ``predicate`` until it returns something true; bounded in time."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g} s")
        time.sleep(interval)


if __name__ == "__main__":
    _keep(int(sys.argv[1]))
