# SPDX-License-Identifier: Apache-2.0
"""What a travelling deadline costs on the 1x4 path, to one
``tf-graphpipe serve`` process, p50 of each repetition's calls;
repetitions interleave the sides (the order alternates), the table shows
medians with min-max.

* **The server's side**: the same prebuilt 1x4 GraphPipe request on a
  keep-alive raw socket, with a ``GraphPipe-Timeout`` header (parsed, the
  deadline set, checked before the model runs, the model run inside it)
  and without (none of that). This is the whole cost the feature adds on
  the server.
* **The clients' side**: ``Client.infer`` and the op in ``tf.function``
  with ``timeout=30`` and with no timeout. Their difference is mostly
  libcurl's own timer for ``CURLOPT_TIMEOUT_MS`` (a timeout cost this much
  before deadlines travelled); writing the header is one line more.

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
from bench_e2e import RawHttp  # noqa: E402


class RawHttpWithDeadline(RawHttp):
    """RawHttp's request with ``GraphPipe-Timeout: 30000000`` (30 s) in its head."""

    def __init__(self, port: int, body: bytes) -> None:
        super().__init__(port, body)
        self.request = self.request.replace(b"\r\n\r\n", b"\r\nGraphPipe-Timeout: 30000000\r\n\r\n", 1)


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
    from tf_graphpipe import Client, _native

    reps = args.reps or (1 if args.tiny else 3 if args.quick else 5)
    calls = 50 if args.tiny else 500 if args.quick else 2000
    x = np.ones((1, 4), np.float32)
    report = Report("Deadlines that travel: the 1x4 path with a deadline vs without")
    with graphpipe_server("anchor_servers:echo", "x:float32:-1,4", "y:float32:-1,4") as server:
        url = server.line
        port = int(url.rsplit(":", 1)[1])
        body = bytes(_native.encode_infer_request([x], [10], [], [], b""))
        raw = {"none": RawHttp(port, body), "deadline": RawHttpWithDeadline(port, body)}
        clients = {"none": Client(url, timeout=None), "deadline": Client(url, timeout=30.0)}

        def op_call(timeout: float | None) -> Callable[[], object]:
            fn = tf.function(lambda t: tf_graphpipe.remote_call(
                url, [t], output_dtypes=[tf.float32], output_shapes=[[None, 4]], timeout=timeout)[0])
            tx = tf.constant(x)
            return lambda: fn(tx)

        sides: dict[str, Callable[[], object]] = {
            "raw socket, no header": raw["none"].call,
            "raw socket, GraphPipe-Timeout": raw["deadline"].call,
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
        anchor = name.replace("timeout 30 s", "no timeout").replace("GraphPipe-Timeout", "no header")
        report.add(f"| {name} | {median(values):.0f} | {spread(values, 1, 0)} | "
                   f"{median(values) / median(p50s[anchor]):.3f}x |")
    ratio = median(p50s["raw socket, GraphPipe-Timeout"]) / median(p50s["raw socket, no header"])
    report.target("server: 1x4 p50 with a deadline vs without, within 5 %", f"{ratio:.3f}x", abs(ratio - 1) <= 0.05)
    for kind in ("Client", "op"):
        ratio = median(p50s[f"{kind}, timeout 30 s"]) / median(p50s[f"{kind}, no timeout"])
        report.target(f"{kind}: 1x4 p50 with timeout=30 vs none (context: libcurl's timer)", f"{ratio:.3f}x", None)
    return report


def main() -> None:
    bench_main(__doc__.splitlines()[0], run)


if __name__ == "__main__":
    main()
