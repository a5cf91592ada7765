# SPDX-License-Identifier: Apache-2.0
"""Fixtures shared by every test area: paths, golden vectors and free loopback
ports. Helper modules live in ``tests/support/`` (``from support import ...``)."""
from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
# The golden wire bytes, kept in the repository (README there says where each
# file came from): a plain clone tests against them with nothing beside it.
VECTORS = TESTS / "vectors"

# Subprocesses the tests start (python -m tf_graphpipe, python -c ...) must
# import the installed package, not the source tree they may run from, which
# has no compiled parts: keep Python from putting the working directory on
# sys.path (3.11+). PYTHONPATH, when set (in-place development), still counts.
os.environ["PYTHONSAFEPATH"] = "1"

# Tests import their helpers as the `support` package of this directory.
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

from support.ports import free_port  # noqa: E402


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture(scope="session")
def vectors() -> Path:
    if not (VECTORS / "README.md").is_file():
        pytest.fail(f"golden vectors not found at {VECTORS}")
    return VECTORS


@pytest.fixture(scope="session")
def reference_python() -> Path:
    from support import peer_venvs

    return peer_venvs.reference_python()


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[Any]:
    """A real Ray cluster on this machine (a head and two worker nodes) with
    Ray Serve's proxy on the head, shared by the Ray Serve tests and shut
    down after them, whatever happened (``support/ray_cluster.py``)."""
    from support.ray_cluster import RayTestCluster

    with RayTestCluster() as cluster:
        yield cluster
