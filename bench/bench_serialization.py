# SPDX-License-Identifier: Apache-2.0
"""Serialization of the seed workload by every format the seed compared, as
ratios to one memory copy measured in the same run (SPEC section 4).

Each codec runs the four steps of one call, with no network: encode the
request (client), decode it (server), encode the response (server), decode
it (client); a decoded message is a NumPy array the model or caller can use.

- tf-graphpipe: ``tf_graphpipe._native`` as ``Client.infer`` sends the
  request (``copy=False``: the tensor is referenced and sent scatter-gather),
  and, as context, ``copy=True`` (a message owning every byte).
- reference ``graphpipe==1.0.4`` (flatbuffers 1.9), timed in its own venv in
  a worker process that runs its repetition in turn with the others.
- TensorFlow Serving: ``PredictRequest`` / ``PredictResponse`` protobufs
  (``tensorflow-serving-api``), ``tf.make_tensor_proto`` +
  ``SerializeToString``, ``ParseFromString`` + ``tf.make_ndarray``.
- JSON as the seed measured it: ``ujson.dumps(x.tolist())`` /
  ``np.asarray(ujson.loads(...))``; and the standard library's ``json``.
- The floor: ``np.copyto`` of the request and of the response into reused
  buffers (what any format that must copy the tensor pays at least).

Full mode: the seed sizes (request 128×224×224×3 float32, 77 MB; response
128×7×7×512, 12.8 MB); JSON runs there once per library (it takes tens of
seconds), everything else ``--reps`` times. ``--quick``: batch 8 (JSON
twice).

Usage::

    .venv/bin/python bench/bench_serialization.py [--quick] [--reps N] [--json out.json]
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # _common, also with PYTHONSAFEPATH

from _common import (
    FEATURES,
    IMAGE,
    Chart,
    Report,
    bench_env,
    bench_main,
    mb,
    md_table,
    median,
    reference_python,
    shape_text,
    spread,
)
from anchor_wire import (
    json_array,
    json_body,
    predict_request,
    predict_request_array,
    predict_response,
    predict_response_array,
)

STEPS = ("encode request", "decode request", "encode response", "decode response")
FLOAT32 = 10

# Runs in the reference client's venv: one repetition per line read on stdin,
# answered with one JSON line of seconds per step.
REFERENCE_WORKER = r"""
import gc, json, sys, time
import numpy as np
from graphpipe import convert
req_shape = tuple(int(v) for v in sys.argv[1].split(","))
resp_shape = tuple(int(v) for v in sys.argv[2].split(","))
rng = np.random.default_rng(0)
x = rng.standard_normal(req_shape, dtype=np.float32)
y = rng.standard_normal(resp_shape, dtype=np.float32)
def rep():
    t = {}
    s = time.perf_counter()
    req = convert.serialize_infer_request(convert.InferReq(b"", [x], [b"images"], [b"features"]))
    t["encode request"] = time.perf_counter() - s
    s = time.perf_counter()
    got = convert.deserialize_request(req).input_tensors[0]
    t["decode request"] = time.perf_counter() - s
    assert got.shape == req_shape
    s = time.perf_counter()
    resp = convert.serialize_infer_response([y])
    t["encode response"] = time.perf_counter() - s
    s = time.perf_counter()
    out = convert.deserialize_infer_response(resp)[0][0]
    t["decode response"] = time.perf_counter() - s
    assert out.shape == resp_shape
    del req, got, resp, out
    gc.collect()
    return t
rep()
print("ready", flush=True)
for line in sys.stdin:
    print(json.dumps(rep()), flush=True)
