# SPDX-License-Identifier: Apache-2.0
"""What a travelling deadline costs on the 1x4 path: calls with a timeout
(the client writes ``GraphPipe-Timeout`` at each attempt, the server parses
it and checks the deadline before the model runs) against calls without one
(no header, no check), to the same ``tf-graphpipe serve`` process.

Both sides: ``Client.infer`` and the op in ``tf.function``, 1x4 float32,
p50 of each repetition's calls; repetitions interleave the sides (the order
alternates) and the table shows medians with min-max. The anchor is the
same path without a deadline, measured in the same run.

Usage::

    PYTHONPATH=. python bench/bench_deadlines.py            # 2000 calls x 5
    PYTHONPATH=. python bench/bench_deadlines.py --quick    # 500 calls x 3
"""
from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Report, bench_main, graphpipe_server, median, percentile, spread  # noqa: E402


def _p50_us(call: Callable[[], object], count: int) -> float:
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    return percentile(samples, 50) * 1e6


def run(args: argparse.Namespace) -> Report:
    import tensorflow as tf

    import tf_graphpipe
    from tf_graphpipe import Client

    reps = args.reps or (1 if args.tiny else 3 if args.quick else 5)
    calls = 50 if args.tiny else 500 if args.quick else 2000
    x = np.ones((1, 4), np.float32)
    report = Report("Deadlines that travel: the 1x4 path with a deadline vs without")
    with graphpipe_server("anchor_servers:echo", "x:float32:-1,4", "y:float32:-1,4") as server:
        url = server.line
        clients = {"none": Client(url, timeout=None), "deadline": Client(url, timeout=30.0)}

        def op_call(timeout: float | None) -> Callable[[], object]:
            fn = tf.function(lambda t: tf_graphpipe.remote_call(
                url, [t], output_dtypes=[tf.float32], output_shapes=[[None, 4]], timeout=timeout)[0])
            tx = tf.constant(x)
            return lambda: fn(tx)

        sides: dict[str, Callable[[], object]] = {
            "Client, no timeout": lambda: clients["none"].infer(x),
            "Client, timeout 30 s": lambda: clients["deadline"].infer(x),
            "op, no timeout": op_call(None),
            "op, timeout 30 s": op_call(30.0),
        }
        for call in sides.values():  # warm-up: connections, tracing
            for _ in range(20):
                call()
        p50s: dict[str, list[float]] = {name: [] for name in sides}
        for rep in range(reps):
            order = list(sides) if rep % 2 == 0 else list(reversed(list(sides)))
            for name in order:
                p50s[name].append(_p50_us(sides[name], calls))
            print(f"  rep {rep + 1}/{reps}", file=sys.stderr)
    report.add(f"1x4 float32 to one server process; {calls} calls per side per repetition, "
               f"{reps} interleaved repetitions; p50 is the median of the repetitions' p50s.", "")
    report.add("| path | p50 µs | min–max | vs the same path without a deadline |", "|---|---:|---:|---:|")
    for name, values in p50s.items():
        anchor = name.replace("timeout 30 s", "no timeout")
        report.add(f"| {name} | {median(values):.0f} | {spread(values, 1, 0)} | "
                   f"{median(values) / median(p50s[anchor]):.3f}x |")
    for kind in ("Client", "op"):
        ratio = median(p50s[f"{kind}, timeout 30 s"]) / median(p50s[f"{kind}, no timeout"])
        report.target(f"{kind} 1x4 p50 with a deadline vs without, within 5 %", f"{ratio:.3f}x",
                      abs(ratio - 1) <= 0.05)
    return report


def main() -> None:
    bench_main(__doc__.splitlines()[0], run)


if __name__ == "__main__":
    main()
