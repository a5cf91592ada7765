# SPDX-License-Identifier: Apache-2.0
"""Both front ends answer alike: the native server ``serve()`` runs and the
ASGI app under uvicorn get the same requests, of both protocols, good and
bad, and must give the same status, content type, protocol headers and body
(they share one dispatcher; this is what keeps a front end from growing
decisions of its own). Every error answer carries the error table's code."""
from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Iterator
from email.utils import parsedate_to_datetime

import numpy as np
import pytest
import uvicorn

import tf_graphpipe
from tf_graphpipe import RemoteError, _native
from tf_graphpipe.server import load_model
from tf_graphpipe.server.app import GraphPipeApp

LIMIT = 1 << 20
X = np.arange(6, dtype=np.float32).reshape(2, 3)
SPECS = {"input_specs": ["x:float32:-1,3"], "output_specs": ["y:float32:-1,3"]}


def double(x: np.ndarray) -> np.ndarray:
    if np.isnan(x).any():
        raise RuntimeError("input holds NaN")
    return x * 2


def _infer_body(x: np.ndarray) -> bytes:
    return bytes(_native.encode_infer_request([x], [10], [], [], b""))


def _v2_json(x: np.ndarray) -> bytes:
    return json.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": list(x.shape),
                                   "data": x.reshape(-1).tolist()}]}).encode()


def _v2_binary(x: np.ndarray) -> tuple[bytes, dict[str, str]]:
    header = json.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": list(x.shape),
                                     "parameters": {"binary_data_size": x.nbytes}}],
                         "outputs": [{"name": "y", "parameters": {"binary_data": True}}]}).encode()
    return header + x.tobytes(), {"Inference-Header-Content-Length": str(len(header))}


V2_BINARY_BODY, V2_BINARY_HEADERS = _v2_binary(X)

# (id, method, path, body, headers): each sent to both front ends on a fresh connection.
REQUESTS = [
    ("gp-metadata-get", "GET", "/", None, {}),
    ("gp-metadata-head", "HEAD", "/any/path", None, {}),
    ("gp-metadata-post", "POST", "/", bytes(_native.encode_metadata_request()), {}),
    ("gp-infer", "POST", "/", _infer_body(X), {}),
    ("gp-not-a-request", "POST", "/", b"not a flatbuffer", {}),
    ("gp-wrong-shape", "POST", "/", _infer_body(np.zeros((2, 4), np.float32)), {}),
    ("gp-model-fails", "POST", "/", _infer_body(np.full((1, 3), np.nan, np.float32)), {}),
    ("gp-put", "PUT", "/", b"", {}),
    ("alive", "GET", "/control/is_alive", None, {}),
    ("ready", "GET", "/control/is_ready", None, {}),
    ("v2-server", "GET", "/v2", None, {}),
    ("v2-live", "GET", "/v2/health/live", None, {}),
    ("v2-ready", "GET", "/v2/health/ready", None, {}),
    ("v2-model", "GET", "/v2/models/double", None, {}),
    ("v2-model-version", "GET", "/v2/models/double/versions/1/ready", None, {}),
    ("v2-other-model", "GET", "/v2/models/other", None, {}),
    ("v2-unknown-path", "GET", "/v2/nothing/here", None, {}),
    ("v2-infer-get", "GET", "/v2/models/double/infer", None, {}),
    ("v2-post-metadata", "POST", "/v2/models/double", b"", {}),
    ("v2-infer-json", "POST", "/v2/models/double/infer", _v2_json(X), {}),
    ("v2-infer-binary", "POST", "/v2/models/double/infer", V2_BINARY_BODY, V2_BINARY_HEADERS),
    ("v2-bad-json", "POST", "/v2/models/double/infer", b"{not json", {}),
    ("v2-model-fails", "POST", "/v2/models/double/infer", _v2_json(np.full((1, 3), np.nan, np.float32)), {}),
]
# What the answers say beyond the body, compared between the front ends.
COMPARED_HEADERS = ("content-type", "content-length", "allow", "inference-header-content-length", "retry-after")


@pytest.fixture(scope="module")
def front_ends() -> Iterator[dict[str, str]]:
    """{"native": url, "asgi": url}, serving the same model with the same options."""
    model = load_model(double, name="double", input_specs=[tf_graphpipe.server.parse_spec(s) for s in SPECS[
        "input_specs"]], output_specs=[tf_graphpipe.server.parse_spec(s) for s in SPECS["output_specs"]])
    app = GraphPipeApp.for_model(model, max_request_bytes=LIMIT)
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    asgi = uvicorn.Server(config)
    thread = threading.Thread(target=asgi.run, daemon=True)
    thread.start()
    native = tf_graphpipe.server.RunningServer(model, max_request_bytes=LIMIT)
    try:
        deadline = time.monotonic() + 30
        while not asgi.started and time.monotonic() < deadline:
            time.sleep(0.02)
        assert asgi.started, "uvicorn did not start"
        asgi_port = asgi.servers[0].sockets[0].getsockname()[1]
        yield {"native": native.url, "asgi": f"http://127.0.0.1:{asgi_port}"}
    finally:
        native.close()
        asgi.should_exit = True
        thread.join(30)
        app.close()


