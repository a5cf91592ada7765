# SPDX-License-Identifier: Apache-2.0
"""Peak memory of one seed call: how much the client's and the server's
resident set grow during it, as a multiple of the request payload.

Each measurement uses a fresh server process and a fresh client process. The
client imports what it needs, allocates the request (128×224×224×3 float32,
77 MB, every page touched), makes one small call (connections, lazy
imports, traced functions), then waits. The bench resets both processes'
peak RSS (``echo 5 > /proc/PID/clear_refs``), notes their current RSS,
lets the client make the one seed call, and reads the peaks (``VmHWM``).
Growth = peak during the call − RSS before it. The payload is the request
(77 MB); the response (12.8 MB) is part of the growth any client must pay.

Paths: tf-graphpipe ``Client`` and the op in ``tf.function`` against
``tf-graphpipe serve``; the reference ``graphpipe==1.0.4`` client (its
venv) against the same server; TF Serving's protobuf over HTTP and a JSON
API against their anchor servers (``anchor_servers.py``). Target: client
growth ≤ 1.2× payload for tf-graphpipe.

Usage::

    .venv/bin/python bench/bench_memory.py [--quick] [--reps N] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # _common, also with PYTHONSAFEPATH

from _common import (
    FEATURES,
    IMAGE,
    Chart,
    Report,
    Server,
    anchor_server,
    bench_env,
    bench_main,
    graphpipe_server,
    mb,
    md_table,
    median,
    reference_python,
    shape_text,
    spread,
)

# Run as the client process: python -c CLIENT KIND URL BATCH. Prints "armed"
# after its warm-up, waits for a line on stdin, makes the call, prints JSON.
CLIENT = r"""
import json, os, sys
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np
kind, url, batch = sys.argv[1], sys.argv[2], int(sys.argv[3])
shape = (batch, 224, 224, 3)

def status(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) * 1024

if kind in ("client", "op"):
    import tf_graphpipe
if kind == "client":
    client = tf_graphpipe.Client(url, timeout=600)
    call = client.infer
    x = np.full(shape, 0.5, np.float32)
elif kind == "op":
    import tensorflow as tf
    @tf.function
    def remote(t):
        return tf_graphpipe.remote_call(url, [t], output_dtypes=[tf.float32],
                                        output_shapes=[[None, 7, 7, 512]], timeout=600)[0]
    call = lambda t: remote(t).numpy()
    x = tf.fill(shape, 0.5)
elif kind == "reference":
    from graphpipe import remote
    call = lambda a: remote.execute(url, a)
    x = np.full(shape, 0.5, np.float32)
elif kind in ("tfs", "json"):
    import http.client
    from urllib.parse import urlsplit
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=600)
    import anchor_wire  # bench/ is on the child's path (bench_env)
    if kind == "tfs":
        encode, decode = anchor_wire.predict_request, anchor_wire.predict_response_array
    else:
        encode = lambda a: anchor_wire.json_body("inputs", a)
        decode = lambda body: anchor_wire.json_array("outputs", body)
    def call(a):
        conn.request("POST", "/", body=encode(a))
        response = conn.getresponse()
        return decode(response.read())
    x = np.full(shape, 0.5, np.float32)

