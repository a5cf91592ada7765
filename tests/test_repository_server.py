# SPDX-License-Identifier: Apache-2.0
"""A server on a model repository, over HTTP: routing by name and version in
both protocols, 404s naming the model, ``GET /models``, readiness, the
reference GraphPipe client, versions added, broken and unloaded while
clients call, and the command line."""
from __future__ import annotations

import gc
import json
import logging
import shutil
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import tf_graphpipe
from tf_graphpipe.errors import RemoteError
from tf_graphpipe.server.demo_model import expected

from support import peer_venvs, servers
from support.repository_fixtures import (
    RELEASE,
    WARM_UP_GATE,
    Templates,
    X,
    add_version,
    example,
    factor_of,
    truncate_saved_model,
    wait_for,
)

POLL = 0.2


@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory) -> Templates:
    return Templates(tmp_path_factory.mktemp("templates"))


@pytest.fixture(scope="module")
def example_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tf_graphpipe.server.RunningServer]:
    root = example().build(tmp_path_factory.mktemp("example") / "models")
    with tf_graphpipe.serve(repository=root, poll_seconds=POLL) as server:
        yield server


def _get_json(url: str, path: str) -> tuple[int, object]:
    status, _, body = servers.request(url, "GET", path)
    return status, json.loads(body)


def _states(url: str, name: str) -> dict[int, str]:
    _, listing = _get_json(url, "/models")
    for model in listing["models"]:  # type: ignore[index]
        if model["name"] == name:
            return {v["version"]: v["state"] for v in model["versions"]}
    return {}


# ---- routing ------------------------------------------------------------------------


def test_graphpipe_routes_by_name_and_version(example_server) -> None:
    url = example_server.url
    assert factor_of(tf_graphpipe.Client(url + "/models/scale").infer(X)) == 2.0  # the newest
    assert factor_of(tf_graphpipe.Client(url + "/models/scale/versions/1").infer(X)) == 1.0
    assert factor_of(tf_graphpipe.Client(url + "/models/scale/versions/2").infer(X)) == 2.0
    np.testing.assert_allclose(tf_graphpipe.Client(url + "/models/classify").infer(X), expected(X), rtol=1e-5)
    metadata = tf_graphpipe.Client(url + "/models/scale/versions/1").metadata()
    assert (metadata["name"], metadata["version"]) == ("scale", "1")


def test_v2_routes_by_name_and_version(example_server) -> None:
    url = example_server.url
    assert factor_of(tf_graphpipe.Client(url + "/v2/models/scale").infer(X)) == 2.0
    assert factor_of(tf_graphpipe.Client(url + "/v2/models/scale/versions/1").infer(X)) == 1.0
    np.testing.assert_allclose(tf_graphpipe.Client(url + "/v2/models/classify").infer(X), expected(X), rtol=1e-5)
    status, metadata = _get_json(url, "/v2/models/scale/versions/1")
    assert status == 200 and metadata["name"] == "scale"  # type: ignore[index]
    assert servers.request(url, "GET", "/v2/models/scale/versions/1/ready")[0] == 200
    assert servers.request(url, "GET", "/v2/models/classify/ready")[0] == 200


def test_unknown_model_or_version_is_404_naming_it_in_both_protocols(example_server) -> None:
    url = example_server.url
    for path in ("/models/nope", "/v2/models/nope"):
        with pytest.raises(RemoteError) as info:
            tf_graphpipe.Client(url + path, retries=0).infer(X)
        assert info.value.status == 404 and "'nope'" in info.value.message, info.value
    for path in ("/models/scale/versions/9", "/v2/models/scale/versions/9"):
        with pytest.raises(RemoteError) as info:
            tf_graphpipe.Client(url + path, retries=0).infer(X)
        assert info.value.status == 404 and "'scale'" in info.value.message and "9" in info.value.message
    with pytest.raises(RemoteError) as info:  # two models: a path that names none serves none
        tf_graphpipe.Client(url, retries=0).infer(X)
    assert info.value.status == 404 and "classify, scale" in info.value.message
    assert servers.request(url, "GET", "/v2/models/nope/ready")[0] == 404
    assert tf_graphpipe.Client(url + "/models/scale").infer(X) is not None  # and it serves on


def test_get_models_lists_names_versions_and_states(example_server) -> None:
    status, listing = _get_json(example_server.url, "/models")
    assert status == 200
    assert listing == {"models": [
        {"name": "classify", "versions": [{"version": 1, "state": "available"}]},
        {"name": "scale", "versions": [{"version": 2, "state": "available"}, {"version": 1, "state": "available"}]},
    ]}


