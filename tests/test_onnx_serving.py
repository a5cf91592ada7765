# SPDX-License-Identifier: Apache-2.0
"""ONNX models served by ``tf_graphpipe.serve``: metadata read from the graph,
answers over GraphPipe and the Open Inference Protocol equal to ONNX Runtime
run in this process, bit for bit (and to PyTorch's own outputs for the
committed export, within float tolerance), every dtype both wires carry,
batching, limits and health as for any other model kind."""
from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

import tf_graphpipe
from tf_graphpipe.errors import RemoteError
from tf_graphpipe.server.onnx_models import OnnxModel, load_onnx_model

from support import onnx_test_models as models


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx")


@pytest.fixture(scope="module")
def gemm(model_dir: Path) -> Path:
    return models.gemm_softmax(model_dir / "gemm.onnx")


@pytest.fixture(scope="module")
def multi_io(model_dir: Path) -> Iterator[tuple[Path, tf_graphpipe.server.RunningServer]]:
    path = models.multi_io(model_dir / "multi_io.onnx")
    with tf_graphpipe.serve(path) as server:
        yield path, server


def both_protocols(server: tf_graphpipe.server.RunningServer) -> list[tf_graphpipe.Client]:
    return [tf_graphpipe.Client(server.url, timeout=30),
            tf_graphpipe.Client(f"{server.url}/v2/models/{server.model.name}", timeout=30)]


def test_metadata_comes_from_the_graph(multi_io) -> None:
    _, server = multi_io
    for client in both_protocols(server):
        meta = client.metadata()
        assert meta["name"] == "multi_io"
        assert [(i["name"], i["shape"]) for i in meta["inputs"]] == [("a", [-1, 3]), ("b", [-1, 3])]
        assert [np.dtype(i["dtype"]) for i in meta["inputs"]] == [np.float32, np.int64]
        assert [(o["name"], o["shape"]) for o in meta["outputs"]] == [
            ("total", [-1, 3]), ("negated", [-1, 3]), ("positive", [-1, 3])]


def test_v2_metadata_names_onnx_types(multi_io) -> None:
    _, server = multi_io
    connection = http.client.HTTPConnection(server.host, server.port, timeout=30)
    connection.request("GET", "/v2/models/multi_io")
    body = connection.getresponse().read().decode()
    connection.close()
    assert '"datatype":"FP32"' in body.replace(" ", "") and '"datatype":"BOOL"' in body.replace(" ", "")


def test_several_inputs_and_outputs_equal_onnx_runtime_bit_for_bit(multi_io) -> None:
    path, server = multi_io
    a = np.array([[1.5, -2.0, 0.0], [4.0, 0.25, -1.0]], np.float32)
    b = np.array([[1, 2, 3], [-4, 5, 2**40]], np.int64)
    want = models.ort_run(path, {"a": a, "b": b})
    graphpipe, v2 = both_protocols(server)
    total, negated = graphpipe.infer([a, b], output_names=["total", "negated"])
    assert total.tobytes() == want["total"].tobytes() and np.array_equal(negated, want["negated"])
    got = v2.infer([b, a], input_names=["b", "a"])  # by name, in another order
    assert [g.dtype for g in got] == [np.float64, np.int64, np.bool_]
    for value, name in zip(got, ["total", "negated", "positive"], strict=True):
        assert value.tobytes() == want[name].tobytes(), name


@pytest.mark.parametrize("build", [models.gemm_softmax, models.conv], ids=["gemm_softmax", "conv"])
def test_float_models_equal_onnx_runtime_bit_for_bit(build, model_dir: Path) -> None:
    path = build(model_dir / f"{build.__name__}.onnx")
    loaded = load_onnx_model(path)
    shape = [2 if d < 0 else d for d in loaded.inputs[0].shape]
    x = np.random.default_rng(5).standard_normal(shape).astype(np.float32)
    want = models.ort_run(path, {loaded.inputs[0].name: x})[loaded.outputs[0].name]
    with tf_graphpipe.serve(path) as server:
        for client in both_protocols(server):
            got = client.infer(x)
            assert got.dtype == want.dtype and got.shape == want.shape
            assert got.tobytes() == want.tobytes()


def test_strings_round_trip_as_utf8_on_both_wires(model_dir: Path) -> None:
    path = models.strings(model_dir / "strings.onnx")
    text = np.array([b"plain", "caf\u00e9".encode(), b"", b"nul\x00inside", "\u96e8".encode()], dtype=object)
    want = models.ort_run(path, {"text": np.array([t.decode() for t in text], dtype=object)})["same"]
    with tf_graphpipe.serve(path) as server:
        for client in both_protocols(server):
            got = client.infer(text)
            assert got.shape == (5,)
            assert [bytes(g) for g in got] == [w.encode() for w in want] == list(text)


def _every_type_inputs(names: list[str]) -> list[np.ndarray]:
    values = {
        "uint8": np.array([0, 255], np.uint8), "int8": np.array([-128, 127], np.int8),
        "uint16": np.array([0, 65535], np.uint16), "int16": np.array([-32768, 32767], np.int16),
        "uint32": np.array([0, 2**32 - 1], np.uint32), "int32": np.array([-2**31, 2**31 - 1], np.int32),
        "uint64": np.array([0, 2**64 - 1], np.uint64), "int64": np.array([-2**63, 2**63 - 1], np.int64),
        "float16": np.array([1.5, -65504], np.float16), "float32": np.array([1.25, -np.inf], np.float32),
        "float64": np.array([1e300, -1e-300], np.float64), "string": np.array([b"a", "\u00e9".encode()], dtype=object),
        "bool": np.array([True, False]), "bfloat16": np.array([1.5, -3.0], ml_dtypes.bfloat16),
    }
    return [values[n] for n in names]


