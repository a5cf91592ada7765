# SPDX-License-Identifier: Apache-2.0
"""The server side of the Open Inference Protocol (KServe v2) wire, with
Triton's binary tensor extension (../shared/SPEC_V2.md sections 3 and 4):
an infer request body decoded into arrays, and outputs encoded into an answer.

Decoding verifies before it reads: the JSON header length, every shape,
``binary_data_size`` against shape x element size and against what the body
still holds, each BYTES element's length prefix, and that the blobs fill the
body exactly. Anything wrong is the caller's mistake (``BadRequest``, 400).
Binary inputs are NumPy views of the received body when their address suits
their dtype (otherwise one aligned copy); JSON ``data`` is converted.

Encoding never copies a numeric binary output: the answer is a list of
buffers (the JSON header, then each blob as a view of the output array) that
the HTTP layer writes as they are. BYTES blobs are built once. FP16 and BF16
have no JSON form, and JSON strings carry only UTF-8, so such outputs travel
binary even when JSON was asked for (clients frame them by
``binary_data_size``, SPEC_V2 section 4). JSON floats use Triton's tokens
``NaN``/``Infinity``/``-Infinity`` for non-finite values; integers stay exact.
"""
from __future__ import annotations

import functools
import json
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tf_graphpipe import dtypes
from tf_graphpipe.server.inference import BadRequest, ModelFailed

__all__ = ["V2Answer", "V2Request", "decode_request", "encode_outputs", "json_answer", "datatype_of"]

