# SPDX-License-Identifier: Apache-2.0
"""The Open Inference Protocol (KServe v2) side of a served model, on the same
port as GraphPipe: the routes of SPEC_V2 section 1, independent of the HTTP
machinery, answered for the one model an ``Endpoint`` serves.

* ``GET /v2``: server metadata, listing ``binary_tensor_data``;
* ``GET /v2/health/live``, ``/v2/health/ready``: 200, or 400 once shutting down;
* ``GET /v2/models/<name>[/versions/<v>]``: model metadata; ``.../ready``;
* ``POST /v2/models/<name>[/versions/<v>]/infer``: JSON, or the binary tensor
  extension when ``Inference-Header-Content-Length`` is sent (whatever the
  Content-Type, or none, as tritonclient sends).

Calls go through the ``Endpoint``'s ``ModelRunner`` (same checks: 400 for the
caller's mistakes, 500 for the model's), its batcher and its workers; only the
decoding and the encoding differ. Errors are ``{"error": "..."}`` bodies; a
model name other than the served one is 404, a wrong method 405. HEAD is
answered like GET. Everything that runs on the event loop is O(1) in the size
of binary tensors (views of the body).
"""
from __future__ import annotations

import functools
import logging
from typing import Any
from urllib.parse import unquote

from tf_graphpipe import __version__
from tf_graphpipe.server.inference import BadRequest, Call, CallError, ModelRunner
from tf_graphpipe.server.v2_wire import (
    V2Answer,
    V2Request,
    datatype_of,
    decode_request,
    encode_outputs,
    json_answer,
    raw_binary_request,
)

__all__ = ["V2Endpoint", "is_v2_path"]

log = logging.getLogger("tf_graphpipe.server")

GET_ALLOW = b"allow: GET, HEAD\r\n"
POST_ALLOW = b"allow: POST\r\n"

Answer = tuple[int, V2Answer]


def is_v2_path(path: str | bytes) -> bool:
    """True for ``/v2`` and every path under it."""
    prefix = b"/v2" if isinstance(path, bytes) else "/v2"
    return path.startswith(prefix) and (len(path) == 3 or path[3:4] in (b"/", "/"))


class _MethodNotAllowed(CallError):
    status = 405

    def __init__(self, message: str, allow: bytes) -> None:
        super().__init__(message)
        self.allow = allow


class _NotFound(CallError):
    status = 404


class V2Endpoint:
    """The v2 routes of one served model.

    Args:
        endpoint: the GraphPipe ``Endpoint`` whose runner, batcher, workers,
            size limit and readiness this shares (any object with ``runner``,
            ``batcher``, ``workers``, ``max_request_bytes`` and ``ready``).
    """

    def __init__(self, endpoint: Any) -> None:
        self.endpoint = endpoint
        self.runner: ModelRunner = endpoint.runner
        model = self.runner.model
        self.name, self.version = model.name, str(model.version)
        self.server_metadata = json_answer(
            {"name": "tf-graphpipe", "version": __version__, "extensions": ["binary_tensor_data"]})
        self.model_metadata = json_answer({
            "name": self.name,
            "versions": [self.version],
            "platform": "tf-graphpipe",
            "inputs": [_tensor_metadata(s) for s in model.inputs],
            "outputs": [_tensor_metadata(s) for s in model.outputs],
        })
        self.live = json_answer({"live": True})
        self.ready = json_answer({"ready": True})
        self.not_ready = json_answer({"ready": False})
        self.model_ready = json_answer({"name": self.name, "ready": True})
        self.model_not_ready = json_answer({"name": self.name, "ready": False})

    # ---- routes ---------------------------------------------------------------------

    def handle(self, method: bytes, path: str, body: Any = b"", header_length: int | None = None) -> Call | Answer:
        """One request: a ``Call`` for the model workers (then ``execute``), or
        the answer itself (status, answer). Never raises. HEAD bodies are the
        caller's to drop."""
        try:
            return self._route(method, path, body, header_length)
        except Exception as exc:  # noqa: BLE001 - the caller's mistake, or ours: an answer
            return self.error_answer(exc)

    def _route(self, method: bytes, path: str, body: Any, header_length: int | None) -> Call | Answer:
        parts = path.rstrip("/").split("/")[2:]  # after "", "v2"
        if not parts:
            return self._get(method, self.server_metadata)
        if parts[0] == "health" and len(parts) == 2 and parts[1] in ("live", "ready"):
            if parts[1] == "live":
                return self._get(method, self.live)
            ready = self.endpoint.ready
            return self._get(method, self.ready if ready else self.not_ready, 200 if ready else 400)
        if parts[0] != "models" or len(parts) < 2:
            raise _NotFound(f"unknown v2 path {path!r}")
        name, rest = unquote(parts[1]), parts[2:]
        version = None
        if len(rest) >= 2 and rest[0] == "versions":
            version, rest = unquote(rest[1]), rest[2:]
        if len(rest) > 1 or (rest and rest[0] not in ("ready", "infer")):
            raise _NotFound(f"unknown v2 path {path!r}")
        if name != self.name or (version is not None and version != self.version):
            what = f"'{name}'" if version is None else f"'{name}' version {version}"
            raise _NotFound(f"Request for unknown model: {what} is not found (this server serves "
                            f"'{self.name}' version {self.version})")
        if not rest:
            return self._get(method, self.model_metadata)
        if rest[0] == "ready":
            ready = self.endpoint.ready
            return self._get(method, self.model_ready if ready else self.model_not_ready, 200 if ready else 400)
        if method != b"POST":
            raise _MethodNotAllowed(f"{method.decode('latin-1')} {path}: infer takes POST", POST_ALLOW)
        return self.prepare(body, header_length)

    @staticmethod
    def _get(method: bytes, answer: V2Answer, status: int = 200) -> Answer:
        if method not in (b"GET", b"HEAD"):
            raise _MethodNotAllowed(f"{method.decode('latin-1')}: this v2 route takes GET", GET_ALLOW)
        return status, answer

    # ---- inference ------------------------------------------------------------------

    def prepare(self, body: Any, header_length: int | None) -> Call:
        """An infer body as a checked ``Call`` whose answer is v2. Raises
        CallError (400) for bad bodies."""
        if header_length == 0 and len(body):
            request = self._raw_binary(body)
        else:
            request = decode_request(body, header_length)
        call = self.runner.prepare(b"", request.input_names, request.inputs, request.output_names)
        call.encode = functools.partial(self._encode, request)
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

    def execute(self, call: Call) -> Answer:
        """On a worker thread: runs ``call``; (status, answer), never raises."""
        try:
            return 200, self.runner.execute(call)
        except Exception as exc:  # noqa: BLE001 - every failure becomes an answer
            return self.error_answer(exc)

    def error_answer(self, exc: BaseException) -> Answer:
        """(status, ``{"error": ...}`` answer) for an exception; logs it."""
        if isinstance(exc, CallError):
            if exc.status >= 500:
                log.error("v2 -> %d: %s", exc.status, exc.message)
            elif exc.status != 404:
                log.warning("v2 -> %d: %s", exc.status, exc.message)
            return exc.status, json_answer({"error": exc.message}, getattr(exc, "allow", b""))
        log.error("v2 -> 500: server error", exc_info=exc)
        return 500, json_answer({"error": self.runner.describe(exc, "server error")})


def _tensor_metadata(spec: Any) -> dict[str, Any]:
    return {"name": spec.name, "datatype": datatype_of(spec.wire_type), "shape": list(spec.shape or ())}
