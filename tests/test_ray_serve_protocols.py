# SPDX-License-Identifier: Apache-2.0
"""A model on Ray Serve answers through the one proxy URL exactly as
``tf-graphpipe serve`` does: replicas on more than one node of a real
cluster (``ray_cluster``), ``Client``, ``remote_call``, ``GraphPipeLayer``,
the reference GraphPipe client and tritonclient, errors, health, the size
limit, and the seed's 77 MB request with and without the gateway."""
from __future__ import annotations

import http.client
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import tf_graphpipe

from support import peer_venvs, ray_models
from support.ray_cluster import RayTestCluster

pytestmark = pytest.mark.slow

SIZE_LIMIT = 1 << 20  # the scale app's max_request_bytes


@pytest.fixture(scope="module")
def scale_url(ray_cluster: RayTestCluster) -> Iterator[str]:
    from ray import serve

    from tf_graphpipe.ray_serve import deployment

    app = deployment("support.ray_models:scale", name="scale", input_specs=ray_models.SCALE_INPUTS,
                     output_specs=ray_models.SCALE_OUTPUTS, num_replicas=2, max_request_bytes=SIZE_LIMIT,
                     ray_actor_options={"num_cpus": 0.5})
    serve.run(app, name="scale", route_prefix="/scale")
    try:
        yield ray_cluster.url + "/scale"
    finally:
        serve.delete("scale")


X = np.arange(12, dtype=np.float32).reshape(3, 4)


def test_replicas_on_two_nodes_answer_graphpipe_and_v2_at_one_url(scale_url: str) -> None:
    client = tf_graphpipe.Client(scale_url, timeout=30)
    assert [i["name"] for i in client.metadata()["inputs"]] == ["x"]
    nodes = set()
    for _ in range(40):  # the proxy spreads calls over the replicas
        y, replica = client.infer(X)
        np.testing.assert_array_equal(y, 2 * X)
        nodes.add(replica[0].split()[0])
        if len(nodes) > 1:
            break
    assert len(nodes) == 2, f"every call answered by a replica on one node: {nodes}"
    v2 = tf_graphpipe.Client(scale_url + "/v2/models/scale", timeout=30)
    np.testing.assert_array_equal(v2.infer(X, output_names=["y"]), 2 * X)
    np.testing.assert_array_equal(tf_graphpipe.Client(scale_url + "/v2/models/scale", binary=False,
                                                      timeout=30).infer(X, output_names=["y"]), 2 * X)


def test_remote_call_and_keras_layer_call_the_proxy(scale_url: str) -> None:
    import keras
    import tensorflow as tf

    @tf.function
    def both(x: tf.Tensor) -> list[tf.Tensor]:
        graphpipe = tf_graphpipe.remote_call(scale_url, [x], output_dtypes=[tf.float32], output_names=["y"],
                                             output_shapes=[[None, 4]])[0]
        v2 = tf_graphpipe.remote_call(scale_url + "/v2/models/scale", [x], output_dtypes=[tf.float32],
                                      output_names=["y"], output_shapes=[[None, 4]])[0]
        return [graphpipe, v2]

    for value in both(tf.constant(X)):
        np.testing.assert_array_equal(value.numpy(), 2 * X)
    inputs = keras.Input((4,))
    remote = tf_graphpipe.GraphPipeLayer(scale_url, output_names=["y"], output_dtypes=["float32"],
                                         output_shapes=[[None, 4]])(inputs)
    model = keras.Model(inputs, remote)
    np.testing.assert_array_equal(model.predict(X, verbose=0), 2 * X)


REFERENCE = r"""
import sys
import numpy as np
from graphpipe import remote
x = np.arange(12, dtype=np.float32).reshape(3, 4)
y = remote.execute_multi(sys.argv[1], [x], None, ["y"])[0]
assert np.array_equal(y, 2 * x), y
assert remote.get_input_names(sys.argv[1]) == ["x"]
print("ok")
"""

TRITONCLIENT = r"""
import sys
import numpy as np
import tritonclient.http as httpclient
client = httpclient.InferenceServerClient(sys.argv[1], connection_timeout=30, network_timeout=60)
assert client.is_server_ready() and client.is_model_ready("scale")
assert [i["name"] for i in client.get_model_metadata("scale")["inputs"]] == ["x"]
x = np.arange(12, dtype=np.float32).reshape(3, 4)
for binary in (True, False):
    given = httpclient.InferInput("x", [3, 4], "FP32")
    given.set_data_from_numpy(x, binary_data=binary)
    wanted = [httpclient.InferRequestedOutput("y", binary_data=binary)]
    result = client.infer("scale", [given], outputs=wanted)
    assert np.array_equal(result.as_numpy("y"), 2 * x), result.as_numpy("y")
print("ok")
"""


