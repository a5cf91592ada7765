# SPDX-License-Identifier: Apache-2.0
"""Models the Ray Serve tests serve by name (``support.ray_models:NAME``):
replicas import them, so they must not need anything the tests set up."""
from __future__ import annotations

import os
import time

import numpy as np

# ``x:float32:-1,4`` in, ``2x`` and the answering replica out ("NODE ACTOR":
# the ids of its node and of its actor).
SCALE_INPUTS = ["x:float32:-1,4"]
SCALE_OUTPUTS = ["y:float32:-1,4", "replica:string:1"]
# The seed workload's shapes: 128 images in, 128 feature maps out.
SEED_INPUTS = ["images:float32:-1,224,224,3"]
SEED_OUTPUTS = ["features:float32:-1,7,7,512"]


def _replica() -> np.ndarray:
    import ray

    context = ray.get_runtime_context()
    return np.array([f"{context.get_node_id()} {context.get_actor_id()}".encode()], dtype=object)


def scale(x: np.ndarray) -> list[np.ndarray]:
    """``2 * x``, and which replica answered."""
    return [x * 2, _replica()]


def offset(x: np.ndarray) -> list[np.ndarray]:
    """``x + 1``, and which replica answered."""
    return [x + 1, _replica()]


def slow_scale(x: np.ndarray) -> list[np.ndarray]:
    """``scale``, after 200 ms: calls overlap, and some are in flight when a node goes."""
    time.sleep(0.2)
    return scale(x)


def seed_features(images: np.ndarray) -> np.ndarray:
    """The first 25088 values of each image, as a 7x7x512 map: a check of
    every byte of the answer that costs one copy."""
    flat = images.reshape(images.shape[0], -1)
    return np.ascontiguousarray(flat[:, : 7 * 7 * 512]).reshape(-1, 7, 7, 512)


def scale_or_exit(x: np.ndarray) -> list[np.ndarray]:
    """``scale``; a negative input ends the replica's process during the call."""
    if float(x.min()) < 0:
        time.sleep(0.2)
        os._exit(1)
    return scale(x)
