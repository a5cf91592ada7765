# SPDX-License-Identifier: Apache-2.0
"""The interface every model kind implements: a ``Model`` declares its inputs
and outputs and has one ``run`` method on NumPy arrays. ``CallableModel``
adapts a plain Python function.

This module imports no TensorFlow and no other adapter: the adapters
(``tf_models``, ``demo_model``...) import it, and ``loading`` chooses between
them.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from tf_graphpipe.server.specs import IOSpec, spec_from_tensor_spec

__all__ = ["Model", "CallableModel", "InputRejected"]


class InputRejected(ValueError):
    """Raised by ``Model.run`` when the inputs are the caller's mistake in a
    way metadata cannot say (e.g. a string that is not UTF-8): the server
    answers 400 with this message instead of 500."""


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
