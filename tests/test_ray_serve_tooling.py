# SPDX-License-Identifier: Apache-2.0
"""Ray's own tooling and ours deploy the same application: ``serve run``
with ``tf_graphpipe.ray_serve:build`` (arguments on the command line, and a
Serve config file), and ``tf-graphpipe serve MODEL --ray ADDRESS``. Each
runs as its own process, from a directory that is not the checkout (Ray
puts the driver's directory on the replicas' ``sys.path``)."""
from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tf_graphpipe

from support import ray_models
from support.ray_cluster import RayTestCluster, wait_until

pytestmark = pytest.mark.slow

X = np.arange(8, dtype=np.float32).reshape(2, 4)
SPECS = "input_specs=x:float32:-1,4", "output_specs=y:float32:-1,4;replica:string:1"
SERVE = Path(sys.executable).parent / "serve"


def serve_run(cluster: RayTestCluster, cwd: Path, *args: str) -> None:
    result = subprocess.run([str(SERVE), "run", "--non-blocking", "--address", cluster.address, *args],
                            cwd=cwd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]


def answers(url: str, name: str) -> None:
    y, _ = tf_graphpipe.Client(url, timeout=30).infer(X)
    np.testing.assert_array_equal(y, 2 * X)
    np.testing.assert_array_equal(tf_graphpipe.Client(f"{url}/v2/models/{name}", timeout=30)
                                  .infer(X, output_names=["y"]), 2 * X)


def test_serve_run_builds_from_arguments_and_from_a_config_file(ray_cluster: RayTestCluster,
                                                                 tmp_path: Path) -> None:
    from ray import serve

    serve_run(ray_cluster, tmp_path, "--name", "built", "--route-prefix", "/built",
              "tf_graphpipe.ray_serve:build", "model=support.ray_models:scale", "name=built", *SPECS,
              "num_replicas=2", "ray_actor_options={\"num_cpus\": 0.25}")
    try:
        answers(ray_cluster.url + "/built", "built")
        assert serve.status().applications["built"].deployments["GraphPipeModel"].status == "HEALTHY"
    finally:
        serve.delete("built")
    config = tmp_path / "serve.yaml"
    config.write_text(f"""\
applications:
  - name: configured
    route_prefix: /configured
    import_path: tf_graphpipe.ray_serve:build
    args:
      model: support.ray_models:scale
      name: configured
      input_specs: ["{ray_models.SCALE_INPUTS[0]}"]
      output_specs: {ray_models.SCALE_OUTPUTS}
      autoscale: "1:2"
      max_batch_size: 8
      ray_actor_options: {{num_cpus: 0.25}}
""")
    serve_run(ray_cluster, tmp_path, str(config))  # returns once the config is submitted
    try:
        wait_until(lambda: getattr(serve.status().applications.get("configured"), "status", "") == "RUNNING",
                   180, "the configured application running")
        answers(ray_cluster.url + "/configured", "configured")
    finally:
        serve.delete("configured")


def test_build_refuses_unknown_arguments_by_name(tmp_path: Path) -> None:
    from tf_graphpipe.ray_serve import build

    with pytest.raises(ValueError, match="unknown argument.*replicas"):
        build({"model": "demo", "replicas": "2"})
    with pytest.raises(ValueError, match="needs model=.*or repository=DIR"):
        build({"num_replicas": "2"})
    with pytest.raises(ValueError, match="needs model=.*one of them"):
        build({"model": "demo", "repository": str(tmp_path)})
    with pytest.raises(ValueError, match="autoscale must be MIN:MAX"):
        build({"model": "demo", "autoscale": "4"})
    with pytest.raises(ValueError, match="name, input_specs: with a repository, each model's config.json"):
        build({"repository": str(tmp_path), "name": "m", "input_specs": "x:float32:-1"})
    with pytest.raises(FileNotFoundError, match="is not a directory"):
        build({"repository": str(tmp_path / "absent")})


def test_cli_deploys_onto_the_cluster_prints_the_proxy_url_and_deletes_on_sigterm(
        ray_cluster: RayTestCluster, tmp_path: Path) -> None:
    from ray import serve

    command = [sys.executable, "-m", "tf_graphpipe", "serve", "support.ray_models:scale", "--name", "cli",
               "--input-spec", ray_models.SCALE_INPUTS[0], *[f"--output-spec={s}" for s in ray_models.SCALE_OUTPUTS],
               "--ray", ray_cluster.address, "--replicas", "2", "--port", str(ray_cluster.port)]
    process = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=dict(os.environ))
    try:
        assert process.stdout is not None
        with selectors.DefaultSelector() as selector:  # bounded: the URL comes once every replica is ready
            selector.register(process.stdout, selectors.EVENT_READ)
            assert selector.select(300), "no URL printed within 300 s"
        url = process.stdout.readline().strip()
        assert url == ray_cluster.url, (url, process.stderr.read() if process.poll() is not None else "")
        answers(url, "cli")
        assert serve.status().applications["tf-graphpipe"].deployments["GraphPipeModel"].replica_states
        process.send_signal(signal.SIGTERM)
        assert process.wait(120) == 0
        wait_until(lambda: "tf-graphpipe" not in serve.status().applications, 60, "the application deleted")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
            serve.delete("tf-graphpipe")
