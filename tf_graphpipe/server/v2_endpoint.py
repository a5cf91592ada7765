# SPDX-License-Identifier: Apache-2.0
"""The Open Inference Protocol (KServe v2) side of one served model,
independent of the HTTP machinery (the routes that lead here are the
dispatcher's): metadata and readiness answers, an infer body turned into a
checked ``Call`` whose answer is v2, and how v2 renders answers and errors
(``{"error": "..."}`` bodies).

* model metadata: name, versions, platform, inputs and outputs with v2
  datatypes and shapes;
* infer: JSON, or the binary tensor extension when
  ``Inference-Header-Content-Length`` is sent (whatever the Content-Type, or
  none, as tritonclient sends); a header length of 0 with a body is a raw
  binary request for a one-input model.

Calls go through the model's ``ModelRunner`` (same checks as GraphPipe: 400
for the caller's mistakes, 500 for the model's); only the decoding and the
encoding differ. Everything that runs on the event loop is O(1) in the size
of binary tensors (views of the body).
"""
from __future__ import annotations

import functools
from typing import Any

from tf_graphpipe import __version__
from tf_graphpipe.server.answer import Answer
from tf_graphpipe.server.errors import BadRequest, Failure
from tf_graphpipe.server.inference import Call, ModelRunner
from tf_graphpipe.server.v2_wire import (
    V2Answer,
    V2Request,
    datatype_of,
    decode_request,
    encode_outputs,
    json_answer,
    raw_binary_request,
)

__all__ = ["V2_WIRE", "V2Endpoint", "V2Wire", "is_v2_path", "server_answers"]


def is_v2_path(path: str | bytes) -> bool:
    """True for ``/v2`` and every path under it."""
    if isinstance(path, bytes):
        return path.startswith(b"/v2") and (len(path) == 3 or path[3:4] == b"/")
    return path.startswith("/v2") and (len(path) == 3 or path[3:4] == "/")


class V2Wire:
    """How v2 renders a call's result and an error."""

    name = "v2"

    @staticmethod
    def ok(result: V2Answer) -> Answer:
        return Answer.of_v2(200, result)

    @staticmethod
    def error(failure: Failure) -> Answer:
        return Answer.of_v2(failure.status, json_answer({"error": failure.message}, failure.headers), failure.close)


V2_WIRE = V2Wire()


def _json(value: Any, status: int = 200) -> Answer:
    return Answer.of_v2(status, json_answer(value))


def server_answers() -> dict[str, Answer]:
    """The server's own v2 answers: ``metadata`` (``GET /v2``, listing
    ``binary_tensor_data``), ``live``, ``ready`` and ``not_ready`` (400, as
    Triton answers while shutting down)."""
    return {
        "metadata": _json({"name": "tf-graphpipe", "version": __version__, "extensions": ["binary_tensor_data"]}),
        "live": _json({"live": True}),
        "ready": _json({"ready": True}),
        "not_ready": _json({"ready": False}, 400),
    }


class V2Endpoint:
    """v2 for one model.

    Args:
        runner: checks, runs and encodes calls to the model (shared with its
            GraphPipe side).
    """

    wire = V2_WIRE

    def __init__(self, runner: ModelRunner) -> None:
        self.runner = runner
        model = runner.model
        self.name, self.version = model.name, str(model.version)
        self.model_metadata = _json({
            "name": self.name,
            "versions": [self.version],
            "platform": "tf-graphpipe",
            "inputs": [_tensor_metadata(s) for s in model.inputs],
            "outputs": [_tensor_metadata(s) for s in model.outputs],
        })
        self._ready = _json({"name": self.name, "ready": True})
        self._not_ready = _json({"name": self.name, "ready": False}, 400)

    def metadata(self, body: Any, header_length: int | None) -> Answer:
        return self.model_metadata

    def readiness(self, ready: bool) -> Answer:
        """``.../ready``: 200 when ready, else 400 (as Triton answers)."""
        return self._ready if ready else self._not_ready

    def prepare(self, body: Any, header_length: int | None) -> Call:
        """An infer body as a checked ``Call`` whose answer is v2. Raises
        BadRequest for bad bodies."""
        if header_length == 0 and len(body):
            request = self._raw_binary(body)
        else:
            request = decode_request(body, header_length)
        call = self.runner.prepare(b"", request.input_names, request.inputs, request.output_names)
        call.encode = functools.partial(self._encode, request)
        call.timeout_us = request.timeout_us
        return call

    def _raw_binary(self, body: Any) -> V2Request:
        inputs = self.runner.model.inputs
        if len(inputs) != 1:
            raise BadRequest(
                f"a raw binary request needs a model with one input; {self.name!r} has {len(inputs)}")
        spec = inputs[0]
        return raw_binary_request(body, spec.name, spec.wire_type, spec.shape)

    def _encode(self, request: V2Request, outputs: list[tuple[str, Any]]) -> V2Answer:
        return encode_outputs(self.name, self.version, request.id, outputs, request.binary, request.binary_default)


def _tensor_metadata(spec: Any) -> dict[str, Any]:
    return {"name": spec.name, "datatype": datatype_of(spec.wire_type), "shape": list(spec.shape or ())}