@pytest.mark.parametrize("protocol", ["graphpipe", "v2"])
def test_every_dtype_the_wire_carries_round_trips(protocol: str, model_dir: Path) -> None:
    names = list(models.ALL_TYPES)
    if protocol == "graphpipe":  # bool and bfloat16 have no GraphPipe wire type
        names = [n for n in names if n not in ("bool", "bfloat16")]
    else:  # ONNX Runtime's Python binding takes bfloat16 only in a way it cannot take strings
        names.remove("string")
    path = models.identity_of_every_type(model_dir / f"every_type_{protocol}.onnx", names)
    inputs = _every_type_inputs(names)
    with tf_graphpipe.serve(path, name="every_type") as server:
        client = both_protocols(server)[0 if protocol == "graphpipe" else 1]
        meta = client.metadata()
        assert [i["name"] for i in meta["inputs"]] == [f"in_{n}" for n in names]
        got = client.infer(inputs)
    for name, sent, value in zip(names, inputs, got, strict=True):
        if name == "string":
            assert [bytes(v) for v in value] == list(sent)
        else:
            assert value.dtype == sent.dtype and value.tobytes() == sent.tobytes(), name


def test_sklearn_pipeline_equals_onnx_runtime(model_dir: Path) -> None:
    path, rows = models.sklearn_pipeline(model_dir / "sklearn.onnx")
    want = models.ort_run(path, {"X": rows})
    with tf_graphpipe.serve(path) as server:
        assert [o.name for o in server.model.outputs] == ["label", "probabilities"]
        for client in both_protocols(server):
            label, probabilities = client.infer(rows)
            assert np.array_equal(label, want["label"]) and label.dtype == np.int64
            assert probabilities.tobytes() == want["probabilities"].tobytes()


@pytest.fixture(scope="module")
def pytorch_cnn() -> Iterator[tf_graphpipe.server.RunningServer]:
    with tf_graphpipe.serve(models.PYTORCH_CNN / "model.onnx") as server:
        yield server


def test_pytorch_export_answers_what_pytorch_computed(pytorch_cnn) -> None:
    expected = np.load(models.PYTORCH_CNN / "expected.npz")
    images = expected["images"]
    want = models.ort_run(models.PYTORCH_CNN / "model.onnx", {"images": images})
    assert pytorch_cnn.model.name == "pytorch_cnn"
    for client in both_protocols(pytorch_cnn):
        features, logits = client.infer(images)
        assert features.tobytes() == want["features"].tobytes() and logits.tobytes() == want["logits"].tobytes()
        np.testing.assert_allclose(features, expected["features"], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(logits, expected["logits"], rtol=1e-5, atol=1e-5)
    one = tf_graphpipe.Client(pytorch_cnn.url).infer(images[2:3], output_names=["logits"])
    np.testing.assert_allclose(one, expected["logits"][2:3], rtol=1e-5, atol=1e-5)


def test_batching_merges_concurrent_calls_and_each_gets_its_rows(gemm: Path) -> None:
    rng = np.random.default_rng(11)
    calls = [rng.standard_normal((n, 8)).astype(np.float32) for n in (1, 2, 3, 2, 1, 3)]
    want = [models.ort_run(gemm, {"x": x})["probabilities"] for x in calls]
    results: list[np.ndarray | None] = [None] * len(calls)
    with tf_graphpipe.serve(gemm, max_batch_size=16, batch_timeout_ms=50) as server:
        barrier = threading.Barrier(len(calls), timeout=30)

        def call(i: int) -> None:
            client = tf_graphpipe.Client(server.url, timeout=30)
            barrier.wait()
            results[i] = client.infer(calls[i])

        threads = [threading.Thread(target=call, args=(i,)) for i in range(len(calls))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    for got, expected in zip(results, want, strict=True):
        assert got is not None and got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)


def test_size_limit_and_health_as_for_any_model(gemm: Path) -> None:
    with tf_graphpipe.serve(gemm, max_request_bytes=4096) as server:
        client = tf_graphpipe.Client(server.url, timeout=30)
        with pytest.raises(RemoteError) as error:
            client.infer(np.zeros((1000, 8), np.float32))
        assert error.value.status == 413
        assert client.infer(np.zeros((1, 8), np.float32)).shape == (1, 4)
        for path in ("/control/is_alive", "/control/is_ready", "/v2/health/ready", "/v2/models/gemm/ready"):
            connection = http.client.HTTPConnection(server.host, server.port, timeout=30)
            connection.request("GET", path)
            assert connection.getresponse().status == 200, path
            connection.close()


def test_inputs_reach_onnx_runtime_without_a_copy_when_aligned(gemm: Path) -> None:
    from tf_graphpipe.server.onnx_models import _numeric_input

    body = np.zeros(8 * 4 * 2 + 1, np.uint8)
    aligned = body[:64].view(np.float32).reshape(2, 8)
    assert _numeric_input(aligned) is aligned
    misaligned = body[1:65].view(np.float32).reshape(2, 8)
    assert not misaligned.flags.aligned
    fixed = _numeric_input(misaligned)
    assert fixed.flags.aligned and np.array_equal(fixed, misaligned)
    model = load_onnx_model(gemm)
    assert isinstance(model, OnnxModel)
    out = model.run([aligned], b"")["probabilities"]
    assert not out.flags.owndata  # ONNX Runtime's own buffer: the adapter made no copy of it
