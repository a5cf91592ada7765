# SPDX-License-Identifier: Apache-2.0
"""The Open Inference Protocol (v2) codec in cc/core, byte for byte: golden
requests and answers built from SPEC_V2's rules and examples, lying answers,
error bodies of both peers, URL rules, and BF16 / BOOL end to end through a
small v2 echo server (neither real peer has BF16: SPEC_V2 section 2)."""
from __future__ import annotations

import json
import struct
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import ml_dtypes
import numpy as np
import pytest
import tensorflow as tf

import tf_graphpipe
from tf_graphpipe import _native, dtypes, protocols
from tf_graphpipe.errors import ProtocolError, RemoteError

FP32, INT64, UINT64, FP16, STRING, BOOL, BF16 = 10, 8, 7, 9, 12, 13, 14
URL = "http://peer/v2/models/m/infer"


def encode(arrays, ids, names, outputs=(), binary=True):
    body, json_size = _native.encode_v2_infer_request(list(arrays), list(ids), list(names), list(outputs), binary)
    return json.loads(body[:json_size]), body[json_size:], body, json_size


def answer(header: dict, *blobs: bytes) -> tuple[bytes, int]:
    text = json.dumps(header, separators=(",", ":")).encode()
    return text + b"".join(blobs), len(text)


# ---- requests ----


def test_binary_request_matches_the_spec_layout() -> None:
    # SPEC_V2 section 4: JSON header, then the blobs in input order,
    # binary_data_size per input, binary_data asked per output.
    x = np.array([[1, 2], [3, 4]], np.float32)
    s = np.array([b"a\x00b", b""], object)
    header, blobs, body, json_size = encode([x, s], [FP32, STRING], ["x", "s"], ["y"])
    expected_header = (
        b'{"inputs":[{"name":"x","shape":[2,2],"datatype":"FP32","parameters":{"binary_data_size":16}},'
        b'{"name":"s","shape":[2],"datatype":"BYTES","parameters":{"binary_data_size":11}}],'
        b'"outputs":[{"name":"y","parameters":{"binary_data":true}}]}'
    )
    assert body[:json_size] == expected_header
    assert blobs == x.tobytes() + b"\x03\x00\x00\x00a\x00b" + b"\x00\x00\x00\x00"


def test_no_output_names_asks_every_output_binary() -> None:
    header, _, _, _ = encode([np.zeros(1, np.float32)], [FP32], ["x"])
    assert header["parameters"] == {"binary_data_output": True}
    assert "outputs" not in header


def test_large_inputs_are_sent_by_reference_and_arrive_whole() -> None:
    x = np.arange(1 << 16, dtype=np.float32)  # 256 KiB: referenced by v2_infer, copied here
    header, blobs, _, _ = encode([x], [FP32], ["x"])
    assert header["inputs"][0]["parameters"]["binary_data_size"] == x.nbytes and blobs == x.tobytes()


def test_json_request_keeps_integers_exact_and_writes_tritons_nonfinite_tokens() -> None:
    u = np.array([2**64 - 1, 0], np.uint64)
    i = np.array([-(2**63), 2**63 - 1], np.int64)
    f = np.array([np.nan, np.inf, -np.inf, 0.1], np.float32)
    b = np.array([True, False])
    _, blobs, body, json_size = encode([u, i, f, b], [UINT64, INT64, FP32, BOOL], "uifb", ["y"], binary=False)
    text = body[:json_size].decode()
    assert blobs == b"" and json_size == len(body)
    assert '"data":[18446744073709551615,0]' in text
    assert '"data":[-9223372036854775808,9223372036854775807]' in text
    assert '"data":[NaN,Infinity,-Infinity,0.1]' in text  # shortest text that reads back exactly
    assert '"data":[true,false]' in text
    assert '"parameters":{"binary_data":false}' in text


