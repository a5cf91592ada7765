# SPDX-License-Identifier: Apache-2.0
"""The models the v2 server tests serve with ``tf_graphpipe.serve`` (also
importable as ``support.v2_server_models:arith`` by a ``tf-graphpipe serve`` process)."""
from __future__ import annotations

import numpy as np

ARITH_INPUTS = ["x:float32:-1,-1", "y:int64:-1,-1"]
ARITH_OUTPUTS = ["sum:float64:-1,-1", "neg:int64:-1,-1", "positive:bool:-1,-1"]


def arith(x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """Two inputs, three outputs; raises (the model's own failure) when x holds 13."""
    if np.any(x == 13):
        raise ValueError("thirteen is unlucky")
    return {"sum": x.astype(np.float64) + y, "neg": -y, "positive": x > 0}


def echo(*inputs: np.ndarray) -> list[np.ndarray]:
    """Any number of inputs of any dtype, answered as they came (output0, output1...)."""
    return list(inputs)


def views(x: np.ndarray) -> np.ndarray:
    """Whether the input is a view of memory the server did not allocate for it
    (True: no copy) and whether it is aligned for its dtype."""
    return np.array([not x.flags.owndata, x.flags.aligned])
