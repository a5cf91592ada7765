# SPDX-License-Identifier: Apache-2.0
"""The one table of element types: GraphPipe wire type <-> NumPy <-> TensorFlow.

Both directions of every conversion in Python are derived from ``WIRE_TYPES``.
NumPy's bool, bfloat16, complex and non-bytes object arrays have no GraphPipe
wire type and are refused before anything is sent.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np


class WireType(NamedTuple):
    id: int  # the schema's Type value
    name: str  # also TensorFlow's dtype name
    numpy: np.dtype


STRING = 12

WIRE_TYPES: tuple[WireType, ...] = (
    WireType(1, "uint8", np.dtype(np.uint8)),
    WireType(2, "int8", np.dtype(np.int8)),
    WireType(3, "uint16", np.dtype(np.uint16)),
    WireType(4, "int16", np.dtype(np.int16)),
    WireType(5, "uint32", np.dtype(np.uint32)),
    WireType(6, "int32", np.dtype(np.int32)),
    WireType(7, "uint64", np.dtype(np.uint64)),
    WireType(8, "int64", np.dtype(np.int64)),
    WireType(9, "float16", np.dtype(np.float16)),
    WireType(10, "float32", np.dtype(np.float32)),
    WireType(11, "float64", np.dtype(np.float64)),
    WireType(STRING, "string", np.dtype(object)),
)

_BY_ID = {w.id: w for w in WIRE_TYPES}
_BY_NUMPY = {w.numpy: w for w in WIRE_TYPES if w.id != STRING}
_BY_NAME = {w.name: w for w in WIRE_TYPES}


def by_id(type_id: int) -> WireType:
    """The wire type with this schema value (ValueError for Null or unknown)."""
    try:
        return _BY_ID[type_id]
    except KeyError:
        raise ValueError(f"wire type value {type_id} is not a GraphPipe tensor type (1..12)") from None


def by_name(name: str) -> WireType:
    """The wire type named like TensorFlow / NumPy name it ("float32", "string")."""
    try:
        return _BY_NAME[name]
    except KeyError:
        known = ", ".join(_BY_NAME)
        raise ValueError(f"dtype {name!r} has no GraphPipe wire type (known: {known})") from None


def numpy_dtype(type_id: int) -> np.dtype:
    """The NumPy dtype of a wire type value; ``object`` for String."""
    return by_id(type_id).numpy


def wire_array(value: object, what: str = "input") -> tuple[np.ndarray, int]:
    """``value`` as an array ready to send, and its wire type id.

    Numeric arrays come back C-contiguous and little-endian (a copy only if
    they were not); strings as an object array of bytes or str. Raises
    TypeError for dtypes with no wire type.
    """
    array = value if isinstance(value, np.ndarray) else np.asarray(value)
    kind = array.dtype.kind
    if kind in "SU":
        return _c_contiguous(array.astype(object)), STRING
    if kind == "O":
        return _c_contiguous(array), STRING
    wire = _BY_NUMPY.get(array.dtype.newbyteorder("=") if array.dtype.byteorder != "|" else array.dtype)
    if wire is None:
        raise TypeError(
            f"{what}: dtype {array.dtype} has no GraphPipe wire type "
            "(expected uint8..uint64, int8..int64, float16/32/64 or bytes)"
        )
    if array.dtype.byteorder == ">":
        array = array.astype(array.dtype.newbyteorder("<"))
    return _c_contiguous(array), wire.id


def _c_contiguous(array: np.ndarray) -> np.ndarray:
    # Not np.ascontiguousarray: it turns a rank-0 array into shape (1,).
    return array if array.flags.c_contiguous else np.array(array, order="C")