"""


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter_ns()
    result = fn()
    return (time.perf_counter_ns() - start) / 1e9, result


class Codec:
    """Four steps; ``rep()`` returns seconds per step."""

    name = ""

    def rep(self) -> dict[str, float]:
        raise NotImplementedError

    def close(self) -> None:
        pass


class LocalCodec(Codec):
    def __init__(self, name: str, x: np.ndarray, y: np.ndarray,
                 encode_req: Callable[[np.ndarray], object], decode_req: Callable[[object], np.ndarray],
                 encode_resp: Callable[[np.ndarray], object], decode_resp: Callable[[object], np.ndarray],
                 received: Callable[[object], object] = lambda m: m) -> None:
        self.name, self.x, self.y = name, x, y
        self.steps = (encode_req, decode_req, encode_resp, decode_resp)
        self.received = received
        # The server decodes the body it received: contiguous bytes.
        self.body = received(encode_req(x))

    def rep(self) -> dict[str, float]:
        encode_req, decode_req, encode_resp, decode_resp = self.steps
        t = {}
        t["encode request"], message = timed(lambda: encode_req(self.x))
        t["decode request"], got = timed(lambda: decode_req(self.body))
        assert got.shape == self.x.shape, got.shape
        t["encode response"], response = timed(lambda: encode_resp(self.y))
        t["decode response"], out = timed(partial(decode_resp, response))
        assert out.shape == self.y.shape
        del message, got, response, out
        return t


class ReferenceCodec(Codec):
    name = "reference graphpipe 1.0.4 (flatbuffers 1.9, own venv)"

    def __init__(self, python: str, req_shape: tuple[int, ...], resp_shape: tuple[int, ...]) -> None:
        self.process = subprocess.Popen(
            [python, "-c", REFERENCE_WORKER, ",".join(map(str, req_shape)), ",".join(map(str, resp_shape))],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=bench_env())
        line = self.process.stdout.readline().strip()
        if line != "ready":
            self.close()
            raise RuntimeError(f"reference worker printed {line!r}")

    def rep(self) -> dict[str, float]:
        self.process.stdin.write("go\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class FloorCodec(Codec):
    """One np.copyto of the request and one of the response into reused
    buffers; reported as 'encode request' (request copy) and 'encode
    response' (response copy)."""

    name = "floor: np.copyto of the same bytes into a reused buffer"

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        self.x, self.y = x, y
        self.xc, self.yc = np.empty_like(x), np.empty_like(y)
        np.copyto(self.xc, x)
        np.copyto(self.yc, y)

    def rep(self) -> dict[str, float]:
        t1, _ = timed(lambda: np.copyto(self.xc, self.x))
        t2, _ = timed(lambda: np.copyto(self.yc, self.y))
        return {"encode request": t1, "decode request": 0.0, "encode response": t2, "decode response": 0.0}


def graphpipe_codec(name: str, x: np.ndarray, y: np.ndarray, copy: bool) -> LocalCodec:
    from tf_graphpipe import _native

    return LocalCodec(
        name, x, y,
        lambda a: _native.encode_infer_request([a], [FLOAT32], ["images"], ["features"], b"", copy=copy),
        lambda body: _native.decode_request(body)[3][0],
        lambda a: _native.encode_infer_response([a], [FLOAT32]),
        lambda m: _native.decode_infer_response(m)[0],
        received=lambda m: bytearray(bytes(m)),
    )


def tf_serving_codec(x: np.ndarray, y: np.ndarray) -> LocalCodec:
    return LocalCodec("TF Serving PredictRequest protobuf (make_tensor_proto, SerializeToString)",
                      x, y, predict_request, lambda body: predict_request_array(body)[0],
                      predict_response, predict_response_array)


def json_codec(name: str, module, x: np.ndarray, y: np.ndarray) -> LocalCodec:
    return LocalCodec(
        name, x, y,
        lambda a: json_body("inputs", a, module),
        lambda body: json_array("inputs", body, module),
        lambda a: json_body("outputs", a, module),
        lambda body: json_array("outputs", body, module),
    )