def test_json_mode_sends_what_json_cannot_carry_as_blobs() -> None:
    h = np.array([1.5], np.float16)
    bf = np.array([2.0], ml_dtypes.bfloat16)
    s = np.array([b"\xff\x00"], object)  # not UTF-8
    t = np.array(["é"], object)
    header, blobs, _, _ = encode([h, bf, s, t], [FP16, BF16, STRING, STRING], "hbst", binary=False)
    kinds = [("data" in e, e.get("parameters")) for e in header["inputs"]]
    assert kinds == [
        (False, {"binary_data_size": 2}), (False, {"binary_data_size": 2}),
        (False, {"binary_data_size": 6}), (True, None),
    ]
    assert header["inputs"][3]["data"] == ["é"]
    assert blobs == h.tobytes() + bf.tobytes() + b"\x02\x00\x00\x00\xff\x00"


@pytest.mark.parametrize("names, match", [
    (["x", "y"], "needs a name for every input: got 2 names for 1 inputs"),
    ([""], "non-empty UTF-8"),
])
def test_v2_requests_need_a_name_per_input(names, match) -> None:
    with pytest.raises(ValueError, match=match):
        _native.encode_v2_infer_request([np.zeros(1, np.float32)], [FP32], names, [], True)


def test_graphpipe_still_refuses_bool_and_bfloat16() -> None:
    for array in (np.zeros(2, bool), np.zeros(2, ml_dtypes.bfloat16)):
        with pytest.raises(TypeError, match="has no GraphPipe wire type"):
            dtypes.wire_array(array)
        assert dtypes.wire_array(array, protocol="v2")[1] in (BOOL, BF16)
    with pytest.raises(ValueError, match="input 0: type bool has no GraphPipe wire type"):
        _native.encode_infer_request([np.zeros(2, bool)], [BOOL], [], [], b"")


# ---- answers ----


def test_binary_answer_decodes_every_datatype() -> None:
    values = {
        "f": (np.array([[1.5, -2]], np.float32), "FP32"),
        "h": (np.array([0.5, 65504], np.float16), "FP16"),
        "bf": (np.array([1, -3.5], ml_dtypes.bfloat16), "BF16"),
        "b": (np.array([True, False, True]), "BOOL"),
        "u": (np.array([2**64 - 1], np.uint64), "UINT64"),
    }
    outputs, blobs = [], []
    for name, (array, datatype) in values.items():
        outputs.append({"name": name, "datatype": datatype, "shape": list(array.shape),
                        "parameters": {"binary_data_size": array.nbytes}})
        blobs.append(array.tobytes())
    strings = [b"a\x00b", b"", b"\xff"]
    outputs.append({"name": "s", "datatype": "BYTES", "shape": [3],
                    "parameters": {"binary_data_size": sum(4 + len(x) for x in strings)}})
    blobs.append(b"".join(struct.pack("<I", len(x)) + x for x in strings))
    body, json_size = answer({"model_name": "m", "outputs": outputs}, *blobs)
    names, arrays = _native.decode_v2_answer(URL, 200, body, json_size)
    assert names == [*values, "s"]
    for (expected, _), got in zip(values.values(), arrays):
        assert got.dtype == expected.dtype and got.shape == expected.shape
        np.testing.assert_array_equal(got, expected)
    assert list(arrays[-1]) == strings


def test_json_answer_reads_nested_data_exact_integers_and_both_peers_nonfinite_styles() -> None:
    # Triton writes bare NaN / Infinity tokens, kserve writes null (SPEC_V2 section 3).
    text = (b'{"model_name":"m","id":"1","parameters":null,"outputs":['
            b'{"name":"f","datatype":"FP64","shape":[2,2],"data":[[NaN,Infinity],[-Infinity,null]]},'
            b'{"name":"u","datatype":"UINT64","shape":[1],"data":[18446744073709551615]},'
            b'{"name":"i","datatype":"INT64","shape":[1],"data":[-9223372036854775808]},'
            b'{"name":"b","datatype":"BOOL","shape":[2],"data":[true,false]},'
            b'{"name":"s","datatype":"BYTES","shape":[2],"data":["NaN","a\\u0000b"]}]}')
    names, (f, u, i, b, s) = _native.decode_v2_answer(URL, 200, text, None)
    assert names == ["f", "u", "i", "b", "s"]
    assert np.isnan(f[0, 0]) and f[0, 1] == np.inf and f[1, 0] == -np.inf and np.isnan(f[1, 1])
    assert u[0] == 2**64 - 1 and i[0] == -(2**63)
    assert b.tolist() == [True, False] and s.tolist() == [b"NaN", b"a\x00b"]