def test_reference_client_and_tritonclient_call_the_proxy(scale_url: str, reference_python: Any) -> None:
    assert peer_venvs.run_reference(REFERENCE, scale_url).stdout.strip() == "ok"
    triton = peer_venvs.ensure_venv("tritonclient-2.73.0", (["tritonclient[http]==2.73.0", "numpy"],),
                                    "import tritonclient.http, numpy, ml_dtypes")
    # tritonclient takes HOST:PORT and no path prefix: the proxy's own root
    # reaches the app mounted at /scale through a URL it cannot express, so
    # it calls a second app mounted at the root.
    from ray import serve

    from tf_graphpipe.ray_serve import deployment

    serve.run(deployment("support.ray_models:scale", name="scale", input_specs=ray_models.SCALE_INPUTS,
                         output_specs=ray_models.SCALE_OUTPUTS, ray_actor_options={"num_cpus": 0.25}),
              name="root", route_prefix="/")
    try:
        host_port = scale_url.split("//", 1)[1].split("/", 1)[0]
        result = subprocess.run([str(triton), "-c", TRITONCLIENT, host_port], capture_output=True, text=True,
                                timeout=120)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "ok"
    finally:
        serve.delete("root")


def test_errors_health_and_size_limit_come_from_the_server(scale_url: str) -> None:
    client = tf_graphpipe.Client(scale_url, timeout=30)
    with pytest.raises(tf_graphpipe.RemoteError) as refused:
        client.infer(np.ones((2, 3), np.float32))
    assert refused.value.status == 400 and "x" in str(refused.value)
    with pytest.raises(tf_graphpipe.RemoteError) as v2_refused:
        tf_graphpipe.Client(scale_url + "/v2/models/scale", timeout=30).infer(np.ones((2, 3), np.float32))
    assert v2_refused.value.status == 400
    host, port = scale_url.split("//", 1)[1].split("/", 1)[0].split(":")
    for path in ("/scale/control/is_ready", "/scale/v2/health/ready", "/scale/v2/models/scale/ready"):
        connection = http.client.HTTPConnection(host, int(port), timeout=30)
        connection.request("GET", path)
        assert connection.getresponse().status == 200, path
        connection.close()
    # Announced over the limit: refused from Content-Length, body unread.
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    connection.putrequest("POST", "/scale")
    connection.putheader("Content-Length", str(SIZE_LIMIT + 1))
    connection.endheaders()
    answer = connection.getresponse()
    assert answer.status == 413
    assert b"exceeds the server's limit" in answer.read()
    connection.close()
    np.testing.assert_array_equal(client.infer(X)[0], 2 * X)  # still serving


@pytest.mark.parametrize("gateway", [True, False], ids=["gateway", "direct"])
def test_seed_sized_request_through_the_proxy(ray_cluster: RayTestCluster, gateway: bool) -> None:
    from ray import serve

    from tf_graphpipe.ray_serve import deployment

    name = "seed" if gateway else "seed-direct"
    serve.run(deployment("support.ray_models:seed_features", name="seed", input_specs=ray_models.SEED_INPUTS,
                         output_specs=ray_models.SEED_OUTPUTS, gateway=gateway,
                         ray_actor_options={"num_cpus": 0.5}), name=name, route_prefix="/" + name)
    try:
        images = np.random.default_rng(7).random((128, 224, 224, 3), dtype=np.float32)  # 77 MB
        features = tf_graphpipe.Client(f"{ray_cluster.url}/{name}", timeout=120).infer(images)
        assert features.shape == (128, 7, 7, 512)  # 12.8 MB
        np.testing.assert_array_equal(features, ray_models.seed_features(images))
        v2 = tf_graphpipe.Client(f"{ray_cluster.url}/{name}/v2/models/seed", timeout=120).infer(images)
        np.testing.assert_array_equal(v2, ray_models.seed_features(images))
    finally:
        serve.delete(name)


def test_missing_ray_names_the_extra() -> None:
    script = ("import sys; sys.modules['ray'] = None\n"  # as if Ray were not installed
              "from tf_graphpipe.ray_serve import deployment\n"
              "try:\n    deployment('demo')\nexcept ImportError as exc:\n    print(exc)\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "pip install 'tf-graphpipe[ray]'" in result.stdout
