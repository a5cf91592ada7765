# SPDX-License-Identifier: Apache-2.0
"""The models the v2 tests call on a real Triton server (PyTriton). Runs in
the Triton venv (tests/support/peer_venvs.py), never in the project's environment:

    python triton_models.py HTTP_PORT GRPC_PORT METRICS_PORT

Binds 127.0.0.1 only, prints "READY" once Triton serves, stops on SIGTERM.
PyTriton needs a fixed dtype and rank per tensor (SPEC_V2 section 7); it has
no BF16.
"""
from __future__ import annotations

import signal
import sys
import threading

import numpy as np
from pytriton.model_config import ModelConfig, Tensor
from pytriton.triton import Triton, TritonConfig


def per_request(fn):
    """PyTriton hands a list of requests; each is a dict name -> array."""

    def infer(requests):
        return [fn(**{name: request[name] for name in request}) for request in requests]

    return infer


def arith(x, y):
    return {"sum": x.astype(np.float64) + y, "neg": -y, "positive": x > 0}


def echo_bytes(s):
    lengths = np.array([len(item) for item in s.ravel()], dtype=np.int32).reshape(s.shape)
    return {"same": s, "lengths": lengths}


def halves(h, flags):
    return {"doubled": (h * 2).astype(np.float16), "negated": np.logical_not(flags)}


def ident(u, i, f):
    return {"u_out": u, "i_out": i, "f_out": f}


FEATURES = np.zeros((128, 7, 7, 512), np.float32)


def seed(images):
    # The seed workload's answer (bench): [batch, 7, 7, 512] float32.
    n = images.shape[0]
    out = FEATURES[:n] if n <= len(FEATURES) else np.zeros((n, 7, 7, 512), np.float32)
    return {"features": out}


def fail(x):
    raise RuntimeError("the model failed on purpose")


MODELS = [
    ("arith", arith,
     [Tensor(name="x", dtype=np.float32, shape=(-1, -1)), Tensor(name="y", dtype=np.int64, shape=(-1, -1))],
     [Tensor(name="sum", dtype=np.float64, shape=(-1, -1)), Tensor(name="neg", dtype=np.int64, shape=(-1, -1)),
      Tensor(name="positive", dtype=np.bool_, shape=(-1, -1))]),
    ("echo_bytes", echo_bytes,
     [Tensor(name="s", dtype=np.bytes_, shape=(-1,))],
     [Tensor(name="same", dtype=np.bytes_, shape=(-1,)), Tensor(name="lengths", dtype=np.int32, shape=(-1,))]),
    ("halves", halves,
     [Tensor(name="h", dtype=np.float16, shape=(-1,)), Tensor(name="flags", dtype=np.bool_, shape=(-1,))],
     [Tensor(name="doubled", dtype=np.float16, shape=(-1,)), Tensor(name="negated", dtype=np.bool_, shape=(-1,))]),
    ("ident", ident,
     [Tensor(name="u", dtype=np.uint64, shape=(-1,)), Tensor(name="i", dtype=np.int64, shape=(-1,)),
      Tensor(name="f", dtype=np.float32, shape=(-1,))],
     [Tensor(name="u_out", dtype=np.uint64, shape=(-1,)), Tensor(name="i_out", dtype=np.int64, shape=(-1,)),
      Tensor(name="f_out", dtype=np.float32, shape=(-1,))]),
    ("seed", seed,
     [Tensor(name="images", dtype=np.float32, shape=(-1, 224, 224, 3))],
     [Tensor(name="features", dtype=np.float32, shape=(-1, 7, 7, 512))]),
    ("fail", fail,
     [Tensor(name="x", dtype=np.float32, shape=(-1,))],
     [Tensor(name="y", dtype=np.float32, shape=(-1,))]),
]


def main() -> None:
    http_port, grpc_port, metrics_port = (int(a) for a in sys.argv[1:4])
    config = TritonConfig(
        http_address="127.0.0.1", http_port=http_port,
        grpc_address="127.0.0.1", grpc_port=grpc_port,
        metrics_address="127.0.0.1", metrics_port=metrics_port,
        log_verbose=0, exit_on_error=True,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with Triton(config=config) as triton:
        for name, fn, inputs, outputs in MODELS:
            triton.bind(model_name=name, infer_func=per_request(fn), inputs=inputs, outputs=outputs,
                        config=ModelConfig(batching=False), strict=False)
        triton.run()
        print("READY", flush=True)
        stop.wait()


if __name__ == "__main__":
    main()
