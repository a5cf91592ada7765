# SPDX-License-Identifier: Apache-2.0
"""Virtualenvs for the real peers the tests talk to, kept out of the project's
own environment and reused between runs on the same machine.

``graphpipe==1.0.4`` (the reference GraphPipe client) needs flatbuffers 1.9,
which cannot share an environment with TensorFlow's flatbuffers; its published
``requests`` pin does not import on Python 3.11, so it is installed without
dependencies and given a modern ``requests`` (it only calls ``requests.post``;
SPEC section 5).

The Open Inference Protocol (v2) peers (SPEC_V2 section 7): a real Triton
server (``tritonserver`` inside ``nvidia-pytriton``, whose Python-backend stub
links Debian's ``libpython3.11``, so that venv is built with
``/usr/bin/python3.11``; it also brings ``tritonclient[http]``) and kserve's
``ModelServer``, which pins many packages and so lives alone.

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


def ensure_venv(name: str, steps: tuple[list[str], ...], probe: str, interpreter: str | None = None) -> Path:
    """The python of venv ``name``, built with ``steps`` unless ``probe``
    already imports there. ``interpreter``: the Python to build it with
    (default: this one). Safe against concurrent test processes."""
    ROOT.mkdir(parents=True, exist_ok=True)
    home = ROOT / name
    python = home / "bin" / "python"
    with open(ROOT / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if python.exists() and subprocess.run([str(python), "-c", probe], capture_output=True).returncode == 0:
            return python
        if interpreter is None:
            venv.create(home, with_pip=True, clear=True)
        else:
            if not Path(interpreter).exists():
                raise RuntimeError(f"cannot build the {name} venv: {interpreter} is not installed")
            subprocess.run([interpreter, "-m", "venv", "--clear", str(home)], check=True,
                           capture_output=True)
        for step in steps:
            _pip(python, step)
        probed = subprocess.run([str(python), "-c", probe], capture_output=True, text=True)
        if probed.returncode != 0:
            raise RuntimeError(f"the {name} venv was built but `{probe}` fails there:\n{probed.stderr}")
    return python


def _pip(python: Path, args: list[str]) -> None:
    result = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    if result.returncode != 0:
        raise RuntimeError(f"pip install {' '.join(args)} failed in {python}:\n{result.stderr[-4000:]}")


# A real Triton: tritonserver 2.51.0 inside nvidia-pytriton, driven from
# tritonclient[http] (a pytriton dependency); the version the bench compares to.
TRITON = "nvidia-pytriton-0.7.0"
TRITON_INTERPRETER = "/usr/bin/python3.11"
_TRITON_STEPS = (["nvidia-pytriton==0.7.0", "tritonclient[http]==2.73.0"],)

KSERVE = "kserve-0.21.0"
_KSERVE_STEPS = (["kserve==0.21.0"],)


def triton_python() -> Path:
    """Python of a venv (Debian's python3.11) with ``pytriton`` and ``tritonclient``."""
    return ensure_venv(
        TRITON,
        _TRITON_STEPS,
        "import pytriton.triton, tritonclient.http, numpy",
        interpreter=TRITON_INTERPRETER,
    )


def kserve_python() -> Path:
    """Python of a venv with ``kserve``'s ModelServer."""
    return ensure_venv(KSERVE, _KSERVE_STEPS, "import kserve, numpy")


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
    # python tests/support/peer_venvs.py [reference|triton|kserve ...]: builds them now.
    builders = {"reference": reference_python, "triton": triton_python, "kserve": kserve_python}
    for which in sys.argv[1:] or ["reference"]:
        print(builders[which]())
    sys.exit(0)
