# SPDX-License-Identifier: Apache-2.0
"""Adapters for TensorFlow models: SavedModel signatures, concrete functions,
``tf.Module`` objects and Keras models (in memory or ``.keras`` files).

Input and output order, as metadata shows it and positional requests use it:

* SavedModel signatures (keyword-only functions): inputs and outputs sorted by
  name, the order TensorFlow itself flattens signature dicts in;
* positional concrete functions: argument order; outputs in flattening order
  (a dict's outputs sorted by key);
* Keras: ``model.inputs`` and ``model.outputs`` order.
"""
from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from tf_graphpipe.server.model import Model
from tf_graphpipe.server.specs import spec_from_tensor_spec

__all__ = ["FunctionModel", "KerasModel", "saved_model", "keras_file", "wrap_tf_object"]


def _tensor(array: np.ndarray) -> tf.Tensor:
    return tf.convert_to_tensor(array)


class FunctionModel(Model):
    """A ``tf.types.experimental.ConcreteFunction`` (signature or positional)."""

    def __init__(self, function: Any, name: str, description: str = "") -> None:
        self.function = function
        self.name = name
        self.description = description
        args, kwargs = function.structured_input_signature
        self._keyword = bool(kwargs) and not args
        if self._keyword:
            self._arg_names = sorted(kwargs)
            # the key, not the spec's own name, is what callers pass
            self.inputs = [replace(spec_from_tensor_spec(kwargs[n], n), name=n) for n in self._arg_names]
        else:
            flat = tf.nest.flatten(args)
            # None when the arguments are plain positional tensors (skips tf.nest per call)
            self._args_structure = None if len(flat) == len(args) else args
            self.inputs = [spec_from_tensor_spec(s, f"input{i}") for i, s in enumerate(flat)]
        outputs = function.structured_outputs
        if isinstance(outputs, dict):
            self._output_keys: list[Any] | None = sorted(outputs)
            self.outputs = [replace(spec_from_tensor_spec(outputs[k], ""), name=str(k)) for k in self._output_keys]
        else:
            self._output_keys = None
            flat_out = tf.nest.flatten(outputs)
            self.outputs = [replace(spec_from_tensor_spec(t, ""), name=f"output{i}") for i, t in enumerate(flat_out)]

    def run(self, inputs: list[np.ndarray], config: bytes) -> dict[str, np.ndarray]:
        tensors = [_tensor(a) for a in inputs]
        if self._keyword:
            result = self.function(**dict(zip(self._arg_names, tensors)))
        else:
            args = tensors if self._args_structure is None else tf.nest.pack_sequence_as(self._args_structure, tensors)
            result = self.function(*args)
        if self._output_keys is not None:
            return {str(k): result[k].numpy() for k in self._output_keys}
        return self.named_outputs(result if isinstance(result, tf.Tensor) else tf.nest.flatten(result))


class KerasModel(Model):
    """A Keras 3 model with declared inputs (functional, or Sequential built
    with ``keras.Input``), run through a ``tf.function`` with a batch-agnostic
    input signature so each batch size reuses one trace."""

    def __init__(self, model: Any, description: str = "") -> None:
        try:
            input_tensors = list(model.inputs)
            output_tensors = list(model.outputs)
        except (AttributeError, ValueError) as exc:
            raise ValueError(
                f"Keras model {model.name!r} has no defined inputs; build it from keras.Input "
                "(functional API, or Sequential starting with keras.Input) to serve it"
            ) from exc
        import keras

        self.model = model
        self.name = model.name
        self.description = description or f"Keras model {model.name}"
        self.inputs = [spec_from_tensor_spec(_KerasSpec(t), f"input{i}") for i, t in enumerate(input_tensors)]
        names = list(getattr(model, "output_names", None) or [])
        if len(names) != len(output_tensors):
            names = [_keras_output_name(t, i) for i, t in enumerate(output_tensors)]
        self.outputs = [replace(spec_from_tensor_spec(_KerasSpec(t), n), name=n) for n, t in zip(names, output_tensors)]
        try:
            structure = model.input  # a tensor, list or dict, as the model was built
        except (AttributeError, ValueError):  # Sequential: one input, never called
            structure = input_tensors[0] if len(input_tensors) == 1 else input_tensors
        signature = [tf.TensorSpec(t.shape, t.dtype) for t in input_tensors]

        def call(*flat: tf.Tensor) -> Any:
            packed = keras.tree.pack_sequence_as(structure, list(flat))
            return keras.tree.flatten(model(packed, training=False))

        self._call = tf.function(call, input_signature=signature)

    def run(self, inputs: list[np.ndarray], config: bytes) -> dict[str, np.ndarray]:
        result = self._call(*[_tensor(a) for a in inputs])
        return self.named_outputs(list(result))