def test_requested_outputs_come_back_in_the_requested_order() -> None:
    body, json_size = answer({"outputs": [
        {"name": "a", "datatype": "INT32", "shape": [1], "data": [1]},
        {"name": "b", "datatype": "INT32", "shape": [1], "data": [2]},
    ]})
    names, arrays = _native.decode_v2_answer(URL, 200, body, json_size, ["b", "a"])
    assert names == ["b", "a"] and [a.tolist() for a in arrays] == [[2], [1]]
    with pytest.raises(ProtocolError, match="lacks the requested output 'c'"):
        _native.decode_v2_answer(URL, 200, body, json_size, ["c"])


def _one_output(parameters=None, data=None, datatype="FP32", shape=(2,)):
    entry = {"name": "y", "datatype": datatype, "shape": list(shape)}
    if parameters is not None:
        entry["parameters"] = parameters
    if data is not None:
        entry["data"] = data
    return {"outputs": [entry]}


@pytest.mark.parametrize("header, blob, header_length, match", [
    (_one_output({"binary_data_size": 8}), b"\0" * 8, 10**6, "exceeds the"),
    (_one_output({"binary_data_size": 8}), b"\0" * 8, "12x", "is not a byte count"),
    (_one_output({"binary_data_size": 16}), b"\0" * 8, None, "only 8 bytes are left"),
    (_one_output({"binary_data_size": 4}), b"\0" * 4, None, "needs 8 bytes"),
    (_one_output({"binary_data_size": 8}), b"\0" * 12, None, "4 bytes follow"),
    (_one_output({"binary_data_size": -1}), b"", None, "not a byte count"),
    (_one_output({"binary_data_size": 8}, shape=(-2,)), b"\0" * 8, None, "not a valid dimension"),
    (_one_output({"binary_data_size": 8}, datatype="FP8"), b"\0" * 8, None, "not a v2 datatype"),
    (_one_output({"binary_data_size": 2}, datatype="BOOL"), b"\x01\x02", None, "not 0 or 1"),
    (_one_output({"binary_data_size": 8}, datatype="BYTES", shape=(1,)), b"\xff\xff\xff\x7f" + b"x" * 4, None,
     "declares 2147483647 bytes"),
    (_one_output({"binary_data_size": 8}, datatype="BYTES", shape=(2**40,)), b"\0" * 8, None,
     "cannot hold 1099511627776"),
    (_one_output({"binary_data_size": 6}, datatype="BYTES", shape=(1,)), b"\1\0\0\0ab", None,
     "1 bytes after its 1 BYTES elements"),
    (_one_output(data=[1.0]), b"", None, "holds 2 elements, 'data' has 1"),
    (_one_output(data=[1.0, 2.0, 3.0]), b"", None, "'data' has 3"),
    (_one_output(data=[1, 2**70], datatype="INT64"), b"", None, "not an integer in its range of INT64"),
    (_one_output(data=[1.5, 2], datatype="INT32"), b"", None, "not an integer in its range of INT32"),
    (_one_output(data=[1.0, 2.0], datatype="FP16"), b"", None, "FP16 has no JSON form"),
    (_one_output(), b"", None, "neither `data` nor binary_data_size"),
    ({"outputs": {"y": 1}}, b"", None, "`outputs` is not an array"),
    ([1, 2], b"", None, "not a JSON object"),
])
def test_lying_answers_are_protocol_errors(header, blob, header_length, match) -> None:
    text = json.dumps(header).encode()
    length = len(text) if header_length is None else header_length
    with pytest.raises(ProtocolError, match=match):
        _native.decode_v2_answer(URL, 200, text + blob, length)


