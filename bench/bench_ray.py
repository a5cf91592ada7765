# SPDX-License-Identifier: Apache-2.0
"""tf-graphpipe on Ray Serve against Ray Serve's own ceiling, through the
same HTTP proxy, in one run on a local Ray node (2 CPUs, the proxy and the
gateway reserving none):

* bare: a Ray Serve ASGI deployment with no model that reads the whole
  request and answers a precomputed InferResponse (the seed's 12.8 MB one
  to big requests, a 1x4 one to small ones): what Ray Serve itself costs;
* default: ``tf_graphpipe.ray_serve.deployment`` as shipped on a proxy
  started by ``start_serve``: Ray's proxy calls the replicas, and its
  middleware maps lost replicas to 503 (the bare deployment goes through
  that middleware too: one wrapped ``send`` per ASGI message);
* gateway: the same with ``gateway=True`` (the gateway deployment in front
  of the replicas maps lost replicas to 503; any proxy).

All three are called by the same ``Client``, interleaved, medians of the
repetitions. Then replica scaling: a CPU-bound model (about 40 ms of NumPy
per call, one model thread per replica, one CPU reserved per replica)
called by 4 clients for a few seconds with 1 replica, then 2, alternating.

Usage::

    PYTHONPATH=. python bench/bench_ray.py            # seed workload (about 5 minutes)
    PYTHONPATH=. python bench/bench_ray.py --quick
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # keep Ray on 127.0.0.1
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    SEED_REQUEST,
    SEED_RESPONSE,
    Report,
    bench_main,
    free_port,
    interleaved,
    md_table,
    median,
    percentile,
)

BENCH = Path(__file__).resolve().parent
# Replicas import this module's models (``bench_ray:busy``) from bench/.
ON_REPLICAS = {"runtime_env": {"env_vars": {"PYTHONPATH": str(BENCH)}}}
SMALL = (1, 4)
BUSY_SECONDS = 0.04
_SEED_ANSWER: np.ndarray | None = None


def constant_seed(x: np.ndarray) -> np.ndarray:
    """The served model: the seed's answer to big requests, its input to small ones."""
    global _SEED_ANSWER
    if x.nbytes <= 4096:
        return x
    if _SEED_ANSWER is None:
        _SEED_ANSWER = np.ones(SEED_RESPONSE, np.float32)
    return _SEED_ANSWER


def busy(x: np.ndarray) -> np.ndarray:
    """CPU-bound: NumPy work for about ``BUSY_SECONDS`` on one core."""
    a = np.linspace(0.0, 1.0, 100_000)
    end = time.perf_counter() + BUSY_SECONDS
    while time.perf_counter() < end:
        a = np.sin(a)
    return x


class BareSeed:
    """Ray Serve's ceiling: read the body, answer precomputed bytes."""

    def __init__(self) -> None:
        from tf_graphpipe import _native, dtypes

        def encoded(array: np.ndarray) -> bytes:
            wired, wire_type = dtypes.wire_array(array)
            return bytes(memoryview(_native.encode_infer_response([wired], [wire_type])))

        self.big = encoded(np.ones(SEED_RESPONSE, np.float32))
        self.small = encoded(np.ones(SMALL, np.float32))

    def __serve_build_asgi_app__(self) -> Any:
        async def app(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "lifespan":
                while True:
                    kind = (await receive())["type"]
                    await send({"type": kind + ".complete"})
                    if kind == "lifespan.shutdown":
                        return
            size = 0
            while True:
                message = await receive()
                size += len(message.get("body", b""))
                if not message.get("more_body", False):
                    break
            body = self.big if size > 4096 else self.small
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/octet-stream"),
                                    (b"content-length", b"%d" % len(body))]})
            await send({"type": "http.response.body", "body": body})

        return app


def start_ray() -> str:
    import ray

    here = os.getcwd()
    with tempfile.TemporaryDirectory() as elsewhere:  # Ray puts the driver's directory on workers' sys.path
        os.chdir(elsewhere)
        try:
            ray.init(num_cpus=2, object_store_memory=800 << 20, include_dashboard=False,
                     _node_ip_address="127.0.0.1", logging_level="warning", log_to_driver=False)
        finally:
            os.chdir(here)
    from tf_graphpipe.ray_serve import start_serve

    port = free_port()
    start_serve("127.0.0.1", port, proxy_location="HeadOnly")
    return f"http://127.0.0.1:{port}"


