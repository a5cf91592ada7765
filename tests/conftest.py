# SPDX-License-Identifier: Apache-2.0
"""Fixtures shared by every test area: paths and free loopback ports."""
from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
VECTORS = REPO.parent / "shared" / "vectors"

# Subprocesses the tests start (python -m tf_graphpipe, python -c ...) must
# import the installed package, not the source tree they may run from, which
# has no compiled parts: keep Python from putting the working directory on
# sys.path (3.11+). PYTHONPATH, when set (in-place development), still counts.
os.environ["PYTHONSAFEPATH"] = "1"

# Tests import their helper modules (peer_venvs, graphpipe_test_servers...) by name.
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture(scope="session")
def vectors() -> Path:
    if not VECTORS.is_dir():
        pytest.fail(f"golden vectors not found at {VECTORS} (shared/ must sit beside the checkout)")
    return VECTORS


@pytest.fixture(scope="session")
def reference_python() -> Path:
    import peer_venvs

    return peer_venvs.reference_python()
