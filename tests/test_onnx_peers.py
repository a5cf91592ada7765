# SPDX-License-Identifier: Apache-2.0
"""Served ONNX models called the ways users call them: the reference GraphPipe
client (``graphpipe==1.0.4``) and ``tritonclient[http]``, each in its own
venv, and ``remote_call`` / ``GraphPipeLayer`` inside ``tf.function``; the
answers equal ONNX Runtime run in this process."""
from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from test_v2_server_tritonclient import _STEPS as TRITONCLIENT_STEPS
from test_v2_server_tritonclient import TRITONCLIENT

import tf_graphpipe

from support import onnx_test_models as models
from support import peer_venvs

CNN = models.PYTORCH_CNN / "model.onnx"

REFERENCE_CNN = r"""
import sys
import numpy as np
from graphpipe import remote

url, images_path, out_path = sys.argv[1:]
images = np.load(images_path)
assert remote.get_input_names(url) == ["images"]
assert remote.get_output_names(url) == ["features", "logits"]
assert remote.get_input_shapes(url) == [[None, 3, 32, 32]]
logits = remote.execute(url, images, output_name="logits")
features, logits_again = remote.execute_multi(url, [images], ["images"], ["features", "logits"])
assert np.array_equal(logits, logits_again)
np.savez(out_path, features=features, logits=logits)
print("ok")
"""

REFERENCE_STRINGS = r"""
import sys
import numpy as np
from graphpipe import remote

got = remote.execute(sys.argv[1], np.array([b"plain", "caf\u00e9".encode(), b""], dtype=object))
assert [bytes(g) for g in got] == [b"plain", "caf\u00e9".encode(), b""], got
print("ok")
"""

TRITON_MULTI_IO = r"""
import sys
import numpy as np
import tritonclient.http as httpclient

client = httpclient.InferenceServerClient(sys.argv[1], connection_timeout=30, network_timeout=60)
a = np.array([[1.5, -2.0, 0.0], [4.0, 0.25, -1.0]], np.float32)
b = np.array([[1, 2, 3], [-4, 5, 2**40]], np.int64)
meta = client.get_model_metadata("multi_io")
assert [(t["name"], t["datatype"], t["shape"]) for t in meta["inputs"]] == [
    ("a", "FP32", [-1, 3]), ("b", "INT64", [-1, 3])], meta
assert [t["datatype"] for t in meta["outputs"]] == ["FP64", "INT64", "BOOL"], meta
for binary in (True, False):
    inputs = [httpclient.InferInput("a", [2, 3], "FP32").set_data_from_numpy(a, binary_data=binary),
              httpclient.InferInput("b", [2, 3], "INT64").set_data_from_numpy(b, binary_data=binary)]
    outputs = [httpclient.InferRequestedOutput(n, binary_data=binary) for n in ("total", "negated", "positive")]
    result = client.infer("multi_io", inputs, outputs=outputs)
    np.savez(sys.argv[2] + ("_binary" if binary else "_json") + ".npz",
             **{n: result.as_numpy(n) for n in ("total", "negated", "positive")})
print("OK")
"""


@pytest.fixture(scope="module")
def cnn_server() -> Iterator[tf_graphpipe.server.RunningServer]:
    with tf_graphpipe.serve(CNN) as server:
        yield server


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.load(models.PYTORCH_CNN / "expected.npz")["images"]


def test_reference_client_calls_the_pytorch_export(cnn_server, images, reference_python, tmp_path: Path) -> None:
    np.save(tmp_path / "images.npy", images)
    out = tmp_path / "out.npz"
    result = peer_venvs.run_reference(REFERENCE_CNN, cnn_server.url, str(tmp_path / "images.npy"), str(out))
    assert result.stdout.strip() == "ok"
    got, want = np.load(out), models.ort_run(CNN, {"images": images})
    assert got["features"].tobytes() == want["features"].tobytes()
    assert got["logits"].tobytes() == want["logits"].tobytes()


def test_reference_client_sends_and_reads_onnx_strings(reference_python, tmp_path: Path) -> None:
    with tf_graphpipe.serve(models.strings(tmp_path / "strings.onnx")) as server:
        assert peer_venvs.run_reference(REFERENCE_STRINGS, server.url).stdout.strip() == "ok"


@pytest.mark.slow
def test_tritonclient_calls_an_onnx_model_binary_and_json(tmp_path: Path) -> None:
    try:
        python = peer_venvs.ensure_venv(TRITONCLIENT, TRITONCLIENT_STEPS, "import tritonclient.http, numpy")
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        pytest.fail(f"cannot build the {TRITONCLIENT} venv: {exc}")
    path = models.multi_io(tmp_path / "multi_io.onnx")
    a = np.array([[1.5, -2.0, 0.0], [4.0, 0.25, -1.0]], np.float32)
    b = np.array([[1, 2, 3], [-4, 5, 2**40]], np.int64)
    want = models.ort_run(path, {"a": a, "b": b})
    with tf_graphpipe.serve(path) as server:
        result = subprocess.run([str(python), "-c", TRITON_MULTI_IO, f"{server.host}:{server.port}",
                                 str(tmp_path / "answer")], check=False, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "OK", result.stderr
    for mode in ("binary", "json"):
        got = np.load(tmp_path / f"answer_{mode}.npz")
        for name in ("total", "negated", "positive"):
            assert got[name].dtype == want[name].dtype and got[name].tobytes() == want[name].tobytes(), (mode, name)


@pytest.mark.parametrize("protocol", ["graphpipe", "v2"])
def test_remote_call_in_tf_function_gets_onnx_runtimes_answer(cnn_server, images, protocol: str) -> None:
    url = cnn_server.url if protocol == "graphpipe" else f"{cnn_server.url}/v2/models/pytorch_cnn"

    @tf.function
    def logits_of(x: tf.Tensor) -> tf.Tensor:
        return tf_graphpipe.remote_call(url, [x], output_dtypes=[tf.float32], output_shapes=[[None, 10]],
                                        output_names=["logits"])[0]

    got = logits_of(tf.constant(images)).numpy()
    assert got.tobytes() == models.ort_run(CNN, {"images": images})["logits"].tobytes()


def test_graphpipe_layer_uses_the_export_as_a_feature_extractor(cnn_server, images) -> None:
    import keras

    inputs = keras.Input((3, 32, 32))
    features = tf_graphpipe.GraphPipeLayer(cnn_server.url, output_names=["features"],
                                           output_dtypes=["float32"], output_shapes=[[None, 128]])(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2)(features))
    labels = np.array([0, 1, 0, 1, 1])
    model.compile(keras.optimizers.SGD(0.01), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    before = [w.copy() for w in model.layers[-1].get_weights()]
    model.fit(images, labels, epochs=1, batch_size=5, verbose=0)
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.layers[-1].get_weights(), strict=True))
    extractor = keras.Model(inputs, features)
    np.testing.assert_allclose(extractor.predict(images, verbose=0),
                               models.ort_run(CNN, {"images": images})["features"], rtol=0, atol=0)
