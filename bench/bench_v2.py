# SPDX-License-Identifier: Apache-2.0
"""The seed workload over the Open Inference Protocol (v2, binary tensor
extension), two ratios measured in one run:

* the project's ``Client`` against ``tf-graphpipe serve`` (its v2 side, the
  constant model of bench_e2e.py served as ``seed``), as a ratio to the raw
  loopback ceiling of bench_e2e.py (plain sockets moving the same bytes into
  reused buffers; target >= 0.5x). The same ``Client`` over GraphPipe to the
  same server is shown beside it;
* the project's ``Client`` against a real Triton server, as a ratio to
  ``tritonclient[http]`` against the same server (target >= 1.5x).

Workload (SPEC section 4): a request of 128x224x224x3 float32 (77 MB) answered
with 128x7x7x512 float32 (12.8 MB), by the ``seed`` model of
tests/support/v2_peers/triton_models.py (tritonserver 2.51.0 from nvidia-pytriton
0.7.0, CPU). Each repetition times ``--calls`` sequential calls with each
client, alternating which goes first; every call converts the array to the
request (``set_data_from_numpy`` for tritonclient) and the answer back to an
array (``as_numpy``), as a user's loop would. tritonclient runs in the Triton
venv (tests/support/peer_venvs.py), in a subprocess kept alive across repetitions.
Every path's repetitions interleave (the order rotates). Reported: median
rows/s of each and the two ratios.

Usage::

    .venv/bin/python bench/bench_v2.py             # 128 rows, 5 reps x 5 calls
    .venv/bin/python bench/bench_v2.py --quick     # 8 rows, a smoke run
    .venv/bin/python bench/bench_v2.py --no-triton # only the tf-graphpipe serve rows
    .venv/bin/python bench/bench_v2.py --reps 9 --json v2.json
"""
from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import tf_graphpipe  # noqa: E402

from bench_e2e import RESPONSE_ENV, Ceiling, Process  # noqa: E402
from support import peer_venvs  # noqa: E402
from support.v2_peer_servers import start_triton  # noqa: E402

# Runs in the Triton venv: reads "ROWS CALLS" lines, answers seconds per line.
TRITONCLIENT = r"""
import sys, time
import numpy as np
import tritonclient.http as httpclient

port = sys.argv[1]
client = httpclient.InferenceServerClient(f"127.0.0.1:{port}", connection_timeout=120, network_timeout=600)
print("READY", flush=True)
for line in sys.stdin:
    rows, calls = (int(v) for v in line.split())
    x = np.random.default_rng(0).standard_normal((rows, 224, 224, 3), dtype=np.float32)
    start = time.perf_counter()
    for _ in range(calls):
        inp = httpclient.InferInput("images", list(x.shape), "FP32")
        inp.set_data_from_numpy(x, binary_data=True)
        out = httpclient.InferRequestedOutput("features", binary_data=True)
        y = client.infer("seed", [inp], outputs=[out]).as_numpy("features")
        assert y.shape == (rows, 7, 7, 512)
    print(time.perf_counter() - start, flush=True)
"""


def ours(client: tf_graphpipe.Client, x: np.ndarray, calls: int, output: str | None = "features") -> float:
    start = time.perf_counter()
    for _ in range(calls):
        y = client.infer({"images": x}, output_names=[output]) if output else client.infer(x)
        assert y.shape == (x.shape[0], 7, 7, 512)
    return time.perf_counter() - start