def test_undecodable_answers_are_protocol_errors() -> None:
    for body in (b"", b"{", b"\xff\xfe", b'{"outputs": [}'):
        with pytest.raises(ProtocolError, match="is not JSON"):
            _native.decode_v2_answer(URL, 200, body, None)
    nested = b'{"outputs":[{"name":"y","datatype":"FP32","shape":[1],"data":' + b"[" * 100 + b"1" + b"]" * 100 + b"}]}"
    with pytest.raises(ProtocolError, match="deeper than 64"):
        _native.decode_v2_answer(URL, 200, nested, None)


# ---- errors ----


@pytest.mark.parametrize("status, body, text", [
    (400, b'{"error":"input \'y\' data-type is \'FP32\', but model expects \'INT64\'"}',
     "input 'y' data-type is 'FP32', but model expects 'INT64'"),
    (404, b'{"error":"Request for unknown model: \'x\' is not found"}', "no such model): Request for unknown model"),
    (404, b'{"error":"Model with name x does not exist."}', "Model with name x does not exist."),
    (422, b'{"detail":[{"type":"missing","loc":["body","inputs"],"msg":"Field required"}]}', '"msg":"Field required"'),
    (405, b'{"detail":"Method Not Allowed"}', "(HTTP 405): Method Not Allowed"),
    (500, b"Internal Server Error\n", "(HTTP 500): Internal Server Error"),
    (503, b"", "(HTTP 503): (empty body)"),
])
def test_error_bodies_of_both_peers_become_remote_errors(status, body, text) -> None:
    with pytest.raises(RemoteError) as raised:
        _native.decode_v2_answer(URL, status, body)
    assert raised.value.status == status and text in raised.value.message


# ---- metadata, URLs ----


def test_metadata_of_both_peers() -> None:
    triton = (b'{"name":"arith","versions":["1"],"platform":"python","inputs":[{"name":"x","datatype":"FP32",'
              b'"shape":[-1,3]}],"outputs":[{"name":"y","datatype":"BOOL","shape":[-1]}]}')
    kserve = (b'{"name":"arith","versions":null,"platform":"","inputs":[{"name":"x","datatype":"BF16",'
              b'"shape":[-1]}],"outputs":[{"name":"y","datatype":"BYTES","shape":[1]},'
              b'{"name":"z","datatype":"FP8","shape":[1]}]}')
    t = _native.decode_v2_metadata(URL, 200, triton)
    assert (t["name"], t["version"], t["server"]) == ("arith", "1", "python")
    assert t["inputs"] == [{"name": "x", "description": "", "shape": [-1, 3], "type": FP32}]
    assert t["outputs"][0]["type"] == BOOL
    k = _native.decode_v2_metadata(URL, 200, kserve)
    assert (k["version"], k["server"]) == ("", "")
    assert [e["type"] for e in k["inputs"] + k["outputs"]] == [BF16, STRING, 0]  # unknown: undeclared
    with pytest.raises(ProtocolError, match="not a valid dimension"):
        _native.decode_v2_metadata(URL, 200, b'{"inputs":[{"name":"x","shape":[-2]}]}')


@pytest.mark.parametrize("url, endpoints", [
    ("http://h:8000/v2/models/resnet", ("resnet", "http://h:8000/v2/models/resnet", "http://h:8000/v2/models/resnet/infer")),
    ("http://h/v2/models/resnet/", ("resnet", "http://h/v2/models/resnet", "http://h/v2/models/resnet/infer")),
    ("https://h/v2/models/r/versions/3", ("r", "https://h/v2/models/r/versions/3", "https://h/v2/models/r/versions/3/infer")),
    ("http://h/route/v2/models/r?x=1", ("r", "http://h/route/v2/models/r?x=1", "http://h/route/v2/models/r/infer?x=1")),
    ("http://h:9000", None),
    ("http://h:9000/", None),
    ("http://h/v2/models/", None),
    ("http://h/v2/models/r/versions/", None),
    ("http://h/v2/models/r/infer", None),
    ("http://h/v1/models/r", None),
])
def test_which_urls_speak_v2(url, endpoints) -> None:
    got = protocols.v2_endpoints(url)
    assert (got if got is None else (got["model"], got["metadata_url"], got["infer_url"])) == endpoints
    assert protocols.resolve(url, None) == ("v2" if endpoints else "graphpipe")
    assert tf_graphpipe.Client(url).protocol == ("v2" if endpoints else "graphpipe")


