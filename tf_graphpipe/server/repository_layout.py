# SPDX-License-Identifier: Apache-2.0
"""What a model repository holds on disk, and one version of a model loaded
from it.

The layout TensorFlow Serving and Triton use::

    DIR/<name>/config.json          optional (repository_config)
    DIR/<name>/<version>/           a positive integer: 1, 2, 17 ...
        saved_model.pb, variables/  a SavedModel, or
        model.keras                 a Keras model file, or
        model.onnx                  an ONNX model

Anything else is ignored: files beside the model directories, names that are
not a model name, version directories that are not a positive integer (so a
version can be copied in under ``.tmp-3`` and renamed to ``3`` when complete:
a rename is atomic, a copy is not).
"""
from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tf_graphpipe import dtypes
from tf_graphpipe.server.loading import load_model
from tf_graphpipe.server.model import Model
from tf_graphpipe.server.repository_config import CONFIG_FILE, ModelConfig
from tf_graphpipe.server.specs import IOSpec

if TYPE_CHECKING:
    from tf_graphpipe.server.onnx_models import SessionSettings

__all__ = ["ModelOnDisk", "fingerprint", "load_version", "scan", "scan_model", "valid_model_name", "warm_up"]

log = logging.getLogger("tf_graphpipe.server")

_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_VERSION = re.compile(r"[1-9][0-9]{0,17}")  # fits an int64, as clients send it
SAVED_MODEL_FILES = ("saved_model.pb", "saved_model.pbtxt")
KERAS_FILE = "model.keras"
ONNX_FILE = "model.onnx"

Stamp = tuple[int, int]  # (mtime_ns, size) of a file
Fingerprint = tuple[tuple[str, int, int], ...]


@dataclass(frozen=True)
class ModelOnDisk:
    """One model directory as last seen.

    Attributes:
        name: the directory's name, the model's name in URLs.
        path: the directory.
        versions: each version directory by its number.
        config_stamp: when and how large ``config.json`` was; None if absent.
    """

    name: str
    path: Path
    versions: dict[int, Path] = field(default_factory=dict)
    config_stamp: Stamp | None = None


def valid_model_name(name: str) -> bool:
    """Whether ``name`` can name a model: letters, digits, ``_.-``; not hidden."""
    return _MODEL_NAME.fullmatch(name) is not None


def scan(root: Path) -> dict[str, ModelOnDisk]:
    """Every model directory under ``root`` by name. Raises OSError when
    ``root`` itself cannot be listed."""
    found = {}
    with os.scandir(root) as entries:
        for entry in entries:
            if entry.is_dir() and valid_model_name(entry.name):
                model = scan_model(root, entry.name)
                if model is not None:
                    found[model.name] = model
    return found


def scan_model(root: Path, name: str) -> ModelOnDisk | None:
    """The model directory ``root/name``, or None if there is none (or it
    vanished while being read)."""
    path = root / name
    versions = {}
    try:
        with os.scandir(path) as entries:
            for entry in entries:
                if _VERSION.fullmatch(entry.name) and entry.is_dir():
                    versions[int(entry.name)] = Path(entry.path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return ModelOnDisk(name, path, versions, _stamp(path / CONFIG_FILE))


def _stamp(path: Path) -> Stamp | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_mtime_ns, info.st_size


def fingerprint(path: Path) -> Fingerprint:
    """Every file under ``path`` with its size and mtime: a version that
    failed to load is tried again only once this changes."""
    found = []
    for directory, _, files in os.walk(path):
        for name in files:
            full = os.path.join(directory, name)
            try:
                info = os.stat(full)
            except OSError:
                continue
            found.append((os.path.relpath(full, path), info.st_size, info.st_mtime_ns))
    return tuple(sorted(found))


def load_version(path: Path, name: str, version: int, config: ModelConfig,
                 onnx: SessionSettings | None = None) -> Model:
    """Loads the model in the version directory ``path`` (``onnx``: ONNX
    Runtime's settings for a ``model.onnx``).

    Raises:
        ValueError: the directory holds no model, or more than one kind.
        RuntimeError: its kind needs support that is not installed (ONNX).
        Exception: whatever the model's own loader raises (a truncated
            SavedModel, an unimportable callable...).
    """
    kinds = [kind for kind, present in (
        ("a SavedModel", any((path / f).is_file() for f in SAVED_MODEL_FILES)),
        (KERAS_FILE, (path / KERAS_FILE).is_file()),
        (ONNX_FILE, (path / ONNX_FILE).is_file()),
    ) if present]
    if config.callable is not None:
        if kinds:
            raise ValueError(f"{path}: config.json names a callable ({config.callable}) but the directory "
                             f"also holds {kinds[0]}; keep one")
        model = load_model(config.callable, input_specs=_listed(config.inputs),
                           output_specs=_listed(config.outputs))
    elif not kinds:
        raise ValueError(f"{path}: no model in it (expected saved_model.pb, {KERAS_FILE} or {ONNX_FILE}, "
                         "or 'callable' in config.json)")
    elif len(kinds) > 1:
        raise ValueError(f"{path}: holds {' and '.join(kinds)}; a version directory holds one model")
    elif kinds[0] == KERAS_FILE:
        from tf_graphpipe.server import tf_models

        model = tf_models.keras_file(path / KERAS_FILE)
    elif kinds[0] == ONNX_FILE:
        model = _onnx_model(path, onnx)
    else:
        from tf_graphpipe.server import tf_models

        model = tf_models.saved_model(path, config.signature)
    model.name = name
    model.version = str(version)
    return model


def _listed(specs: Sequence[IOSpec] | None) -> list[IOSpec] | None:
    return list(specs) if specs is not None else None


def _onnx_model(path: Path, settings: SessionSettings | None) -> Model:
    from tf_graphpipe.server.onnx_models import load_onnx_model

    return load_onnx_model(path, settings)


def warm_up(model: Model) -> bool:
    """Runs ``model`` once on zeros shaped as its inputs declare (each
    unknown dim 1), so the first real call does not pay for tracing or
    lazy initialisation. False (nothing run) when the metadata does not
    allow it: an input with no dtype or rank, or any number of inputs.

    Raises whatever the model raises."""
    if model.variadic or any(spec.wire_type == 0 or spec.shape is None for spec in model.inputs):
        return False
    inputs = []
    for spec in model.inputs:
        shape = tuple(1 if d < 0 else d for d in spec.shape or ())
        dtype = dtypes.numpy_dtype(spec.wire_type)
        inputs.append(np.full(shape, b"", dtype=object) if dtype.kind == "O" else np.zeros(shape, dtype))
    model.run(inputs, b"")
    return True
