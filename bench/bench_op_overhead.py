# SPDX-License-Identifier: Apache-2.0
"""What the op adds to a call, beside ``Client.infer`` of the same call to the
same server and TensorFlow's own cost of a ``tf.function`` call: ms per call
(median of interleaved blocks, min–max), as a ratio of the raw loopback
ceiling and of ``Client.infer``, CPU time and page faults per call of this
process (``getrusage``).

* **raw loopback ceiling**: bench_e2e's raw socket to a server answering
  from memory.
* **Client.infer**: the blocking call on the calling thread, NumPy out.
* **op, .numpy()**: ``remote_call`` in a ``tf.function``, ``.numpy()`` of its
  output. TensorFlow's ``EagerTensor.numpy()`` always copies the tensor.
* **op, np.asarray**: the same, read with ``np.asarray`` (no copy).
* **no-I/O tf.function, .numpy()**: a ``tf.function`` of the same input
  returning a reshape of a constant of the answer's shape: what TensorFlow
  spends on a call (dispatch, executor, ``.numpy()``) with no I/O at all.

``op − Client − no-I/O`` is what is left for the op itself: the thread hops
of an asynchronous kernel (TensorFlow's pool to the transfer thread and
back) and the kernel's own work.

Usage::

    .venv/bin/python bench/bench_op_overhead.py                # batch 4, 7 blocks
    .venv/bin/python bench/bench_op_overhead.py --batch 128    # the seed workload
    .venv/bin/python bench/bench_op_overhead.py --quick
"""
from __future__ import annotations

import argparse
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import FEATURES, IMAGE, Report, bench_main, graphpipe_server, interleaved, mb, median, spread  # noqa: E402
from bench_e2e import Ceiling  # noqa: E402


def _block(call: Callable[[], object], calls: int) -> tuple[float, float, float]:
    """ms, CPU ms and minor page faults per call over `calls` calls."""
    before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    for _ in range(calls):
        call()
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return seconds / calls * 1e3, cpu / calls * 1e3, (after.ru_minflt - before.ru_minflt) / calls


def run(args: argparse.Namespace) -> Report:
    import tensorflow as tf

    import tf_graphpipe

    batch = args.batch
    blocks = args.reps or (1 if args.tiny else 3 if args.quick else 7)
    calls = max(2, (2 if args.tiny else 10 if args.quick else 40) * 4 // batch)
    x = np.random.default_rng(1).standard_normal((batch, *IMAGE), dtype=np.float32)
    answer_bytes = batch * int(np.prod(FEATURES)) * 4
    report = Report(f"The op's own overhead: batch {batch} ({mb(x.nbytes)} in, {mb(answer_bytes)} out)")
    with graphpipe_server("anchor_servers:features", "x:float32:-1,224,224,3", "y:float32:-1,7,7,512") as server:
        url = server.line
        client = tf_graphpipe.Client(url)
        ceiling = Ceiling(x, answer_bytes)
        tx = tf.constant(x)
        answer_shape = tf.constant(np.ones((batch, *FEATURES), np.float32))

        @tf.function
        def op(t: tf.Tensor) -> tf.Tensor:
            return tf_graphpipe.remote_call(url, [t], output_dtypes=[tf.float32],
                                            output_shapes=[[None, *FEATURES]])[0]

        @tf.function
        def no_io(t: tf.Tensor) -> tf.Tensor:
            return tf.reshape(answer_shape, [tf.shape(t)[0], *FEATURES])

        sides: dict[str, Callable[[], object]] = {
            "raw loopback ceiling": ceiling._call,
            "Client.infer": lambda: client.infer(x),
            "op, .numpy()": lambda: op(tx).numpy(),
            "op, np.asarray": lambda: np.asarray(op(tx)),
            "no-I/O tf.function, .numpy()": lambda: no_io(tx).numpy(),
        }
        for call in sides.values():  # warm-up: connections, tracing, buffers
            for _ in range(3):
                call()
        measured: dict[str, list[tuple[float, float, float]]] = {name: [] for name in sides}
        try:
            for rep in range(blocks):
                interleaved(rep, [lambda n=name, c=call: measured[n].append(_block(c, calls))
                                  for name, call in sides.items()])
        finally:
            ceiling.close()
            client.close()

    def ms(name: str) -> float:
        return median([m[0] for m in measured[name]])

    report.add(f"{calls} calls per block, {blocks} interleaved blocks; medians (min–max of the blocks' ms).", "")
    report.add("| path | ms/call | min–max | × ceiling | × Client | CPU ms/call | faults/call |",
               "|---|---:|---:|---:|---:|---:|---:|")
    for name, values in measured.items():
        report.add(f"| {name} | {ms(name):.3f} | {spread([v[0] for v in values], 1, 3)} | "
                   f"{ms('raw loopback ceiling') / ms(name):.2f} | {ms('Client.infer') / ms(name):.2f} | "
                   f"{median([v[1] for v in values]):.3f} | {median([v[2] for v in values]):.1f} |")
    own = ms("op, .numpy()") - ms("Client.infer") - ms("no-I/O tf.function, .numpy()")
    report.target("op in tf.function vs the raw ceiling (context: bench_rpc, bench_e2e hold the targets)",
                  f"{ms('raw loopback ceiling') / ms('op, .numpy()'):.2f}x", None)
    report.target("left for the op itself: op − Client − no-I/O tf.function", f"{own:.3f} ms", None)
    return report


def main() -> None:
    def extra(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--batch", type=int, default=4, help="images per call (128: the seed workload)")

    bench_main(__doc__.splitlines()[0], run, extra)


if __name__ == "__main__":
    main()
