# SPDX-License-Identifier: Apache-2.0
"""ONNX models served by ``tf-graphpipe serve``, against ONNX Runtime itself.

* Compute-bound: the committed PyTorch CNN (``examples/pytorch_cnn``) at
  batch 64, rows/s through ``Client`` -> ``tf-graphpipe serve`` against
  ONNX Runtime called in this process on the same inputs with the same
  session settings (the server's defaults). Target >= 0.9x.
* Per-call overhead: p50 of a 1x4 float32 call to a trivial ONNX model
  (Identity) against the same call to a trivial Python callable model,
  both through ``Client``. Target <= 1.3x: ONNX adds nothing per call beyond
  the run itself.
* I/O binding, in process: ``session.run`` (outputs in ONNX Runtime's own
  buffers) plus the one copy the GraphPipe answer makes, against binding the
  output into a preallocated buffer (what binding into the answer's buffer
  would cost: no copy, a binding per call). Informational: it says whether
  binding into the answer would win.

Servers and measurements alternate (``interleaved``); each figure is the
median over repetitions.

    .venv/bin/python bench/bench_onnx.py [--quick] [--reps N]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import REPO, Report, Server, bench_main, interleaved, md_table  # noqa: E402

CNN = REPO / "examples" / "pytorch_cnn" / "model.onnx"
CNN_BATCH = 64


def identity(x: np.ndarray) -> np.ndarray:
    """The trivial Python callable model (served as ``bench_onnx:identity``)."""
    return x


def trivial_onnx(path: Path) -> Path:
    """``x`` float32 [batch, n] -> Identity -> ``y``."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])], "trivial",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "n"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "n"])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    onnx.save(model, str(path))
    return path


def serve(*args: str) -> Server:
    return Server([sys.executable, "-m", "tf_graphpipe", "serve", *args, "--host", "127.0.0.1", "--port", "0",
                   "--log-level", "warning"], name=f"tf-graphpipe serve {args[0]}")


def session(path: Path) -> Any:
    """An in-process session with the server's default settings."""
    import onnxruntime

    from tf_graphpipe.server.onnx_models import SessionSettings

    return onnxruntime.InferenceSession(str(path), SessionSettings().session_options(onnxruntime),
                                        providers=["CPUExecutionProvider"])


def timed(call: Callable[[], object], count: int) -> list[float]:
    times = []
    for _ in range(count):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return times


def compute_bound(args: argparse.Namespace, report: Report) -> None:
    import tf_graphpipe

    images = np.random.default_rng(0).standard_normal((CNN_BATCH, 3, 32, 32)).astype(np.float32)
    calls = 3 if args.quick else 10
    reps = args.reps or (1 if args.tiny else 3 if args.quick else 5)
    ort_session = session(CNN)
    with serve(str(CNN)) as server:
        client = tf_graphpipe.Client(server.line, timeout=120)
        for _ in range(2):  # warm both: first runs pay for allocation and page faults
            client.infer(images)
            ort_session.run(None, {"images": images})
        served: list[float] = []
        local: list[float] = []
        for rep in range(reps):
            interleaved(rep, [
                lambda: served.append(CNN_BATCH * calls / sum(timed(lambda: client.infer(images), calls))),
                lambda: local.append(CNN_BATCH * calls / sum(
                    timed(lambda: ort_session.run(None, {"images": images}), calls))),
            ])
    ratio = statistics.median(served) / statistics.median(local)
    report.add(f"### Compute-bound: the PyTorch CNN at batch {CNN_BATCH} ({calls} calls a repetition, "
               f"{reps} repetitions)", "",
               *md_table(["path", "rows/s (median)", "min–max"], [
                   ["ONNX Runtime in process (same settings)", f"{statistics.median(local):.0f}",
                    f"{min(local):.0f}–{max(local):.0f}"],
                   ["Client -> tf-graphpipe serve", f"{statistics.median(served):.0f}",
                    f"{min(served):.0f}–{max(served):.0f}"],
               ]), "")
    report.target("CNN batch 64 rows/s: serve / ONNX Runtime in process >= 0.9x", f"{ratio:.2f}x", ratio >= 0.9)


