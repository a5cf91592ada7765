# SPDX-License-Identifier: Apache-2.0
"""End to end over HTTP against the seed's two anchors: a JSON HTTP API and
TensorFlow Serving's protobuf over HTTP, with tf-graphpipe's ``Client``
against ``tf-graphpipe serve`` measured in the same run for the ratios.

Every server runs the same trivial model (``anchor_servers.py``: images
N×224×224×3 float32 in, N×7×7×512 float32 out) in its own process on a free
127.0.0.1 port; clients keep their connections alive (one
``http.client.HTTPConnection`` per thread; ``Client`` pools its own).
Rows/s at 1 and 5 client threads; the paths alternate in blocks, medians
over blocks with min–max.

Sizes: tf-graphpipe and TF Serving at the seed batch (128; ``--quick``: 8).
JSON is very slow at the seed size (tens of seconds a call), so it runs at
batch 4 by default (its cost is linear in the rows, so rows/s carries over)
and, in full mode, additionally makes one single seed-size call to check
that rows/s.

Usage::

    .venv/bin/python bench/bench_http_anchors.py [--quick] [--reps N] [--json out.json]
"""
from __future__ import annotations

import argparse
import http.client
import os
import queue
import sys
from collections.abc import Callable
from urllib.parse import urlsplit

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # _common, also with PYTHONSAFEPATH

from _common import (
    FEATURES,
    IMAGE,
    Chart,
    Report,
    anchor_server,
    bench_main,
    graphpipe_server,
    mb,
    md_table,
    median,
    shape_text,
    spread,
)
from anchor_wire import json_array, json_body, predict_request, predict_response_array
from bench_e2e import threaded_seconds

THREADS = (1, 5)


class HttpPath:
    """POSTs an encoded body on a keep-alive connection from a pool (one
    per concurrent caller, kept between calls) and decodes the answer."""

    def __init__(self, url: str, encode: Callable[[np.ndarray], bytes], decode: Callable[[bytes], np.ndarray],
                 content_type: str) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname, parts.port
        self.encode, self.decode, self.content_type = encode, decode, content_type
        self.idle: queue.LifoQueue[http.client.HTTPConnection] = queue.LifoQueue()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        try:
            conn = self.idle.get_nowait()
        except queue.Empty:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=600)
        conn.request("POST", "/", body=self.encode(x), headers={"Content-Type": self.content_type})
        response = conn.getresponse()
        body = response.read()
        self.idle.put(conn)
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}: {body[:300]!r}")
        return self.decode(body)

    def warm(self, x: np.ndarray, connections: int) -> None:
        """Opens ``connections`` keep-alive connections (one call each)."""
        conns = []
        for _ in range(connections):
            conns.append(http.client.HTTPConnection(self.host, self.port, timeout=600))
            self.idle.put(conns[-1])
        rows_per_second(self, x, connections, 1)

    def close(self) -> None:
        while not self.idle.empty():
            self.idle.get_nowait().close()


def json_path(url: str) -> HttpPath:
    return HttpPath(url, lambda x: json_body("inputs", x), lambda body: json_array("outputs", body),
                    "application/json")


def tfs_path(url: str) -> HttpPath:
    return HttpPath(url, predict_request, predict_response_array, "application/x-protobuf")


def rows_per_second(call: Callable[[np.ndarray], np.ndarray], x: np.ndarray, threads: int, calls: int) -> float:
    """``threads`` threads each make ``calls`` calls; rows moved / wall time."""
    def checked() -> None:
        y = call(x)
        assert y.shape == (x.shape[0], *FEATURES), y.shape

    return x.shape[0] * threads * calls / threaded_seconds(checked, threads, calls)