def test_protocol_argument_overrides_and_is_checked() -> None:
    assert tf_graphpipe.Client("http://h/v2/models/r", protocol="graphpipe").protocol == "graphpipe"
    with pytest.raises(ValueError, match="a v2 URL names its model"):
        tf_graphpipe.Client("http://h:9000", protocol="v2")
    with pytest.raises(ValueError, match="protocol must be"):
        tf_graphpipe.Client("http://h:9000", protocol="kserve")


# ---- BF16 and BOOL end to end (a v2 echo server; the real peers lack BF16) ----

ECHO_INPUTS = [{"name": "a", "datatype": "BF16", "shape": [-1]}, {"name": "b", "datatype": "BOOL", "shape": [-1]}]


class _EchoHandler(BaseHTTPRequestHandler):
    """Answers each input as the output of the same name, binary when the
    input was: the binary extension's framing, done independently of cc/core."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for key, value in {**headers, "Content-Length": str(len(body))}.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path != "/v2/models/echo":
            self._send(404, b'{"error":"Request for unknown model"}', {"Content-Type": "application/json"})
            return
        meta = {"name": "echo", "versions": ["1"], "platform": "test", "inputs": ECHO_INPUTS, "outputs": ECHO_INPUTS}
        self._send(200, json.dumps(meta).encode(), {"Content-Type": "application/json"})

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        n = int(self.headers.get("Inference-Header-Content-Length", len(body)))
        request, offset, blobs, outputs = json.loads(body[:n]), n, [], []
        for entry in request["inputs"]:
            size = (entry.get("parameters") or {}).get("binary_data_size")
            out = {k: entry[k] for k in ("name", "datatype", "shape")}
            if size is None:
                out["data"] = entry["data"]
            else:
                out["parameters"] = {"binary_data_size": size}
                blobs.append(body[offset:offset + size])
                offset += size
            outputs.append(out)
        header = json.dumps({"model_name": "echo", "outputs": outputs}).encode()
        self._send(200, header + b"".join(blobs), {"Inference-Header-Content-Length": str(len(header))})


@pytest.fixture(scope="module")
def echo_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EchoHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v2/models/echo"
    server.shutdown()
    server.server_close()


def test_bfloat16_and_bool_through_client_metadata_and_remote_call(echo_url) -> None:
    a = np.array([1.0, -2.5, 3e38], ml_dtypes.bfloat16)
    b = np.array([True, False])
    client = tf_graphpipe.Client(echo_url)
    meta = client.metadata()
    assert [e["dtype"] for e in meta["inputs"]] == [np.dtype(ml_dtypes.bfloat16), np.dtype(bool)]
    got_a, got_b = client.infer([a, b])  # names from metadata
    assert got_a.dtype == a.dtype and got_a.tobytes() == a.tobytes() and got_b.tolist() == [True, False]

    @tf.function
    def call(x, y):
        return tf_graphpipe.remote_call(echo_url, [x, y], output_dtypes=[tf.bfloat16, tf.bool])

    ta, tb = call(tf.constant(a), tf.constant(b))
    assert ta.dtype == tf.bfloat16 and ta.numpy().tobytes() == a.tobytes() and tb.numpy().tolist() == [True, False]


def test_a_url_variable_is_read_per_call_and_may_cross_protocols(echo_url) -> None:
    url = tf_graphpipe.make_url_variable(echo_url)

    @tf.function
    def call(x):
        return tf_graphpipe.remote_call(url, [x, tf.constant([True])], output_dtypes=[tf.bfloat16, tf.bool],
                                        input_names=["a", "b"])

    assert call(tf.constant([1.0], tf.bfloat16))[1].numpy().tolist() == [True]
    url.assign("http://127.0.0.1:1")  # a GraphPipe URL now: the kernel refuses bfloat16 for GraphPipe
    with pytest.raises(tf.errors.InvalidArgumentError, match="input 0: type bfloat16 has no GraphPipe wire type"):
        call(tf.constant([1.0], tf.bfloat16))