def seed_rows(report: Report, url: str, reps: int, small_calls: int) -> None:
    from ray import serve

    import tf_graphpipe
    from tf_graphpipe.ray_serve import deployment

    bare = serve.deployment(serve.ingress()(BareSeed), name="Bare", ray_actor_options={"num_cpus": 0.5})
    serve.run(bare.bind(), name="bare", route_prefix="/bare")
    common: dict[str, Any] = {"name": "seed", "input_specs": ["x:float32:-1,-1,-1,-1"],
                              "ray_actor_options": {"num_cpus": 0.5, **ON_REPLICAS}}
    serve.run(deployment("bench_ray:constant_seed", **common), name="default", route_prefix="/default")
    serve.run(deployment("bench_ray:constant_seed", gateway=True, **common), name="gateway", route_prefix="/gateway")
    paths = ["bare", "default", "gateway"]
    clients = {p: tf_graphpipe.Client(f"{url}/{p}", timeout=120) for p in paths}
    images = np.ones(SEED_REQUEST, np.float32)
    small = np.ones((1, 1, 1, 4), np.float32)
    for p in paths:  # warm: connections, first-call costs
        clients[p].infer(images)
        clients[p].infer(small)
    seed: dict[str, list[float]] = {p: [] for p in paths}
    p50s: dict[str, list[float]] = {p: [] for p in paths}

    def seed_call(p: str) -> None:
        started = time.perf_counter()
        clients[p].infer(images)
        seed[p].append(time.perf_counter() - started)

    def small_calls_of(p: str) -> None:
        times = []
        for _ in range(small_calls):
            started = time.perf_counter()
            clients[p].infer(small)
            times.append(time.perf_counter() - started)
        p50s[p].append(percentile(times, 50))

    for rep in range(reps):
        interleaved(rep, [lambda p=p: seed_call(p) for p in paths])
        interleaved(rep, [lambda p=p: small_calls_of(p) for p in paths])
    for p in paths:
        serve.delete(p)
    rows = []
    for p in paths:
        s, q = median(seed[p]), median(p50s[p])
        rows.append([p, f"{s * 1e3:.0f}", f"{SEED_REQUEST[0] / s:.0f}", f"{median(seed['bare']) / s:.2f}×",
                     f"{q * 1e3:.2f}", f"{q / median(p50s['bare']):.2f}×"])
    report.add(f"Seed call ({SEED_REQUEST} float32 in, {SEED_RESPONSE} out) and a 1x4 call through Ray Serve's "
               f"proxy; medians of {reps} interleaved repetitions ({small_calls} small calls each).", "",
               *md_table(["deployment", "seed call ms", "rows/s", "rows/s vs bare", "1x4 p50 ms", "p50 vs bare"],
                         rows), "")
    for p in ("default", "gateway"):
        ratio = median(seed["bare"]) / median(seed[p])
        report.target(f"{p}: seed rows/s >= 0.8x bare Ray Serve", f"{ratio:.2f}×", ratio >= 0.8)
        p50 = median(p50s[p]) / median(p50s["bare"])
        report.target(f"{p}: 1x4 p50 <= 1.25x bare Ray Serve", f"{p50:.2f}×", p50 <= 1.25)


def scaling_rows(report: Report, url: str, rounds: int, seconds: float) -> None:
    from ray import serve

    import tf_graphpipe
    from tf_graphpipe.ray_serve import deployment

    def deploy(replicas: int) -> None:
        serve.run(deployment("bench_ray:busy", name="busy", input_specs=["x:float32:-1,4"], workers=1,
                             num_replicas=replicas, max_ongoing_requests=4,
                             ray_actor_options={"num_cpus": 1, **ON_REPLICAS}), name="busy", route_prefix="/busy")

    def rate() -> float:
        done = [0]
        lock = threading.Lock()
        stop = time.monotonic() + seconds

        def call() -> None:
            client = tf_graphpipe.Client(url + "/busy", timeout=60)
            x = np.ones(SMALL, np.float32)
            while time.monotonic() < stop:
                client.infer(x)
                with lock:
                    done[0] += 1

        threads = [threading.Thread(target=call) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return done[0] / seconds

    rates: dict[int, list[float]] = {1: [], 2: []}
    for rep in range(rounds):
        for replicas in ((1, 2) if rep % 2 == 0 else (2, 1)):
            deploy(replicas)
            rate()  # warm: every replica has answered
            rates[replicas].append(rate())
    serve.delete("busy")
    one, two = median(rates[1]), median(rates[2])
    load = os.getloadavg()[0]
    report.add(f"A CPU-bound model (~{BUSY_SECONDS * 1e3:.0f} ms of NumPy a call, 1 model thread, 1 CPU per "
               f"replica), 4 clients for {seconds:g} s, {rounds} rounds alternating; load average {load:.1f} "
               f"on {os.cpu_count()} CPUs at the end.", "",
               *md_table(["replicas", "rows/s (median)", "each round"],
                         [[1, f"{one:.1f}", ", ".join(f"{r:.1f}" for r in rates[1])],
                          [2, f"{two:.1f}", ", ".join(f"{r:.1f}" for r in rates[2])]]), "")
    report.target("2 replicas >= 1.6x the rows/s of 1", f"{two / one:.2f}×", two / one >= 1.6)


def run(args: argparse.Namespace) -> Report:
    import ray
    from ray import serve

    report = Report("Ray Serve: tf-graphpipe against a bare Ray Serve deployment, and replica scaling")
    url = start_ray()
    try:
        reps = args.reps or (1 if args.tiny else 2 if args.quick else 5)
        seed_rows(report, url, reps, small_calls=20 if args.quick else 100)
        scaling_rows(report, url, rounds=1 if args.quick else 2, seconds=3.0 if args.quick else 8.0)
    finally:
        serve.shutdown()
        ray.shutdown()
    return report


if __name__ == "__main__":
    bench_main(__doc__.split("\n\n")[0], run)
