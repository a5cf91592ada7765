# SPDX-License-Identifier: Apache-2.0
"""Each kind of MODEL ``serve`` accepts answers calls and describes itself
(names, dtypes, shapes with -1, in the documented order)."""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

import tf_graphpipe
from tf_graphpipe import Client, RemoteError
from tf_graphpipe.server.demo_model import expected, sample_input


def _io(metadata: dict, key: str) -> list[tuple[str, object, list[int]]]:
    return [(e["name"], e["dtype"], e["shape"]) for e in metadata[key]]


class _TwoInputs(tf.Module):
    """Signature inputs declared as (b, a): served sorted by name."""

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, 3], tf.float32, name="b"),
            tf.TensorSpec([None], tf.int64, name="a"),
        ]
    )
    def combine(self, b: tf.Tensor, a: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"total": tf.reduce_sum(b, axis=1) + tf.cast(a, tf.float32), "count": tf.shape(b)[0:1]}

    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="b")])
    def negate(self, b: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"negated": -b}


@pytest.fixture(scope="module")
def saved_model_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("models") / "two_inputs"
    module = _TwoInputs()
    tf.saved_model.save(
        module,
        str(path),
        signatures={
            "serving_default": module.combine.get_concrete_function(),
            "negate": module.negate.get_concrete_function(),
        },
    )
    return str(path)


def _keras_model() -> object:
    import keras

    a = keras.Input((4,), name="a")
    b = keras.Input((2,), name="b")
    joined = keras.layers.Concatenate()([a, b])
    first = keras.layers.Dense(3, name="scores", kernel_initializer="ones", bias_initializer="zeros")(joined)
    second = keras.layers.Dense(1, name="total", kernel_initializer="ones", bias_initializer="zeros")(joined)
    return keras.Model([a, b], [first, second], name="twin")


def test_saved_model_signature_inputs_sorted_by_name(saved_model_dir: str) -> None:
    with tf_graphpipe.serve(saved_model_dir) as server:
        client = Client(server.url)
        metadata = client.metadata()
        assert metadata["name"] == "two_inputs"
        assert _io(metadata, "inputs") == [("a", np.dtype(np.int64), [-1]), ("b", np.dtype(np.float32), [-1, 3])]
        assert _io(metadata, "outputs") == [("count", np.dtype(np.int32), [1]), ("total", np.dtype(np.float32), [-1])]
        b = np.arange(6, dtype=np.float32).reshape(2, 3)
        a = np.array([10, 20], dtype=np.int64)
        count, total = client.infer([a, b])
        np.testing.assert_array_equal(count, [2])
        np.testing.assert_array_equal(total, [13.0, 32.0])
        # named inputs in any order; one output chosen by name
        total = client.infer({"b": b, "a": a}, output_names=["total"])
        np.testing.assert_array_equal(total, [13.0, 32.0])


def test_saved_model_other_signature(saved_model_dir: str) -> None:
    with tf_graphpipe.serve(saved_model_dir, signature="negate", name="neg") as server:
        client = Client(server.url)
        assert client.metadata()["name"] == "neg"
        np.testing.assert_array_equal(client.infer(np.ones((1, 3), np.float32)), -np.ones((1, 3)))


def test_saved_model_unknown_signature_is_refused(saved_model_dir: str) -> None:
    with pytest.raises(ValueError, match=r"no signature 'nope' \(available: negate, serving_default\)"):
        tf_graphpipe.serve(saved_model_dir, signature="nope")


def test_keras_file_uses_model_input_and_output_order(tmp_path) -> None:
    path = tmp_path / "twin.keras"
    _keras_model().save(path)
    with tf_graphpipe.serve(str(path)) as server:
        client = Client(server.url)
        metadata = client.metadata()
        assert _io(metadata, "inputs") == [("a", np.dtype(np.float32), [-1, 4]), ("b", np.dtype(np.float32), [-1, 2])]
        assert _io(metadata, "outputs") == [("scores", np.dtype(np.float32), [-1, 3]),
                                            ("total", np.dtype(np.float32), [-1, 1])]
        scores, total = client.infer([np.ones((2, 4), np.float32), np.ones((2, 2), np.float32)])
        np.testing.assert_allclose(scores, np.full((2, 3), 6.0))
        np.testing.assert_allclose(total, np.full((2, 1), 6.0))


def test_in_memory_keras_model() -> None:
    import keras

    model = keras.Sequential([keras.Input((4,), name="features"), keras.layers.Dense(2, kernel_initializer="ones")])
    with tf_graphpipe.serve(model) as server:
        client = Client(server.url)
        metadata = client.metadata()
        assert _io(metadata, "inputs") == [("features", np.dtype(np.float32), [-1, 4])]
        assert [e["shape"] for e in metadata["outputs"]] == [[-1, 2]]
        np.testing.assert_allclose(client.infer(np.ones((3, 4), np.float32)), np.full((3, 2), 4.0))


