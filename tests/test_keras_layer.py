# SPDX-License-Identifier: Apache-2.0
"""GraphPipeLayer in Keras models, against real `tf_graphpipe.serve` servers:
metadata discovery, fit, .keras round trips, SavedModel export, reload in a
fresh process and re-pointing."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_graphpipe

from support.graphpipe_test_servers import EchoServer
from support.ports import free_port


def feature_extractor(scale: float) -> keras.Model:
    """A small frozen 'remote' model: (None, 4) float32 -> (None, 8)."""
    inputs = keras.Input((4,), name="pixels")
    dense = keras.layers.Dense(8, activation="relu", name="features",
                               kernel_initializer=keras.initializers.Constant(scale),
                               bias_initializer="ones")
    return keras.Model(inputs, dense(inputs), name=f"extractor_{scale}")


@pytest.fixture(scope="module")
def server():
    with tf_graphpipe.serve(feature_extractor(0.5)) as running:
        yield running


@pytest.fixture(scope="module")
def other_server():
    with tf_graphpipe.serve(feature_extractor(-0.25)) as running:
        yield running


def local_model(url: str, **layer_kwargs) -> keras.Model:
    """Local preprocessing -> remote features -> local head."""
    inputs = keras.Input((4,), name="raw")
    scaled = keras.layers.Rescaling(0.1, name="preprocess")(inputs)
    features = tf_graphpipe.GraphPipeLayer(url, name="remote", **layer_kwargs)(scaled)
    outputs = keras.layers.Dense(1, name="head")(features)
    return keras.Model(inputs, outputs)


def data(rows: int = 32) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 10, size=(rows, 4)).astype(np.float32)
    return x, x.sum(axis=1, keepdims=True)


def run_fresh(script: str) -> str:
    """Runs `script` in a new Python process; returns its stdout."""
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(script)],
                            capture_output=True, text=True, timeout=180)
    if result.returncode != 0:
        raise AssertionError(f"subprocess failed:\n{result.stderr[-4000:]}")
    return result.stdout


def test_layer_discovers_output_spec_from_metadata(server):
    model = local_model(server.url)
    layer = model.get_layer("remote")
    assert layer.output_dtypes == ["float32"]
    assert layer.output_shapes == [[None, 8]]
    assert model.get_layer("head").input.shape == (None, 8)
    assert layer.trainable_weights == []


def test_fit_trains_only_the_local_head(server):
    model = local_model(server.url)
    model.compile(optimizer=keras.optimizers.SGD(0.001), loss="mse")
    x, y = data()
    remote_before = tf_graphpipe.Client(server.url).infer(x * 0.1)
    head_before = [w.numpy().copy() for w in model.get_layer("head").weights]
    history = model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    head_after = [w.numpy() for w in model.get_layer("head").weights]
    assert all(not np.allclose(a, b) for a, b in zip(head_before, head_after))
    np.testing.assert_array_equal(tf_graphpipe.Client(server.url).infer(x * 0.1), remote_before)


def test_keras_file_round_trip_predicts_identically(server, tmp_path):
    model = local_model(server.url)
    x, _ = data()
    path = tmp_path / "model.keras"
    model.save(path)
    reloaded = keras.models.load_model(path)
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert reloaded.get_layer("remote").get_config()["output_shapes"] == [[None, 8]]


def test_reloaded_keras_file_needs_no_network_until_called(server, tmp_path):
    with EchoServer() as counting:
        # Explicit dtypes/shapes: the layer never touches the network to build.
        model = local_model(counting.url, output_dtypes=["float32"], output_shapes=[[None, 4]])
        model.save(tmp_path / "offline.keras")
        reloaded = keras.models.load_model(tmp_path / "offline.keras")
        reloaded.summary(print_fn=lambda *a, **k: None)
        assert counting.requests_received == 0
        x, _ = data(3)
        reloaded.predict(x, verbose=0)
        assert counting.requests_received == 1


def test_server_down_at_build_time_names_the_url():
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ValueError, match=f"could not read the metadata of {url}"):
        local_model(url, retries=0, timeout=2.0)


def test_several_inputs_and_outputs_by_name():
    def two_heads(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return a + b, a * b

    specs = dict(input_specs=["a:float32:-1,2", "b:float32:-1,2"],
                 output_specs=["sum:float32:-1,2", "product:float32:-1,2"])
    with tf_graphpipe.serve(two_heads, **specs) as running:
        a_in, b_in = keras.Input((2,), name="a"), keras.Input((2,), name="b")
        remote = tf_graphpipe.GraphPipeLayer(running.url, output_names=["product", "sum"])
        product, total = remote({"b": b_in, "a": a_in})
        model = keras.Model([a_in, b_in], [product, total])
        a = np.array([[1, 2], [3, 4]], np.float32)
        b = np.array([[5, 6], [7, 8]], np.float32)
        got_product, got_sum = model.predict([a, b], verbose=0)
        np.testing.assert_array_equal(got_product, a * b)
        np.testing.assert_array_equal(got_sum, a + b)


def test_export_reloads_in_a_fresh_process_and_can_be_repointed(server, other_server, tmp_path):
    model = local_model(server.url)
    x, _ = data(5)
    np.save(tmp_path / "x.npy", x)
    expected = model.predict(x, verbose=0)
    model.export(tmp_path / "exported", verbose=False)
    # What the second server would give, computed locally with the same head.
    other = keras.Model(model.input, model.get_layer("head")(
        feature_extractor(-0.25)(model.get_layer("preprocess")(model.input))))
    expected_other = other.predict(x, verbose=0)

    out = run_fresh(f"""
        import numpy as np, tensorflow as tf
        import tf_graphpipe  # registers the op
        loaded = tf.saved_model.load({str(tmp_path / "exported")!r})
        x = np.load({str(tmp_path / "x.npy")!r})
        np.save({str(tmp_path / "first.npy")!r}, loaded.serve(x).numpy())
        changed = tf_graphpipe.repoint(loaded, {other_server.url!r}, old={server.url!r})
        np.save({str(tmp_path / "second.npy")!r}, loaded.serve(x).numpy())
        print(changed)
    """)
    assert out.strip() == "1"
    np.testing.assert_allclose(np.load(tmp_path / "first.npy"), expected, rtol=1e-6)
    np.testing.assert_allclose(np.load(tmp_path / "second.npy"), expected_other, rtol=1e-6)


def test_saved_module_with_remote_call_reloads(server, tmp_path):
    class Extractor(tf.Module):
        def __init__(self, url: str) -> None:
            super().__init__()
            self.url = tf_graphpipe.make_url_variable(url)

        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32)])
        def __call__(self, x):
            return tf_graphpipe.remote_call(self.url, [x], output_dtypes=[tf.float32],
                                            output_shapes=[[None, 8]])[0]

    module = Extractor(server.url)
    x = np.ones((2, 4), np.float32)
    expected = module(x).numpy()
    tf.saved_model.save(module, str(tmp_path / "module"))
    out = run_fresh(f"""
        import numpy as np, tensorflow as tf
        import tf_graphpipe
        loaded = tf.saved_model.load({str(tmp_path / "module")!r})
        print(loaded(np.ones((2, 4), np.float32)).numpy().tolist())
    """)
    assert np.allclose(eval(out), expected)


def test_loading_without_import_names_the_missing_op(server, tmp_path):
    model = local_model(server.url)
    model.export(tmp_path / "exported", verbose=False)
    result = subprocess.run(
        [sys.executable, "-c", f"import tensorflow as tf; tf.saved_model.load({str(tmp_path / 'exported')!r})"],
        capture_output=True, text=True, timeout=180,
    )
    assert result.returncode != 0
    assert "Op type not registered 'GraphPipeCall'" in result.stderr


def status_model(url: str) -> keras.Model:
    """Raw -> remote features, with the call's status as two more outputs."""
    inputs = keras.Input((4,), name="raw", batch_size=2)
    features, code, message = tf_graphpipe.GraphPipeLayer(
        url, output_dtypes=["float32"], output_shapes=[[2, 8]], on_error="status", retries=0,
        name="remote")(inputs)
    return keras.Model(inputs, [features, code, message])


