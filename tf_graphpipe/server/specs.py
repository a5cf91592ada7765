# SPDX-License-Identifier: Apache-2.0
"""What a model declares about one input or output: ``IOSpec``, and the ways to
write one down (a ``tf.TensorSpec``, or ``name:dtype:shape`` on the command line)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tf_graphpipe import dtypes

__all__ = ["IOSpec", "parse_spec", "spec_from_tensor_spec", "wire_type_of"]


@dataclass(frozen=True)
class IOSpec:
    """One named input or output of a served model.

    Attributes:
        name: the name clients use in ``input_names`` / ``output_names``.
        wire_type: the type id (dtypes.py), 0 when undeclared (any dtype
            accepted); bool and bfloat16, which only v2 carries, are
            undeclared in GraphPipe metadata.
        shape: dims with -1 for "any size"; None when even the rank is unknown
            (sent in metadata as an empty shape, with type 0 for undeclared).
        description: free text for metadata.
    """

    name: str
    wire_type: int = 0
    shape: tuple[int, ...] | None = None
    description: str = ""

    @property
    def dtype_name(self) -> str | None:
        return dtypes.by_id(self.wire_type, dtypes.V2).name if self.wire_type else None

    def wire_metadata(self) -> dict[str, Any]:
        """This entry as ``_native.encode_metadata_response`` takes it."""
        return {
            "name": self.name,
            "description": self.description,
            "shape": list(self.shape or ()),
            "type": self.wire_type if self.wire_type and dtypes.by_id(self.wire_type, dtypes.V2).graphpipe else 0,
        }

    def json_metadata(self) -> dict[str, Any]:
        """This entry as the GET metadata JSON shows it (keys of ``Client.metadata()``)."""
        return {
            "name": self.name,
            "description": self.description,
            "shape": list(self.shape or ()),
            "dtype": self.dtype_name,
        }

    def check(self, array: np.ndarray, what: str) -> str | None:
        """Why ``array`` does not fit this spec, or None when it does."""
        if self.wire_type:
            got = wire_type_of(array)
            if got != self.wire_type:
                got_name = dtypes.by_id(got, dtypes.V2).name if got else str(array.dtype)
                return f"{what}: expected dtype {self.dtype_name}, got {got_name}"
        if self.shape is not None:
            fits = len(self.shape) == array.ndim and all(
                want < 0 or want == got for want, got in zip(self.shape, array.shape)
            )
            if not fits:
                want = "[" + ", ".join("?" if d < 0 else str(d) for d in self.shape) + "]"
                return f"{what}: expected shape {want}, got {list(array.shape)}"
        return None


def wire_type_of(array: np.ndarray) -> int:
    """The type id of a decoded or computed array, 0 if it has none."""
    if array.dtype.kind in "OSU":
        return dtypes.STRING
    try:
        return dtypes.by_name(array.dtype.name, dtypes.V2).id
    except ValueError:
        return 0


def spec_from_tensor_spec(spec: Any, default_name: str) -> IOSpec:
    """An IOSpec from anything shaped like ``tf.TensorSpec`` (``.dtype``, ``.shape``,
    optional ``.name``); dtypes with no type id become undeclared."""
    dtype = getattr(spec, "dtype", None)
    dtype_name = getattr(dtype, "name", None) or (str(dtype) if dtype is not None else None)
    try:
        wire_type = dtypes.by_name(dtype_name, dtypes.V2).id if dtype_name else 0
    except ValueError:
        wire_type = 0
    return IOSpec(
        name=getattr(spec, "name", None) or default_name,
        wire_type=wire_type,
        shape=shape_tuple(getattr(spec, "shape", None)),
    )


def shape_tuple(shape: Any) -> tuple[int, ...] | None:
    """A TensorShape / tuple with None dims as a tuple with -1; None for unknown rank."""
    if shape is None:
        return None
    if hasattr(shape, "rank") and shape.rank is None:
        return None
    dims = shape.as_list() if hasattr(shape, "as_list") else list(shape)
    return tuple(-1 if d is None or d < 0 else int(d) for d in dims)


def parse_spec(text: str) -> IOSpec:
    """Parses ``NAME[:DTYPE[:SHAPE]]`` as given to ``--input-spec``.

    DTYPE is a type name (``float32``, ``string``, ``bool``...) or empty for any;
    SHAPE is comma-separated dims, ``-1`` (or ``?``) for any size, empty for
    rank 0 and ``*`` for unknown rank (the default).

    Examples: ``x:float32:-1,4``, ``text:string:-1``, ``scale:float64:``.

    Raises:
        ValueError: the text does not follow that form.
    """
    parts = text.split(":")
    if not parts[0] or len(parts) > 3:
        raise ValueError(f"spec {text!r}: expected NAME[:DTYPE[:SHAPE]], e.g. x:float32:-1,4")
    name = parts[0]
    wire_type = dtypes.by_name(parts[1], dtypes.V2).id if len(parts) > 1 and parts[1] else 0
    shape: tuple[int, ...] | None = None
    if len(parts) > 2 and parts[2].strip() != "*":
        dims = [d.strip() for d in parts[2].split(",") if d.strip()]
        try:
            shape = tuple(-1 if d == "?" else int(d) for d in dims)
        except ValueError:
            raise ValueError(f"spec {text!r}: shape dims must be integers, -1 or ?") from None
        shape = tuple(-1 if d < 0 else d for d in shape)
    return IOSpec(name=name, wire_type=wire_type, shape=shape)