warm = call(x[:1])
del warm
print("armed", flush=True)
sys.stdin.readline()
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
before = status("VmRSS:")
y = call(x)
peak = status("VmHWM:")
assert tuple(np.shape(y)) == (batch, 7, 7, 512), np.shape(y)
print(json.dumps({"before": before, "peak": peak}), flush=True)
"""


def proc_status(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


def measure(kind: str, python: str, server: Server, batch: int) -> tuple[int, int]:
    """(client growth, server growth) in bytes for one call of ``batch`` rows."""
    stderr = tempfile.TemporaryFile("w+")
    client = subprocess.Popen([python, "-c", CLIENT, kind, server.line, str(batch)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=stderr, text=True, env=bench_env())

    def err() -> str:
        client.wait(10)
        stderr.seek(0)
        return stderr.read()[-3000:]

    try:
        line = client.stdout.readline().strip()
        if line != "armed":
            raise RuntimeError(f"{kind} client printed {line!r}: {err()}")
        Path(f"/proc/{server.pid}/clear_refs").write_text("5")
        server_before = proc_status(server.pid, "VmRSS:")
        client.stdin.write("go\n")
        client.stdin.flush()
        line = client.stdout.readline()
        if not line.startswith("{"):
            raise RuntimeError(f"{kind} client failed: {err()}")
        result = json.loads(line)
        server_growth = proc_status(server.pid, "VmHWM:") - server_before
        client.wait(60)
        return result["peak"] - result["before"], server_growth
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
        stderr.close()


def gp_server() -> Server:
    return graphpipe_server("anchor_servers:features", "x:float32:-1,224,224,3", "y:float32:-1,7,7,512")


def run(args: argparse.Namespace) -> Report:
    batch = 2 if args.tiny else 16 if args.quick else 128
    json_batch = batch if args.quick else 128
    reps = args.reps or (1 if args.quick else 3)
    paths = {  # kind: (label, server factory, python, reps)
        "client": ("tf-graphpipe `Client`", gp_server, sys.executable, reps),
        "op": ("tf-graphpipe op in `tf.function`", gp_server, sys.executable, reps),
        "reference": ("reference graphpipe 1.0.4 client", gp_server, None, reps),
        "tfs": ("TF Serving protobuf over HTTP", lambda: anchor_server("tfs"), sys.executable, reps),
        "json": ("JSON HTTP API (ujson)", lambda: anchor_server("json"), sys.executable, 1),
    }
    notes = []
    if args.tiny:  # smoke run: the two paths whose processes start without TensorFlow
        paths = {k: paths[k] for k in ("client", "json")}
    ref = reference_python() if "reference" in paths else None
    if "reference" not in paths:
        pass
    elif ref is None:
        del paths["reference"]
        notes.append("reference graphpipe 1.0.4: venv unavailable, not measured")
    else:
        paths["reference"] = (*paths["reference"][:2], str(ref), reps)

    growth: dict[str, tuple[list[int], list[int]]] = {k: ([], []) for k in paths}
    for rep in range(max(p[3] for p in paths.values())):
        for kind, (_, make_server, python, n) in paths.items():
            if rep >= n:
                continue
            with make_server() as server:
                c, s = measure(kind, python, server, json_batch if kind == "json" else batch)
            growth[kind][0].append(c)
            growth[kind][1].append(s)
            print(f"{kind}: client +{mb(c)}, server +{mb(s)}", file=sys.stderr, flush=True)

    request = batch * 224 * 224 * 3 * 4
    response = batch * 7 * 7 * 512 * 4
    rows = []
    for kind, (label, *_rest) in paths.items():
        b = json_batch if kind == "json" else batch
        payload = b * 224 * 224 * 3 * 4
        c, s = growth[kind]
        ratio = median(c) / payload
        rows.append([label + (f" (batch {b})" if b != batch else ""),
                     f"{median(c) / 1e6:.1f} ({spread(c, 1e-6, 1)})",
                     f"**{ratio:.2f}**" if kind == "client" else f"{ratio:.2f}",
                     f"{median(s) / 1e6:.1f} ({spread(s, 1e-6, 1)})", f"{median(s) / payload:.2f}"])
    report = Report("Memory: peak RSS growth during one call, as a multiple of the request payload")
    report.add(
        f"Request {shape_text((batch, *IMAGE))} float32 ({mb(request)}), response "
        f"{shape_text((batch, *FEATURES))} ({mb(response)}); a fresh client and server process per "
        f"measurement; medians of {reps} (JSON: 1), min–max in brackets. A client that keeps its "
        f"response needs at least {response / request:.2f}× (the response); a server at least "
        f"{(request + response) / request:.2f}× (it receives the request and builds the response).", "",
        *md_table(["path", "client growth MB", "client × payload", "server growth MB", "server × payload"], rows),
        *notes)
    for kind in ("client", "op"):
        if kind in growth:
            ratio = median(growth[kind][0]) / request
            report.target(f"{paths[kind][0]}: client RSS growth ≤ 1.2× payload", f"{ratio:.2f}×", ratio <= 1.2)
    report.charts.append(Chart("Peak client RSS growth during one call", "× request payload",
                               [paths[k][0].replace("`", "") for k in paths],
                               [median(growth[k][0]) / ((json_batch if k == "json" else batch) * 602112)
                                for k in paths]))
    return report


def main(argv: list[str] | None = None) -> Report:
    return bench_main(__doc__.split("\n\n")[0], run, argv=argv)


if __name__ == "__main__":
    main()
