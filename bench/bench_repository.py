# SPDX-License-Identifier: Apache-2.0
"""What a model repository costs: its hot path, and loading while serving.

1. **Ten models, one called.** The seed workload (128x224x224x3 float32 in,
   128x7x7x512 float32 out; ``--quick``: 16 rows) to model ``m4`` of a
   repository of 10 models (``/models/m4``), against the same model served
   alone (``tf-graphpipe serve MODEL``), each server in its own process,
   calls interleaved. Target: >= 0.95x the rows/s served alone.
2. **Loading while serving.** One client makes 1x4 float32 calls to model
   ``a`` without pause while model ``b``'s next version (a Keras model of a
   few dense layers: deserialised, then traced by its warm-up call) loads,
   through ``POST /v2/repository/models/b/load``; the same number of calls
   with no load going on is the anchor, the phases alternating. Target: p99
   while loading <= 3x p99 at rest (each pooled over the repetitions).

Usage::

    .venv/bin/python bench/bench_repository.py           # seed workload (~3 min)
    .venv/bin/python bench/bench_repository.py --quick   # (~1 min)
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    SEED_REQUEST,
    SEED_RESPONSE,
    Report,
    Server,
    bench_main,
    interleaved,
    md_table,
    median,
    percentile,
)
from bench_e2e import QUICK_REQUEST, QUICK_RESPONSE, RESPONSE_ENV  # noqa: E402

MODELS = 10
CALLED = "m4"
MODEL = "bench_e2e:constant_model"


def _specs(request: tuple[int, ...], response: tuple[int, ...]) -> tuple[str, str]:
    dims = ",".join(str(d) for d in request[1:])
    out = ",".join(str(d) for d in response[1:])
    return f"x:float32:-1,{dims}", f"y:float32:-1,{out}"


def _callable_repository(root: Path, names: list[str], input_spec: str, output_spec: str) -> Path:
    for name in names:
        (root / name / "1").mkdir(parents=True)
        config = {"callable": MODEL, "inputs": [input_spec], "outputs": [output_spec]}
        (root / name / "config.json").write_text(json.dumps(config))
    return root


def _serve(*args: str) -> Server:
    return Server([sys.executable, "-m", "tf_graphpipe", "serve", *args, "--host", "127.0.0.1", "--port", "0",
                   "--log-level", "warning"], name=f"tf-graphpipe serve {args[0]}")


# ---- 1. ten models, one called --------------------------------------------------------


def hot_path(args: argparse.Namespace, report: Report, work: Path) -> None:
    from tf_graphpipe import Client

    request, response = (QUICK_REQUEST, QUICK_RESPONSE) if args.quick else (SEED_REQUEST, SEED_RESPONSE)
    if args.tiny:
        request, response = (2, *request[1:]), (2, *response[1:])
    os.environ[RESPONSE_ENV] = ",".join(str(d) for d in response)
    input_spec, output_spec = _specs(request, response)
    root = _callable_repository(work / "ten", [f"m{i}" for i in range(MODELS)], input_spec, output_spec)
    alone = _serve(MODEL, "--input-spec", input_spec, "--output-spec", output_spec)
    repository = _serve("--model-repository", str(root), "--poll-seconds", "1")
    x = np.random.default_rng(0).random(request, dtype=np.float32)
    clients = {"served alone": Client(alone.line, timeout=120),
               f"{CALLED} of {MODELS} in a repository": Client(repository.line + f"/models/{CALLED}", timeout=120)}
    times: dict[str, list[float]] = {name: [] for name in clients}

    def timed(name: str) -> None:
        start = time.perf_counter()
        clients[name].infer(x)
        times[name].append(time.perf_counter() - start)

    for client in clients.values():  # warm: connections, first-touch pages
        client.infer(x)
    reps = args.reps or (3 if args.tiny else 7 if args.quick else 15)
    for rep in range(reps):
        interleaved(rep, [lambda n=name: timed(n) for name in clients])
    alone.stop()
    repository.stop()
    rows = request[0]
    rates = {name: rows / median(ts) for name, ts in times.items()}
    base = rates["served alone"]
    report.add(f"### Seed workload ({rows} rows) to one model of {MODELS}, {reps} interleaved calls each", "",
               *md_table(["path", "ms per call (median)", "min-max", "rows/s", "vs served alone"],
                         [[name, f"{median(ts) * 1e3:.1f}", f"{min(ts) * 1e3:.1f}-{max(ts) * 1e3:.1f}",
                           f"{rates[name]:.0f}", f"{rates[name] / base:.3f}x"] for name, ts in times.items()]), "")
    ratio = rates[f"{CALLED} of {MODELS} in a repository"] / base
    report.target(f"seed workload to 1 of {MODELS} repository models >= 0.95x rows/s of it served alone",
                  f"{ratio:.3f}x", ratio >= 0.95)


# ---- 2. loading while serving ---------------------------------------------------------


def _save_loadable(path: Path) -> None:
    """The version that loads: a Keras model of a few dense layers."""
    import keras

    inputs = keras.Input((64,), name="x")
    hidden = inputs
    for i in range(6):
        hidden = keras.layers.Dense(256, activation="relu", name=f"dense{i}")(hidden)
    keras.Model(inputs, keras.layers.Dense(8, name="y")(hidden), name="b").save(path)


def _post(url: str) -> None:
    request = urllib.request.Request(url, data=b"{}", method="POST")
    with urllib.request.urlopen(request, timeout=300) as answer:  # noqa: S310 - 127.0.0.1 only
        answer.read()


def loading(args: argparse.Namespace, report: Report, work: Path) -> None:
    from tf_graphpipe import Client

    root = _callable_repository(work / "two", ["a"], "x:float32:-1,4", "y:float32:-1,4")
    template = work / "b-template" / "model.keras"
    template.parent.mkdir(parents=True)
    _save_loadable(template)
    (root / "b" / "1").mkdir(parents=True)
    shutil.copy(template, root / "b" / "1" / "model.keras")
    server = _serve("--model-repository", str(root), "--poll-seconds", "0")
    client = Client(server.line + "/models/a", timeout=60)
    x = np.ones((1, 4), np.float32)
    for _ in range(200):
        client.infer(x)
    version = [1]
    quiet: list[list[float]] = []
    busy: list[list[float]] = []
    load_seconds: list[float] = []
    counts: list[int] = []

    def calls_while_loading() -> None:
        version[0] += 1
        staging = root / "b" / f".incoming-{version[0]}"
        staging.mkdir()
        shutil.copy(template, staging / "model.keras")
        staging.rename(root / "b" / str(version[0]))
        done = threading.Event()
        failed: list[BaseException] = []

        def load() -> None:
            try:
                _post(server.line + "/v2/repository/models/b/load")
            except BaseException as exc:  # noqa: BLE001 - reported below
                failed.append(exc)
            done.set()

        samples: list[float] = []
        loader = threading.Thread(target=load)
        started = time.perf_counter()
        loader.start()
        while not done.is_set() and len(samples) < 200_000:
            start = time.perf_counter()
            client.infer(x)
            samples.append(time.perf_counter() - start)
        loader.join()
        if failed:
            raise failed[0]
        load_seconds.append(time.perf_counter() - started)
        busy.append(samples)
        counts.append(len(samples))

    def calls_at_rest() -> None:
        count = counts[-1] if counts else 2000
        samples = []
        for _ in range(count):
            start = time.perf_counter()
            client.infer(x)
            samples.append(time.perf_counter() - start)
        quiet.append(samples)

    reps = args.reps or (1 if args.tiny else 3 if args.quick else 7)
    for rep in range(reps):
        interleaved(rep + 1, [calls_while_loading, calls_at_rest])  # odd first: a load sets the count
    server.stop()
    # Pooled over the repetitions: one load gives a few hundred calls, too few for a p99 of its own.
    at_rest = [t for s in quiet for t in s]
    loading_ = [t for s in busy for t in s]
    p99_quiet, p99_busy = percentile(at_rest, 99), percentile(loading_, 99)
    p50_quiet, p50_busy = percentile(at_rest, 50), percentile(loading_, 50)
    report.add(f"### 1x4 calls to model a while model b's next version loads ({reps} loads, "
               f"{median(load_seconds):.2f} s each (median), {len(loading_)} calls in each phase, pooled)", "",
               *md_table(["phase", "p50 µs", "p99 µs", "p99 vs at rest"],
                         [["at rest", f"{p50_quiet * 1e6:.0f}", f"{p99_quiet * 1e6:.0f}", "1.00x"],
                          ["b loading", f"{p50_busy * 1e6:.0f}", f"{p99_busy * 1e6:.0f}",
                           f"{p99_busy / p99_quiet:.2f}x"]]), "")
    ratio = p99_busy / p99_quiet
    report.target("p99 of 1x4 calls to one model while another loads <= 3x its p99 at rest",
                  f"{ratio:.2f}x", ratio <= 3.0)


def run(args: argparse.Namespace) -> Report:
    report = Report("Model repository: the hot path, and loading while serving")
    with tempfile.TemporaryDirectory(prefix="bench-repository-") as work:
        if "hot" in args.part:
            hot_path(args, report, Path(work))
        if "load" in args.part:
            loading(args, report, Path(work))
    return report


def _options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--part", default="hot,load", help="which measurements: hot, load or both")


if __name__ == "__main__":
    bench_main(__doc__.split("\n\n")[0], run, _options)
