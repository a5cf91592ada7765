# SPDX-License-Identifier: Apache-2.0
"""Virtualenvs for the real peers the tests talk to, kept out of the project's
own environment and reused between runs on the same machine.

``graphpipe==1.0.4`` (the reference GraphPipe client) needs flatbuffers 1.9,
which cannot share an environment with TensorFlow's flatbuffers; its published
``requests`` pin does not import on Python 3.11, so it is installed without
dependencies and given a modern ``requests`` (it only calls ``requests.post``;
SPEC section 5).

Set ``TF_GRAPHPIPE_PEER_VENVS`` to move them (default
``~/.cache/tf-graphpipe/venvs``).
"""
from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(os.environ.get("TF_GRAPHPIPE_PEER_VENVS", Path.home() / ".cache" / "tf-graphpipe" / "venvs"))

REFERENCE_CLIENT = "graphpipe-1.0.4"
_REFERENCE_STEPS = (
    ["--no-deps", "graphpipe==1.0.4"],
    ["flatbuffers==1.9", "numpy", "requests"],
)


def _pip(python: Path, args: list[str]) -> None:
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *args],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def ensure_venv(name: str, steps: tuple[list[str], ...], probe: str) -> Path:
    """The python of venv ``name``, built with ``steps`` unless ``probe``
    already imports there. Safe against concurrent test processes."""
    ROOT.mkdir(parents=True, exist_ok=True)
    home = ROOT / name
    python = home / "bin" / "python"
    with open(ROOT / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if python.exists() and subprocess.run([str(python), "-c", probe], capture_output=True).returncode == 0:
            return python
        venv.create(home, with_pip=True, clear=True)
        for step in steps:
            _pip(python, step)
    return python


def reference_python() -> Path:
    """Python of a venv where ``import graphpipe`` is the reference client."""
    return ensure_venv(
        REFERENCE_CLIENT,
        _REFERENCE_STEPS,
        "import graphpipe.remote, graphpipe.convert, flatbuffers, numpy",
    )


def run_reference(script: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Runs ``script`` (Python source) with the reference client's venv.
    Raises AssertionError with its stderr when it fails."""
    result = subprocess.run(
        [str(reference_python()), "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if result.returncode != 0:
        raise AssertionError(f"reference client script failed:\n{result.stderr}")
    return result


if __name__ == "__main__":
    print(reference_python())
    sys.exit(0)