def run(args: argparse.Namespace) -> Report:
    import tf_graphpipe

    tiny, quick = args.tiny, args.quick
    blocks = args.reps or (1 if tiny else 3 if quick else 5)
    batch = 2 if tiny else 8 if quick else 128
    json_batch = 1 if tiny else 4
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, *IMAGE), dtype=np.float32)
    xj = x[:json_batch].copy()

    report = Report("End to end over HTTP: tf-graphpipe vs a JSON API and TF Serving's protobuf")
    with graphpipe_server("anchor_servers:features", "x:float32:-1,224,224,3", "y:float32:-1,7,7,512") as gp, \
            anchor_server("tfs") as tfs, anchor_server("json") as js:
        client = tf_graphpipe.Client(gp.line, timeout=600)
        # name: (label, call, input, calls per thread at 1 thread, at 5 threads)
        few = 1 if tiny else 2
        many = 1 if tiny else 4 if quick else 6
        paths = {
            "gp": ("tf-graphpipe `Client` → `tf-graphpipe serve`", client.infer, x, many, few),
            "tfs": ("TF Serving protobuf over HTTP (PredictRequest)", tfs_path(tfs.line), x, many, few),
            "json": (f"JSON HTTP API (ujson), batch {json_batch}", json_path(js.line), xj, few, 1),
        }
        for _, call, inp, _, _ in paths.values():  # connect (one connection per thread), warm up
            if isinstance(call, HttpPath):
                call.warm(inp[:1], max(THREADS))
            else:
                rows_per_second(call, inp[:1], max(THREADS), 1)
        rates: dict[tuple[str, int], list[float]] = {(k, n): [] for k in paths for n in THREADS}
        for block in range(blocks):
            keys = list(paths) if block % 2 == 0 else list(paths)[::-1]
            for key in keys:
                _, call, inp, c1, c5 = paths[key]
                for n in (THREADS if block % 2 == 0 else THREADS[::-1]):
                    rates[(key, n)].append(rows_per_second(call, inp, n, c1 if n == 1 else c5))
        seed_json = None
        if not quick:
            seed_json = rows_per_second(paths["json"][1], x, 1, 1)
        client.close()
        for _, call, *_rest in paths.values():
            if isinstance(call, HttpPath):
                call.close()

    headers = ["path", *[f"{n} thread{'s' * (n > 1)} rows/s (min–max)" for n in THREADS],
               *[f"{n}t × TF Serving" for n in THREADS], *[f"{n}t × JSON" for n in THREADS]]
    rows = []
    med = {k: median(v) for k, v in rates.items()}
    for key, (label, *_rest) in paths.items():
        rows.append([label, *[f"{med[(key, n)]:.1f} ({spread(rates[(key, n)], digits=1)})" for n in THREADS],
                     *[f"{med[(key, n)] / med[('tfs', n)]:.2f}" for n in THREADS],
                     *[f"{med[(key, n)] / med[('json', n)]:.1f}" for n in THREADS]])
    report.add(
        f"Request {shape_text(x.shape)} float32 ({mb(x.nbytes)}) → {shape_text((batch, *FEATURES))} "
        f"({mb(batch * int(np.prod(FEATURES)) * 4)}), keep-alive, same trivial model; {blocks} alternating "
        "blocks, medians.", "",
        *md_table(headers, rows), "",
        f"JSON runs at batch {json_batch} ({mb(xj.nbytes)} of float32, about "
        f"{len(str(xj.tolist())) / 1e6:.0f} MB of JSON text); its cost grows linearly with the rows, "
        "so rows/s are comparable.")
    if seed_json is not None:
        report.add(f"Check at the seed size: one JSON call with {shape_text(x.shape)} took "
                   f"{x.shape[0] / seed_json:.1f} s ({seed_json:.1f} rows/s, 1 thread).")
    labels = {"gp": "tf-graphpipe", "tfs": "TF Serving protobuf", "json": "JSON (ujson)"}
    for n in THREADS:
        report.charts.append(Chart(f"End to end over HTTP, {n} thread{'s' * (n > 1)} (log scale)", "rows/s",
                                   [labels[k] for k in paths], [med[(k, n)] for k in paths],
                                   [min(rates[(k, n)]) for k in paths], [max(rates[(k, n)]) for k in paths],
                                   log=True))
    return report


def main(argv: list[str] | None = None) -> Report:
    return bench_main(__doc__.split("\n\n")[0], run, argv=argv)


if __name__ == "__main__":
    main()
