# SPDX-License-Identifier: Apache-2.0
"""Writes the example model repository: this directory's ``config.json``
files plus the model versions they describe, which are built here rather
than kept as binary files::

    python examples/model_repository/build.py /tmp/models
    tf-graphpipe serve --model-repository /tmp/models

    /tmp/models/scale/config.json       {"version_policy": "all"}
    /tmp/models/scale/1/                SavedModel: y = 1 * x   (x: float32 [batch, 4])
    /tmp/models/scale/2/                SavedModel: y = 2 * x
    /tmp/models/classify/config.json    the newest version, batching up to 32 rows
    /tmp/models/classify/1/model.keras  Keras: the demo classifier, float32 [batch, 4] -> [batch, 3]

The tests build their repositories with the same functions.
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODELS = ("scale", "classify")


def save_scale(path: Path, factor: float) -> Path:
    """A SavedModel in ``path``: signature ``serving_default``, input ``x``
    float32 [batch, 4], output ``y = factor * x``."""
    import tensorflow as tf

    class Scale(tf.Module):
        def __init__(self) -> None:
            super().__init__(name="scale")
            self.factor = tf.Variable(float(factor), trainable=False)

        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
        def __call__(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"y": x * self.factor}

    module = Scale()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.__call__})
    return path


def save_classifier(path: Path, scale: float = 1.0) -> Path:
    """A ``.keras`` file at ``path``: the demo classifier,
    ``softmax(x @ (scale * W) + b)`` for ``features`` float32 [batch, 4]."""
    import keras

    from tf_graphpipe.server.demo_model import BIAS, WEIGHTS

    features = keras.Input((4,), name="features")
    dense = keras.layers.Dense(3, activation="softmax", name="probabilities")
    model = keras.Model(features, dense(features), name="classify")
    dense.set_weights([WEIGHTS * scale, BIAS])
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)
    return path


def build(target: Path) -> Path:
    """Writes the example repository into ``target`` (created; must not
    hold these models yet) and returns it."""
    target.mkdir(parents=True, exist_ok=True)
    for name in MODELS:
        (target / name).mkdir()
        shutil.copy(HERE / name / "config.json", target / name / "config.json")
    for version in (1, 2):
        save_scale(target / "scale" / str(version), factor=version)
    save_classifier(target / "classify" / "1" / "model.keras")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("target", type=Path, help="the directory to write the repository into")
    args = parser.parse_args(argv)
    print(build(args.target))
    return 0


if __name__ == "__main__":
    sys.exit(main())