def per_call(args: argparse.Namespace, report: Report, directory: Path) -> None:
    import tf_graphpipe

    x = np.ones((1, 4), np.float32)
    calls = 300 if args.quick else 2000
    reps = args.reps or (1 if args.tiny else 3 if args.quick else 5)
    onnx_path = trivial_onnx(directory / "trivial.onnx")
    with serve(str(onnx_path)) as onnx_server, \
            serve("bench_onnx:identity", "--input-spec", "x:float32:-1,4", "--output-spec", "y:float32:-1,4") \
            as callable_server:
        onnx_client = tf_graphpipe.Client(onnx_server.line, timeout=30)
        callable_client = tf_graphpipe.Client(callable_server.line, timeout=30)
        for client in (onnx_client, callable_client):  # warm up; lets both servers start running calls inline
            timed(lambda c=client: c.infer(x), 50)
        onnx_p50: list[float] = []
        callable_p50: list[float] = []
        for rep in range(reps):
            interleaved(rep, [
                lambda: onnx_p50.append(statistics.median(timed(lambda: onnx_client.infer(x), calls))),
                lambda: callable_p50.append(statistics.median(timed(lambda: callable_client.infer(x), calls))),
            ])
    ratio = statistics.median(onnx_p50) / statistics.median(callable_p50)
    report.add(f"### Per call: 1x4 float32, {calls} sequential calls a repetition, {reps} repetitions", "",
               *md_table(["model", "p50 µs (median)", "min–max"], [
                   ["trivial Python callable", f"{statistics.median(callable_p50) * 1e6:.0f}",
                    f"{min(callable_p50) * 1e6:.0f}–{max(callable_p50) * 1e6:.0f}"],
                   ["trivial ONNX model (Identity)", f"{statistics.median(onnx_p50) * 1e6:.0f}",
                    f"{min(onnx_p50) * 1e6:.0f}–{max(onnx_p50) * 1e6:.0f}"],
               ]), "")
    report.target("1x4 p50: trivial ONNX / trivial callable <= 1.3x", f"{ratio:.2f}x", ratio <= 1.3)


def binding_case(sess: Any, input_name: str, output_name: str, x: np.ndarray, out_shape: tuple[int, ...],
                 calls: int, reps: int) -> tuple[float, float]:
    """Median seconds of (run + one copy, run bound into the answer's buffer)."""
    # Each answer is a fresh buffer (as each encoded answer is), so both
    # paths pay for its pages; run() also pays for ONNX Runtime's own.
    def run_then_copy() -> None:
        out = sess.run([output_name], {input_name: x})[0]
        answer = np.empty(out_shape, np.float32)
        np.copyto(answer, out)  # the one copy the GraphPipe answer makes

    def bound() -> None:
        answer = np.empty(out_shape, np.float32)
        binding = sess.io_binding()
        binding.bind_cpu_input(input_name, x)
        binding.bind_output(output_name, "cpu", 0, np.float32, list(out_shape), answer.ctypes.data)
        sess.run_with_iobinding(binding)

    run_then_copy(), bound()
    plain: list[float] = []
    bound_times: list[float] = []
    for rep in range(reps):
        interleaved(rep, [lambda: plain.append(statistics.median(timed(run_then_copy, calls))),
                          lambda: bound_times.append(statistics.median(timed(bound, calls)))])
    return statistics.median(plain), statistics.median(bound_times)


def io_binding(args: argparse.Namespace, report: Report, directory: Path) -> None:
    trivial = session(trivial_onnx(directory / "binding.onnx"))
    cnn = session(CNN)
    small = 200 if args.quick else 1000
    cases = [
        ("trivial 1x4", trivial, "x", "y", np.ones((1, 4), np.float32), (1, 4), small),
        ("trivial 4 MB", trivial, "x", "y", np.ones((1024, 1024), np.float32), (1024, 1024), 20),
        ("trivial 64 MB", trivial, "x", "y", np.ones((4096, 4096), np.float32), (4096, 4096), 5),
        (f"CNN batch {CNN_BATCH} (logits)", cnn, "images", "logits",
         np.ones((CNN_BATCH, 3, 32, 32), np.float32), (CNN_BATCH, 10), 3 if args.quick else 10),
    ]
    reps = args.reps or (1 if args.tiny else 3 if args.quick else 5)
    rows = []
    for label, sess, input_name, output_name, x, out_shape, calls in cases:
        plain, bound = binding_case(sess, input_name, output_name, x, out_shape, calls, reps)
        rows.append([label, f"{plain * 1e6:.0f}", f"{bound * 1e6:.0f}", f"{bound / plain:.2f}x"])
    report.add("### I/O binding into the answer's buffer (in process, no network)", "",
               *md_table(["output", "run + one copy µs", "bound into the buffer µs", "bound / run"], rows), "",
               "Binding the output into the answer's buffer needs the output's shape before the run "
               "and a GraphPipe answer allocated with room for the outputs before they exist; it pays "
               "only where copying the output costs more than the binding (large outputs). v2 binary "
               "answers already send ONNX Runtime's own buffer, with no copy.", "")


def run(args: argparse.Namespace) -> Report:
    report = Report("ONNX models: tf-graphpipe serve vs ONNX Runtime")
    with tempfile.TemporaryDirectory() as tmp:
        compute_bound(args, report)
        per_call(args, report, Path(tmp))
        io_binding(args, report, Path(tmp))
    return report


if __name__ == "__main__":
    bench_main(__doc__.splitlines()[0], run)
