# SPDX-License-Identifier: Apache-2.0
"""``tf-graphpipe serve`` answers the Open Inference Protocol (KServe v2) on the
same port as GraphPipe: every route over raw HTTP, JSON and binary bodies
(no Content-Type, as tritonclient sends), requested outputs, every error
status with a ``{"error": ...}`` body and the connection serving on, the
size limit, batching, zero-copy inputs, and the project's own ``Client``
speaking v2 both ways. tritonclient: test_v2_server_tritonclient.py; the
serve command, the ASGI app, v2-only dtypes: test_v2_server_entry_points.py."""
from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import ml_dtypes
import numpy as np
import pytest

import tf_graphpipe
from tf_graphpipe import Client, RemoteError

from support import servers
from support.v2_server_models import ARITH_INPUTS, ARITH_OUTPUTS, arith, echo, views

X = np.array([[1.5, -2.0, 0.0], [4.0, 0.25, -1.0]], np.float32)
Y = np.array([[1, 2, 3], [-4, 5, 2**40]], np.int64)
INFER = "/v2/models/arith/infer"


@pytest.fixture(scope="module")
def server() -> Iterator[tf_graphpipe.server.RunningServer]:
    with tf_graphpipe.serve(arith, name="arith", input_specs=ARITH_INPUTS, output_specs=ARITH_OUTPUTS,
                            max_request_bytes=1 << 20) as running:
        yield running


def binary_body(inputs: list[tuple[str, str, np.ndarray]], **extra: object) -> tuple[bytes, dict[str, str]]:
    """A binary-extension request, built by hand: (body, headers) with no Content-Type."""
    entries, blobs = [], []
    for name, datatype, array in inputs:
        blob = array.tobytes()
        entries.append({"name": name, "datatype": datatype, "shape": list(array.shape),
                        "parameters": {"binary_data_size": len(blob)}})
        blobs.append(blob)
    header = json.dumps({"inputs": entries, **extra}).encode()
    return header + b"".join(blobs), {"Inference-Header-Content-Length": str(len(header))}


def json_body(**request: object) -> bytes:
    return json.dumps(request).encode()


def split_answer(headers: dict[str, str], body: bytes) -> tuple[dict, bytes]:
    size = int(headers.get("inference-header-content-length", len(body)))
    return json.loads(body[:size]), body[size:]


def arith_json_inputs() -> list[dict]:
    return [{"name": "x", "datatype": "FP32", "shape": [2, 3], "data": X.tolist()},  # nested
            {"name": "y", "datatype": "INT64", "shape": [2, 3], "data": Y.reshape(-1).tolist()}]  # flat


def test_server_metadata_lists_the_binary_extension(server) -> None:
    status, headers, body = servers.request(server.url, "GET", "/v2")
    assert status == 200 and headers["content-type"] == "application/json"
    metadata = json.loads(body)
    assert metadata["name"] == "tf-graphpipe" and metadata["version"] == tf_graphpipe.__version__
    assert "binary_tensor_data" in metadata["extensions"]


@pytest.mark.parametrize("path", ["/v2/health/live", "/v2/health/ready", "/v2/models/arith/ready",
                                  "/v2/models/arith/versions/1/ready"])
def test_health_routes_answer_200(server, path) -> None:
    status, _, body = servers.request(server.url, "GET", path)
    assert status == 200 and True in json.loads(body).values()
    assert servers.request(server.url, "HEAD", path)[:2][0] == 200


@pytest.mark.parametrize("path", ["/v2/models/arith", "/v2/models/arith/versions/1", "/v2/models/arith/"])
def test_model_metadata_has_v2_datatypes_and_shapes(server, path) -> None:
    status, _, body = servers.request(server.url, "GET", path)
    assert status == 200
    assert json.loads(body) == {
        "name": "arith", "versions": ["1"], "platform": "tf-graphpipe",
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, -1]},
                   {"name": "y", "datatype": "INT64", "shape": [-1, -1]}],
        "outputs": [{"name": "sum", "datatype": "FP64", "shape": [-1, -1]},
                    {"name": "neg", "datatype": "INT64", "shape": [-1, -1]},
                    {"name": "positive", "datatype": "BOOL", "shape": [-1, -1]}],  # a v2-only type
    }