def _request(url: str, method: str, path: str, body: bytes | None, headers: dict[str, str]
             ) -> tuple[int, dict[str, str], bytes]:
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


@pytest.mark.parametrize(("method", "path", "body", "headers"), [r[1:] for r in REQUESTS],
                         ids=[r[0] for r in REQUESTS])
def test_native_server_and_asgi_app_give_the_same_answer(front_ends, method, path, body, headers) -> None:
    answers = {name: _request(url, method, path, body, headers) for name, url in front_ends.items()}
    (status, head, payload), (asgi_status, asgi_head, asgi_payload) = answers["native"], answers["asgi"]
    assert (status, payload) == (asgi_status, asgi_payload)
    for name in COMPARED_HEADERS:
        assert head.get(name) == asgi_head.get(name), name
    for _, answer_head, _ in answers.values():  # both carry a Date (uvicorn adds its own)
        parsedate_to_datetime(answer_head["date"])


def _graphpipe_error(body: bytes) -> RemoteError:
    with pytest.raises(RemoteError) as caught:
        _native.decode_infer_response(body)
    return caught.value


@pytest.mark.parametrize(
    ("name", "status", "code"),
    [("gp-not-a-request", 400, 3), ("gp-wrong-shape", 400, 3), ("gp-model-fails", 500, 13), ("gp-put", 405, 12)],
)
def test_graphpipe_errors_carry_the_error_tables_status_and_code(front_ends, name, status, code) -> None:
    method, path, body, headers = next(r[1:] for r in REQUESTS if r[0] == name)
    for url in front_ends.values():
        answer_status, head, payload = _request(url, method, path, body, headers)
        assert answer_status == status and head["content-type"] == "application/octet-stream"
        assert _graphpipe_error(payload).code == code
        if status == 405:
            assert head["allow"] == "GET, HEAD, POST"


def test_v2_errors_are_json_with_the_same_statuses(front_ends) -> None:
    expected = {"v2-other-model": 404, "v2-unknown-path": 404, "v2-infer-get": 405, "v2-post-metadata": 405,
                "v2-bad-json": 400, "v2-model-fails": 500}
    for url in front_ends.values():
        for name, status in expected.items():
            method, path, body, headers = next(r[1:] for r in REQUESTS if r[0] == name)
            answer_status, head, payload = _request(url, method, path, body, headers)
            assert answer_status == status, name
            assert head["content-type"] == "application/json" and json.loads(payload)["error"], name


def test_a_body_over_the_limit_is_refused_from_its_length_alike(front_ends) -> None:
    for protocol, path in (("graphpipe", "/"), ("v2", "/v2/models/double/infer")):
        for url in front_ends.values():
            host, port = url.removeprefix("http://").split(":")
            connection = http.client.HTTPConnection(host, int(port), timeout=30)
            try:
                connection.putrequest("POST", path)
                connection.putheader("Content-Length", str(2 * LIMIT))
                connection.endheaders()  # headers only: the refusal comes from Content-Length
                response = connection.getresponse()
                body = response.read()
                assert response.status == 413 and response.getheader("connection") == "close"
                if protocol == "graphpipe":
                    error = _graphpipe_error(body)
                    assert error.code == 8 and f"exceeds the server's limit of {LIMIT} bytes" in error.message
                else:
                    assert f"exceeds the server's limit of {LIMIT} bytes" in json.loads(body)["error"]
            finally:
                connection.close()


def test_both_protocols_log_a_refused_call_the_same_way(front_ends, caplog) -> None:
    caplog.set_level("WARNING", logger="tf_graphpipe.server")
    _request(front_ends["native"], "POST", "/", _infer_body(np.zeros((2, 4), np.float32)), {})
    _request(front_ends["native"], "POST", "/v2/models/double/infer", _v2_json(np.zeros((2, 4), np.float32)), {})
    lines = [r.getMessage() for r in caplog.records if r.name == "tf_graphpipe.server"]
    assert "POST / -> 400: input 'x': expected shape [?, 3], got [2, 4]" in lines
    assert "POST /v2/models/double/infer -> 400: input 'x': expected shape [?, 3], got [2, 4]" in lines
    assert all(r.levelname == "WARNING" for r in caplog.records if "-> 400" in r.getMessage())
