# SPDX-License-Identifier: Apache-2.0
"""The remote op against its anchor, TensorFlow's own in-graph RPC
(``tf.distribute.experimental.rpc``, gRPC), measured in the same run.

1. The seed workload (128×224×224×3 float32, 77 MB): TF's RPC refuses it
   (gRPC's 4 MB default message cap, which its API does not let a user
   raise); the error text is printed. The op carries it (one call, timed).
2. Batch 4 (4×224×224×3 float32 = 2.4 MB in, 4×7×7×512 = 0.4 MB out): rows/s
   of ``client.call(...)`` inside ``tf.function`` against a TF RPC server,
   and of ``tf_graphpipe.remote_call`` inside ``tf.function`` against
   ``tf-graphpipe serve``; both serve the same trivial model
   (``anchor_servers.py``). Target: op ≥ 5× TF RPC.
3. A 1×4 float32 call: latency p50/p99 for both. Target: op p50 ≥ 5× lower.

Each part also measures what bounds any op on this machine: at batch 4, raw
loopback sockets moving the same bytes (no HTTP, no TensorFlow); for the
small call, a ``tf.function`` that does no I/O at all. Their ratios to TF
RPC are the most any in-graph remote call could reach here.

Servers run in their own processes on free 127.0.0.1 ports and are stopped
at the end. The two paths alternate in blocks; medians over blocks with
min–max.

Usage::

    .venv/bin/python bench/bench_rpc.py [--quick] [--reps N] [--json out.json]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # _common, also with PYTHONSAFEPATH

from _common import (
    FEATURES,
    IMAGE,
    SEED_REQUEST,
    Chart,
    Report,
    anchor_server,
    bench_main,
    graphpipe_server,
    interleaved,
    mb,
    md_table,
    median,
    percentile,
    shape_text,
    spread,
)
from bench_e2e import Ceiling, RawHttp, port_of
from request_bounds import CannedServer


def run(args: argparse.Namespace) -> Report:
    import tensorflow as tf

    import tf_graphpipe
    from tf_graphpipe import _native, dtypes

    float32_wire = dtypes.by_name("float32").id

    quick, tiny = args.quick, args.tiny
    blocks = args.reps or (2 if tiny else 5 if quick else 9)
    calls_per_block = 5 if tiny else 20 if quick else 40      # batch-4 calls per block and path
    small_per_block = 20 if tiny else 100 if quick else 300   # 1×4 calls per block and path
    batch = 4

    report = Report("The op vs TensorFlow's in-graph RPC (tf.distribute.experimental.rpc)")
    with anchor_server("tf-rpc") as rpc, \
            graphpipe_server("anchor_servers:features", "x:float32:-1,224,224,3", "y:float32:-1,7,7,512") as gp, \
            graphpipe_server("anchor_servers:echo", "x:float32:-1,4", "y:float32:-1,4") as gp_small:
        rpc_client = tf.distribute.experimental.rpc.Client.create("grpc", rpc.line.removeprefix("grpc://"))
        features_spec = [tf.TensorSpec([None, *FEATURES], tf.float32)]
        small_spec = [tf.TensorSpec([None, 4], tf.float32)]

        @tf.function
        def rpc_features(x: tf.Tensor) -> tf.Tensor:
            return rpc_client.call("features", [x], output_specs=features_spec).get_value()[0]

        @tf.function
        def rpc_echo(x: tf.Tensor) -> tf.Tensor:
            return rpc_client.call("echo", [x], output_specs=small_spec).get_value()[0]

        url, small_url = gp.line, gp_small.line

        @tf.function
        def op_features(x: tf.Tensor) -> tf.Tensor:
            return tf_graphpipe.remote_call(url, [x], output_dtypes=[tf.float32],
                                            output_shapes=[[None, *FEATURES]])[0]

        @tf.function
        def op_echo(x: tf.Tensor) -> tf.Tensor:
            return tf_graphpipe.remote_call(small_url, [x], output_dtypes=[tf.float32],
                                            output_shapes=[[None, 4]])[0]

        # ---- 1. the seed workload --------------------------------------------------
        seed_shape = (8, *IMAGE) if tiny else SEED_REQUEST  # tiny: 4.8 MB, just over the cap
        seed = tf.constant(np.random.default_rng(0).standard_normal(seed_shape, dtype=np.float32))
        seed_bytes = int(np.prod(seed_shape)) * 4
        try:
            rpc_features(seed).numpy()
            rpc_error = "carried (unexpected)"
        except tf.errors.OpError as error:
            lines = [line.strip() for line in error.message.splitlines() if "larger than max" in line]
            rpc_error = f"{type(error).__name__}: {(lines or error.message.splitlines())[0]}"
            print(f"TF RPC at {shape_text(seed_shape)} float32 ({mb(seed_bytes)}): {rpc_error}", flush=True)
        op_features(seed[:1]).numpy()  # trace + connect
        t0 = time.perf_counter()
        got = op_features(seed).numpy()
        op_seed_s = time.perf_counter() - t0
        assert got.shape == (seed_shape[0], *FEATURES)
        del seed, got
        report.add(
            f"### Payload: {shape_text(seed_shape)} float32 request ({mb(seed_bytes)})", "",
            *md_table(["path", "result"], [
                ["TF RPC (`client.call` in tf.function)", f"refused: `{rpc_error}`"],
                ["tf-graphpipe op (`remote_call` in tf.function)", f"carried, one call {op_seed_s * 1e3:.0f} ms"],
            ], "ll"), "")

        # ---- 2. batch 4 rows/s -----------------------------------------------------
        x = tf.constant(np.random.default_rng(1).standard_normal((batch, *IMAGE), dtype=np.float32))
        for _ in range(3):  # trace, connect, warm
            rpc_features(x).numpy()
            op_features(x).numpy()
        x_np = x.numpy()
        batch_client = tf_graphpipe.Client(url)
        batch_client.infer(x_np)
        ceiling = Ceiling(x_np, batch * int(np.prod(FEATURES)) * 4)
        # Where the time beyond the ceiling goes: the client's side against a
        # server that costs nothing, the server's against a raw HTTP client,
        # and what a tf.function with these tensors costs without any I/O.
        answer = np.full((batch, *FEATURES), 0.5, np.float32)
        canned = CannedServer(bytes(_native.encode_infer_response([answer], [float32_wire])))
        loop_canned = CannedServer(bytes(_native.encode_infer_response([answer], [float32_wire])), event_loop=True)
        canned_client = tf_graphpipe.Client(canned.url)
        request_body = bytes(_native.encode_infer_request([x_np], [float32_wire], [], [], b""))
        raw_http = RawHttp(port_of(url), request_body)
        raw_loop = RawHttp(port_of(loop_canned.url), request_body)
        canned_answer = tf.constant(answer)

        @tf.function
        def op_canned(x: tf.Tensor) -> tf.Tensor:
            return tf_graphpipe.remote_call(canned.url, [x], output_dtypes=[tf.float32],
                                            output_shapes=[[None, *FEATURES]])[0]

        @tf.function
        def no_io(x: tf.Tensor) -> tf.Tensor:
            return canned_answer[:tf.shape(x)[0]]

        for _ in range(3):
            canned_client.infer(x_np)
            op_canned(x).numpy()
            raw_http.call()
            raw_loop.call()
            no_io(x).numpy()
        paths = {
            "rpc": lambda: rpc_features(x).numpy(),
            "op": lambda: op_features(x).numpy(),
            "client": lambda: batch_client.infer(x_np),
            "ceiling": ceiling._call,
            "raw_http": raw_http.call,
            "raw_loop": raw_loop.call,
            "client_canned": lambda: canned_client.infer(x_np),
            "op_canned": lambda: op_canned(x).numpy(),
            "no_io": lambda: no_io(x).numpy(),
        }
        rows: dict[str, list[float]] = {name: [] for name in paths}

        def rate(name: str, fn) -> None:
            t0 = time.perf_counter()
            for _ in range(calls_per_block):
                fn()
            rows[name].append(batch * calls_per_block / (time.perf_counter() - t0))

        for block in range(blocks):
            interleaved(block, [lambda name=name, call=call: rate(name, call)  # type: ignore[misc]
                                for name, call in paths.items()])
        for closing in (batch_client, canned_client, ceiling, raw_http, raw_loop, canned, loop_canned):
            closing.close()
        bound = median(rows["ceiling"]) / median(rows["rpc"])
        ratios = [o / r for o, r in zip(rows["op"], rows["rpc"])]
        ratio = median(rows["op"]) / median(rows["rpc"])
        in_mb, out_mb = mb(batch * int(np.prod(IMAGE)) * 4), mb(batch * int(np.prod(FEATURES)) * 4)
        report.add(
            f"### Batch {batch}: {shape_text((batch, *IMAGE))} float32 ({in_mb}) → "
            f"{shape_text((batch, *FEATURES))} ({out_mb}), one caller", "",
            *md_table(["path", "rows/s median", "min–max", "× TF RPC"], [
                ["TF RPC (anchor)", f"{median(rows['rpc']):.0f}", spread(rows["rpc"], digits=0), "1.00"],
                ["tf-graphpipe op", f"{median(rows['op']):.0f}", spread(rows["op"], digits=0),
                 f"**{ratio:.2f}** ({spread(ratios)} per block)"],
                ["context: tf-graphpipe `Client.infer` (NumPy, no TensorFlow)", f"{median(rows['client']):.0f}",
                 spread(rows["client"], digits=0), f"{median(rows['client']) / median(rows['rpc']):.2f}"],
                ["bound: raw loopback sockets, same bytes (no HTTP, no TensorFlow)", f"{median(rows['ceiling']):.0f}",
                 spread(rows["ceiling"], digits=0), f"{bound:.2f}"],
            ]), "",
            f"({blocks} alternating blocks of {calls_per_block} calls per path. The last row is the most "
            f"any path can move here: no in-graph call can beat TF RPC by more than {bound:.2f}× on this machine.)",
            "")
        report.target("op ≥ 5× TF RPC rows/s at batch 4", f"{ratio:.2f}× (bound here: {bound:.2f}×)", ratio >= 5)
        ms = {name: batch * 1e3 / median(rates) for name, rates in rows.items()}  # per call
        in_graph_bound = ms["ceiling"] / (ms["ceiling"] + ms["no_io"])
        report.add(
            f"Where a batch-{batch} call's time goes (ms per call, from the medians above and below; "
            "“beyond” is the time past the ceiling):", "",
            *md_table(["path", "ms/call", "beyond the ceiling", "× ceiling rows/s"], [
                [label, f"{ms[name]:.3f}", f"{ms[name] - ms['ceiling']:+.3f}", f"{ms['ceiling'] / ms[name]:.2f}"]
                for name, label in [
                    ("ceiling", "raw loopback sockets, same bytes (the ceiling)"),
                    ("raw_loop", "raw-socket HTTP client → an asyncio server answering canned bytes "
                                 "(a Python event loop's floor)"),
                    ("raw_http", "raw-socket HTTP client → `tf-graphpipe serve` (the server's cost)"),
                    ("client_canned", "`Client.infer` → a server answering canned bytes (the client's cost)"),
                    ("client", "`Client.infer` → `tf-graphpipe serve`"),
                    ("op_canned", "op in tf.function → canned server (the op's and TensorFlow's cost)"),
                    ("op", "op in tf.function → `tf-graphpipe serve`"),
                ]
            ]), "",
            f"A tf.function taking this input and returning a slice of a constant of the answer's shape, "
            f"with no I/O, costs {ms['no_io']:.3f} ms per call here; an in-graph call that added nothing else "
            f"to the ceiling would reach {in_graph_bound:.2f}× the ceiling's rows/s.", "")
        of_bound = median(rows["op"]) / median(rows["ceiling"])
        report.target("op ≥ 0.7× the raw loopback bound's rows/s at batch 4",
                      f"{of_bound:.2f}× (Client.infer: {median(rows['client']) / median(rows['ceiling']):.2f}×; "
                      f"bound for any in-graph call here: {in_graph_bound:.2f}×)",
                      of_bound >= 0.7)

        # ---- 3. small-call latency ---------------------------------------------------
        s = tf.constant([[1.0, 2.0, 3.0, 4.0]], tf.float32)
        s_np = s.numpy()
        client = tf_graphpipe.Client(small_url)

        @tf.function
        def tf_floor(x: tf.Tensor) -> tf.Tensor:
            return tf.identity(x)

        paths = {  # name: (label, call)
            "rpc": ("TF RPC, `client.call` in tf.function (anchor)", lambda: rpc_echo(s).numpy()),
            "op": ("tf-graphpipe op, `remote_call` in tf.function", lambda: op_echo(s).numpy()),
            "rpc_eager": ("context: TF RPC called eagerly",
                          lambda: rpc_client.call("echo", [s], output_specs=small_spec).get_value()[0].numpy()),
            "op_eager": ("context: tf-graphpipe op called eagerly",
                         lambda: tf_graphpipe.remote_call(small_url, [s], output_dtypes=[tf.float32],
                                                          output_shapes=[[None, 4]])[0].numpy()),
            "client": ("context: tf-graphpipe `Client.infer` (no TensorFlow)", lambda: client.infer(s_np)),
            "floor": ("context: no network, `tf.function(tf.identity)` + `.numpy()`", lambda: tf_floor(s).numpy()),
        }
        for _ in range(20):
            for _, call in paths.values():
                call()
        lat: dict[str, list[float]] = {k: [] for k in paths}
        block_p50: dict[str, list[float]] = {k: [] for k in paths}

        def latency(name: str) -> None:
            call = paths[name][1]
            samples = []
            for _ in range(small_per_block):
                t0 = time.perf_counter_ns()
                call()
                samples.append((time.perf_counter_ns() - t0) / 1e3)
            lat[name] += samples
            block_p50[name].append(median(samples))

        for block in range(blocks):
            interleaved(block, [lambda k=k: latency(k) for k in paths])
        client.close()
        p50 = {k: median(v) for k, v in lat.items()}
        p99 = {k: percentile(v, 99) for k, v in lat.items()}
        lower = p50["rpc"] / p50["op"]
        small_bound = p50["rpc"] / p50["floor"]
        report.add(
            "### 1×4 float32 call latency (µs), one caller", "",
            *md_table(["path", "p50", "p99", "p50 per block min–max", "p50 TF RPC / p50 this"], [
                [label, f"{p50[k]:.0f}", f"{p99[k]:.0f}", spread(block_p50[k], digits=0),
                 f"**{p50['rpc'] / p50[k]:.2f}**" if k == "op" else f"{p50['rpc'] / p50[k]:.2f}"]
                for k, (label, _) in paths.items()
            ]), "",
            f"({blocks} alternating blocks of {small_per_block} calls per path; p50/p99 over all "
            f"{len(lat['op'])} calls of a path; each call includes `.numpy()` of the result. The last "
            "row is what any tf.function call costs here, network or not: an op taking no time at all "
            f"would be {small_bound:.2f}× lower than TF RPC.)", "")
        report.target("op 1×4 p50 ≥ 5× lower than TF RPC", f"{lower:.2f}× lower (bound here: {small_bound:.2f}×)",
                      lower >= 5)

        report.charts += [
            Chart(f"Batch {batch} rows/s (one caller)", "rows/s", ["TF RPC", "tf-graphpipe op"],
                  [median(rows["rpc"]), median(rows["op"])],
                  [min(rows["rpc"]), min(rows["op"])], [max(rows["rpc"]), max(rows["op"])]),
            Chart("1×4 float32 call p50 latency", "µs",
                  ["TF RPC", "tf-graphpipe op", "TF RPC eager", "tf-graphpipe op eager", "tf-graphpipe Client",
                   "tf.function floor"],
                  [p50[k] for k in paths], [min(block_p50[k]) for k in paths],
                  [max(block_p50[k]) for k in paths]),
        ]
    return report


def main(argv: list[str] | None = None) -> Report:
    return bench_main(__doc__.split("\n\n")[0], run, argv=argv)


if __name__ == "__main__":
    main()