@pytest.mark.parametrize("path", ["/v2/models/other", "/v2/models/other/ready", "/v2/models/arith/versions/2",
                                  "/v2/models/other/infer", "/v2/models/arith/versions/2/infer",
                                  "/v2/repository/index", "/v2/models/arith/stats"])
def test_other_models_and_routes_are_404_with_an_error_body(server, path) -> None:
    for method in ("GET", "POST"):
        status, headers, body = servers.request(server.url, method, path, b"{}" if method == "POST" else None)
        assert status == 404 and headers["content-type"] == "application/json"
        assert json.loads(body)["error"]
    assert "'other'" in json.loads(servers.request(server.url, "GET", "/v2/models/other")[2])["error"]


def test_wrong_methods_are_405(server) -> None:
    status, headers, body = servers.request(server.url, "GET", INFER)
    assert status == 405 and headers["allow"] == "POST" and "POST" in json.loads(body)["error"]
    status, headers, _ = servers.request(server.url, "POST", "/v2/models/arith", b"{}")
    assert status == 405 and headers["allow"] == "GET, HEAD"


def test_json_infer_without_content_type_returns_every_output_as_json(server) -> None:
    body = json_body(id="req-7", inputs=arith_json_inputs())
    status, headers, answer = servers.request(server.url, "POST", INFER, body)
    assert status == 200 and headers["content-type"] == "application/json"
    assert "inference-header-content-length" not in headers
    answer = json.loads(answer)
    assert answer["model_name"] == "arith" and answer["model_version"] == "1" and answer["id"] == "req-7"
    outputs = {o["name"]: o for o in answer["outputs"]}
    assert list(outputs) == ["sum", "neg", "positive"]
    assert outputs["sum"]["datatype"] == "FP64" and outputs["sum"]["shape"] == [2, 3]
    assert outputs["sum"]["data"] == (X.astype(np.float64) + Y).reshape(-1).tolist()
    assert outputs["neg"]["data"] == (-Y).reshape(-1).tolist()  # exact 64-bit integers
    assert outputs["positive"] == {"name": "positive", "datatype": "BOOL", "shape": [2, 3],
                                   "data": (X > 0).reshape(-1).tolist()}


def test_binary_infer_honours_requested_outputs_and_their_binary_flags(server) -> None:
    body, headers = binary_body([("x", "FP32", X), ("y", "INT64", Y)], outputs=[
        {"name": "positive", "parameters": {"binary_data": True}}, {"name": "neg"}])
    status, answer_headers, answer = servers.request(server.url, "POST", INFER, body, headers)
    assert status == 200 and answer_headers["content-type"] == "application/octet-stream"
    header, blobs = split_answer(answer_headers, answer)
    assert [o["name"] for o in header["outputs"]] == ["positive", "neg"]
    positive, neg = header["outputs"]
    assert positive["parameters"] == {"binary_data_size": 6} and blobs == (X > 0).tobytes()
    assert neg["data"] == (-Y).reshape(-1).tolist()  # listed without binary_data: JSON


def test_binary_data_output_applies_to_unlisted_outputs(server) -> None:
    body = json_body(inputs=arith_json_inputs(), parameters={"binary_data_output": True})
    status, headers, answer = servers.request(server.url, "POST", INFER, body)
    header, blobs = split_answer(headers, answer)
    assert status == 200 and [o["parameters"]["binary_data_size"] for o in header["outputs"]] == [48, 48, 6]
    assert blobs == (X.astype(np.float64) + Y).tobytes() + (-Y).tobytes() + (X > 0).tobytes()


