# SPDX-License-Identifier: Apache-2.0
"""``load_model``: everything ``serve`` accepts, turned into a ``Model``.

The one place that decides which adapter fits a path, a name or an object.
TensorFlow is imported only for the kinds that need it (SavedModel,
``.keras``, ``demo``, TF objects), so a server for a plain Python callable
starts without paying for it.
"""
from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tf_graphpipe.server.model import CallableModel, Model
from tf_graphpipe.server.specs import IOSpec

if TYPE_CHECKING:
    from tf_graphpipe.server.onnx_models import SessionSettings

__all__ = ["load_model"]


def load_model(
    model: Any,
    *,
    name: str | None = None,
    signature: str = "serving_default",
    input_specs: Sequence[IOSpec] | None = None,
    output_specs: Sequence[IOSpec] | None = None,
    onnx: SessionSettings | None = None,
) -> Model:
    """The ``Model`` for anything ``serve`` accepts.

    Args:
        model: ``"demo"``; a SavedModel directory; a ``.keras`` file; an
            ``.onnx`` file (run by ONNX Runtime); ``"package.module:callable"``; a ``Model``; a Keras model; a
            ``tf.Module`` (its ``signature`` or its ``__call__`` with an input
            signature); a concrete function or ``tf.function``; or a callable
            on NumPy arrays.
        name: the model name shown in metadata (default: from the model).
        signature: the SavedModel / ``tf.Module`` signature to serve.
        input_specs, output_specs: declared inputs/outputs for a callable.
        onnx: ONNX Runtime's threads and graph optimisation for an ``.onnx``
            file (``onnx_models.SessionSettings``; default: its defaults).

    Raises:
        ValueError: ``model`` is none of the above, or lacks what it needs
            (no such signature, no declared Keras inputs...).
        FileNotFoundError: a path that does not exist.
        ImportError, AttributeError: ``package.module:callable`` not found;
            onnxruntime missing for an ``.onnx`` file (names the extra).
    """
    if isinstance(model, Model):
        adapter = model
    elif isinstance(model, (str, os.PathLike)):
        adapter = _load_reference(os.fspath(model), signature, input_specs, output_specs, onnx)
    else:
        adapter = _wrap_object(model, signature, input_specs, output_specs)
    if name:
        adapter.name = name
    return adapter


def _load_reference(
    text: str,
    signature: str,
    input_specs: Sequence[IOSpec] | None,
    output_specs: Sequence[IOSpec] | None,
    onnx: SessionSettings | None = None,
) -> Model:
    path = Path(text).expanduser()
    if text == "demo":
        from tf_graphpipe.server.demo_model import demo_model

        return demo_model()
    if path.is_dir():
        from tf_graphpipe.server import tf_models

        return tf_models.saved_model(path, signature)
    if path.is_file() and path.suffix in (".keras", ".h5"):
        from tf_graphpipe.server import tf_models

        return tf_models.keras_file(path)
    if path.is_file() and path.suffix == ".onnx":
        from tf_graphpipe.server.onnx_models import load_onnx_model

        return load_onnx_model(path, onnx)
    module_name, sep, attribute = text.partition(":")
    if sep and module_name and attribute and not path.exists():
        target: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            target = getattr(target, part)
        wrapped = _wrap_object(target, signature, input_specs, output_specs)
        if wrapped.name in ("model", "<lambda>"):
            wrapped.name = attribute
        return wrapped
    if not path.exists():
        raise FileNotFoundError(
            f"model {text!r} not found: expected a SavedModel directory, a .keras or .onnx file, "
            "package.module:callable, or demo"
        )
    raise ValueError(f"model {text!r}: not a SavedModel directory, a .keras file or an .onnx file")


def _wrap_object(
    obj: Any, signature: str, input_specs: Sequence[IOSpec] | None, output_specs: Sequence[IOSpec] | None
) -> Model:
    if "tensorflow" in sys.modules or "keras" in sys.modules:
        from tf_graphpipe.server import tf_models

        adapter = tf_models.wrap_tf_object(obj, signature)
        if adapter is not None:
            return adapter
    if not callable(obj):
        raise ValueError(f"cannot serve a {type(obj).__name__}: expected a model, a path or a callable")
    return CallableModel(obj, input_specs=input_specs, output_specs=output_specs)
