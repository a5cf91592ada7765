# SPDX-License-Identifier: Apache-2.0
"""Model repositories on disk for the repository tests: the example
repository (examples/model_repository/build.py), model versions made once
per session and copied into place, and the moves an operator makes (add a
version by renaming it into place, break one, remove one)."""
from __future__ import annotations

import importlib.util
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np

TESTS = Path(__file__).resolve().parent.parent
EXAMPLE = TESTS.parent / "examples" / "model_repository"


def example() -> ModuleType:
    """``examples/model_repository/build.py`` as a module."""
    spec = importlib.util.spec_from_file_location("model_repository_example", EXAMPLE / "build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Templates:
    """Model versions saved once (SavedModels of ``y = factor * x``, Keras
    classifiers) and copied wherever a test needs them: saving costs about
    a second, copying a millisecond."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.builder = example()
        self._lock = threading.Lock()

    def saved_model(self, factor: int) -> Path:
        path = self.root / f"scale-{factor}"
        with self._lock:
            if not path.exists():
                self.builder.save_scale(path, factor)
        return path

    def keras(self, scale: int) -> Path:
        path = self.root / f"classify-{scale}" / "model.keras"
        with self._lock:
            if not path.exists():
                self.builder.save_classifier(path, float(scale))
        return path.parent


def add_version(repository: Path, name: str, version: int, source: Path) -> Path:
    """Copies the version directory ``source`` in as ``repository/name/version``
    the way the docs recommend: under a hidden name first, then renamed."""
    model = repository / name
    model.mkdir(parents=True, exist_ok=True)
    staging = model / f".incoming-{version}"
    shutil.copytree(source, staging)
    final = model / str(version)
    staging.rename(final)
    return final


def truncate_saved_model(version_dir: Path) -> None:
    """Cuts ``saved_model.pb`` in half, as an interrupted copy leaves it."""
    pb = version_dir / "saved_model.pb"
    data = pb.read_bytes()
    pb.write_bytes(data[: len(data) // 2])


def wait_for(condition: Callable[[], object], timeout: float = 30.0, what: str = "condition") -> None:
    """Polls ``condition`` every 20 ms until it is true; fails after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.02)


X = np.ones((2, 4), np.float32)


def factor_of(y: np.ndarray) -> float:
    """The single factor a scale model's answer to ``X`` shows; fails when
    the answer mixes values (it would come from more than one version)."""
    values = np.unique(np.asarray(y))
    assert values.size == 1, f"answer mixes values {values}"
    return float(values[0])


# ---- callables served from config.json ("callable": "support.repository_fixtures:NAME") --------

RELEASE = threading.Event()  # calls to hold() wait for it (bounded)


def hold(x: np.ndarray) -> np.ndarray:
    """Waits for ``RELEASE`` (at most 30 s) when ``x`` is negative, then
    answers ``x``: a call the test keeps in flight."""
    if float(np.asarray(x).ravel()[0]) < 0:
        RELEASE.wait(30)
    return x


def triple(x: np.ndarray) -> np.ndarray:
    return x * 3


WARM_UP_GATE = threading.Event()  # warm-up calls to slow_warm_up() wait for it (bounded)


def slow_warm_up(x: np.ndarray) -> np.ndarray:
    """Answers ``x``; a call on all zeros (the repository's warm-up call)
    first waits for ``WARM_UP_GATE`` (at most 30 s): a load the test holds."""
    if not np.any(x):
        WARM_UP_GATE.wait(30)
    return x