def test_each_model_keeps_its_own_batching(example_server) -> None:
    repository = example_server.repository
    assert repository.lookup("classify").served.batcher.max_batch_size == 32  # its config.json
    assert repository.lookup("scale").served.batcher is None  # the server's default: off


def test_only_model_is_served_on_every_path(tmp_path, templates) -> None:
    add_version(tmp_path, "scale", 3, templates.saved_model(3))
    with tf_graphpipe.serve(repository=tmp_path, poll_seconds=0) as server:
        for path in ("", "/", "/anything/else", "/models/scale", "/models/scale/versions/3"):
            assert factor_of(tf_graphpipe.Client(server.url + path).infer(X)) == 3.0, path


def test_reference_client_calls_a_model_by_its_path(example_server, reference_python: Path) -> None:
    script = r"""
import sys
import numpy as np
from graphpipe import remote

x = np.ones((2, 4), np.float32)
assert np.array_equal(remote.execute(sys.argv[1] + "/models/scale", x), 2 * x)
assert np.array_equal(remote.execute(sys.argv[1] + "/models/scale/versions/1", x), x)
print("ok")
"""
    assert peer_venvs.run_reference(script, example_server.url).stdout.strip() == "ok"


# ---- readiness ----------------------------------------------------------------------


def test_not_ready_while_a_version_loads(tmp_path, templates) -> None:
    add_version(tmp_path, "scale", 1, templates.saved_model(1))
    with tf_graphpipe.serve(repository=tmp_path, poll_seconds=POLL) as server:
        url = server.url
        assert servers.request(url, "GET", "/v2/health/ready")[0] == 200
        assert servers.request(url, "GET", "/control/is_ready")[0] == 200
        WARM_UP_GATE.clear()
        (tmp_path / "gated" / "1").mkdir(parents=True)
        (tmp_path / "gated" / "config.json").write_text(
            '{"callable": "support.repository_fixtures:slow_warm_up", "inputs": ["x:float32:-1,4"]}')
        try:
            wait_for(lambda: _states(url, "gated") == {1: "loading"}, what="the load to start")
            assert servers.request(url, "GET", "/v2/health/ready")[0] != 200
            assert servers.request(url, "GET", "/control/is_ready")[0] != 200
            assert servers.request(url, "GET", "/v2/models/scale/ready")[0] == 200  # per model: it serves
            assert factor_of(tf_graphpipe.Client(url + "/models/scale").infer(X)) == 1.0
        finally:
            WARM_UP_GATE.set()
        wait_for(lambda: servers.request(url, "GET", "/v2/health/ready")[0] == 200, what="ready again")
        assert servers.request(url, "GET", "/control/is_ready")[0] == 200


# ---- hot reload under load ----------------------------------------------------------


CLIENTS = 8
MAX_CALLS = 20_000  # per client: bounds the test whatever the timing
CALLS_AFTER_SWAP = 25  # each client sees the new version this often before stopping


def test_version_added_while_clients_call_drops_no_call(tmp_path, templates) -> None:
    add_version(tmp_path, "scale", 1, templates.saved_model(1))
    templates.saved_model(2)  # saved before the clients start: only the copy happens under load
    with tf_graphpipe.serve(repository=tmp_path, poll_seconds=POLL) as server:
        seen: list[list[tuple[float, float]]] = [[] for _ in range(CLIENTS)]
        errors: list[BaseException] = []
        stop = threading.Event()

        def call(index: int) -> None:
            client = tf_graphpipe.Client(server.url + "/models/scale", timeout=30, retries=0)
            answers = seen[index]
            try:
                for _ in range(MAX_CALLS):
                    if stop.is_set():
                        return
                    y = client.infer(X)
                    answers.append((time.monotonic(), factor_of(y)))
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=call, args=(i,), daemon=True) for i in range(CLIENTS)]
        for thread in threads:
            thread.start()
        try:
            wait_for(lambda: all(len(s) >= 10 for s in seen) or errors, what="every client calling")
            added = time.monotonic()
            add_version(tmp_path, "scale", 2, templates.saved_model(2))
            wait_for(lambda: errors or all(sum(f == 2.0 for _, f in s[-CALLS_AFTER_SWAP:]) == CALLS_AFTER_SWAP
                                           for s in seen), timeout=90, what="every client on version 2")
        finally:
            stop.set()
            for thread in threads:
                thread.join(30)
        assert not errors, errors[:3]
        new = server.repository.lookup("scale")
        assert new.version == 2
        first_new = min(t for s in seen for t, f in s if f == 2.0)
        # the new version answers within one poll plus its load (slack for a busy machine)
        assert first_new - added <= POLL + new.load_seconds + 5.0, (first_new - added, new.load_seconds)
        for answers in seen:
            factors = [f for _, f in answers]
            assert set(factors) <= {1.0, 2.0}
            switch = factors.index(2.0)
            assert factors[:switch] == [1.0] * switch and factors[switch:] == [2.0] * (len(factors) - switch), \
                "a client saw version 1 after version 2"
        wait_for(lambda: _states(server.url, "scale") == {2: "available"}, what="version 1 unloaded")


