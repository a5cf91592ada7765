# SPDX-License-Identifier: Apache-2.0
"""The HTTP binding: metadata both ways, health routes, every error answer
(and the server serving on after it), 413, keep-alive, calls in flight."""
from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator

import numpy as np
import pytest
import tensorflow as tf

import tf_graphpipe
from tf_graphpipe import Client, RemoteError, _native

from support import servers


def checked(x: tf.TensorSpec([None, 3], tf.float32)) -> {"y": tf.TensorSpec([None, 3], tf.float32)}:
    if np.isnan(x).any():
        raise RuntimeError("input holds NaN")
    return {"y": x + 1}


@pytest.fixture(scope="module")
def server() -> Iterator[tf_graphpipe.server.RunningServer]:
    with tf_graphpipe.serve(checked, name="checked", max_request_bytes=1 << 20) as running:
        yield running


def _ok(url: str) -> None:
    np.testing.assert_array_equal(Client(url).infer(np.zeros((1, 3), np.float32)), [[1, 1, 1]])


def _remote_error(url: str, *args: object, **kwargs: object) -> RemoteError:
    with pytest.raises(RemoteError) as caught:
        Client(url, retries=0).infer(*args, **kwargs)
    return caught.value


def _error_answer(body: bytes) -> RemoteError:
    """The error an InferResponse body carries (decoded by our codec)."""
    with pytest.raises(RemoteError) as caught:
        _native.decode_infer_response(body)
    return caught.value


def test_get_returns_metadata_json_with_client_keys(server) -> None:
    for path in ("/", "/any/model/path"):
        status, headers, body = servers.request(server.url, "GET", path)
        assert status == 200 and headers["content-type"] == "application/json"
        metadata = json.loads(body)
        assert set(metadata) == set(Client(server.url).metadata())
        assert metadata["name"] == "checked"
        assert metadata["inputs"] == [{"name": "x", "description": "", "shape": [-1, 3], "dtype": "float32"}]
        assert metadata["outputs"] == [{"name": "y", "description": "", "shape": [-1, 3], "dtype": "float32"}]


def test_metadata_flatbuffer_over_post(server) -> None:
    status, _, body = servers.request(server.url, "POST", "/", bytes(_native.encode_metadata_request()))
    assert status == 200
    metadata = _native.decode_metadata_response(body)
    assert metadata["name"] == "checked" and metadata["server"].startswith("tf-graphpipe/")
    assert metadata["inputs"][0]["shape"] == [-1, 3] and metadata["inputs"][0]["type"] == 10


def test_health_routes_answer_ok(server) -> None:
    for path in ("/control/is_alive", "/control/is_ready"):
        assert servers.request(server.url, "GET", path)[0::2] == (200, b"ok")


@pytest.mark.parametrize(
    ("inputs", "kwargs", "message"),
    [
        ([np.zeros((1, 3), np.float32)] * 2, {}, "model 'checked' takes 1 inputs ('x'), got 2"),
        (np.zeros((1, 3), np.float64), {}, "input 'x': expected dtype float32, got float64"),
        (np.zeros((2, 4), np.float32), {}, "input 'x': expected shape [?, 3], got [2, 4]"),
        (np.zeros((2, 3), np.float32), {"output_names": ["z"]}, "unknown output 'z' (model outputs: 'y')"),
        (np.zeros((2, 3), np.float32), {"input_names": ["w"]}, "unknown input 'w' (model inputs: 'x')"),
    ],
    ids=["count", "dtype", "shape", "unknown-output", "unknown-input"],
)
def test_caller_mistakes_get_400_and_server_keeps_serving(server, inputs, kwargs, message) -> None:
    error = _remote_error(server.url, inputs, **kwargs)
    assert error.status == 400 and error.code == 3
    assert message in error.message
    _ok(server.url)


def test_model_raising_gets_500_without_traceback(server) -> None:
    error = _remote_error(server.url, np.full((1, 3), np.nan, np.float32))
    assert error.status == 500
    assert "model failed: RuntimeError: input holds NaN" in error.message
    assert "Traceback" not in error.message and __file__ not in error.message
    _ok(server.url)


def test_debug_server_sends_traceback() -> None:
    with tf_graphpipe.serve(checked, debug=True) as debug_server:
        error = _remote_error(debug_server.url, np.full((1, 3), np.nan, np.float32))
        assert error.status == 500 and "Traceback" in error.message and "input holds NaN" in error.message


def test_output_without_wire_type_gets_500() -> None:
    with tf_graphpipe.serve(lambda x: x > 0) as bool_server:
        error = _remote_error(bool_server.url, np.ones(2, np.float32))
        assert error.status == 500 and "dtype bool has no GraphPipe wire type" in error.message


