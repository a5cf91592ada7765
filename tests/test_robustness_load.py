# SPDX-License-Identifier: Apache-2.0
"""Load and leaks: 64 concurrent clients x 100 calls against one server with
no error and every answer exact; then a shortened soak of the op
(scripts/soak_op.py runs the full 10,000 calls) with flat memory and
descriptors."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator

import numpy as np
import pytest

import tf_graphpipe
from tf_graphpipe import Client

from conftest import REPO

CLIENTS = 64
CALLS = 100


def double(x: np.ndarray) -> np.ndarray:
    return x * 2


@pytest.fixture(scope="module")
def server() -> Iterator[tf_graphpipe.server.RunningServer]:
    with tf_graphpipe.serve(double, name="double") as running:
        yield running


def test_64_concurrent_clients_get_exact_answers_and_no_error(server) -> None:
    errors: list[str] = []
    wrong: list[str] = []
    done = [0] * CLIENTS
    start = threading.Barrier(CLIENTS, timeout=60)

    def client(i: int) -> None:
        rng = np.random.default_rng(i)
        with Client(server.url, timeout=60, retries=0) as c:
            start.wait()  # all 64 begin together
            for j in range(CALLS):
                # Distinct per client and call, and of varying size, so a
                # crossed or stale answer cannot pass.
                x = rng.standard_normal((1 + (i + j) % 7, 5)).astype(np.float32)
                x[0, 0] = i * 1000 + j
                try:
                    y = c.infer(x)
                except Exception as exc:  # noqa: BLE001: counted, reported below
                    errors.append(f"client {i} call {j}: {type(exc).__name__}: {exc}")
                    continue
                if y.shape != x.shape or not np.array_equal(y, x * 2):
                    wrong.append(f"client {i} call {j}")
                done[i] += 1

    threads = [threading.Thread(target=client, args=(i,), name=f"load-{i}") for i in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not any(t.is_alive() for t in threads), "a client thread hung"
    assert errors == [], f"{len(errors)} errors, first: {errors[:3]}"
    assert wrong == [], f"{len(wrong)} wrong answers, first: {wrong[:3]}"
    assert sum(done) == CLIENTS * CALLS
    np.testing.assert_array_equal(Client(server.url).infer(np.ones(2, np.float32)), [2, 2])


def test_2000_op_calls_keep_memory_and_descriptors_flat() -> None:
    """scripts/soak_op.py with 1/5 of the calls and 1/5 of the 20 MB bound.
    A subprocess: the measured process holds nothing but the caller."""
    # The package comes from the environment (installed, or PYTHONPATH in a checkout).
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    run = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "soak_op.py"), "--calls", "2000", "--warmup", "200",
         "--max-rss-growth-mb", "4", "--json"],
        capture_output=True, text=True, timeout=600, env=env,
    )
    lines = [line for line in run.stdout.splitlines() if line.startswith("{")]
    assert lines, f"soak_op.py printed no result (exit {run.returncode}):\n{run.stdout}\n{run.stderr[-3000:]}"
    result = json.loads(lines[-1])
    assert result["ok"], f"{result['problems']}; trace (calls, RSS MB, fds): {result['trace']}"
    assert run.returncode == 0