class _KerasSpec:
    """A KerasTensor seen as a TensorSpec (Keras 3 dtypes are plain strings)."""

    def __init__(self, tensor: Any) -> None:
        self.name = getattr(tensor, "name", None)
        self.shape = tuple(tensor.shape)
        self.dtype = tf.dtypes.as_dtype(tensor.dtype)


def _keras_output_name(tensor: Any, index: int) -> str:
    history = getattr(tensor, "_keras_history", None)
    operation = getattr(history, "operation", None)
    return getattr(operation, "name", None) or f"output{index}"


def _function_name(function: Any) -> str:
    """``combine`` for a concrete function traced as ``__inference_combine_45``."""
    name = getattr(function, "name", b"")
    name = name.decode() if isinstance(name, bytes) else str(name)
    return re.sub(r"^__inference_|_\d+$", "", name) or "function"


def saved_model(path: Path, signature: str = "serving_default") -> FunctionModel:
    """Loads ``signature`` of the SavedModel in ``path``.

    Raises:
        ValueError: not a SavedModel, or it has no such signature.
    """
    if not (path / "saved_model.pb").is_file() and not (path / "saved_model.pbtxt").is_file():
        raise ValueError(f"{path} is a directory but not a SavedModel (no saved_model.pb)")
    loaded = tf.saved_model.load(str(path))
    return _signature_model(loaded, signature, name=path.resolve().name)


def _signature_model(module: Any, signature: str, name: str) -> FunctionModel:
    signatures = getattr(module, "signatures", None) or {}
    if signature not in signatures:
        available = ", ".join(sorted(signatures)) or "none"
        raise ValueError(f"model has no signature {signature!r} (available: {available})")
    model = FunctionModel(signatures[signature], name=name, description=f"SavedModel signature {signature}")
    model._module = module  # keeps variables alive as long as the function
    return model


def keras_file(path: Path) -> KerasModel:
    """Loads a ``.keras`` (or legacy ``.h5``) file without compiling it."""
    import keras

    return KerasModel(keras.models.load_model(str(path), compile=False), description=f"Keras model {path.stem}")


def wrap_tf_object(obj: Any, signature: str = "serving_default") -> Model | None:
    """The adapter for an in-memory TensorFlow / Keras object, or None if
    ``obj`` is none (a plain callable is then served as such)."""
    try:
        import keras

        if isinstance(obj, keras.Model):
            return KerasModel(obj)
    except ImportError:  # pragma: no cover - keras ships with tensorflow
        pass
    if isinstance(obj, tf.types.experimental.ConcreteFunction):
        return FunctionModel(obj, name=_function_name(obj))
    if isinstance(obj, tf.types.experimental.PolymorphicFunction):
        if obj.input_signature is None:
            return None  # a tf.function without a signature: serve it as a callable
        return FunctionModel(obj.get_concrete_function(), name=obj.__name__)
    if isinstance(obj, tf.Module):
        if signature in (getattr(obj, "signatures", None) or {}):
            return _signature_model(obj, signature, name=obj.name or type(obj).__name__)
        call = getattr(obj, "__call__", None)
        if isinstance(call, tf.types.experimental.PolymorphicFunction) and call.input_signature is not None:
            model = FunctionModel(call.get_concrete_function(), name=obj.name or type(obj).__name__)
            model._module = obj
            return model
        raise ValueError(
            f"tf.Module {type(obj).__name__}: no signature {signature!r} and no __call__ "
            "decorated with @tf.function(input_signature=...)"
        )
    return None
