# SPDX-License-Identifier: Apache-2.0
"""``Client.metadata()`` as text for people: what ``tf-graphpipe info`` and
``tf-graphpipe demo`` print."""
from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["dtype_name", "format_metadata"]


def format_metadata(metadata: dict[str, Any]) -> str:
    """``Client.metadata()`` as a short human-readable table."""
    lines = [f"{key}: {metadata[key]}" for key in ("name", "version", "server", "description") if metadata.get(key)]
    for key in ("inputs", "outputs"):
        lines.append(f"{key}:")
        for entry in metadata[key]:
            shape = "[" + ", ".join("?" if d < 0 else str(d) for d in entry["shape"]) + "]"
            text = f"  {entry['name']}: {dtype_name(entry['dtype']) or 'any'} {shape}"
            lines.append(text + (f"  ({entry['description']})" if entry.get("description") else ""))
        if not metadata[key]:
            lines.append("  (not declared)")
    return "\n".join(lines)


def dtype_name(dtype: Any) -> str | None:
    """A metadata dtype as printed: NumPy's name, ``string`` for object arrays,
    None when undeclared."""
    if dtype is None:
        return None
    return "string" if np.dtype(dtype) == np.dtype(object) else np.dtype(dtype).name