def test_layer_with_status_reports_failures_instead_of_raising(server):
    model = status_model(server.url)
    x, _ = data(2)
    features, code, message = model(x)
    np.testing.assert_allclose(features.numpy(), feature_extractor(0.5)(x).numpy(), rtol=1e-6)
    assert int(code) == 0 and message.numpy() == b""
    model.get_layer("remote").repoint(f"http://127.0.0.1:{free_port()}/")
    features, code, message = model(x)
    assert int(code) == tf.errors.UNAVAILABLE and b"cannot reach" in message.numpy()
    np.testing.assert_array_equal(features.numpy(), np.zeros((2, 8)))
    layer = tf_graphpipe.GraphPipeLayer.from_config(model.get_layer("remote").get_config())
    assert layer.on_error == "status"


def test_layer_with_status_reports_failures_after_export_and_fresh_reload(server, tmp_path):
    model = status_model(server.url)
    x, _ = data(2)
    np.save(tmp_path / "x.npy", x)
    model.export(tmp_path / "exported", verbose=False)
    out = run_fresh(f"""
        import numpy as np, tensorflow as tf
        import tf_graphpipe
        loaded = tf.saved_model.load({str(tmp_path / "exported")!r})
        x = np.load({str(tmp_path / "x.npy")!r})
        _, code, _ = loaded.serve(x)
        tf_graphpipe.repoint(loaded, "http://127.0.0.1:{free_port()}/", old={server.url!r})
        features, dead_code, message = loaded.serve(x)
        print(int(code), int(dead_code), float(np.abs(features.numpy()).sum()), message.numpy().decode())
    """)
    code, dead_code, total, message = out.strip().split(" ", 3)
    assert (code, dead_code, total) == ("0", str(tf.errors.UNAVAILABLE), "0.0")
    assert "cannot reach" in message
