# SPDX-License-Identifier: Apache-2.0
"""ONNX models the ONNX tests serve, built with ``onnx.helper`` (and one
scikit-learn pipeline converted with skl2onnx), written to files, and
ONNX Runtime run in process on them: what a served answer must equal."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

REPO = Path(__file__).resolve().parents[2]
PYTORCH_CNN = REPO / "examples" / "pytorch_cnn"
OPSET = 21
IR_VERSION = 10  # what the installed ONNX Runtime reads, whatever onnx writes by default


def _save(graph: onnx.GraphProto, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="tests")
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _weights(name: str, shape: tuple[int, ...], seed: int) -> onnx.TensorProto:
    values = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    return numpy_helper.from_array(values, name)


def gemm_softmax(path: Path) -> Path:
    """``x`` float32 [batch, 8] -> Gemm(8 -> 4) -> Softmax -> ``probabilities`` [batch, 4]."""
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "w", "b"], ["scores"]),
         helper.make_node("Softmax", ["scores"], ["probabilities"], axis=-1)],
        "gemm_softmax",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 4])],
        initializer=[_weights("w", (8, 4), 1), _weights("b", (4,), 2)],
    )
    return _save(graph, path)


def conv(path: Path) -> Path:
    """``images`` float32 [N, 3, 16, 16] (N dynamic) -> Conv 3x3, 8 channels -> Relu -> ``maps``."""
    graph = helper.make_graph(
        [helper.make_node("Conv", ["images", "kernel", "bias"], ["raw"], pads=[1, 1, 1, 1]),
         helper.make_node("Relu", ["raw"], ["maps"])],
        "conv",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", 3, 16, 16])],
        [helper.make_tensor_value_info("maps", TensorProto.FLOAT, ["N", 8, 16, 16])],
        initializer=[_weights("kernel", (8, 3, 3, 3), 3), _weights("bias", (8,), 4)],
    )
    return _save(graph, path)


def strings(path: Path) -> Path:
    """``text`` string [batch] -> Identity -> ``same`` string [batch]."""
    graph = helper.make_graph(
        [helper.make_node("Identity", ["text"], ["same"])],
        "strings",
        [helper.make_tensor_value_info("text", TensorProto.STRING, ["batch"])],
        [helper.make_tensor_value_info("same", TensorProto.STRING, ["batch"])],
    )
    return _save(graph, path)


def multi_io(path: Path) -> Path:
    """Two inputs, three outputs, a fixed dim and a dynamic batch dim:
    ``a`` float32 [batch, 3], ``b`` int64 [batch, 3] ->
    ``total`` float64 = a + b, ``negated`` int64 = -b, ``positive`` bool = a > 0."""
    graph = helper.make_graph(
        [helper.make_node("Cast", ["a"], ["a64"], to=TensorProto.DOUBLE),
         helper.make_node("Cast", ["b"], ["b64"], to=TensorProto.DOUBLE),
         helper.make_node("Add", ["a64", "b64"], ["total"]),
         helper.make_node("Neg", ["b"], ["negated"]),
         helper.make_node("Greater", ["a", "zero"], ["positive"])],
        "multi_io",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, ["batch", 3]),
         helper.make_tensor_value_info("b", TensorProto.INT64, ["batch", 3])],
        [helper.make_tensor_value_info("total", TensorProto.DOUBLE, ["batch", 3]),
         helper.make_tensor_value_info("negated", TensorProto.INT64, ["batch", 3]),
         helper.make_tensor_value_info("positive", TensorProto.BOOL, ["batch", 3])],
        initializer=[numpy_helper.from_array(np.zeros((), np.float32), "zero")],
    )
    return _save(graph, path)


# Every element type either wire carries, as ONNX names it.
ALL_TYPES = {
    "uint8": TensorProto.UINT8, "int8": TensorProto.INT8, "uint16": TensorProto.UINT16,
    "int16": TensorProto.INT16, "uint32": TensorProto.UINT32, "int32": TensorProto.INT32,
    "uint64": TensorProto.UINT64, "int64": TensorProto.INT64, "float16": TensorProto.FLOAT16,
    "float32": TensorProto.FLOAT, "float64": TensorProto.DOUBLE, "string": TensorProto.STRING,
    "bool": TensorProto.BOOL, "bfloat16": TensorProto.BFLOAT16,
}


def identity_of_every_type(path: Path, names: list[str]) -> Path:
    """One Identity per type in ``names``: input ``in_<type>`` [n] -> output ``out_<type>`` [n]."""
    graph = helper.make_graph(
        [helper.make_node("Identity", [f"in_{name}"], [f"out_{name}"]) for name in names],
        "every_type",
        [helper.make_tensor_value_info(f"in_{name}", ALL_TYPES[name], ["n"]) for name in names],
        [helper.make_tensor_value_info(f"out_{name}", ALL_TYPES[name], ["n"]) for name in names],
    )
    return _save(graph, path)


def trivial(path: Path) -> Path:
    """``x`` float32 [batch, 4] -> Identity -> ``y``: nothing but the call itself."""
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "trivial",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
    )
    return _save(graph, path)


def reshape_fails(path: Path) -> Path:
    """``x`` float32 [n] -> Reshape to [2, -1]: fails in ONNX Runtime when n is odd."""
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["x", "shape"], ["y"])],
        "reshape",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, "half"])],
        initializer=[numpy_helper.from_array(np.array([2, -1], np.int64), "shape")],
    )
    return _save(graph, path)


def unknown_operator(path: Path) -> Path:
    """A valid ONNX file whose one node is an operator no runtime implements."""
    graph = helper.make_graph(
        [helper.make_node("FrobnicateTensor", ["x"], ["y"], domain="com.example.unknown")],
        "unknown_op",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n"])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET),
                                                    helper.make_opsetid("com.example.unknown", 1)])
    model.ir_version = IR_VERSION
    onnx.save(model, str(path))
    return path


def float8_output(path: Path) -> Path:
    """An output of a type neither wire carries (float8 e4m3, from a Cast)."""
    graph = helper.make_graph(
        [helper.make_node("Cast", ["x"], ["y"], to=TensorProto.FLOAT8E4M3FN)],
        "float8",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT8E4M3FN, ["n"])],
    )
    return _save(graph, path)


def sklearn_pipeline(path: Path, zipmap: bool = False) -> tuple[Path, np.ndarray]:
    """A StandardScaler + LogisticRegression pipeline fitted on fixed data and
    converted with skl2onnx (``zipmap=False``: probabilities as a tensor;
    skl2onnx's default, a sequence of maps, has no wire type).
    Returns the file and sample rows (float32 [n, 4])."""
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(7)
    rows = rng.standard_normal((60, 4)).astype(np.float32)
    labels = (rows[:, 0] + 2 * rows[:, 1] - rows[:, 3] > 0).astype(np.int64) + (rows[:, 2] > 1)
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(rows, labels)
    converted = to_onnx(pipeline, rows[:1], options={"zipmap": zipmap}, target_opset={"": 17, "ai.onnx.ml": 3})
    path.write_bytes(converted.SerializeToString())
    return path, rows


def ort_run(path: Path, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """ONNX Runtime in this process with the server's default settings: the
    answer a served model must give, bit for bit."""
    import onnxruntime

    from tf_graphpipe.server.onnx_models import SessionSettings

    options = SessionSettings().session_options(onnxruntime)
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feed), strict=True))