def test_tf_module_and_concrete_function() -> None:
    module = _TwoInputs()
    module.__call__ = module.negate  # a tf.Module served through its __call__
    with tf_graphpipe.serve(module) as server:
        client = Client(server.url)
        assert _io(client.metadata(), "inputs") == [("b", np.dtype(np.float32), [-1, 3])]
        np.testing.assert_array_equal(client.infer(np.ones((1, 3), np.float32)), -np.ones((1, 3)))
    with tf_graphpipe.serve(module.combine.get_concrete_function(), name="combine") as server:
        client = Client(server.url)
        metadata = client.metadata()
        assert [e["name"] for e in metadata["inputs"]] == ["b", "a"]  # positional: argument order
        assert [e["name"] for e in metadata["outputs"]] == ["count", "total"]
        count, total = client.infer([np.ones((2, 3), np.float32), np.array([1, 2], np.int64)])
        np.testing.assert_array_equal(total, [4.0, 5.0])


def test_tf_function_without_signature_is_served_as_callable() -> None:
    with tf_graphpipe.serve(tf.function(lambda x: x + 1)) as server:
        np.testing.assert_array_equal(Client(server.url).infer(np.arange(3, dtype=np.int32)), [1, 2, 3])


def annotated(
    x: tf.TensorSpec([None, 2], tf.float32), label: tf.TensorSpec([None], tf.string)
) -> {"scaled": tf.TensorSpec([None, 2], tf.float32), "label": tf.TensorSpec([None], tf.string)}:
    return {"label": label, "scaled": x * 10}


def test_callable_metadata_from_tensor_spec_annotations() -> None:
    with tf_graphpipe.serve(annotated) as server:
        client = Client(server.url)
        metadata = client.metadata()
        assert metadata["name"] == "annotated"
        assert _io(metadata, "inputs") == [("x", np.dtype(np.float32), [-1, 2]), ("label", np.dtype(object), [-1])]
        assert _io(metadata, "outputs") == [("scaled", np.dtype(np.float32), [-1, 2]),
                                            ("label", np.dtype(object), [-1])]
        scaled, label = client.infer([np.ones((1, 2), np.float32), np.array([b"a\x00b"], dtype=object)])
        np.testing.assert_array_equal(scaled, [[10.0, 10.0]])
        assert label.tolist() == [b"a\x00b"]


def test_callable_by_import_path_with_specs_from_options() -> None:
    with tf_graphpipe.serve("support.servers:double", input_specs=["x:int32:-1"], output_specs=["y:int32:-1"]) as server:
        client = Client(server.url)
        metadata = client.metadata()
        assert metadata["name"] == "double"
        assert _io(metadata, "inputs") == [("x", np.dtype(np.int32), [-1])]
        assert _io(metadata, "outputs") == [("y", np.dtype(np.int32), [-1])]
        np.testing.assert_array_equal(client.infer(np.array([1, 2], np.int32), output_names=["y"]), [2, 4])


def test_unannotated_callable_inputs_are_numbered_and_undeclared() -> None:
    with tf_graphpipe.serve(lambda a, b: (a + b, a - b)) as server:
        client = Client(server.url)
        metadata = client.metadata()
        assert _io(metadata, "inputs") == [("input0", None, []), ("input1", None, [])]
        total, difference = client.infer([np.array([3.0]), np.array([1.0])])
        assert (total.tolist(), difference.tolist()) == ([4.0], [2.0])
        np.testing.assert_array_equal(client.infer([np.array([3]), np.array([1])], output_names=["output1"]), [2])


def test_demo_model_matches_its_numpy_definition() -> None:
    with tf_graphpipe.serve("demo") as server:
        client = Client(server.url)
        metadata = client.metadata()
        assert metadata["name"] == "demo"
        assert _io(metadata, "inputs") == [("x", np.dtype(np.float32), [-1, 4])]
        assert _io(metadata, "outputs") == [("probabilities", np.dtype(np.float32), [-1, 3])]
        x = sample_input()
        np.testing.assert_allclose(client.infer(x), expected(x), atol=1e-6)


def test_missing_model_path_is_refused(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="not found"):
        tf_graphpipe.serve(str(tmp_path / "nothing_here"))
    with pytest.raises(ModuleNotFoundError):
        tf_graphpipe.serve("no_such_module_anywhere:predict")


def test_keras_model_without_inputs_is_refused() -> None:
    import keras

    with pytest.raises(ValueError, match="no defined inputs"):
        tf_graphpipe.serve(keras.Sequential([keras.layers.Dense(2)]))


def test_server_error_text_has_no_node_trace() -> None:
    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
    def must_be_negative(x: tf.Tensor) -> tf.Tensor:
        with tf.control_dependencies([tf.debugging.assert_less(x, 0.0, message="x must be negative")]):
            return tf.identity(x)

    with tf_graphpipe.serve(must_be_negative) as server:
        with pytest.raises(RemoteError) as caught:
            Client(server.url).infer(np.ones(1, np.float32))
        assert caught.value.status == 500
        assert "x must be negative" in caught.value.message
        assert "File " not in caught.value.message and ".py" not in caught.value.message
