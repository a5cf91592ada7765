# SPDX-License-Identifier: Apache-2.0
"""A plain ``git clone`` of the repository tests itself with nothing beside it:
the golden vectors, the protocol notes and the test helpers all live inside.

The clone is made into a fresh temporary directory (so no ``shared/`` sits
next to it) from the committed ``HEAD`` and runs the golden-vector and codec
tests against the installed package, as CI does after ``make test``'s
bootstrap."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

# Enough of the suite to need what a clone must carry: the vectors and their
# README (checksums), the `support` helpers, conftest's fixtures and the
# reference client's venv (built from the helpers, outside the clone).
CLONE_TESTS = ["tests/test_wire_vectors.py", "tests/test_codec_robustness.py"]


def _git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True,
                          timeout=120).stdout


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("git") is None or subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--git-dir"], capture_output=True).returncode != 0:
        pytest.skip("the tests are not running from a git checkout")
    target = tmp_path_factory.mktemp("standalone") / "tf-graphpipe"
    _git("clone", "--quiet", "--no-hardlinks", str(REPO), str(target), cwd=REPO)
    return target


def test_clone_has_nothing_beside_it(clone: Path) -> None:
    assert sorted(p.name for p in clone.parent.iterdir()) == ["tf-graphpipe"]
    assert (clone / "tests" / "vectors" / "README.md").is_file()
    assert (clone / "docs" / "protocol" / "SPEC.md").is_file()


def test_nothing_in_the_clone_points_outside_it(clone: Path) -> None:
    # The notes and vectors used to live in a directory beside the checkout.
    # -F: the patterns are paths, not regexes ("../shared" as a regex would
    # match any "/shared", as in a doc's example of a shared volume).
    found = subprocess.run(["git", "grep", "-n", "-F", "-e", "../shared", "-e", "/work/shared", "--", ".",
                            ":!tests/test_standalone_clone.py"], cwd=clone, capture_output=True, text=True, timeout=120)
    assert found.returncode == 1, found.stdout  # 1: no match


def test_clone_passes_the_wire_vector_tests(clone: Path) -> None:
    env = dict(os.environ, PYTHONSAFEPATH="1")  # the installed package, not the clone's sources
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *CLONE_TESTS],
        cwd=clone, env=env, capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, f"pytest in the clone failed:\n{result.stdout[-6000:]}\n{result.stderr[-3000:]}"
    summary = result.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "skipped" not in summary and "error" not in summary, summary
