# SPDX-License-Identifier: Apache-2.0
"""``tritonclient[http]==2.73.0`` (its own venv, as test_v2_server_tritonclient
builds it) against a server on a model repository: the repository extension
(``get_model_repository_index``, ``load_model``, ``unload_model``), model
readiness, and inference by name and version."""
from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest
from test_v2_server_tritonclient import _STEPS, TRITONCLIENT, run

import tf_graphpipe

from support import peer_venvs, servers
from support.repository_fixtures import example

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def python() -> str:
    try:
        return str(peer_venvs.ensure_venv(TRITONCLIENT, _STEPS, "import tritonclient.http, numpy, ml_dtypes"))
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        pytest.fail(f"cannot build the {TRITONCLIENT} venv: {exc}")


@pytest.fixture(scope="module")
def repository_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tf_graphpipe.server.RunningServer]:
    root = example().build(tmp_path_factory.mktemp("example") / "models")
    with tf_graphpipe.serve(repository=root, poll_seconds=0) as server:
        yield server


REPOSITORY_API = r"""
def infer(name, version=""):
    x = np.ones((2, 4), np.float32)
    inputs = [httpclient.InferInput("x", [2, 4], "FP32").set_data_from_numpy(x, binary_data=True)]
    return client.infer(name, inputs, model_version=version).as_numpy("y")

index = client.get_model_repository_index()
assert sorted((m["name"], m.get("version"), m["state"]) for m in index) == [
    ("classify", "1", "READY"), ("scale", "1", "READY"), ("scale", "2", "READY")], index
assert client.is_model_ready("scale") and client.is_model_ready("scale", "1")
assert (infer("scale") == 2).all() and (infer("scale", "1") == 1).all()

client.unload_model("scale")
assert not client.is_model_ready("scale")
entry = [m for m in client.get_model_repository_index() if m["name"] == "scale"]
assert entry == [{"name": "scale", "state": "UNAVAILABLE", "reason": "unloaded"}], entry
exc = error_of(lambda: infer("scale"))
assert "404" in str(exc.status()) and "'scale'" in exc.message(), (exc.status(), exc.message())
assert client.is_model_ready("classify")

client.load_model("scale")
assert client.is_model_ready("scale", "2") and (infer("scale", "2") == 2).all()
assert "'absent'" in error_of(lambda: client.load_model("absent")).message()
assert "'absent'" in error_of(lambda: client.unload_model("absent")).message()
assert client.is_server_ready()
print("OK")
"""


def test_repository_index_load_and_unload(python, repository_server) -> None:
    run(python, repository_server, REPOSITORY_API)


def test_refused_load_parameters_keep_the_model_served(python, repository_server) -> None:
    script = r"""
exc = error_of(lambda: client.load_model("scale", config='{"max_batch_size": 8}'))
assert "config.json" in exc.message(), exc.message()
assert client.is_model_ready("scale")
print("OK")
"""
    run(python, repository_server, script)


def test_unknown_route_under_the_repository_is_404(repository_server) -> None:
    status, _, body = servers.request(repository_server.url, "POST", "/v2/repository/models/scale/reload", b"")
    assert status == 404, body
