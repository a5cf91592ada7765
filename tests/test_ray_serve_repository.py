# SPDX-License-Identifier: Apache-2.0
"""A model repository on Ray Serve, deployed by ``tf-graphpipe serve
--model-repository DIR --ray ADDRESS``: two models served by two replicas
on two nodes through the one proxy URL, in both protocols (tritonclient's
repository index included); the v2 load/unload requests refused with the
reason (each replica serves the directory on its own); and a version
dropped into the directory served by every replica after polling."""
from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import tf_graphpipe

from support import peer_venvs, ray_models
from support.ray_cluster import RayTestCluster, wait_until

pytestmark = pytest.mark.slow

POLL_SECONDS = 0.5
X = np.arange(8, dtype=np.float32).reshape(2, 4)


def add_model(root: Path, name: str, callable_name: str, version: int) -> None:
    """A callable model's version (its directory holds nothing), renamed into place."""
    model = root / name
    model.mkdir(exist_ok=True)
    (model / "config.json").write_text(json.dumps({"callable": callable_name, "inputs": ray_models.SCALE_INPUTS,
                                                   "outputs": ray_models.SCALE_OUTPUTS}))
    (model / f".incoming-{version}").mkdir()
    (model / f".incoming-{version}").rename(model / str(version))


TRITONCLIENT = r"""
import sys
import numpy as np
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException
client = httpclient.InferenceServerClient(sys.argv[1], connection_timeout=30, network_timeout=60)
assert client.is_server_ready()
index = {(m["name"], m.get("version"), m["state"]) for m in client.get_model_repository_index()}
assert index == {("scale", "1", "READY"), ("offset", "1", "READY")}, index
x = np.arange(8, dtype=np.float32).reshape(2, 4)
given = httpclient.InferInput("x", [2, 4], "FP32")
given.set_data_from_numpy(x)
result = client.infer("offset", [given], outputs=[httpclient.InferRequestedOutput("y")])
assert np.array_equal(result.as_numpy("y"), x + 1), result.as_numpy("y")
try:
    client.unload_model("scale")
except InferenceServerException as exc:
    print(exc.message())
else:
    raise AssertionError("unload was not refused")
"""


def replica_of(url: str) -> str | None:
    """Which replica answered version 2 of ``scale`` ("NODE ACTOR"); None
    when the replica asked does not serve it yet (404)."""
    try:
        y, replica = tf_graphpipe.Client(url + "/v2/models/scale/versions/2", timeout=30).infer(
            X, output_names=["y", "replica"])
    except tf_graphpipe.RemoteError as exc:
        assert exc.status == 404, exc
        return None
    np.testing.assert_array_equal(y, 2 * X)
    return str(replica[0].decode() if isinstance(replica[0], bytes) else replica[0])


def test_cli_serves_a_repository_on_ray_and_every_replica_follows_the_directory(
        ray_cluster: RayTestCluster, tmp_path: Path) -> None:
    from ray import serve

    root = tmp_path / "models"
    root.mkdir()
    add_model(root, "scale", "support.ray_models:scale", 1)
    add_model(root, "offset", "support.ray_models:offset", 1)
    command = [sys.executable, "-m", "tf_graphpipe", "serve", "--model-repository", str(root),
               "--poll-seconds", str(POLL_SECONDS), "--ray", ray_cluster.address, "--replicas", "2",
               "--port", str(ray_cluster.port)]
    process = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=dict(os.environ))
    try:
        assert process.stdout is not None
        with selectors.DefaultSelector() as selector:  # bounded: the URL comes once every replica is ready
            selector.register(process.stdout, selectors.EVENT_READ)
            assert selector.select(300), "no URL printed within 300 s"
        url = process.stdout.readline().strip()
        assert url == ray_cluster.url, (url, process.stderr.read() if process.poll() is not None else "")

        replicas = set()
        for _ in range(40):  # both models, both protocols; calls spread over the replicas
            y, replica = tf_graphpipe.Client(url + "/models/scale", timeout=30).infer(X)
            np.testing.assert_array_equal(y, 2 * X)
            replicas.add(str(replica[0].decode() if isinstance(replica[0], bytes) else replica[0]))
            if len(replicas) == 2:
                break
        assert len({r.split()[0] for r in replicas}) == 2, f"not two replicas on two nodes: {replicas}"
        np.testing.assert_array_equal(tf_graphpipe.Client(url + "/v2/models/offset", timeout=30).infer(
            X, output_names=["y"]), X + 1)
        np.testing.assert_array_equal(tf_graphpipe.Client(url + "/models/offset/versions/1", timeout=30)
                                      .infer(X)[0], X + 1)

        triton = peer_venvs.ensure_venv("tritonclient-2.73.0", (["tritonclient[http]==2.73.0", "numpy"],),
                                        "import tritonclient.http, numpy, ml_dtypes")
        result = subprocess.run([str(triton), "-c", TRITONCLIENT, url.removeprefix("http://")],
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == (
            "unload 'scale' refused: on Ray Serve every replica serves the model repository on its own, and "
            "this request would change one of them: change the repository directory instead (each reads it "
            f"every {POLL_SECONDS:g} s)")

        add_model(root, "scale", "support.ray_models:scale", 2)
        seen: set[str] = set()
        deadline = time.monotonic() + 60
        while seen != replicas:  # every replica answers version 2 once it has polled
            assert time.monotonic() < deadline, f"version 2 only on {seen} of {replicas} within 60 s"
            answered = replica_of(url)
            if answered is not None:
                assert answered in replicas, f"a replica not seen before answered: {answered}"
                seen.add(answered)
            else:
                time.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        assert process.wait(120) == 0
        wait_until(lambda: "tf-graphpipe" not in serve.status().applications, 60, "the application deleted")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
            serve.delete("tf-graphpipe")