def ceiling_run(ceiling: Ceiling, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        ceiling._call()
    return time.perf_counter() - start


def start_serve(rows: int) -> tuple[Process, str]:
    """``tf-graphpipe serve`` of bench_e2e's constant model, named ``seed``: (process, base URL)."""
    server = Process([sys.executable, "-m", "tf_graphpipe", "serve", "bench_e2e:constant_model", "--name", "seed",
                      "--port", "0", "--log-level", "warning", "--max-request-bytes", str(2 << 30)],
                     env={RESPONSE_ENV: f"{rows},7,7,512"})
    return server, server.line


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=128)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--calls", type=int, default=5)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-triton", action="store_true", help="only the tf-graphpipe serve rows")
    parser.add_argument("--json", metavar="FILE", help="also write the raw samples (rows/s) and ratios as JSON")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.reps, args.calls = 8, 2, 3
    x = np.random.default_rng(0).standard_normal((args.rows, 224, 224, 3), dtype=np.float32)
    response_bytes = args.rows * 7 * 7 * 512 * 4
    runs: dict[str, Callable[[int], float]] = {}
    with contextlib.ExitStack() as stack:
        ceiling = Ceiling(x, response_bytes)
        stack.callback(ceiling.close)
        server, url = start_serve(args.rows)
        stack.callback(server.close)
        serve_v2 = stack.enter_context(tf_graphpipe.Client(url + "/v2/models/seed", timeout=600))
        serve_graphpipe = stack.enter_context(tf_graphpipe.Client(url, timeout=600))
        runs["ceiling"] = lambda calls: ceiling_run(ceiling, calls)
        runs["serve_v2"] = lambda calls: ours(serve_v2, x, calls, None)
        runs["serve_graphpipe"] = lambda calls: ours(serve_graphpipe, x, calls, None)
        if not args.no_triton:
            triton = stack.enter_context(start_triton())
            theirs = subprocess.Popen(
                [str(peer_venvs.triton_python()), "-c", TRITONCLIENT, str(triton.port)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            )
            stack.callback(theirs.wait, timeout=60)
            stack.callback(theirs.stdin.close)
            assert theirs.stdout.readline().strip() == "READY"

            def tritonclient_run(calls: int) -> float:
                theirs.stdin.write(f"{args.rows} {calls}\n")
                theirs.stdin.flush()
                return float(theirs.stdout.readline())

            client = stack.enter_context(tf_graphpipe.Client(triton.url("seed"), timeout=600))
            runs["ours"] = lambda calls: ours(client, x, calls)
            runs["tritonclient"] = tritonclient_run
        for run in runs.values():  # warm every path (connections, first-touch pages, Triton's first run)
            run(3)
        samples: dict[str, list[float]] = {name: [] for name in runs}
        names = list(runs)
        for rep in range(args.reps):
            shift = rep % len(names)
            for name in names[shift:] + names[:shift]:
                samples[name].append(args.rows * args.calls / runs[name](args.calls))
    medians = {name: statistics.median(values) for name, values in samples.items()}
    print(f"seed workload over v2 (binary) on 127.0.0.1: {args.rows} rows/call ({x.nbytes / 1e6:.1f} MB in, "
          f"{response_bytes / 1e6:.1f} MB out), {args.reps} reps x {args.calls} calls")
    print(f"{'path':<58}{'rows/s median':>15}{'min–max':>20}")
    for name, values in samples.items():
        print(f"{LABELS[name]:<58}{medians[name]:>15.1f}{min(values):>12.1f}–{max(values):<.1f}")
    ratios = {"serve_v2_vs_ceiling": medians["serve_v2"] / medians["ceiling"],
              "serve_graphpipe_vs_ceiling": medians["serve_graphpipe"] / medians["ceiling"]}
    print(f"ratio Client over v2 vs tf-graphpipe serve / raw loopback ceiling: "
          f"{ratios['serve_v2_vs_ceiling']:.2f}x (target >= 0.5x)")
    print(f"  (the same over GraphPipe: {ratios['serve_graphpipe_vs_ceiling']:.2f}x)")
    if "tritonclient" in medians:
        ratios["ours_vs_tritonclient"] = medians["ours"] / medians["tritonclient"]
        print(f"ratio Client / tritonclient against Triton 2.51.0: {ratios['ours_vs_tritonclient']:.2f}x "
              "(target >= 1.5x)")
    print(json.dumps({"rows_per_s": medians, "ratios": ratios}))
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"rows_per_s": {LABELS[name]: values for name, values in samples.items()},
                       "ratios": ratios}, out, indent=1)
    return 0


LABELS = {
    "ceiling": "raw loopback ceiling (plain sockets, same bytes)",
    "serve_v2": "tf_graphpipe.Client over v2 binary -> tf-graphpipe serve",
    "serve_graphpipe": "tf_graphpipe.Client over GraphPipe -> tf-graphpipe serve",
    "ours": "tf_graphpipe.Client over v2 binary -> Triton",
    "tritonclient": "tritonclient[http] binary -> Triton",
}


if __name__ == "__main__":
    sys.exit(main())
