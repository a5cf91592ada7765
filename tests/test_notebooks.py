# SPDX-License-Identifier: Apache-2.0
"""The notebooks in notebooks/: each runs top to bottom without an error in a
real Jupyter kernel, and the committed files carry no outputs.

The kernel runs this interpreter with this process's environment, so it
imports the same tf_graphpipe as the tests (installed in .venv, or the
checkout when PYTHONPATH points at it). Each notebook runs in a temporary
working directory. Needs the ``notebooks`` extra (nbclient, ipykernel,
nbformat, matplotlib).
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from conftest import REPO

NOTEBOOKS_DIR = REPO / "notebooks"
NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("*.ipynb"))
CELL_TIMEOUT_SECONDS = 240
# Where a notebook finds the reference GraphPipe client's interpreter.
REFERENCE_PYTHON_VARIABLE = "TF_GRAPHPIPE_REFERENCE_PYTHON"
# Where a notebook finds the repository's examples/ (it runs in a temporary directory).
EXAMPLES_VARIABLE = "TF_GRAPHPIPE_EXAMPLES"

by_name = pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])


def _code_cells(path: Path) -> list[dict]:
    notebook = json.loads(path.read_text(encoding="utf-8"))
    return [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]


def _snapshot(directory: Path) -> set[Path]:
    return {p.relative_to(directory) for p in directory.rglob("*")}


@pytest.fixture(scope="module")
def kernel_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Jupyter data directory whose ``python3`` kernel is this interpreter,
    so no other installed kernel named python3 can take its place."""
    root = tmp_path_factory.mktemp("jupyter")
    spec = root / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (tf-graphpipe tests)",
        "language": "python",
    }))
    return root


def test_notebooks_are_there_and_numbered():
    names = [p.name for p in NOTEBOOKS]
    assert names, f"no notebooks in {NOTEBOOKS_DIR}"
    assert all(name[:2].isdigit() and name[2] == "_" for name in names), names


@by_name
def test_committed_notebook_has_no_outputs(path):
    dirty = [
        i for i, cell in enumerate(_code_cells(path))
        if cell.get("outputs") or cell.get("execution_count") is not None
    ]
    assert not dirty, (
        f"{path.name}: code cells {dirty} carry outputs or execution counts; clear all outputs "
        "before committing (Jupyter: Clear Outputs of All Cells, or jupyter nbconvert --clear-output --inplace)"
    )


@pytest.mark.slow
@by_name
def test_notebook_runs_without_errors(path, kernel_dir, tmp_path, monkeypatch, request):
    try:
        import nbformat
        from nbclient import NotebookClient
    except ImportError as exc:
        pytest.fail(f"running the notebooks needs the notebooks extra: pip install '.[notebooks]' ({exc})")
    search_path = [str(kernel_dir), *filter(None, [os.environ.get("JUPYTER_PATH")])]
    monkeypatch.setenv("JUPYTER_PATH", os.pathsep.join(search_path))
    if REFERENCE_PYTHON_VARIABLE in path.read_text(encoding="utf-8"):
        monkeypatch.setenv(REFERENCE_PYTHON_VARIABLE, str(request.getfixturevalue("reference_python")))
    monkeypatch.setenv(EXAMPLES_VARIABLE, str(REPO / "examples"))
    before = _snapshot(NOTEBOOKS_DIR)

    notebook = nbformat.read(path, as_version=4)
    NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT_SECONDS,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},  # the kernel's working directory
    ).execute()  # raises CellExecutionError, with the cell and its traceback, on any error

    assert _snapshot(NOTEBOOKS_DIR) == before, "running a notebook wrote into notebooks/"
