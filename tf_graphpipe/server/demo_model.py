# SPDX-License-Identifier: Apache-2.0
"""The embedded ``demo`` model: built in code, no download, deterministic.

A tiny classifier: ``probabilities = softmax(x @ W + b)`` for ``x`` of
float32 ``[batch, 4]`` and three classes, with fixed weights. ``expected``
computes the same thing in NumPy so callers can check an answer.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from tf_graphpipe.server.model import Model

__all__ = ["WEIGHTS", "BIAS", "demo_model", "expected", "sample_input"]

WEIGHTS = np.array(
    [
        [0.9, -0.4, -0.5],
        [0.2, 0.6, -0.8],
        [-0.7, 0.1, 0.6],
        [-0.3, -0.2, 0.5],
    ],
    dtype=np.float32,
)
BIAS = np.array([0.1, 0.0, -0.1], dtype=np.float32)

DESCRIPTION = (
    "tf-graphpipe demo: probabilities = softmax(x @ W + b); "
    "x float32 [batch, 4] -> probabilities float32 [batch, 3]"
)


def demo_model() -> Model:
    """The demo model as a served ``Model`` (imports TensorFlow)."""
    import tensorflow as tf

    from tf_graphpipe.server.tf_models import FunctionModel

    class Demo(tf.Module):
        def __init__(self) -> None:
            super().__init__(name="demo")
            self.w = tf.constant(WEIGHTS)
            self.b = tf.constant(BIAS)

        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
        def __call__(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"probabilities": tf.nn.softmax(tf.matmul(x, self.w) + self.b)}

    module = Demo()
    model = FunctionModel(module.__call__.get_concrete_function(), name="demo", description=DESCRIPTION)
    model.inputs = [replace(model.inputs[0], description="4 measurements per row")]
    model.outputs = [replace(model.outputs[0], description="probability of each of 3 classes")]
    model._module = module
    return model


def sample_input() -> np.ndarray:
    """A small batch to call the demo with: float32 [3, 4]."""
    return np.array(
        [[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.5, -0.5, 2.0, 1.0]],
        dtype=np.float32,
    )


def expected(x: np.ndarray) -> np.ndarray:
    """What the demo model answers for ``x``, computed in NumPy."""
    logits = x.astype(np.float32) @ WEIGHTS + BIAS
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)