def run(args: argparse.Namespace) -> Report:
    import ujson

    batch = 2 if args.tiny else 8 if args.quick else 128
    reps = args.reps or (2 if args.tiny else 5 if args.quick else 9)
    json_reps = min(reps, 2) if args.quick else 1
    req_shape, resp_shape = (batch, *IMAGE), (batch, *FEATURES)
    rng = np.random.default_rng(0)
    x = rng.standard_normal(req_shape, dtype=np.float32)
    y = rng.standard_normal(resp_shape, dtype=np.float32)
    payload = x.nbytes + y.nbytes

    codecs: dict[str, Codec] = {
        "floor": FloorCodec(x, y),
        "gp": graphpipe_codec("**tf-graphpipe** (as Client sends it: copy=False)", x, y, copy=False),
        "gp_copy": graphpipe_codec("context: tf-graphpipe, copy=True (message owns every byte)", x, y, copy=True),
    }
    notes = []
    python = reference_python()
    if python is not None:
        codecs["ref"] = ReferenceCodec(str(python), req_shape, resp_shape)
    else:
        notes.append("reference graphpipe 1.0.4: venv unavailable, not measured")
    codecs["tfs"] = tf_serving_codec(x, y)
    codecs["ujson"] = json_codec(f"JSON, ujson {ujson.__version__} (.tolist(), as the seed)", ujson, x, y)
    codecs["json"] = json_codec("JSON, stdlib json", json, x, y)
    slow = {"ujson", "json"}

    samples: dict[str, list[dict[str, float]]] = {k: [] for k in codecs}
    for key, codec in codecs.items():  # warm-up: allocator arenas, imports
        if key not in slow or args.tiny:
            codec.rep()
    for rep in range(reps):
        keys = [k for k in codecs if k not in slow or rep < json_reps]
        for key in (keys if rep % 2 == 0 else keys[::-1]):
            samples[key].append(codecs[key].rep())
            gc.collect()
    for codec in codecs.values():
        codec.close()

    totals = {k: [sum(t.values()) for t in v] for k, v in samples.items()}
    floor = median(totals["floor"])
    headers = ["codec", *[f"{s} ms" for s in STEPS], "total ms (median)", "min–max", "× floor"]
    rows = []
    for key, codec in codecs.items():
        steps = [f"{median([t[s] for t in samples[key]]) * 1e3:.2f}" for s in STEPS]
        if key == "floor":
            steps = [steps[0] + " (copy)", "–", steps[2] + " (copy)", "–"]
        ratio = median(totals[key]) / floor
        ratio_text = f"**{ratio:.2f}**" if key == "gp" else f"{ratio:.1f}" if ratio >= 10 else f"{ratio:.2f}"
        rows.append([codec.name, *steps, f"{median(totals[key]) * 1e3:.2f}", spread(totals[key], 1e3), ratio_text])
    per_rep = [g / f for g, f in zip(totals["gp"], totals["floor"])]
    report = Report("Serialization: encode + decode of request and response, no network")
    report.add(
        f"Request {shape_text(req_shape)} float32 ({mb(x.nbytes)}), response {shape_text(resp_shape)} float32 "
        f"({mb(y.nbytes)}); {reps} interleaved repetitions"
        + (f" (JSON: {json_reps}, it takes tens of seconds at this size)" if json_reps != reps else "")
        + "; medians, min–max of the totals. Decoding yields a NumPy array the model can use.", "",
        *md_table(headers, rows, "l" + "r" * (len(headers) - 1)), "",
        f"tf-graphpipe / floor per repetition: {spread(per_rep)}.", *notes)
    ratio = median(totals["gp"]) / floor
    report.target("tf-graphpipe codec ≤ 1.3× one memcpy", f"{ratio:.2f}×", ratio <= 1.3)
    order = [k for k in ("floor", "gp", "gp_copy", "ref", "tfs", "ujson", "json") if k in codecs]
    short = {"floor": "memcpy floor", "gp": "tf-graphpipe", "gp_copy": "tf-graphpipe copy=True",
             "ref": "graphpipe 1.0.4", "tfs": "TF Serving protobuf", "ujson": "JSON (ujson)", "json": "JSON (stdlib)"}
    report.charts.append(Chart(f"Serialization, {mb(payload)} request + response (log scale)", "ms",
                               [short[k] for k in order], [median(totals[k]) * 1e3 for k in order],
                               [min(totals[k]) * 1e3 for k in order], [max(totals[k]) * 1e3 for k in order],
                               log=True))
    return report


def main(argv: list[str] | None = None) -> Report:
    return bench_main(__doc__.split("\n\n")[0], run, argv=argv)


if __name__ == "__main__":
    main()
