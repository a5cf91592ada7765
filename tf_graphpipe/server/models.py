# SPDX-License-Identifier: Apache-2.0
"""Model adapters: everything ``serve`` accepts becomes a ``Model`` with declared
inputs and outputs and one ``run`` method on NumPy arrays.

``load_model`` decides which adapter fits. TensorFlow is imported only for the
kinds that need it (SavedModel, ``.keras``, ``demo``, TF objects), so a server
for a plain Python callable starts without paying for it.
"""
from __future__ import annotations

import importlib
import inspect
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tf_graphpipe.server.specs import IOSpec, spec_from_tensor_spec

if TYPE_CHECKING:
    from tf_graphpipe.server.onnx_models import SessionSettings

__all__ = ["Model", "CallableModel", "load_model"]


class Model:
    """A servable model: declared inputs/outputs and ``run``.

    Attributes:
        name, description, version: shown in metadata.
        inputs: declared inputs in the order clients send them positionally.
        outputs: declared outputs in the order returned by default; empty when
            the model does not declare them (names are then ``output0..``).
        variadic: True when the model accepts any number of inputs.
    """

    name: str = "model"
    description: str = ""
    version: str = "1"
    inputs: list[IOSpec]
    outputs: list[IOSpec]
    variadic: bool = False

    def run(self, inputs: list[np.ndarray], config: bytes) -> dict[str, np.ndarray]:
        """Runs the model on ``inputs`` (in ``self.inputs`` order).

        Returns:
            The outputs by name, in output order (declared order when declared).
        """
        raise NotImplementedError

    def named_outputs(self, results: Any) -> dict[str, np.ndarray]:
        """Names a model's raw result: a dict, a list/tuple, or one array."""
        if type(results) is np.ndarray and len(self.outputs) <= 1:  # the common case, fast
            return {self.outputs[0].name if self.outputs else "output0": results}
        if isinstance(results, Mapping):
            items = [(str(k), v) for k, v in results.items()]
            if self.outputs and set(k for k, _ in items) == {s.name for s in self.outputs}:
                by_name = dict(items)
                items = [(s.name, by_name[s.name]) for s in self.outputs]
        else:
            values = list(results) if isinstance(results, (list, tuple)) else [results]
            if self.outputs and len(values) != len(self.outputs):
                raise ValueError(
                    f"model returned {len(values)} outputs but declares {len(self.outputs)} "
                    f"({', '.join(s.name for s in self.outputs)})"
                )
            names = [s.name for s in self.outputs] or [f"output{i}" for i in range(len(values))]
            items = list(zip(names, values))
        return {name: _as_array(value) for name, value in items}


def _as_array(value: Any) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value
    numpy = getattr(value, "numpy", None)  # tf.Tensor, without importing TensorFlow
    return np.asarray(numpy() if callable(numpy) else value)


class CallableModel(Model):
    """A Python function on NumPy arrays: ``fn(*inputs) -> array | list | dict``.

    Inputs and outputs are declared by ``tf.TensorSpec`` annotations on the
    parameters and the return value (a spec, a tuple of specs or a dict
    name -> spec), or by ``input_specs`` / ``output_specs``; otherwise inputs
    are the required positional parameters, named ``input0..``, with any dtype
    and shape. A keyword-only parameter ``config`` receives the request's
    config bytes.
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        name: str | None = None,
        input_specs: Sequence[IOSpec] | None = None,
        output_specs: Sequence[IOSpec] | None = None,
    ) -> None:
        self.fn = fn
        self.name = name or getattr(fn, "__name__", None) or type(fn).__name__
        self.description = f"Python callable {self.name}"
        try:
            signature = inspect.signature(fn, eval_str=True)
        except (TypeError, ValueError, NameError):  # builtins, bad string annotations
            signature = None
        params = list(signature.parameters.values()) if signature else []
        self._takes_config = any(p.name == "config" and p.kind == p.KEYWORD_ONLY for p in params)
        positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        annotated = [p for p in positional if _is_tensor_spec(p.annotation)]
        if input_specs is not None:
            self.inputs = list(input_specs)
        elif positional and len(annotated) == len(positional):
            self.inputs = [spec_from_tensor_spec(p.annotation, p.name) for p in positional]
        else:
            required = [p for p in positional if p.default is p.empty]
            self.inputs = [IOSpec(f"input{i}") for i in range(len(required))]
            self.variadic = signature is None or any(p.kind == p.VAR_POSITIONAL for p in params)
        if output_specs is not None:
            self.outputs = list(output_specs)
        else:
            self.outputs = _annotated_outputs(signature.return_annotation if signature else None)

    def run(self, inputs: list[np.ndarray], config: bytes) -> dict[str, np.ndarray]:
        kwargs = {"config": config} if self._takes_config else {}
        return self.named_outputs(self.fn(*inputs, **kwargs))


def _is_tensor_spec(annotation: Any) -> bool:
    return hasattr(annotation, "dtype") and hasattr(annotation, "shape") and not isinstance(annotation, type)


def _annotated_outputs(annotation: Any) -> list[IOSpec]:
    if _is_tensor_spec(annotation):
        return [spec_from_tensor_spec(annotation, "output0")]
    if isinstance(annotation, (tuple, list)) and annotation and all(map(_is_tensor_spec, annotation)):
        return [spec_from_tensor_spec(s, f"output{i}") for i, s in enumerate(annotation)]
    if isinstance(annotation, Mapping) and annotation and all(map(_is_tensor_spec, annotation.values())):
        return [spec_from_tensor_spec(s, str(k)) for k, s in annotation.items()]
    return []


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
