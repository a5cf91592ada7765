# SPDX-License-Identifier: Apache-2.0
"""Finds and loads the GraphPipe op library, once. Nothing else loads it."""
from __future__ import annotations

import functools
import importlib.machinery
from pathlib import Path
from types import ModuleType

import tensorflow as tf

_LIBRARY_STEM = "_graphpipe_ops"


def library_path() -> Path:
    """Where the op library built by setup.py sits (next to this file)."""
    here = Path(__file__).resolve().parent
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        candidate = here / f"{_LIBRARY_STEM}{suffix}"
        if candidate.exists():
            return candidate
    return here / f"{_LIBRARY_STEM}{importlib.machinery.EXTENSION_SUFFIXES[0]}"


@functools.cache
def load_ops() -> ModuleType:
    """The loaded op module (``graph_pipe_call``, ``graph_pipe_endpoint``).

    Raises:
        ImportError: naming the path tried and how to build the library.
    """
    path = library_path()
    if not path.exists():
        raise ImportError(
            f"tf-graphpipe's op library is missing: {path} does not exist. "
            "Build it with `pip install .` (or `python setup.py build_ext --inplace` "
            "in a checkout) against tensorflow-cpu 2.21."
        )
    try:
        library: ModuleType = tf.load_op_library(str(path))
        return library
    except tf.errors.NotFoundError as exc:
        raise ImportError(
            f"cannot load tf-graphpipe's op library {path}: {exc.message}. It must be "
            f"built against the installed TensorFlow ({tf.__version__}); rebuild with `pip install .`."
        ) from exc
