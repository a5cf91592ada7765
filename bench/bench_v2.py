# SPDX-License-Identifier: Apache-2.0
"""The seed workload over the Open Inference Protocol (v2, binary tensor
extension): the project's ``Client`` against a real Triton server, as a ratio
to ``tritonclient[http]`` against the same server in the same run.

Workload (SPEC section 4): a request of 128x224x224x3 float32 (77 MB) answered
with 128x7x7x512 float32 (12.8 MB), by the ``seed`` model of
tests/v2_peers/triton_models.py (tritonserver 2.51.0 from nvidia-pytriton
0.7.0, CPU). Each repetition times ``--calls`` sequential calls with each
client, alternating which goes first; every call converts the array to the
request (``set_data_from_numpy`` for tritonclient) and the answer back to an
array (``as_numpy``), as a user's loop would. tritonclient runs in the Triton
venv (tests/peer_venvs.py), in a subprocess kept alive across repetitions.
Reported: median rows/s of each and ``ours / tritonclient`` (issue 11 asks
for >= 1.5x). The tf-graphpipe-serve row comes with the server side of v2.

Usage::

    PYTHONPATH=. .venv/bin/python bench/bench_v2.py            # 128 rows, 5 reps x 5 calls
    PYTHONPATH=. .venv/bin/python bench/bench_v2.py --quick    # 8 rows, a smoke run
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import tf_graphpipe  # noqa: E402
from v2_peer_servers import start_triton  # noqa: E402
import peer_venvs  # noqa: E402

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


def ours(client: tf_graphpipe.Client, x: np.ndarray, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        y = client.infer({"images": x}, output_names=["features"])
        assert y.shape == (x.shape[0], 7, 7, 512)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=128)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--calls", type=int, default=5)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.reps, args.calls = 8, 2, 3
    x = np.random.default_rng(0).standard_normal((args.rows, 224, 224, 3), dtype=np.float32)
    with start_triton() as triton:
        theirs = subprocess.Popen(
            [str(peer_venvs.triton_python()), "-c", TRITONCLIENT, str(triton.port)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        try:
            assert theirs.stdout.readline().strip() == "READY"

            def tritonclient_run(calls: int) -> float:
                theirs.stdin.write(f"{args.rows} {calls}\n")
                theirs.stdin.flush()
                return float(theirs.stdout.readline())

            client = tf_graphpipe.Client(triton.url("seed"), timeout=600)
            ours(client, x, 1)  # warm both paths (connections, Triton's first run)
            tritonclient_run(1)
            samples: dict[str, list[float]] = {"ours": [], "tritonclient": []}
            for rep in range(args.reps):
                order = [("ours", lambda: ours(client, x, args.calls)),
                         ("tritonclient", lambda: tritonclient_run(args.calls))]
                for name, run in order if rep % 2 == 0 else order[::-1]:
                    samples[name].append(args.rows * args.calls / run())
        finally:
            theirs.stdin.close()
            theirs.wait(timeout=60)
    mb = x.nbytes / 1e6
    print(f"seed workload over v2 (binary), Triton 2.51.0 on 127.0.0.1: {args.rows} rows/call "
          f"({mb:.1f} MB in, {args.rows * 7 * 7 * 512 * 4 / 1e6:.1f} MB out), {args.reps} reps x {args.calls} calls")
    print(f"{'client':<22}{'rows/s median':>15}{'min–max':>20}")
    for name, values in samples.items():
        label = "tf_graphpipe.Client" if name == "ours" else "tritonclient[http]"
        print(f"{label:<22}{statistics.median(values):>15.1f}{min(values):>12.1f}–{max(values):<.1f}")
    ratio = statistics.median(samples["ours"]) / statistics.median(samples["tritonclient"])
    print(f"ratio Client / tritonclient: {ratio:.2f}x (issue 11 target >= 1.5x)")
    print(json.dumps({"rows_per_s": {k: statistics.median(v) for k, v in samples.items()}, "ratio": ratio}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