@pytest.mark.parametrize("body", [b"", b"not a flatbuffer at all", b"\xff" * 64], ids=["empty", "text", "garbage"])
def test_invalid_flatbuffer_gets_400_error_response(server, body) -> None:
    status, headers, answer = servers.request(server.url, "POST", "/", body)
    assert status == 400 and headers["content-type"] == "application/octet-stream"
    assert "not a GraphPipe Request" in _error_answer(answer).message
    _ok(server.url)


def test_oversized_content_length_gets_413_before_the_body_is_sent(server) -> None:
    connection = servers.connect(server.url)
    try:
        connection.putrequest("POST", "/")
        connection.putheader("Content-Length", str(10 << 20))
        connection.endheaders()  # headers only: the 10 MiB never leave
        response = connection.getresponse()
        assert response.status == 413
        assert "exceeds the server's limit of 1048576 bytes" in _error_answer(response.read()).message
    finally:
        connection.close()
    _ok(server.url)


def test_oversized_chunked_body_gets_413(server) -> None:
    with socket.create_connection((server.host, server.port), timeout=30) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        try:  # the server stops reading once over its limit and may close on us
            for _ in range(32):
                sock.sendall(b"10000\r\n" + b"\0" * 0x10000 + b"\r\n")
            sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413 ")
    assert "exceeds the server's limit" in _error_answer(body).message
    _ok(server.url)


def test_chunked_request_body_is_accepted(server) -> None:
    body = bytes(_native.encode_infer_request([np.ones((2, 3), np.float32)], [10], [], [], b""))
    status, _, answer = servers.request(server.url, "POST", "/", iter([body[:7], body[7:]]),
                                        {"Transfer-Encoding": "chunked"})
    assert status == 200
    np.testing.assert_array_equal(_native.decode_infer_response(answer)[0], np.full((2, 3), 2.0))


def test_large_body_arrives_whole() -> None:
    x = np.random.default_rng(0).standard_normal((1024, 2048)).astype(np.float32)  # 8 MiB
    with tf_graphpipe.serve(servers.echo) as echo_server:
        np.testing.assert_array_equal(Client(echo_server.url).infer(x), x)


def test_connection_is_kept_alive_across_calls(server) -> None:
    body = bytes(_native.encode_infer_request([np.zeros((1, 3), np.float32)], [10], [], [], b""))
    connection = servers.connect(server.url)
    try:
        sockets = set()
        for _ in range(3):
            connection.request("POST", "/", body=body)
            response = connection.getresponse()
            assert response.status == 200 and response.getheader("connection") != "close"
            response.read()
            sockets.add(id(connection.sock))
        assert len(sockets) == 1
    finally:
        connection.close()


def test_other_methods_get_405(server) -> None:
    status, headers, _ = servers.request(server.url, "PUT", "/", b"")
    assert status == 405 and "POST" in headers["allow"]


def test_several_calls_run_in_the_model_at_once() -> None:
    both_inside = threading.Barrier(2, timeout=20)

    def meet(x: np.ndarray) -> np.ndarray:
        both_inside.wait()  # breaks (and the call fails) unless two calls overlap
        return x

    with tf_graphpipe.serve(meet) as meeting_server:
        results: list[object] = [None, None]

        def call(i: int) -> None:
            results[i] = Client(meeting_server.url).infer(np.array([i]))

        threads = [threading.Thread(target=call, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert [r.tolist() for r in results] == [[0], [1]]


@pytest.mark.parametrize("protocol", ["graphpipe", "v2"])
def test_large_requests_on_one_connection_reuse_one_body_buffer(protocol: str) -> None:
    # A worker must not hold on to a finished call: its inputs are views of
    # the request body, which the connection reuses for the next large one
    # (a fresh 77 MB buffer costs its page faults on every call).
    starts: list[int] = []

    def record(x: np.ndarray) -> np.ndarray:
        starts.append(x.ctypes.data)
        return x[:1] * 2

    x = np.arange(2 * (1 << 20), dtype=np.float32).reshape(2, -1)  # 8 MiB
    with tf_graphpipe.serve(record, input_specs=["x:float32:-1,-1"], output_specs=["y:float32:-1,-1"]) as server:
        url = server.url + "/v2/models/record" if protocol == "v2" else server.url
        with Client(url, timeout=30, protocol=protocol) as client:
            for _ in range(6):
                np.testing.assert_array_equal(client.infer(x), x[:1] * 2)
    # The same buffer each time after the first (the view may move by its alignment shift).
    assert all(abs(start - starts[1]) < 256 for start in starts[2:]), [hex(s) for s in starts]
