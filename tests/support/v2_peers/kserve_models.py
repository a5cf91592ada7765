# SPDX-License-Identifier: Apache-2.0
"""The models the v2 tests call on kserve's ModelServer. Runs in the kserve
venv (tests/support/peer_venvs.py), never in the project's environment:

    python kserve_models.py HTTP_PORT

ModelServer binds 0.0.0.0 (hard-coded in kserve 0.21.0's RESTServer); this
script makes it bind 127.0.0.1 only, with no gRPC server. Prints "READY"
once it accepts connections. kserve has no BF16 (SPEC_V2 section 2).
"""
from __future__ import annotations

import socket
import sys
import threading
import time
import uuid

import uvicorn

_Config = uvicorn.Config


class _LoopbackConfig(_Config):
    def __init__(self, *args, **kwargs):
        kwargs["host"] = "127.0.0.1"
        super().__init__(*args, **kwargs)


uvicorn.Config = _LoopbackConfig  # before kserve imports its RESTServer

import numpy as np  # noqa: E402
from kserve import InferOutput, InferRequest, InferResponse, Model, ModelServer  # noqa: E402
from kserve.utils.utils import from_np_dtype  # noqa: E402


def arith(x, y):
    return {"sum": x.astype(np.float64) + y, "neg": -y, "positive": x > 0}


def echo_bytes(s):
    items = [item if isinstance(item, bytes) else str(item).encode() for item in s.ravel()]
    same = np.array(items, dtype=object).reshape(s.shape)
    lengths = np.array([len(item) for item in items], dtype=np.int32).reshape(s.shape)
    return {"same": same, "lengths": lengths}


def halves(h, flags):
    return {"doubled": (h * 2).astype(np.float16), "negated": np.logical_not(flags)}


def ident(u, i, f):
    return {"u_out": u, "i_out": i, "f_out": f}


def fail(x):
    raise RuntimeError("the model failed on purpose")


def spec(name, datatype, shape):
    return {"name": name, "datatype": datatype, "shape": shape}


MODELS = {
    "arith": (arith, [spec("x", "FP32", [-1, -1]), spec("y", "INT64", [-1, -1])],
              [spec("sum", "FP64", [-1, -1]), spec("neg", "INT64", [-1, -1]), spec("positive", "BOOL", [-1, -1])]),
    "echo_bytes": (echo_bytes, [spec("s", "BYTES", [-1])], [spec("same", "BYTES", [-1]), spec("lengths", "INT32", [-1])]),
    "halves": (halves, [spec("h", "FP16", [-1]), spec("flags", "BOOL", [-1])],
               [spec("doubled", "FP16", [-1]), spec("negated", "BOOL", [-1])]),
    "ident": (ident, [spec("u", "UINT64", [-1]), spec("i", "INT64", [-1]), spec("f", "FP32", [-1])],
              [spec("u_out", "UINT64", [-1]), spec("i_out", "INT64", [-1]), spec("f_out", "FP32", [-1])]),
    "fail": (fail, [spec("x", "FP32", [-1])], [spec("y", "FP32", [-1])]),
}


class FunctionModel(Model):
    def __init__(self, name, fn, inputs, outputs):
        super().__init__(name)
        self.fn, self.inputs, self.outputs = fn, inputs, outputs
        self.ready = True

    def get_input_types(self):
        return self.inputs

    def get_output_types(self):
        return self.outputs

    async def predict(self, payload: InferRequest, headers=None, response_headers=None) -> InferResponse:
        arrays = {i.name: i.as_numpy() for i in payload.inputs}
        results = self.fn(**arrays)
        outputs = []
        for entry in self.outputs:
            value = np.asarray(results[entry["name"]])
            datatype = "BYTES" if value.dtype == object else from_np_dtype(value.dtype)
            outputs.append(InferOutput(name=entry["name"], shape=list(value.shape), datatype=datatype, data=value))
        # A JSON request without `id` reaches the model with id None, which
        # kserve's own response schema then refuses (500): answer with one.
        return InferResponse(
            response_id=payload.id or str(uuid.uuid4()), model_name=self.name, infer_outputs=outputs,
            use_binary_outputs=payload.use_binary_outputs, requested_outputs=payload.request_outputs,
        )


def wait_and_announce(port: int) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            print("READY", flush=True)
            return
        except OSError:
            time.sleep(0.1)


def main() -> None:
    port = int(sys.argv[1])
    sys.argv = sys.argv[:1]  # ModelServer reads its own flags from argv
    models = [FunctionModel(name, *entry) for name, entry in MODELS.items()]
    threading.Thread(target=wait_and_announce, args=(port,), daemon=True).start()
    ModelServer(http_port=port, enable_grpc=False, workers=1).start(models)


if __name__ == "__main__":
    main()
