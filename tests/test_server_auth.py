# SPDX-License-Identifier: Apache-2.0
"""Bearer tokens on the serving port: accepted, refused with 401 in each
protocol's error format, rotated by rewriting the file, never logged."""
from __future__ import annotations

import http.client
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import tensorflow as tf
import uvicorn

import tf_graphpipe
from tf_graphpipe import RemoteError, _native
from tf_graphpipe.server import RunningServer, load_model
from tf_graphpipe.server.app import GraphPipeApp
from tf_graphpipe.server.production import ProductionOptions

FLOAT32 = 10  # GraphPipe wire type of float32
TOKEN, ROTATED = "s3cr3t-token-value-1c9f", "r0tated-token-value-77ab"


def double(x: tf.TensorSpec([None, 2], tf.float32)) -> tf.TensorSpec([None, 2], tf.float32):
    return x * 2


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "tokens"
    path.write_text(f"# accepted tokens\n{TOKEN}\n")
    path.chmod(0o600)
    return path


@pytest.fixture
def server(token_file: Path) -> Iterator[RunningServer]:
    with tf_graphpipe.serve(double, name="double", auth_token_file=token_file) as running:
        yield running


def call(server: Any, method: str, path: str, body: bytes | None = None,
         token: str | None = None, scheme: str = "Bearer") -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        headers = {} if token is None else {"Authorization": f"{scheme} {token}"}
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def graphpipe_body() -> bytes:
    return bytes(_native.encode_infer_request([np.ones((1, 2), np.float32)], [FLOAT32], [], [], b""))


def v2_body() -> bytes:
    return json.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 2], "data": [1, 2]}]}).encode()


def graphpipe_error(body: bytes) -> str:
    with pytest.raises(RemoteError) as caught:
        _native.decode_infer_response(body)
    return caught.value.message


def test_calls_with_an_accepted_token_are_answered(server: RunningServer) -> None:
    status, _, body = call(server, "POST", "/", graphpipe_body(), TOKEN)
    assert status == 200
    np.testing.assert_array_equal(_native.decode_infer_response(body)[0], [[2, 2]])
    status, _, body = call(server, "POST", "/v2/models/double/infer", v2_body(), TOKEN)
    assert status == 200 and json.loads(body)["outputs"][0]["data"] == [2, 4]
    status, _, body = call(server, "GET", "/v2/models/double", None, TOKEN)
    assert status == 200 and json.loads(body)["name"] == "double"


@pytest.mark.parametrize("token, scheme, message", [
    (None, "Bearer", "this server requires a bearer token"),
    ("wrong-token", "Bearer", "the bearer token was not accepted"),
    (TOKEN, "Basic", "the Authorization header is not a bearer token"),
])
def test_graphpipe_calls_without_a_valid_token_get_401(server: RunningServer, token: str | None, scheme: str,
                                                        message: str) -> None:
    status, headers, body = call(server, "POST", "/", graphpipe_body(), token, scheme)
    assert status == 401
    assert headers["www-authenticate"].startswith("Bearer")
    assert message in graphpipe_error(body)
    assert TOKEN not in body.decode("latin-1")


def test_v2_calls_without_a_valid_token_get_401_with_a_json_error(server: RunningServer) -> None:
    for method, path, body in (("POST", "/v2/models/double/infer", v2_body()), ("GET", "/v2/models/double", None),
                               ("GET", "/v2", None)):
        status, headers, answer = call(server, method, path, body, "wrong-token")
        assert status == 401, path
        assert headers["www-authenticate"].startswith("Bearer")
        assert json.loads(answer) == {"error": "the bearer token was not accepted"}


def test_metadata_and_metrics_need_the_token(server: RunningServer) -> None:
    assert call(server, "GET", "/")[0] == 401
    assert call(server, "GET", "/metrics")[0] == 401
    assert call(server, "GET", "/metrics", None, TOKEN)[0] == 200


def test_health_routes_answer_without_a_token(server: RunningServer) -> None:
    for path in ("/control/is_alive", "/control/is_ready", "/v2/health/live", "/v2/health/ready"):
        assert call(server, "GET", path)[0] == 200, path


def test_health_routes_can_require_the_token_too(token_file: Path) -> None:
    with tf_graphpipe.serve(double, auth_token_file=token_file, auth_health=True) as running:
        for path in ("/control/is_alive", "/v2/health/ready"):
            assert call(running, "GET", path)[0] == 401, path
            assert call(running, "GET", path, None, TOKEN)[0] == 200, path


def test_the_server_serves_on_after_refusals(server: RunningServer) -> None:
    for _ in range(5):
        assert call(server, "POST", "/", graphpipe_body(), "nope")[0] == 401
    assert call(server, "POST", "/", graphpipe_body(), TOKEN)[0] == 200


def test_rewriting_the_token_file_rotates_the_tokens(server: RunningServer, token_file: Path) -> None:
    staged = token_file.with_suffix(".new")
    staged.write_text(ROTATED + "\n")
    os.replace(staged, token_file)
    deadline = time.monotonic() + 10  # the server looks at the file at most once a second
    while call(server, "POST", "/", graphpipe_body(), ROTATED)[0] != 200:
        assert time.monotonic() < deadline, "the rewritten token file was not picked up"
        time.sleep(0.2)
    assert call(server, "POST", "/", graphpipe_body(), TOKEN)[0] == 401


def test_tokens_never_reach_the_logs(token_file: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        with tf_graphpipe.serve(double, auth_token_file=token_file, access_log=True) as running:
            call(running, "POST", "/", graphpipe_body(), TOKEN)
            call(running, "POST", "/", graphpipe_body(), TOKEN + "x")
            call(running, "POST", "/v2/models/double/infer?token=" + TOKEN, v2_body(), TOKEN)
    assert "POST /" in caplog.text  # the access log did write lines
    assert TOKEN not in caplog.text


def test_a_token_file_without_tokens_is_refused_at_start(tmp_path: Path) -> None:
    empty = tmp_path / "tokens"
    empty.write_text("\n")
    with pytest.raises(ValueError, match="holds no token"):
        tf_graphpipe.serve(double, auth_token_file=empty)


def test_the_asgi_app_checks_tokens_and_counts_calls_alike(token_file: Path) -> None:
    model = load_model(double, name="double")
    app = GraphPipeApp.for_model(model, production=ProductionOptions(auth_token_file=token_file))
    asgi = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=asgi.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not asgi.started and time.monotonic() < deadline:
            time.sleep(0.02)
        assert asgi.started, "uvicorn did not start"
        port = asgi.servers[0].sockets[0].getsockname()[1]
        served = SimpleNamespace(port=port)
        assert call(served, "POST", "/", graphpipe_body())[0] == 401
        assert call(served, "POST", "/v2/models/double/infer", v2_body(), "wrong")[0] == 401
        assert call(served, "POST", "/", graphpipe_body(), TOKEN)[0] == 200
        assert call(served, "GET", "/v2/health/ready")[0] == 200
        status, _, text = call(served, "GET", "/metrics", None, TOKEN)
        assert status == 200
        assert 'graphpipe_requests_total{code="401",model="double",protocol="graphpipe",version="1"} 1.0' in \
            text.decode()
    finally:
        asgi.should_exit = True
        thread.join(30)
        app.close()
