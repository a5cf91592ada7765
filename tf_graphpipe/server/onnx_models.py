# SPDX-License-Identifier: Apache-2.0
"""ONNX models (exported from PyTorch, scikit-learn and most other frameworks)
run by ONNX Runtime behind the ``Model`` interface.

Inputs, outputs, dtypes and shapes come from the graph itself: symbolic or
unknown dims are -1, so requests are checked (dtype, rank, fixed dims) before
ONNX Runtime sees them. A file ONNX Runtime cannot load (not a model, an
operator the installed runtime lacks, a type no wire carries) is refused here,
with ONNX Runtime's reason, before anything is served.

Copies: numeric inputs reach ONNX Runtime as the arrays the decoder made
(views of the received body) unless they are misaligned for their dtype;
ONNX Runtime's CPU outputs come back as NumPy arrays over its own buffers, so
the GraphPipe answer copies each output once and the v2 binary answer not at
all. Strings are the exception: ONNX Runtime's Python binding exchanges them
as ``str``, so string elements must be UTF-8 and are converted both ways.

Threads: see ``SessionSettings``.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np

from tf_graphpipe import dtypes
from tf_graphpipe.server.model import InputRejected, Model
from tf_graphpipe.server.specs import IOSpec

__all__ = ["GRAPH_OPTIMIZATION_LEVELS", "ONNX_FILE", "OnnxModel", "SessionSettings", "load_onnx_model"]

ONNX_FILE = "model.onnx"  # the file a model repository's version directory holds
MISSING_RUNTIME = "serving ONNX models needs onnxruntime: pip install 'tf-graphpipe[onnx]'"

# ONNX Runtime's names for tensor element types -> our type names (dtypes.py).
# complex64/128, float8 and int4 kinds have no type on either wire.
_ONNX_TYPES = {
    "tensor(uint8)": "uint8", "tensor(int8)": "int8", "tensor(uint16)": "uint16", "tensor(int16)": "int16",
    "tensor(uint32)": "uint32", "tensor(int32)": "int32", "tensor(uint64)": "uint64", "tensor(int64)": "int64",
    "tensor(float16)": "float16", "tensor(float)": "float32", "tensor(double)": "float64",
    "tensor(string)": "string", "tensor(bool)": "bool", "tensor(bfloat16)": "bfloat16",
}
_BFLOAT16_ELEMENT_TYPE = 16  # onnx.TensorProto.BFLOAT16

GRAPH_OPTIMIZATION_LEVELS = ("disable", "basic", "extended", "all")


def available_cpus() -> int:
    """CPUs this process may run on (its affinity, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


@dataclass(frozen=True)
class SessionSettings:
    """How ONNX Runtime runs a model.

    The rule for the defaults: at most ``CPUs`` threads compute at once. One
    session's intra-op pool is shared by every call; the worker thread that
    runs a call computes too, so a call uses ``intra_op_threads`` threads. The
    adapter lets ``max(1, CPUs // intra_op_threads)`` calls run at a time
    (others wait for a turn), whatever the number of server workers: by
    default one call at a time uses every CPU. ``intra_op_threads=1`` instead
    runs up to ``CPUs`` calls at once, one thread each (better for many small
    concurrent calls). Idle pool threads sleep instead of spinning, so they
    take no CPU from the event loop and the workers between calls.

    Attributes:
        intra_op_threads: threads computing one call, the caller's included
            (default: the CPUs this process may use).
        inter_op_threads: > 1 runs independent branches of the graph in
            parallel (ONNX Runtime's parallel execution mode) with this many
            threads; default 1 (sequential), which is best for most models.
        graph_optimization: "disable", "basic", "extended" or "all"
            (ONNX Runtime's graph optimisation level; default "all").
    """

    intra_op_threads: int | None = None
    inter_op_threads: int | None = None
    graph_optimization: str = "all"

    def __post_init__(self) -> None:
        for name in ("intra_op_threads", "inter_op_threads"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if self.graph_optimization not in GRAPH_OPTIMIZATION_LEVELS:
            raise ValueError(
                f"graph_optimization must be one of {', '.join(GRAPH_OPTIMIZATION_LEVELS)}, "
                f"got {self.graph_optimization!r}"
            )

    @property
    def intra(self) -> int:
        return self.intra_op_threads or available_cpus()

    @property
    def inter(self) -> int:
        return self.inter_op_threads or 1

    @property
    def concurrent_calls(self) -> int:
        return max(1, available_cpus() // self.intra)

    def session_options(self, ort: Any) -> Any:
        """These settings as an ``onnxruntime.SessionOptions``."""
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.intra
        options.inter_op_num_threads = self.inter
        options.execution_mode = (
            ort.ExecutionMode.ORT_PARALLEL if self.inter > 1 else ort.ExecutionMode.ORT_SEQUENTIAL
        )
        level = {"disable": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC",
                 "extended": "ORT_ENABLE_EXTENDED", "all": "ORT_ENABLE_ALL"}[self.graph_optimization]
        options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        return options


def _onnxruntime() -> Any:
    try:
        import onnxruntime  # type: ignore[import-untyped]
    except ImportError as exc:
        raise ImportError(MISSING_RUNTIME) from exc
    return onnxruntime


class OnnxModel(Model):
    """An ONNX model run by an ``onnxruntime.InferenceSession`` on the CPU.

    Thread-safe: ONNX Runtime sessions run concurrent calls; a lock (or a
    semaphore) keeps them within ``SessionSettings.concurrent_calls``.
    """

    def __init__(self, path: Path, settings: SessionSettings | None = None, name: str | None = None) -> None:
        ort = _onnxruntime()
        self.settings = settings or SessionSettings()
        try:
            self._session = ort.InferenceSession(
                str(path), sess_options=self.settings.session_options(ort), providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # ONNX Runtime raises its own classes (Fail, InvalidGraph, NotImplemented...)
            raise ValueError(f"ONNX model {path}: ONNX Runtime cannot load it: {_reason(exc)}") from exc
        self._ort = ort
        self.name = name or _model_name(path)
        meta = self._session.get_modelmeta()
        producer = f" (from {meta.producer_name})" if meta.producer_name else ""
        self.description = meta.description or f"ONNX model {path.name}{producer}"
        self.inputs = [_spec(arg, "input") for arg in self._session.get_inputs()]
        self.outputs = [_spec(arg, "output") for arg in self._session.get_outputs()]
        self._output_names = [spec.name for spec in self.outputs]
        self._input_names = [spec.name for spec in self.inputs]
        self._strings = [spec.wire_type == dtypes.STRING for spec in self.inputs]
        self._any_strings = any(self._strings)
        self._bfloat16 = any(spec.wire_type == dtypes.BFLOAT16 for spec in self.inputs + self.outputs)
        if self._bfloat16 and self._any_strings:
            # bfloat16 only passes as OrtValues, which ONNX Runtime's Python binding cannot make of strings.
            raise ValueError(f"ONNX model {path}: string inputs and bfloat16 tensors in one model are not "
                             "supported (ONNX Runtime's Python binding passes them in ways that exclude each other)")
        calls = self.settings.concurrent_calls
        # A plain lock when calls take turns one at a time: a C lock, where a
        # semaphore is Python code on every call (µs that show on a 1x4 call).
        self._turns: Any = threading.Lock() if calls == 1 else threading.BoundedSemaphore(calls)

    def run(self, inputs: list[np.ndarray], config: bytes) -> dict[str, np.ndarray]:
        if self._any_strings:
            feed = {name: _string_input(array, name) if is_string else _numeric_input(array)
                    for name, array, is_string in zip(self._input_names, inputs, self._strings, strict=True)}
        else:
            feed = {name: _numeric_input(array) for name, array in zip(self._input_names, inputs, strict=True)}
        with self._turns:
            if self._bfloat16:
                return self._run_ort_values(feed)
            results = self._session.run(self._output_names, feed)
        return dict(zip(self._output_names, results, strict=True))

    def _run_ort_values(self, feed: dict[str, Any]) -> dict[str, np.ndarray]:
        """bfloat16, which ONNX Runtime's NumPy conversion does not know, as OrtValues."""
        ort_value = self._ort.OrtValue
        values = {  # OrtValues over the arrays' memory: no copy
            name: ort_value.ortvalue_from_numpy_with_onnx_type(array.view(np.uint16), _BFLOAT16_ELEMENT_TYPE)
            if array.dtype == ml_dtypes.bfloat16 else ort_value.ortvalue_from_numpy(array)
            for name, array in feed.items()
        }
        results = self._session.run_with_ort_values(self._output_names, values)
        return {name: _ort_value_array(value) for name, value in zip(self._output_names, results, strict=True)}


def _numeric_input(array: np.ndarray) -> np.ndarray:
    # Views of the body are C-contiguous; a misaligned one gets an aligned copy.
    flags = array.flags
    if flags.aligned and flags.c_contiguous:
        return array
    return np.array(array, order="C")


def _string_input(array: np.ndarray, name: str) -> np.ndarray:
    """Wire strings (bytes) as the ``str`` elements ONNX Runtime reads as UTF-8."""
    flat = array.reshape(-1)
    text = np.empty(flat.shape, dtype=object)
    for i, item in enumerate(flat):
        if isinstance(item, str):
            text[i] = item
            continue
        try:
            text[i] = bytes(item).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputRejected(f"input {name!r}: string element {i} is not UTF-8 ({exc.reason}); "
                             "ONNX Runtime takes string tensors as UTF-8 text") from None
    return text.reshape(array.shape)


class _Borrowed:
    """An OrtValue's CPU buffer seen by NumPy (``__array_interface__``); the
    array keeps this, and so the OrtValue, alive."""

    def __init__(self, value: Any, typestr: str) -> None:
        self.value = value
        self.__array_interface__ = {
            "data": (value.data_ptr(), False), "shape": tuple(value.shape()), "typestr": typestr, "version": 3,
        }


def _ort_value_array(value: Any) -> np.ndarray:
    if value.data_type() == "tensor(bfloat16)":
        return np.asarray(_Borrowed(value, "<u2")).view(ml_dtypes.bfloat16)
    return np.asarray(value.numpy())


def _spec(arg: Any, what: str) -> IOSpec:
    type_name = _ONNX_TYPES.get(arg.type)
    if type_name is None:
        hint = " (skl2onnx: convert with options={'zipmap': False})" if "map" in arg.type else ""
        raise ValueError(f"{what} {arg.name!r}: ONNX type {arg.type} has no GraphPipe or v2 type{hint}")
    shape = None if arg.shape is None else tuple(d if isinstance(d, int) and d >= 0 else -1 for d in arg.shape)
    return IOSpec(arg.name, dtypes.by_name(type_name, dtypes.V2).id, shape)


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return text or type(exc).__name__


def _model_name(path: Path) -> str:
    """``resnet`` for resnet.onnx; for a ``model.onnx``, the nearest directory
    that is not a version number (``DIR/resnet/3/model.onnx`` -> resnet)."""
    if path.stem != "model":
        return path.stem
    for parent in path.resolve().parents:
        if parent.name and not parent.name.isdigit():
            return parent.name
    return path.stem


def load_onnx_model(path: str | os.PathLike[str], settings: SessionSettings | None = None,
                    name: str | None = None) -> OnnxModel:
    """The ``Model`` for an ONNX file, or for a model repository version
    directory holding ``model.onnx``.

    Args:
        path: a ``.onnx`` file, or a directory with ``model.onnx`` in it.
        settings: threads and graph optimisation (``SessionSettings``).
        name: the model name (default: from the path).

    Raises:
        ImportError: onnxruntime is not installed (names the extra).
        FileNotFoundError: no such file.
        ValueError: ONNX Runtime cannot load the model (its reason), or an
            input or output has a type no wire carries.
    """
    file = Path(path).expanduser()
    if file.is_dir():
        file = file / ONNX_FILE
    if not file.is_file():
        raise FileNotFoundError(f"ONNX model {file} not found")
    return OnnxModel(file, settings, name)