_BY_DATATYPE = {w.v2: w for w in dtypes.WIRE_TYPES + dtypes.V2_ONLY_TYPES}
_NO_JSON_FORM = frozenset({"FP16", "BF16"})
_LENGTH = struct.Struct("<I")
_DUMPS = json.JSONEncoder(separators=(",", ":")).encode  # one encoder: json.dumps(**options) builds one per call
OCTET_STREAM = b"application/octet-stream"
JSON = b"application/json"


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
    binary iff ``binary_default``; else ``binary[i]`` for ``output_names[i]``."""

    id: str | None
    input_names: list[str]
    inputs: list[np.ndarray]
    output_names: list[str]
    binary: list[bool]
    binary_default: bool


def decode_request(body: Any, header_length: int | None) -> V2Request:
    """Decodes an infer request body (``header_length``: the
    Inference-Header-Content-Length, None when absent: all JSON).

    Raises:
        BadRequest: anything malformed, with what and where.
    """
    raw = body if isinstance(body, np.ndarray) else np.frombuffer(body, np.uint8)
    total = raw.size
    json_size = total if header_length is None else header_length
    if not 0 <= json_size <= total:
        raise BadRequest(f"inference header size should be in range [0, {total}], got {json_size}")
    header = raw[:json_size].tobytes()
    # A client repeats the same header for same-shaped calls: its checked plan is reused.
    plan = _PLANS.get(header) if json_size <= PLAN_CACHE_HEADER_BYTES else None
    if plan is None:
        plan = _plan(header)
        if plan.cacheable and json_size <= PLAN_CACHE_HEADER_BYTES:
            if len(_PLANS) >= PLAN_CACHE_ENTRIES:
                _PLANS.clear()
            _PLANS[header] = plan
    arrays: list[np.ndarray] = []
    offset = json_size
    for name, (wire, shape, size, array) in zip(plan.names, plan.inputs):
        if size is not None:
            if offset + size > total:
                raise BadRequest(f"unexpected size for input {name!r}, expecting {size} additional bytes, "
                                 f"the body holds {total - offset}")
            array = _from_blob(raw, offset, size, wire, shape, name)
            offset += size
        arrays.append(array)
    if offset != total:
        raise BadRequest(f"unexpected additional input data: {total - offset} bytes after the last input")
    return V2Request(plan.id, plan.names, arrays, plan.output_names, plan.binary, plan.binary_default)


# (datatype, shape, binary_data_size or None, the array decoded from JSON `data` or None)
_Input = tuple[dtypes.WireType, list[int], "int | None", "np.ndarray | None"]


@dataclass(frozen=True)
class _Plan:
    """What a request header says, checked; ``cacheable`` when it carries no tensor data."""

    id: str | None
    names: list[str]
    inputs: list[_Input]
    output_names: list[str]
    binary: list[bool]
    binary_default: bool
    cacheable: bool


PLAN_CACHE_HEADER_BYTES = 8192
PLAN_CACHE_ENTRIES = 256
_PLANS: dict[bytes, _Plan] = {}


def _plan(header_bytes: bytes) -> _Plan:
    try:
        header = json.loads(header_bytes)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"infer request header is not valid JSON: {exc}") from None
    if not isinstance(header, dict):
        raise BadRequest(f"infer request header must be a JSON object, got {type(header).__name__}")
    parameters = _parameters(header.get("parameters"), "request")
    request_id = header.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise BadRequest(f"request 'id' must be a string, got {type(request_id).__name__}")
    entries = header.get("inputs")
    if not isinstance(entries, list):
        raise BadRequest("infer request has no 'inputs' array")
    names: list[str] = []
    inputs: list[_Input] = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise BadRequest(f"inputs[{index}] must be an object with a string 'name'")
        name = entry["name"]
        wire, shape = _datatype(entry, f"input {name!r}"), _shape(entry.get("shape"), f"input {name!r}")
        params = _parameters(entry.get("parameters"), f"input {name!r}")
        size = params.get("binary_data_size")
        given = ("data" in entry) + (size is not None) + ("shared_memory_region" in params)
        if given != 1:
            raise BadRequest(f"input {name!r} must set exactly one of 'data', 'binary_data_size' or "
                             f"'shared_memory_region' (got {given})")
        if "shared_memory_region" in params:
            raise BadRequest(f"input {name!r}: shared memory is not supported by this server")
        if size is None:
            inputs.append((wire, shape, None, _from_json(entry["data"], wire, shape, name)))
        else:
            if type(size) is not int or size < 0:
                raise BadRequest(f"input {name!r}: binary_data_size must be a non-negative integer, got {size!r}")
            expected = math.prod(shape) * wire.numpy.itemsize
            if wire.id != dtypes.STRING and size != expected:
                raise BadRequest(f"input byte size mismatch for input {name!r}: shape {shape} of {wire.v2} is "
                                 f"{expected} bytes, binary_data_size is {size}")
            inputs.append((wire, shape, size, None))
        names.append(name)
    output_names, binary = _requested_outputs(header.get("outputs"))
    cacheable = all(size is not None for _, _, size, _ in inputs)
    return _Plan(request_id, names, inputs, output_names, binary,
                 bool(parameters.get("binary_data_output", False)), cacheable)


def raw_binary_request(body: Any, spec_name: str, wire_type: int, shape: Sequence[int] | None) -> V2Request:
    """A request whose whole body is one tensor's bytes (Inference-Header-Content-Length
    0, Triton's raw binary request): the model's single input, declared dtype and shape
    with at most one unknown dim (taken from the body's length). Outputs all binary."""
    if not wire_type or wire_type == dtypes.STRING or shape is None or sum(d < 0 for d in shape) > 1:
        raise BadRequest("a raw binary request (Inference-Header-Content-Length: 0) needs a model with one "
                         "input of declared numeric dtype and shape with at most one unknown dimension")
    raw = body if isinstance(body, np.ndarray) else np.frombuffer(body, np.uint8)
    wire = dtypes.by_id(wire_type, dtypes.V2)
    known = math.prod(d for d in shape if d >= 0) * wire.numpy.itemsize
    dims = list(shape)
    if -1 in dims:
        if known == 0 or raw.size % known:
            raise BadRequest(f"raw binary input {spec_name!r}: {raw.size} bytes do not fill shape {list(shape)}")
        dims[dims.index(-1)] = raw.size // known
    if raw.size != math.prod(dims) * wire.numpy.itemsize:
        raise BadRequest(f"raw binary input {spec_name!r}: {raw.size} bytes do not fill shape {list(shape)}")
    array = _from_blob(raw, 0, raw.size, wire, dims, spec_name)
    return V2Request(None, [spec_name], [array], [], [], True)


def _parameters(value: Any, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequest(f"{what} 'parameters' must be a JSON object, got {type(value).__name__}")
    return value


def _datatype(entry: dict[str, Any], what: str) -> dtypes.WireType:
    name = entry.get("datatype")
    wire = _BY_DATATYPE.get(name) if isinstance(name, str) else None
    if wire is None:
        raise BadRequest(f"{what}: unknown datatype {name!r} (expected one of {', '.join(_BY_DATATYPE)})")
    return wire


def _shape(value: Any, what: str) -> list[int]:
    if not isinstance(value, list) or not all(type(d) is int and d >= 0 for d in value):
        raise BadRequest(f"{what}: 'shape' must be an array of non-negative integers, got {value!r}")
    return value


def _from_blob(raw: np.ndarray, offset: int, size: int, wire: dtypes.WireType, shape: list[int],
               name: str) -> np.ndarray:
    """The tensor in ``raw[offset:offset + size]`` (its size already checked
    against the shape, except for BYTES)."""
    blob = raw[offset:offset + size]
    if wire.id == dtypes.STRING:
        return _bytes_elements(memoryview(blob), math.prod(shape), name).reshape(shape)
    if wire.id == dtypes.BOOL and size and blob.max() > 1:
        raise BadRequest(f"input {name!r}: BOOL bytes must be 0 or 1")
    array = blob.view(wire.numpy).reshape(shape)
    # A view of the body when its address suits the dtype; else one aligned copy.
    return array if array.flags.aligned else array.copy()


def _bytes_elements(blob: memoryview, count: int, name: str) -> np.ndarray:
    out = np.empty(count, dtype=object)
    end, position = len(blob), 0
    unpack = _LENGTH.unpack_from
    for i in range(count):
        if position + 4 > end:
            raise BadRequest(f"input {name!r}: BYTES element {i} of {count} has no 4-byte length "
                             f"({end - position} bytes left)")
        (length,) = unpack(blob, position)
        position += 4
        if position + length > end:
            raise BadRequest(f"input {name!r}: BYTES element {i} declares {length} bytes, "
                             f"{end - position} left")
        out[i] = bytes(blob[position:position + length])
        position += length
    if position != end:
        raise BadRequest(f"input {name!r}: {end - position} bytes after its {count} BYTES elements")
    return out


def _from_json(data: Any, wire: dtypes.WireType, shape: list[int], name: str) -> np.ndarray:
    count = math.prod(shape)
    if wire.id == dtypes.STRING:
        flat = _flatten(data)
        if not all(isinstance(item, str) for item in flat):
            raise BadRequest(f"input {name!r}: BYTES data must be JSON strings")
        array = np.empty(len(flat), dtype=object)
        array[:] = [item.encode() for item in flat]
    else:
        try:
            array = np.array(data, dtype=wire.numpy)
        except (ValueError, TypeError, OverflowError) as exc:
            raise BadRequest(f"input {name!r}: 'data' is not {wire.v2} data: {exc}") from None
    if array.size != count:
        raise BadRequest(f"input {name!r}: shape {shape} holds {count} elements, 'data' has {array.size}")
    return array.reshape(shape)


def _flatten(data: Any) -> list[Any]:
    if not isinstance(data, list):
        return [data]
    if not any(isinstance(item, list) for item in data):
        return data
    flat: list[Any] = []
    for item in data:
        flat.extend(_flatten(item))
    return flat


def _requested_outputs(value: Any) -> tuple[list[str], list[bool]]:
    if value is None:
        return [], []
    if not isinstance(value, list):
        raise BadRequest(f"request 'outputs' must be an array, got {type(value).__name__}")
    names, binary = [], []
    for index, entry in enumerate(value):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise BadRequest(f"outputs[{index}] must be an object with a string 'name'")
        params = _parameters(entry.get("parameters"), f"output {entry['name']!r}")
        if "shared_memory_region" in params:
            raise BadRequest(f"output {entry['name']!r}: shared memory is not supported by this server")
        names.append(entry["name"])
        # A listed output is binary iff it asks itself (SPEC_V2 section 4).
        binary.append(bool(params.get("binary_data", False)))
    return names, binary


def encode_outputs(
    model_name: str, version: str, request_id: str | None, outputs: Sequence[tuple[str, Any]],
    binary: Sequence[bool], binary_default: bool,
) -> V2Answer:
    """The infer answer for ``outputs`` (name, value) in order; ``binary[i]``
    (or ``binary_default`` past its end) says which travel as blobs.

    Raises:
        ModelFailed: an output with no v2 datatype (e.g. complex numbers).
    """
    entries: list[str] = []
    blobs: list[Any] = []
    length = 0
    for index, (name, value) in enumerate(outputs):
        try:
            array, wire_id = dtypes.wire_array(value, f"output {name!r}", dtypes.V2)
        except (TypeError, ValueError) as exc:
            raise ModelFailed(str(exc)) from exc
        datatype = _DATATYPE_OF_ID[wire_id]
        as_blob = binary[index] if index < len(binary) else binary_default
        if wire_id == dtypes.STRING:
            items = _byte_items(array, name)
            data = None if as_blob else _utf8(items)
            if data is not None:
                entries.append(_DUMPS({"name": name, "datatype": datatype, "shape": list(array.shape), "data": data}))
                continue
            blob: Any = b"".join(part for item in items for part in (_LENGTH.pack(len(item)), item))
            size = len(blob)
        elif as_blob or datatype in _NO_JSON_FORM:
            blob = array.reshape(-1).view(np.uint8)  # a view: no copy
            size = blob.size
        else:
            entries.append(_DUMPS({"name": name, "datatype": datatype, "shape": list(array.shape),
                                   "data": array.reshape(-1).tolist()}))
            continue
        entries.append(_blob_entry(name, datatype, array.shape, size))
        blobs.append(blob)
        length += size
    head = _answer_prefix(model_name, version)
    if request_id is not None:
        head += ',"id":' + _DUMPS(request_id)
    header = (head + ',"outputs":[' + ",".join(entries) + "]}").encode()
    if not blobs:
        return V2Answer([header])
    return V2Answer([header, *blobs], len(header), length=len(header) + length)


_DATATYPE_OF_ID = {w.id: w.v2 for w in dtypes.WIRE_TYPES + dtypes.V2_ONLY_TYPES}


@functools.lru_cache(maxsize=1024)
def _answer_prefix(model_name: str, version: str) -> str:
    return '{"model_name":' + _DUMPS(model_name) + ',"model_version":' + _DUMPS(version)


@functools.lru_cache(maxsize=4096)
def _blob_entry(name: str, datatype: str, shape: tuple[int, ...], size: int) -> str:
    """An output's JSON entry when its data travels as a blob (same-shaped answers repeat it)."""
    return _DUMPS({"name": name, "datatype": datatype, "shape": list(shape), "parameters": {"binary_data_size": size}})


def _byte_items(array: np.ndarray, name: str) -> list[bytes]:
    items = []
    for item in array.reshape(-1).tolist():
        if isinstance(item, bytes):
            items.append(item)
        elif isinstance(item, str):
            items.append(item.encode())
        else:
            raise ModelFailed(f"output {name!r}: BYTES element of type {type(item).__name__} is not bytes or str")
    return items


def _utf8(items: list[bytes]) -> list[str] | None:
    try:
        return [item.decode() for item in items]
    except UnicodeDecodeError:
        return None
