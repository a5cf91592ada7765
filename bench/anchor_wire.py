# SPDX-License-Identifier: Apache-2.0
"""The wire formats of the anchors, one definition for the servers
(``anchor_servers.py``) and for every bench that measures them:

* TensorFlow Serving's ``PredictRequest`` / ``PredictResponse`` protobuf,
  tensors built with ``tf.make_tensor_proto`` and read with
  ``tf.make_ndarray`` (input ``images``, output ``features``);
* the JSON API the seed measured: ``{"inputs": nested lists}`` in,
  ``{"outputs": nested lists}`` out, with ``ujson`` (or any module with
  ``dumps``/``loads``, e.g. the standard library's ``json``).

TensorFlow and ``ujson`` are imported on first use: the reference client's
venv imports this module without them.
"""
from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

__all__ = ["predict_request", "predict_request_array", "predict_response", "predict_response_array",
           "json_body", "json_array"]


def _ujson() -> ModuleType:
    import ujson as module

    return module


# ---- TF Serving protobuf ------------------------------------------------------------


def predict_request(x: np.ndarray, model: str = "model") -> bytes:
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.inputs["images"].CopyFrom(tf.make_tensor_proto(x))
    return request.SerializeToString()


def predict_request_array(body: bytes) -> tuple[np.ndarray, str]:
    """The request's input and model name."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.ParseFromString(body)
    return tf.make_ndarray(request.inputs["images"]), request.model_spec.name


def predict_response(y: np.ndarray, model: str = "") -> bytes:
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    response = predict_pb2.PredictResponse()
    if model:
        response.model_spec.name = model
    response.outputs["features"].CopyFrom(tf.make_tensor_proto(y))
    return response.SerializeToString()


def predict_response_array(body: bytes) -> np.ndarray:
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    response = predict_pb2.PredictResponse()
    response.ParseFromString(body)
    return tf.make_ndarray(response.outputs["features"])


# ---- the JSON API -------------------------------------------------------------------


def json_body(key: str, a: np.ndarray, module: Any = None) -> bytes:
    """``{key: a as nested lists}``, encoded (``key``: "inputs" or "outputs")."""
    return (module or _ujson()).dumps({key: a.tolist()}).encode()


def json_array(key: str, body: bytes, module: Any = None) -> np.ndarray:
    return np.asarray((module or _ujson()).loads(body)[key], dtype=np.float32)
