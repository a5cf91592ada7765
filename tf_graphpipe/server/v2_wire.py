# SPDX-License-Identifier: Apache-2.0
"""The server side of the Open Inference Protocol (KServe v2) wire, as the
server's v2 routes use it: infer request bodies decoded into arrays, outputs
encoded into answers. The codec is cc/core's (``v2_server_codec.h``, fuzzed
with the others): this module only adapts it, mapping its errors onto the
server's (``BadRequest``: the caller's mistake, 400; ``ModelFailed``: the
model's, 500).

Binary inputs are NumPy views of the received body when their address suits
their dtype (otherwise one aligned copy); JSON ``data`` is decoded into
arrays of their own. An answer is a list of buffers, the JSON header then one
blob per binary output, each numeric blob a view of the output array (no
copy), that the HTTP layer writes in order.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tf_graphpipe import _native, dtypes
from tf_graphpipe.errors import GraphPipeError
from tf_graphpipe.server.answer import JSON, OCTET_STREAM
from tf_graphpipe.server.errors import BadRequest, ModelFailed

__all__ = ["V2Answer", "V2Request", "decode_request", "encode_outputs", "json_answer", "datatype_of",
           "raw_binary_request"]

_DUMPS = json.JSONEncoder(separators=(",", ":")).encode  # one encoder: json.dumps(**options) builds one per call


class V2Answer:
    """An answer body as buffers written in order (no joining copy).

    ``json_size`` is the Inference-Header-Content-Length when blobs follow the
    JSON header, None for a pure JSON body. ``extra``: more header lines
    (CRLF-terminated), e.g. a 405's ``allow``.
    """

    __slots__ = ("parts", "json_size", "length", "extra")

    def __init__(self, parts: list[Any], json_size: int | None = None, extra: bytes = b"",
                 length: int | None = None) -> None:
        self.parts = parts
        self.json_size = json_size
        self.extra = extra
        if length is None:
            length = sum(memoryview(p).nbytes for p in parts) if len(parts) > 1 else len(parts[0])
        self.length = length

    @property
    def content_type(self) -> bytes:
        return OCTET_STREAM if self.json_size is not None else JSON

    @property
    def headers(self) -> bytes:
        """Header lines (CRLF-terminated) this answer needs beyond
        Content-Type and Content-Length."""
        if self.json_size is None:
            return self.extra
        return b"inference-header-content-length: %d\r\n%s" % (self.json_size, self.extra)

    def __len__(self) -> int:
        return self.length

    def __bytes__(self) -> bytes:
        return b"".join(bytes(memoryview(p)) for p in self.parts)


def json_answer(value: Any, extra: bytes = b"") -> V2Answer:
    """A pure JSON answer (metadata, health, errors)."""
    return V2Answer([_DUMPS(value).encode()], None, extra)


def datatype_of(wire_type: int) -> str:
    """The v2 datatype of a wire type id; "" when undeclared (0)."""
    return dtypes.by_id(wire_type, dtypes.V2).v2 if wire_type else ""


@dataclass
class V2Request:
    """A decoded infer request. ``output_names`` empty: every output, each
    binary iff ``binary_default``; else ``binary[i]`` for ``output_names[i]``.
    ``timeout_us``: the request's ``timeout`` parameter (microseconds, as
    tritonclient sends it), ``priority`` its ``priority``; None when absent."""

    id: str | None
    input_names: list[str]
    inputs: list[np.ndarray]
    output_names: list[str]
    binary: list[bool]
    binary_default: bool
    timeout_us: int | None = None
    priority: int | None = None


def decode_request(body: Any, header_length: int | None) -> V2Request:
    """Decodes an infer request body (``header_length``: the
    Inference-Header-Content-Length, None when absent: all JSON).

    Raises:
        BadRequest: anything malformed, with what and where.
    """
    try:
        return V2Request(*_native.decode_v2_request(body, header_length))
    except (ValueError, GraphPipeError) as exc:
        raise BadRequest(str(exc)) from None


def raw_binary_request(body: Any, spec_name: str, wire_type: int, shape: Sequence[int] | None) -> V2Request:
    """A request whose whole body is one tensor's bytes (Inference-Header-Content-Length
    0, Triton's raw binary request): the model's single input, declared dtype and shape
    with at most one unknown dim (taken from the body's length). Outputs all binary.

    Raises:
        BadRequest: an input that cannot be taken raw, or a body that does not fill it.
    """
    dims = None if shape is None else list(shape)
    try:
        return V2Request(*_native.decode_v2_raw_binary_request(body, spec_name, wire_type, dims))
    except (ValueError, GraphPipeError) as exc:
        raise BadRequest(str(exc)) from None


def encode_outputs(
    model_name: str, version: str, request_id: str | None, outputs: Sequence[tuple[str, Any]],
    binary: Sequence[bool], binary_default: bool,
) -> V2Answer:
    """The infer answer for ``outputs`` (name, value) in order; ``binary[i]``
    (or ``binary_default`` past its end) says which travel as blobs.

    Raises:
        BadRequest: an output asked for as JSON that has no JSON form (FP16, BF16).
        ModelFailed: an output with no v2 datatype (e.g. complex numbers).
    """
    names, arrays, type_ids = [], [], []
    try:
        for name, value in outputs:
            array, type_id = dtypes.wire_array(value, f"output {name!r}", dtypes.V2)
            names.append(name)
            arrays.append(array)
            type_ids.append(type_id)
    except (TypeError, ValueError) as exc:
        raise ModelFailed(str(exc)) from exc
    try:
        parts, json_size, length = _native.encode_v2_answer(
            model_name, version, request_id, names, arrays, type_ids, list(binary), binary_default)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    except GraphPipeError as exc:
        raise ModelFailed(str(exc)) from exc
    return V2Answer(parts, json_size, length=length)