def test_broken_version_is_ignored_and_logged_while_serving(tmp_path, templates, caplog) -> None:
    root = tmp_path / "models"
    add_version(root, "scale", 1, templates.saved_model(1))
    broken = tmp_path / "broken"
    shutil.copytree(templates.saved_model(2), broken)
    truncate_saved_model(broken)
    with tf_graphpipe.serve(repository=root, poll_seconds=POLL) as server, \
            caplog.at_level(logging.ERROR, logger="tf_graphpipe.server"):
        add_version(root, "scale", 2, broken)
        wait_for(lambda: _states(server.url, "scale").get(2) == "failed", what="version 2 failed")
        assert "model 'scale' version 2 failed to load" in caplog.text
        assert factor_of(tf_graphpipe.Client(server.url + "/models/scale").infer(X)) == 1.0
        assert servers.request(server.url, "GET", "/v2/health/ready")[0] == 200


def test_unload_drains_calls_in_flight(tmp_path, templates) -> None:
    add_version(tmp_path, "scale", 1, templates.saved_model(1))
    (tmp_path / "held" / "1").mkdir(parents=True)
    (tmp_path / "held" / "config.json").write_text('{"callable": "support.repository_fixtures:hold"}')
    RELEASE.clear()
    with tf_graphpipe.serve(repository=tmp_path, poll_seconds=POLL) as server:
        url = server.url
        result: list[object] = []
        x = -np.ones((1, 2), np.float32)
        caller = threading.Thread(target=lambda: result.append(
            tf_graphpipe.Client(url + "/models/held", timeout=60).infer(x)), daemon=True)
        caller.start()
        try:
            version = server.repository.lookup("held")
            wait_for(lambda: version.in_flight == 1, what="the call in flight")
            status, _, body = servers.request(url, "POST", "/v2/repository/models/held/unload", b"{}")
            assert status == 200, body
            assert _states(url, "held") == {1: "draining"}
            with pytest.raises(RemoteError) as info:
                tf_graphpipe.Client(url + "/models/held", retries=0).infer(-x)
            assert info.value.status == 404
            assert not version.drained.is_set()
        finally:
            RELEASE.set()
        caller.join(60)
        np.testing.assert_array_equal(result[0], x)  # finished on the version it started on
        wait_for(version.drained.is_set, what="drained")
        assert _states(url, "held") == {}
        assert factor_of(tf_graphpipe.Client(url + "/models/scale").infer(X)) == 1.0
        model = weakref.ref(version.model)
        del version
        wait_for(lambda: gc.collect() is not None and model() is None, what="the unloaded model freed")


# ---- the command line ---------------------------------------------------------------


def test_cli_serves_a_repository_and_info_lists_its_models(tmp_path) -> None:
    root = example().build(tmp_path / "models")
    server = servers.CliServer("--model-repository", str(root), "--port", "0", "--poll-seconds", "0")
    try:
        url = server.wait_url()
        assert factor_of(tf_graphpipe.Client(url + "/models/scale/versions/1").infer(X)) == 1.0
        info = subprocess.run([sys.executable, "-m", "tf_graphpipe", "info", url],
                              capture_output=True, text=True, timeout=120)
        assert info.returncode == 0, info.stderr
        lines = info.stdout.splitlines()
        assert any(line.split()[:1] == ["classify"] and "1 (available)" in line for line in lines), info.stdout
        assert any(line.split()[:1] == ["scale"] and "2 (available), 1 (available)" in line for line in lines)
    finally:
        assert server.stop() == 0


def test_cli_refuses_a_bad_config_naming_file_and_key(tmp_path) -> None:
    root = example().build(tmp_path / "models")
    (root / "scale" / "config.json").write_text('{"version_policy": {"latest": "2"}}')
    result = subprocess.run(
        [sys.executable, "-m", "tf_graphpipe", "serve", "--model-repository", str(root), "--port", "0"],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert f"{root / 'scale' / 'config.json'}: key 'version_policy'" in result.stderr, result.stderr


def test_cli_takes_a_model_or_a_repository(tmp_path) -> None:
    for args in ([], ["demo", "--model-repository", str(tmp_path)]):
        result = subprocess.run([sys.executable, "-m", "tf_graphpipe", "serve", *args],
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 2 and "MODEL or --model-repository" in result.stderr, result.stderr