def test_every_datatype_round_trips_binary_and_json() -> None:
    arrays = {
        "BOOL": np.array([True, False]), "UINT8": np.array([0, 255], np.uint8),
        "UINT16": np.array([0, 65535], np.uint16), "UINT32": np.array([0, 2**32 - 1], np.uint32),
        "UINT64": np.array([0, 2**64 - 1], np.uint64), "INT8": np.array([-128, 127], np.int8),
        "INT16": np.array([-(2**15), 7], np.int16), "INT32": np.array([-(2**31), 7], np.int32),
        "INT64": np.array([-(2**63), 2**63 - 1], np.int64), "FP16": np.array([1.5, np.inf], np.float16),
        "FP32": np.array([np.nan, -np.inf], np.float32), "FP64": np.array([0.1, np.nan], np.float64),
        "BF16": np.array([1.5, -2.0], ml_dtypes.bfloat16),
    }
    arrays["BYTES"] = np.array([b"a\0b", b"", "é".encode()], object)
    with tf_graphpipe.serve(echo, name="echo") as running:
        for binary in (True, False):
            client = Client(running.url + "/v2/models/echo", binary=binary)
            # FP16 and BF16 have no JSON form: JSON clients send them binary, but cannot ask them back as JSON
            sent = {t: a for t, a in arrays.items() if binary or t not in ("FP16", "BF16")}
            got = client.infer(sent)  # echo takes any inputs: output0, output1... in order
            for (datatype, want), have in zip(sent.items(), got, strict=True):
                assert have.dtype == want.dtype, datatype
                np.testing.assert_array_equal(have, want)
        for datatype in ("FP16", "BF16"):  # a 400 naming the output, as Triton answers; never unasked binary
            with pytest.raises(RemoteError, match=f"HTTP 400.*output 'output0': {datatype} data has no JSON form"):
                Client(running.url + "/v2/models/echo", binary=False).infer({"in0": arrays[datatype]})
        # BYTES that are not UTF-8, asked as JSON, come back binary (JSON strings carry only UTF-8)
        header = json_body(inputs=[{"name": "b", "datatype": "BYTES", "shape": [2],
                                    "parameters": {"binary_data_size": 13}}], outputs=[{"name": "output0"}])
        body = header + b"\x05\0\0\0\xff\0abc" + b"\0\0\0\0"
        status, headers, answer = servers.request(running.url, "POST", "/v2/models/echo/infer", body,
                                                  {"Inference-Header-Content-Length": str(len(header))})
        header, blob = split_answer(headers, answer)
        assert status == 200 and header["outputs"][0]["parameters"] == {"binary_data_size": 13}
        assert blob == b"\x05\0\0\0\xff\0abc" + b"\0\0\0\0"


def test_project_client_speaks_v2_to_the_server(server) -> None:
    url = server.url + "/v2/models/arith"
    meta = Client(url).metadata()
    assert meta["name"] == "arith" and meta["version"] == "1"
    assert [(e["name"], e["dtype"], e["shape"]) for e in meta["inputs"]] == [
        ("x", np.dtype(np.float32), [-1, -1]), ("y", np.dtype(np.int64), [-1, -1])]
    for binary in (True, False):
        with Client(url, binary=binary) as client:
            s, n, p = client.infer([X, Y])
            np.testing.assert_array_equal(s, X.astype(np.float64) + Y)
            np.testing.assert_array_equal(n, -Y)
            assert p.dtype == bool and (p == (X > 0)).all()
            p, s = client.infer({"y": Y, "x": X}, output_names=["positive", "sum"])
            assert p.dtype == bool and s.dtype == np.float64
    # the same port still speaks GraphPipe
    np.testing.assert_array_equal(Client(server.url).infer([X, Y], output_names=["neg"]), -Y)


