# SPDX-License-Identifier: Apache-2.0
"""The one table of element types: wire type <-> NumPy <-> TensorFlow <-> v2.

Both directions of every conversion in Python are derived from ``WIRE_TYPES``
(the twelve GraphPipe wire types) and ``V2_ONLY_TYPES`` (bool and bfloat16,
which only the Open Inference Protocol carries). The ids are cc/core's DType
values. NumPy's complex and non-bytes object arrays have no type at all, and
bool and bfloat16 are refused for GraphPipe, before anything is sent.
"""
from __future__ import annotations

from typing import NamedTuple

import ml_dtypes
import numpy as np

GRAPHPIPE = "graphpipe"
V2 = "v2"


class WireType(NamedTuple):
    id: int  # cc/core DType value; the schema's Type value for GraphPipe types
    name: str  # also TensorFlow's dtype name
    numpy: np.dtype
    v2: str  # the Open Inference Protocol datatype
    graphpipe: bool = True  # a GraphPipe wire type


STRING = 12
BOOL = 13
BFLOAT16 = 14

WIRE_TYPES: tuple[WireType, ...] = (
    WireType(1, "uint8", np.dtype(np.uint8), "UINT8"),
    WireType(2, "int8", np.dtype(np.int8), "INT8"),
    WireType(3, "uint16", np.dtype(np.uint16), "UINT16"),
    WireType(4, "int16", np.dtype(np.int16), "INT16"),
    WireType(5, "uint32", np.dtype(np.uint32), "UINT32"),
    WireType(6, "int32", np.dtype(np.int32), "INT32"),
    WireType(7, "uint64", np.dtype(np.uint64), "UINT64"),
    WireType(8, "int64", np.dtype(np.int64), "INT64"),
    WireType(9, "float16", np.dtype(np.float16), "FP16"),
    WireType(10, "float32", np.dtype(np.float32), "FP32"),
    WireType(11, "float64", np.dtype(np.float64), "FP64"),
    WireType(STRING, "string", np.dtype(object), "BYTES"),
)

V2_ONLY_TYPES: tuple[WireType, ...] = (
    WireType(BOOL, "bool", np.dtype(np.bool_), "BOOL", graphpipe=False),
    WireType(BFLOAT16, "bfloat16", np.dtype(ml_dtypes.bfloat16), "BF16", graphpipe=False),
)

_ALL = WIRE_TYPES + V2_ONLY_TYPES
_BY_ID = {w.id: w for w in _ALL}
_BY_NUMPY = {w.numpy: w for w in _ALL if w.id != STRING}
_BY_NAME = {w.name: w for w in _ALL}


def _allowed(wire: WireType, protocol: str) -> bool:
    return wire.graphpipe or protocol == V2


def _no_type(what: str, protocol: str) -> str:
    return f"{what} has no GraphPipe wire type" if protocol == GRAPHPIPE else f"{what} has no v2 datatype"


def by_id(type_id: int, protocol: str = GRAPHPIPE) -> WireType:
    """The type with this id (ValueError for Null, unknown, or a v2-only
    type asked for GraphPipe)."""
    wire = _BY_ID.get(type_id)
    if wire is None or not _allowed(wire, protocol):
        limit = "1..12" if protocol == GRAPHPIPE else "1..14"
        raise ValueError(f"wire type value {type_id} is not a {protocol} tensor type ({limit})")
    return wire


def by_name(name: str, protocol: str = GRAPHPIPE) -> WireType:
    """The type named like TensorFlow / NumPy name it ("float32", "string", "bool")."""
    wire = _BY_NAME.get(name)
    if wire is None or not _allowed(wire, protocol):
        known = ", ".join(w.name for w in _ALL if _allowed(w, protocol))
        raise ValueError(f"{_no_type(f'dtype {name!r}', protocol)} (known: {known})")
    return wire


def numpy_dtype(type_id: int) -> np.dtype:
    """The NumPy dtype of a type id of either protocol; ``object`` for String."""
    return by_id(type_id, V2).numpy


def wire_array(value: object, what: str = "input", protocol: str = GRAPHPIPE) -> tuple[np.ndarray, int]:
    """``value`` as an array ready to send, and its type id.

    Numeric arrays come back C-contiguous and little-endian (a copy only if
    they were not); strings as an object array of bytes or str. Raises
    TypeError for dtypes with no type in ``protocol``.
    """
    array = value if isinstance(value, np.ndarray) else np.asarray(value)
    kind = array.dtype.kind
    if kind in "SU":
        return _c_contiguous(array.astype(object)), STRING
    if kind == "O":
        return _c_contiguous(array), STRING
    wire = _BY_NUMPY.get(array.dtype.newbyteorder("=") if array.dtype.byteorder != "|" else array.dtype)
    if wire is None or not _allowed(wire, protocol):
        expected = "uint8..uint64, int8..int64, float16/32/64 or bytes"
        if protocol == V2:
            expected += ", bool or bfloat16"
        raise TypeError(f"{_no_type(f'{what}: dtype {array.dtype}', protocol)} (expected {expected})")
    if array.dtype.byteorder == ">":
        array = array.astype(array.dtype.newbyteorder("<"))
    return _c_contiguous(array), wire.id


def _c_contiguous(array: np.ndarray) -> np.ndarray:
    # Not np.ascontiguousarray: it turns a rank-0 array into shape (1,).
    return array if array.flags.c_contiguous else np.array(array, order="C")
