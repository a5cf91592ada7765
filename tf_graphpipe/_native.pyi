# SPDX-License-Identifier: Apache-2.0
# Types of the pybind11 module built from cc/python (native_module.cc,
# v2_server_bindings.cc). Keep in step with the bindings: `make test` runs
# mypy's stubtest against the built module.
from collections.abc import Sequence
from typing import Any, final

import numpy as np
from typing_extensions import Buffer

_Array = np.ndarray[Any, Any]
_BytesLike = Buffer  # bytes, bytearray, memoryview, NumPy arrays, Message...

@final
class Message:
    """An encoded GraphPipe flatbuffer (read-only bytes, no copy)."""

    def __buffer__(self, flags: int, /) -> memoryview: ...
    def __len__(self) -> int: ...
    def __bytes__(self) -> bytes: ...
    @property
    def parts(self) -> int: ...

@final
class ReceivedBody:
    """A received answer body that decoded arrays view into."""

    def __buffer__(self, flags: int, /) -> memoryview: ...
    def __len__(self) -> int: ...

@final
class V2RequestStorage:
    """JSON data of a v2 request, decoded (arrays view it)."""

@final
class V2AnswerBytes:
    """BYTES blobs of an encoded v2 answer (its parts view them)."""

# ---- the call plan: both protocols, as the op calls them ----------------------------------

def call(
    url: str,
    protocol: str | None,
    inputs: Sequence[_Array],
    type_ids: Sequence[int],
    input_names: Sequence[str],
    output_names: Sequence[str],
    config: bytes,
    binary: bool,
    timeout: float,
    retries: int,
    max_response_bytes: int,
    credentials: dict[str, Any] = ...,
) -> list[_Array]: ...
def metadata(
    url: str,
    protocol: str | None,
    timeout: float,
    retries: int,
    max_response_bytes: int,
    credentials: dict[str, Any] = ...,
) -> dict[str, Any]: ...
def resolve_protocol(url: str, protocol: str | None) -> str: ...
def connections_opened() -> int: ...

# ---- Open Inference Protocol (v2) codec, as the client reads it ---------------------------

def v2_model_url(url: str) -> dict[str, str] | None: ...
def encode_v2_infer_request(
    inputs: Sequence[_Array],
    type_ids: Sequence[int],
    input_names: Sequence[str],
    output_names: Sequence[str],
    binary: bool = True,
) -> tuple[bytes, int | None]: ...
def decode_v2_answer(
    url: str,
    status: int,
    body: bytes,
    header_length: int | None = None,
    output_names: Sequence[str] = ...,
) -> tuple[list[str], list[_Array]]: ...
def decode_v2_metadata(url: str, status: int, body: bytes) -> dict[str, Any]: ...

# ---- GraphPipe codec ---------------------------------------------------------------------

def encode_infer_request(
    inputs: Sequence[_Array],
    wire_types: Sequence[int],
    input_names: Sequence[str],
    output_names: Sequence[str],
    config: bytes,
    copy: bool = True,
) -> Message: ...
def encode_metadata_request() -> Message: ...
def decode_infer_response(data: _BytesLike) -> list[_Array]: ...
def decode_metadata_response(data: _BytesLike) -> dict[str, Any]: ...
def decode_request(data: _BytesLike) -> tuple[Any, ...]: ...
def encode_infer_response(outputs: Sequence[_Array], wire_types: Sequence[int]) -> Message: ...
def encode_error_response(message: str, code: int = 0) -> Message: ...
def encode_metadata_response(metadata: dict[str, Any]) -> Message: ...

# ---- Open Inference Protocol (v2) server codec -------------------------------------------

def decode_v2_request(body: _BytesLike, header_length: int | None) -> tuple[Any, ...]: ...
def decode_v2_raw_binary_request(
    body: _BytesLike, input_name: str, type_id: int, shape: Sequence[int] | None
) -> tuple[Any, ...]: ...
def encode_v2_answer(
    model_name: str,
    model_version: str,
    id: str | None,
    output_names: Sequence[str],
    outputs: Sequence[Any],
    type_ids: Sequence[int],
    binary: Sequence[bool],
    binary_default: bool,
) -> tuple[list[Any], int | None, int]: ...