@pytest.mark.parametrize("body, headers, expected", [
    (b"{not json", {}, "not valid JSON"),
    (json_body(inputs=[{"name": "x", "datatype": "FP32", "shape": [1, 3], "data": [1, 2, 3]}]), {}, "takes 2 inputs"),
    (json_body(inputs=[{"name": "x", "datatype": "FP64", "shape": [1, 1], "data": [1]},
                       {"name": "y", "datatype": "INT64", "shape": [1, 1], "data": [1]}]), {},
     "expected dtype float32"),
    (json_body(inputs=[{"name": "x", "datatype": "FP32", "shape": [3], "data": [1, 2, 3]},
                       {"name": "y", "datatype": "INT64", "shape": [1, 1], "data": [1]}]), {}, "expected shape"),
    (json_body(inputs=[{"name": "z", "datatype": "FP32", "shape": [1, 1], "data": [1]},
                       {"name": "y", "datatype": "INT64", "shape": [1, 1], "data": [1]}]), {}, "unknown input 'z'"),
    (json_body(inputs=[{"name": "x", "datatype": "FP32", "shape": [1, 2], "data": [1]}]), {}, "holds 2 elements"),
    (json_body(inputs=[{"name": "x", "datatype": "FP99", "shape": [1], "data": [1]}]), {}, "unknown datatype"),
    (json_body(inputs=arith_json_inputs(), outputs=[{"name": "nope"}]), {}, "unknown output 'nope'"),
    (b"{}", {"Inference-Header-Content-Length": "3"}, "should be in range"),
    (json_body(inputs=[{"name": "x", "datatype": "FP32", "shape": [2],
                        "parameters": {"binary_data_size": 8}}]) + bytes(4), None, "expecting 8 additional bytes"),
    (json_body(inputs=[{"name": "x", "datatype": "FP32", "shape": [1],
                        "parameters": {"binary_data_size": 2}}]) + bytes(2), None, "byte size mismatch"),
    (json_body(inputs=[{"name": "x", "datatype": "FP32", "shape": [1], "data": [1],
                        "parameters": {"binary_data_size": 4}}]) + bytes(4), None, "exactly one of"),
    (json_body(inputs=arith_json_inputs()) + b"xx", None, "unexpected additional input data"),
])
def test_callers_mistakes_are_400_and_the_connection_serves_on(server, body, headers, expected) -> None:
    if headers is None:  # the JSON header is everything but the trailing blob bytes
        size = body.rindex(b"]}") + 2
        headers = {"Inference-Header-Content-Length": str(size)}
    connection = servers.connect(server.url)
    try:
        connection.request("POST", INFER, body=body, headers=headers)
        response = connection.getresponse()
        answer = response.read()
        assert response.status == 400, answer
        assert response.getheader("content-type") == "application/json"
        assert expected in json.loads(answer)["error"]
        connection.request("POST", INFER, body=json_body(inputs=arith_json_inputs()))  # same connection
        response = connection.getresponse()
        assert response.status == 200 and len(json.loads(response.read())["outputs"]) == 3
    finally:
        connection.close()


def test_model_failure_is_500_with_its_text_and_the_server_serves_on(server) -> None:
    url = server.url + "/v2/models/arith"
    with pytest.raises(RemoteError, match="thirteen is unlucky") as caught:
        Client(url, retries=0).infer([np.full((1, 3), 13, np.float32), Y[:1]])
    assert "500" in str(caught.value) or getattr(caught.value, "status", 500) == 500
    status, _, body = servers.request(server.url, "POST", INFER, json_body(inputs=[
        {"name": "x", "datatype": "FP32", "shape": [1, 1], "data": [13]},
        {"name": "y", "datatype": "INT64", "shape": [1, 1], "data": [1]}]))
    assert status == 500 and "thirteen is unlucky" in json.loads(body)["error"]
    np.testing.assert_array_equal(Client(url).infer([X, Y])[1], -Y)


def test_unknown_model_raises_not_found_in_the_client(server) -> None:
    with pytest.raises(RemoteError, match="unknown model"):
        Client(server.url + "/v2/models/other", retries=0).infer([X, Y])


def test_body_over_the_limit_is_413_with_a_json_error(server) -> None:
    connection = servers.connect(server.url)
    try:
        connection.putrequest("POST", INFER)
        connection.putheader("Content-Length", str(10 << 20))
        connection.putheader("Inference-Header-Content-Length", "100")
        connection.endheaders()  # headers only: the 10 MiB never leave
        response = connection.getresponse()
        assert response.status == 413 and response.getheader("connection") == "close"
        assert "exceeds the server's limit of 1048576 bytes" in json.loads(response.read())["error"]
    finally:
        connection.close()
    assert servers.request(server.url, "GET", "/v2/health/ready")[0] == 200


