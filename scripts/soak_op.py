# SPDX-License-Identifier: Apache-2.0
"""Soak test of the remote op: many ``remote_call``s in one process, checking
that memory and file descriptors stay flat.

A server (``tf_graphpipe.serve`` on a ``2 * x`` model) runs in a subprocess,
so only the caller's memory is measured. After a warm-up (TensorFlow's and
the client's one-time allocations), every call sends distinct data and its
answer is checked exactly; RSS (/proc/self/status VmRSS) and open descriptors
(/proc/self/fd) are sampled along the way.

Usage:
    .venv/bin/python scripts/soak_op.py [--calls 10000] [--max-rss-growth-mb 20]
                                        [--mode eager|function] [--json]

Exits 1 when RSS grows more than the bound, descriptors grow at all (past a
pooled connection or two), or any answer is wrong.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path


SERVER = textwrap.dedent(
    """
    import signal, sys, threading
    import tf_graphpipe
    server = tf_graphpipe.serve(lambda x: x * 2, name="double")
    print(server.url, flush=True)
    sys.stdin.read()  # until the parent closes our stdin
    server.close()
    """
)
FD_SLACK = 2  # the client's keep-alive pool may hold a connection or two more


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def start_server() -> tuple[subprocess.Popen[str], str]:
    # The package comes from the environment: installed, or PYTHONPATH in a checkout.
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    process = subprocess.Popen([sys.executable, "-c", SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               text=True, env=env)
    url = process.stdout.readline().strip()
    if not url.startswith("http://"):
        process.kill()
        raise RuntimeError(f"the soak server did not start (printed {url!r})")
    return process, url


def soak(url: str, calls: int, warmup: int, mode: str, samples: int) -> dict[str, object]:
    import numpy as np
    import tensorflow as tf

    import tf_graphpipe

    def eager(x: tf.Tensor) -> tf.Tensor:
        return tf_graphpipe.remote_call(url, [x], output_dtypes=[tf.float32], output_shapes=[[None, 16]])[0]

    call = tf.function(eager) if mode == "function" else eager
    base = np.arange(64, dtype=np.float32).reshape(4, 16)

    def one(i: int) -> None:
        x = base + np.float32(i)
        y = call(tf.constant(x)).numpy()
        if not np.array_equal(y, x * 2):
            raise AssertionError(f"call {i}: wrong answer")

    for i in range(warmup):
        one(-i)
    rss_start, fd_start = rss_bytes(), fd_count()
    trace = [(0, rss_start, fd_start)]
    started = time.perf_counter()
    every = max(1, calls // samples)
    for i in range(calls):
        one(i)
        if (i + 1) % every == 0 or i + 1 == calls:
            trace.append((i + 1, rss_bytes(), fd_count()))
    elapsed = time.perf_counter() - started
    rss_end, fd_end = trace[-1][1], trace[-1][2]
    return {
        "mode": mode,
        "calls": calls,
        "warmup_calls": warmup,
        "seconds": round(elapsed, 2),
        "calls_per_second": round(calls / elapsed, 1),
        "rss_start_mb": round(rss_start / 2**20, 2),
        "rss_end_mb": round(rss_end / 2**20, 2),
        "rss_growth_mb": round((rss_end - rss_start) / 2**20, 2),
        "rss_max_mb": round(max(r for _, r, _ in trace) / 2**20, 2),
        "fd_start": fd_start,
        "fd_end": fd_end,
        "fd_max": max(f for _, _, f in trace),
        "trace": [(n, round(r / 2**20, 2), f) for n, r, f in trace],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--max-rss-growth-mb", type=float, default=20.0)
    parser.add_argument("--mode", choices=["eager", "function"], default="eager")
    parser.add_argument("--samples", type=int, default=10, help="RSS/fd samples printed")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    process, url = start_server()
    try:
        result = soak(url, args.calls, args.warmup, args.mode, args.samples)
    finally:
        process.stdin.close()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
    problems = []
    if result["rss_growth_mb"] > args.max_rss_growth_mb:
        problems.append(f"RSS grew {result['rss_growth_mb']} MB (bound {args.max_rss_growth_mb} MB)")
    if result["fd_max"] > result["fd_start"] + FD_SLACK:
        problems.append(f"open descriptors grew from {result['fd_start']} to {result['fd_max']}")
    result["ok"] = not problems
    result["problems"] = problems
    if args.json:
        print(json.dumps(result))
    else:
        print(f"soak_op: {result['calls']} {result['mode']} op calls in {result['seconds']} s "
              f"({result['calls_per_second']}/s) after {result['warmup_calls']} warm-up calls")
        print(f"soak_op: RSS {result['rss_start_mb']} -> {result['rss_end_mb']} MB "
              f"(growth {result['rss_growth_mb']} MB, max {result['rss_max_mb']} MB); "
              f"open fds {result['fd_start']} -> {result['fd_end']} (max {result['fd_max']})")
        for n, rss, fds in result["trace"]:
            print(f"soak_op:   after {n:>6} calls: RSS {rss:>8} MB, {fds} fds")
        print("soak_op: OK" if result["ok"] else "soak_op: FAILED: " + "; ".join(problems))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