def test_raw_binary_request_for_a_single_input_model() -> None:
    with tf_graphpipe.serve(lambda x: x * 2, name="double", input_specs=["x:float32:-1,2"]) as running:
        body = np.arange(6, dtype=np.float32).tobytes()
        status, headers, answer = servers.request(running.url, "POST", "/v2/models/double/infer", body,
                                                  {"Inference-Header-Content-Length": "0"})
        assert status == 200
        header, blob = split_answer(headers, answer)
        assert header["outputs"][0]["shape"] == [3, 2]
        np.testing.assert_array_equal(np.frombuffer(blob, np.float32), np.arange(6) * 2)


def test_binary_inputs_reach_the_model_as_views_of_the_body() -> None:
    with tf_graphpipe.serve(views, name="views", input_specs=["x"]) as running:
        for datatype, dtype in (("FP32", np.float32), ("FP64", np.float64), ("INT16", np.int16)):
            for request_id in ("", "a", "ab", "abc", "abcd", "abcdefg"):  # every JSON header length mod 8
                body, headers = binary_body([("x", datatype, np.ones((64, 33), dtype))], id=request_id)
                status, _, answer = servers.request(running.url, "POST", "/v2/models/views/infer", body, headers)
                assert status == 200
                assert json.loads(answer)["outputs"][0]["data"] == [True, True]  # a view, aligned


def test_concurrent_v2_calls_are_batched_and_each_gets_its_rows() -> None:
    runs = []

    def counted(x: np.ndarray) -> np.ndarray:
        runs.append(len(x))
        return x * 2

    with tf_graphpipe.serve(counted, name="counted", max_batch_size=8, batch_timeout_ms=200) as running:
        url = running.url + "/v2/models/counted"
        results: dict[int, np.ndarray] = {}

        def call(i: int) -> None:
            results[i] = Client(url).infer(np.full((2, 3), i, np.float32))

        threads = [threading.Thread(target=call, args=(i,)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    for i in range(4):
        np.testing.assert_array_equal(results[i], np.full((2, 3), 2 * i, np.float32))
    assert len(runs) < 4 and sum(runs) == 8


def test_keep_alive_across_many_v2_requests(server) -> None:
    connection = servers.connect(server.url)
    try:
        for path in ["/v2/health/live", "/v2", "/v2/models/arith", "/v2/models/arith/ready"] * 5:
            connection.request("GET", path)
            response = connection.getresponse()
            assert response.status == 200 and response.read()
            assert response.getheader("connection") != "close"
    finally:
        connection.close()



def test_repeated_headers_are_checked_against_each_body_and_json_data_is_never_shared() -> None:
    def bump(x: np.ndarray) -> np.ndarray:
        x += 1  # in place: a JSON input shared between requests would drift
        return x

    with tf_graphpipe.serve(bump, name="bump", input_specs=["x:int32:-1"]) as running:
        path = "/v2/models/bump/infer"
        body, headers = binary_body([("x", "INT32", np.array([1, 2], np.int32))])
        for tail, status in ((b"", 200), (b"!", 400), (b"", 200)):  # the same header each time
            assert servers.request(running.url, "POST", path, body + tail, headers)[0] == status
        body = json_body(inputs=[{"name": "x", "datatype": "INT32", "shape": [2], "data": [1, 2]}])
        for _ in range(2):
            status, _, answer = servers.request(running.url, "POST", path, body)
            assert status == 200 and json.loads(answer)["outputs"][0]["data"] == [2, 3]


def test_readiness_follows_the_server_state(server) -> None:
    server.dispatcher.ready = False  # what close() sets first, before it stops accepting
    try:
        for path in ("/v2/health/ready", "/v2/models/arith/ready"):
            status, _, body = servers.request(server.url, "GET", path)
            assert status == 400 and json.loads(body)["ready"] is False
        assert servers.request(server.url, "GET", "/v2/health/live")[0] == 200
    finally:
        server.dispatcher.ready = True
