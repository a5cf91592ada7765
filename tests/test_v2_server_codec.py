# SPDX-License-Identifier: Apache-2.0
"""The server side of the v2 codec (cc/core/v2_server_codec.h through
tf_graphpipe.server.v2_wire), without a server: requests decoded (JSON
``data`` of every datatype, binary blobs as views of the body, raw binary
requests, the parameters a server acts on), every refusal a ``BadRequest``
naming what is wrong, answers encoded (numeric blobs referencing the outputs,
BYTES built once, Triton's JSON tokens, exact integers, FP16/BF16 refused as
JSON), and agreement with what the real tritonclient sends and reads."""
from __future__ import annotations

import json
import struct
import subprocess
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np
import pytest

from tf_graphpipe import _native, dtypes
from tf_graphpipe.server.errors import BadRequest, ModelFailed
from tf_graphpipe.server.v2_wire import V2Answer, decode_request, encode_outputs, raw_binary_request

from support import peer_venvs

# Every datatype, with the values that are hard to carry: extremes, NaN, the infinities, -0.0.
ARRAYS_SOURCE = r"""
ARRAYS = [
    ("BOOL", np.array([[True, False, True]])),
    ("UINT8", np.array([0, 7, 255], np.uint8)),
    ("UINT16", np.array([0, 65535], np.uint16)),
    ("UINT32", np.array([0, 2**32 - 1], np.uint32)),
    ("UINT64", np.array([0, 2**64 - 1], np.uint64)),
    ("INT8", np.array([-128, 127], np.int8)),
    ("INT16", np.array([-(2**15), 2**15 - 1], np.int16)),
    ("INT32", np.array([-(2**31), 2**31 - 1], np.int32)),
    ("INT64", np.array([[-(2**63)], [2**63 - 1]], np.int64)),
    ("FP16", np.array([1.5, -0.0, np.inf, 65504, 6e-8], np.float16)),
    ("FP32", np.array([1.5, np.nan, -np.inf, 3.4e38, -0.0, 0.1], np.float32)),
    ("FP64", np.array([0.1, np.nan, np.inf, 1e-300, -0.0], np.float64)),
    ("BF16", np.array([1.5, -2.0, 3.0e38], ml_dtypes.bfloat16)),
    ("BYTES", np.array([b"a\x00b", b"", "\u00e9\u2603".encode()], object)),
    ("FP32", np.zeros((0, 3), np.float32)),
]
"""
namespace: dict[str, Any] = {"np": np, "ml_dtypes": ml_dtypes}
exec(ARRAYS_SOURCE, namespace)
ARRAYS: list[tuple[str, np.ndarray]] = namespace["ARRAYS"]


def assert_same(got: np.ndarray, want: np.ndarray, what: str = "") -> None:
    assert got.dtype == want.dtype and got.shape == want.shape, (what, got.dtype, got.shape)
    if want.dtype.kind == "f" or want.dtype == ml_dtypes.bfloat16:  # the sign of zero too
        assert np.array_equal(np.signbit(got.astype(np.float64)), np.signbit(want.astype(np.float64))), what
    np.testing.assert_array_equal(got, want, err_msg=what)


def _native_type_id(array: np.ndarray) -> int:
    return dtypes.wire_array(array, "array", dtypes.V2)[1]


def blob(array: np.ndarray) -> bytes:
    if array.dtype == object:
        return b"".join(struct.pack("<I", len(item)) + item for item in array.reshape(-1))
    return array.tobytes()


def binary_request(inputs: list[tuple[str, str, np.ndarray]], **extra: Any) -> tuple[bytes, int]:
    entries = [{"name": n, "datatype": t, "shape": list(a.shape), "parameters": {"binary_data_size": len(blob(a))}}
               for n, t, a in inputs]
    header = json.dumps({"inputs": entries, **extra}).encode()
    return header + b"".join(blob(a) for _, _, a in inputs), len(header)


def aligned_body(data: bytes, align_at: int, misalign: int = 0) -> np.ndarray:
    """``data`` in a buffer where byte ``align_at`` lies at 64-byte alignment (plus ``misalign``),
    as the server's HTTP layer receives bodies."""
    buffer = np.zeros(len(data) + 128, np.uint8)
    start = (-(buffer.ctypes.data + align_at) % 64 + misalign) % 128
    body = buffer[start:start + len(data)]
    body[:] = np.frombuffer(data, np.uint8)
    return body


def inside(array: np.ndarray, body: np.ndarray) -> bool:
    start, end = np.lib.array_utils.byte_bounds(array)
    body_start, body_end = np.lib.array_utils.byte_bounds(body)
    return body_start <= start and end <= body_end


def split(answer: V2Answer) -> tuple[dict[str, Any], bytes]:
    body = bytes(answer)
    size = answer.json_size if answer.json_size is not None else len(body)
    return json.loads(body[:size]), body[size:]


# ---- decoding -----------------------------------------------------------------------


def test_json_data_of_every_datatype_decodes_exactly_into_arrays_of_their_own() -> None:
    entries = [{"name": f"in{i}", "datatype": t, "shape": list(a.shape),
                "data": [float(v) for v in a.reshape(-1)] if t in ("FP16", "BF16") else
                [v.decode() for v in a.reshape(-1)] if t == "BYTES" else a.tolist()}  # nested as the shape
               for i, (t, a) in enumerate(ARRAYS)]
    text = json.dumps({"inputs": entries})  # Python writes NaN, Infinity, -Infinity: Triton's tokens
    assert "NaN" in text and "-Infinity" in text
    body = text.encode()
    request = decode_request(body, None)
    assert request.input_names == [f"in{i}" for i in range(len(ARRAYS))]
    for (datatype, want), got in zip(ARRAYS, request.inputs, strict=True):
        assert_same(got, want, datatype)
        if got.size and got.dtype != object:  # storage the request owns, writeable, not the body
            assert got.flags.writeable and not np.shares_memory(got, np.frombuffer(body, np.uint8))


@pytest.mark.parametrize("datatype, dtype", [("FP16", np.float16), ("BF16", ml_dtypes.bfloat16)])
def test_json_numbers_round_to_fp16_and_bf16_as_numpy_and_ml_dtypes_do(datatype: str, dtype: Any) -> None:
    rng = np.random.default_rng(1)
    values = np.concatenate([
        rng.standard_normal(4000) * 10.0 ** rng.integers(-9, 6, 4000),  # normals, subnormals, overflow
        np.arange(0, 2048, 1.0) + 0.5,  # ties at the edge of FP16's integers
        [65519.99, 65520.0, 2.0**-24, 2.0**-25, 3 * 2.0**-26, 2.0**-14 - 2.0**-25, 1e-30, -1e10],
    ]).tolist()
    body = json.dumps({"inputs": [{"name": "x", "datatype": datatype, "shape": [len(values)], "data": values}]})
    (got,) = decode_request(body.encode(), None).inputs
    with np.errstate(over="ignore"):
        want = np.array(values, dtype=dtype)
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got.view(np.uint16), want.view(np.uint16))  # bit for bit


def test_json_data_may_be_flat_or_nested_and_integers_stay_exact() -> None:
    body = json.dumps({"inputs": [
        {"name": "flat", "datatype": "INT64", "shape": [2, 2], "data": [-(2**63), 2**63 - 1, 3, 4]},
        {"name": "nested", "datatype": "UINT64", "shape": [2, 1], "data": [[2**64 - 1], [2**53 + 1]]},
        {"name": "scalar", "datatype": "FP64", "shape": [], "data": 0.1},
    ]}).encode()
    flat, nested, scalar = decode_request(body, None).inputs
    assert flat.tolist() == [[-(2**63), 2**63 - 1], [3, 4]]
    assert nested.tolist() == [[2**64 - 1], [2**53 + 1]]  # never through a double
    assert scalar.shape == () and scalar == 0.1


def test_the_clients_json_requests_decode_to_its_arrays_negative_zero_included() -> None:
    # Found by decode_v2_request_fuzzer: the client wrote -0.0 as "-0", which JSON readers take for the integer 0.
    arrays = [a for t, a in ARRAYS if t not in ("BYTES",)]
    type_ids = [_native_type_id(a) for a in arrays]
    names = [f"in{i}" for i in range(len(arrays))]
    body, json_size = _native.encode_v2_infer_request(arrays, type_ids, names, [], False)
    assert b'"data":[1.5,NaN,-Infinity,3.4e+38,-0.0,0.1]' in body  # FP32 as JSON, shortest exact text
    request = decode_request(body, json_size if json_size < len(body) else None)  # FP16, BF16 still blobs
    for want, got in zip(arrays, request.inputs, strict=True):
        assert_same(got, want, str(want.dtype))


@pytest.mark.parametrize("misalign", [0, 1, 2, 4])
def test_binary_inputs_are_views_of_the_body_when_aligned_and_one_aligned_copy_otherwise(misalign: int) -> None:
    inputs = [(f"in{i}", t, a) for i, (t, a) in enumerate(ARRAYS) if t != "BYTES"]
    data, json_size = binary_request(inputs)
    body = aligned_body(data, json_size, misalign)  # the first blob at 64-byte alignment, plus misalign
    request = decode_request(body, json_size)
    address = body.ctypes.data + json_size
    views = 0
    for (_, datatype, want), got in zip(inputs, request.inputs, strict=True):
        assert_same(got, want, datatype)
        assert got.flags.aligned, datatype
        if want.size and address % want.dtype.itemsize == 0:
            assert got.__array_interface__["data"][0] == address and inside(got, body), datatype  # a view
            views += 1
        elif want.size:
            assert got.flags.owndata and not np.shares_memory(got, body), datatype  # one aligned copy
        address += want.nbytes
    assert views >= 2  # BOOL, UINT8, INT8 at least: 1-byte types always are


def test_an_fp64_blob_at_an_aligned_offset_is_a_view_and_at_an_odd_one_a_copy() -> None:
    x = np.arange(64, dtype=np.float64)
    data, json_size = binary_request([("x", "FP64", x)])
    body = aligned_body(data, json_size)
    view = decode_request(body, json_size).inputs[0]
    assert inside(view, body) and view.__array_interface__["data"][0] == body.ctypes.data + json_size
    np.testing.assert_array_equal(view, x)
    assert view.flags.writeable  # the server's body buffer is writeable; a model may work in place
    copy = decode_request(aligned_body(data, json_size, misalign=1), json_size).inputs[0]
    assert copy.flags.aligned and copy.flags.owndata and not inside(copy, body)
    np.testing.assert_array_equal(copy, x)
    read_only = decode_request(data, json_size).inputs[0]  # bytes: the view cannot be written
    assert not read_only.flags.writeable or read_only.flags.owndata


def test_bytes_blobs_decode_into_object_arrays_of_bytes() -> None:
    strings = np.array([[b"a\x00b", b""], [b"\xff\xfe", "\u00e9".encode()]], object)
    data, json_size = binary_request([("s", "BYTES", strings)])
    (got,) = decode_request(data, json_size).inputs
    assert got.dtype == object and got.shape == (2, 2) and got.tolist() == strings.tolist()


def test_request_id_outputs_and_parameters() -> None:
    body = json.dumps({"id": "r-7", "parameters": {"binary_data_output": True, "timeout": 1500, "priority": 2,
                                                   "custom": "kept quiet"},
                       "inputs": [{"name": "x", "datatype": "INT32", "shape": [1], "data": [1]}],
                       "outputs": [{"name": "a", "parameters": {"binary_data": True}}, {"name": "b"},
                                   {"name": "c", "parameters": {"binary_data": False}}]}).encode()
    request = decode_request(body, None)
    assert request.id == "r-7" and request.timeout_us == 1500 and request.priority == 2
    assert request.output_names == ["a", "b", "c"] and request.binary == [True, False, False]
    assert request.binary_default is True  # for outputs not listed
    bare = decode_request(b'{"inputs": []}', None)
    assert bare.id is None and bare.timeout_us is None and bare.output_names == [] and bare.binary_default is False


def test_raw_binary_request_takes_the_unknown_dimension_from_the_body() -> None:
    x = np.arange(12, dtype=np.float32)
    body = aligned_body(x.tobytes(), 0)
    request = raw_binary_request(body, "images", 10, [-1, 4])
    assert request.input_names == ["images"] and request.binary_default is True
    assert request.inputs[0].shape == (3, 4) and inside(request.inputs[0], body)
    np.testing.assert_array_equal(request.inputs[0].reshape(-1), x)
    assert raw_binary_request(body, "images", 10, [3, 4]).inputs[0].shape == (3, 4)


@pytest.mark.parametrize("body, header_length, expected", [
    (b"{not json", None, "infer request header is not valid JSON: parse error at line 1, column 3"),
    (b"[1]", None, "must be a JSON object, got an array"),
    (b'{"inputs": 3}', None, "infer request has no 'inputs' array"),
    (b'{"inputs": [7]}', None, "inputs[0] must be an object with a string 'name'"),
    (b'{"id": 5, "inputs": []}', None, "request 'id' must be a string, got 5"),
    (b'{"inputs": [], "parameters": [1]}', None, "request 'parameters' must be a JSON object, got an array"),
    (b'{"inputs": [], "parameters": {"timeout": -1}}', None,
     "request parameter 'timeout' must be a non-negative integer, got -1"),
    (b'{"inputs": [], "parameters": {"binary_data_output": 1}}', None,
     "request parameter 'binary_data_output' must be true or false, got 1"),
    (b'{"inputs": [{"name": "x", "datatype": "FP99", "shape": [1], "data": [1]}]}', None,
     "input 'x': unknown datatype \"FP99\" (expected one of UINT8, INT8"),
    (b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [-1], "data": [1]}]}', None,
     "input 'x': 'shape' must be an array of at most 64 non-negative integers, got an array"),
    (b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1073741824, 1073741824], "data": []}]}', None,
     "input 'x': shape [1073741824,1073741824] has more than 2^59 elements"),
    (b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [2], "data": [1]}]}', None,
     "input 'x': shape [2] holds 2 elements, 'data' has 1"),
    (b'{"inputs": [{"name": "x", "datatype": "INT8", "shape": [1], "data": [128]}]}', None,
     "input 'x': 'data' element 0 is 128, not an integer in its range of INT8"),
    (b'{"inputs": [{"name": "x", "datatype": "INT32", "shape": [1], "data": [1.5]}]}', None,
     "input 'x': 'data' element 0 is 1.5, not an integer in its range of INT32"),
    (b'{"inputs": [{"name": "x", "datatype": "BOOL", "shape": [1], "data": [1]}]}', None,
     "input 'x': 'data' element 0 is 1, not true or false of BOOL"),
    (b'{"inputs": [{"name": "x", "datatype": "BYTES", "shape": [1], "data": [1]}]}', None,
     "input 'x': BYTES data must be JSON strings, element 0 is 1"),
    (b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": ' + b"[" * 70 + b"1" + b"]" * 70 + b"}]}",
     None, "input 'x': 'data' nests deeper than 64 levels"),
    (b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1]}]}', None,
     "input 'x' must set exactly one of 'data', 'binary_data_size' or 'shared_memory_region' (got 0)"),
    (b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "parameters": {"shared_memory_region": "r"}}]}',
     None, "input 'x': shared memory is not supported by this server"),
    (b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "parameters": {"binary_data_size": "4"}}]}', None,
     "input 'x': binary_data_size must be a non-negative integer, got \"4\""),
    (b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "parameters": {"binary_data_size": -4}}]}', None,
     "input 'x': binary_data_size must be a non-negative integer, got -4"),
    (b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "parameters": {"binary_data_size": 2}}]}', None,
     "input byte size mismatch for input 'x': shape [1] of FP32 is 4 bytes, binary_data_size is 2"),
    (b'{"inputs": [{"name": "x", "datatype": "UINT8", "shape": [288230376151711744], '
     b'"parameters": {"binary_data_size": 288230376151711744}}]}', None,
     "unexpected size for input 'x', expecting 288230376151711744 additional bytes, the body holds 0"),
    (b'{"inputs": [{"name": "x", "datatype": "BYTES", "shape": [1099511627776], '
     b'"parameters": {"binary_data_size": 0}}]}', None, "input 'x': 0 bytes cannot hold 1099511627776 BYTES elements"),
    (b'{"inputs": [], "outputs": {"name": "y"}}', None, "request 'outputs' must be an array, got an object"),
    (b'{"inputs": [], "outputs": [{"name": "y", "parameters": {"binary_data": "yes"}}]}', None,
     "output 'y' parameter 'binary_data' must be true or false, got \"yes\""),
    (b'{"inputs": [], "outputs": [{"name": "y", "parameters": {"classification": 3}}]}', None,
     "output 'y': classification is not supported by this server"),
    (b"{}", 3, "inference header size should be in range [0, 2], got 3"),
    (b"{}", -1, "inference header size should be in range [0, 2], got -1"),
    (b'{"inputs": []}xx', 14, "unexpected additional input data: 2 bytes after the last input"),
])
def test_malformed_requests_are_refused_with_what_and_where(body: bytes, header_length: int | None,
                                                            expected: str) -> None:
    with pytest.raises(BadRequest) as caught:
        decode_request(body, header_length)
    assert expected in caught.value.message, caught.value.message
    assert caught.value.status == 400


@pytest.mark.parametrize("blobs, expected", [
    ((1, b"\x05\0\0\0abc"), "input 's': BYTES element 0 declares 5 bytes, 3 left"),
    ((2, b"\x01\0\0\0a\0\0\0"), "input 's': BYTES element 1 of 2 has no 4-byte length (3 bytes left)"),
    ((3, b"\0\0\0\0\0\0\0"), "input 's': 7 bytes cannot hold 3 BYTES elements"),
    ((1, b"\x01\0\0\0ab"), "input 's': 1 bytes after its 1 BYTES elements"),
])
def test_lying_bytes_elements_are_refused(blobs: tuple[int, bytes], expected: str) -> None:
    count, data = blobs
    header = json.dumps({"inputs": [{"name": "s", "datatype": "BYTES", "shape": [count],
                                     "parameters": {"binary_data_size": len(data)}}]}).encode()
    with pytest.raises(BadRequest) as caught:
        decode_request(header + data, len(header))
    assert expected in caught.value.message


def test_bool_blobs_hold_only_zero_and_one() -> None:
    data, json_size = binary_request([("m", "BOOL", np.array([1, 0, 7], np.uint8))])
    with pytest.raises(BadRequest, match="input 'm': BOOL element 2 is byte 7, not 0 or 1"):
        decode_request(data, json_size)


@pytest.mark.parametrize("args, expected", [
    ((b"\0" * 12, "x", 10, [-1, 5]), "raw binary input 'x': 12 bytes do not fill shape [-1,5]"),
    ((b"\0" * 12, "x", 10, [2, 2]), "raw binary input 'x': 12 bytes do not fill shape [2,2]"),
    ((b"\0" * 12, "x", 10, [-1, -1]), "needs a model with one input of declared numeric dtype"),
    ((b"\0" * 12, "x", 12, [-1]), "needs a model with one input of declared numeric dtype"),
    ((b"\0" * 12, "x", 0, [-1]), "needs a model with one input of declared numeric dtype"),
    ((b"\0" * 12, "x", 10, None), "needs a model with one input of declared numeric dtype"),
])
def test_raw_binary_requests_that_cannot_be_are_refused(args: tuple[Any, ...], expected: str) -> None:
    with pytest.raises(BadRequest) as caught:
        raw_binary_request(*args)
    assert expected in caught.value.message


# ---- encoding -------------------------------------------------------------------------


def test_json_outputs_use_tritons_tokens_keep_integers_exact_and_the_sign_of_zero() -> None:
    outputs = [(f"out{i}", a) for i, (t, a) in enumerate(ARRAYS) if t not in ("FP16", "BF16")]
    answer = encode_outputs("m", "1", "r1", outputs, [], False)
    assert answer.json_size is None and answer.content_type == b"application/json" and len(answer.parts) == 1
    text = bytes(answer).decode()
    assert "NaN" in text and "-Infinity" in text and "-0.0" in text and str(2**64 - 1) in text
    header = json.loads(text)  # Python's json reads Triton's tokens
    assert header["model_name"] == "m" and header["model_version"] == "1" and header["id"] == "r1"
    for (name, want), entry in zip(outputs, header["outputs"], strict=True):
        assert entry["name"] == name and entry["shape"] == list(want.shape)
        if want.dtype == object:
            assert [s.encode() for s in entry["data"]] == list(want.reshape(-1))
        else:
            assert_same(np.array(entry["data"], want.dtype).reshape(want.shape), want, name)


def test_binary_outputs_reference_the_output_arrays_and_bytes_are_built_once() -> None:
    x = np.arange(1 << 16, dtype=np.float32).reshape(256, 256)
    strings = np.array([b"ab", b"\xff"], object)
    answer = encode_outputs("m", "1", None, [("x", x), ("s", strings), ("e", np.zeros((0,), np.int64))],
                            [True, True, True], False)
    header, blobs = split(answer)
    assert answer.content_type == b"application/octet-stream" and "id" not in header
    assert answer.headers == b"inference-header-content-length: %d\r\n" % answer.json_size
    assert [o["parameters"]["binary_data_size"] for o in header["outputs"]] == [x.nbytes, 11, 0]
    assert len(answer.parts) == 4 and len(answer) == answer.json_size + x.nbytes + 11
    assert np.shares_memory(answer.parts[1], x)  # a view: the 256 KiB were not copied
    assert bytes(answer.parts[2]) == b"\x02\0\0\0ab\x01\0\0\0\xff"
    assert blobs == x.tobytes() + bytes(answer.parts[2])


def test_binary_data_output_applies_past_the_listed_flags() -> None:
    y = np.array([1, 2], np.int32)
    header, blobs = split(encode_outputs("m", "1", None, [("a", y), ("b", y)], [False], True))
    assert "data" in header["outputs"][0] and header["outputs"][1]["parameters"] == {"binary_data_size": 8}
    assert blobs == y.tobytes()


@pytest.mark.parametrize("datatype, array", [("FP16", np.array([1.5], np.float16)),
                                             ("BF16", np.array([1.5], ml_dtypes.bfloat16))])
def test_outputs_with_no_json_form_asked_as_json_are_a_400_never_unasked_binary(datatype: str,
                                                                               array: np.ndarray) -> None:
    with pytest.raises(BadRequest, match=f"output 'half': {datatype} data has no JSON form; ask for it as binary"):
        encode_outputs("m", "1", None, [("ok", np.ones(2)), ("half", array)], [False], False)
    header, blobs = split(encode_outputs("m", "1", None, [("half", array)], [True], False))
    assert header["outputs"][0]["datatype"] == datatype and blobs == array.tobytes()


def test_bytes_that_are_not_utf8_travel_binary_even_when_json_was_asked() -> None:
    answer = encode_outputs("m", "1", None, [("s", np.array([b"\xff"], object)), ("t", np.array(["ok"], object))],
                            [False, False], False)
    header, blobs = split(answer)
    assert header["outputs"][0]["parameters"] == {"binary_data_size": 5} and blobs == b"\x01\0\0\0\xff"
    assert header["outputs"][1]["data"] == ["ok"]


@pytest.mark.parametrize("value, expected", [
    (np.array([1j]), "has no v2 datatype"),
    (np.array([b"a", 3], object), "element 1 is int, expected bytes or str"),
])
def test_outputs_that_cannot_be_sent_are_the_models_failure(value: np.ndarray, expected: str) -> None:
    with pytest.raises(ModelFailed, match=expected) as caught:
        encode_outputs("m", "1", None, [("y", value)], [True], False)
    assert caught.value.status == 500


# ---- agreement with tritonclient --------------------------------------------------------

TRITONCLIENT = "tritonclient-2.73.0"
_STEPS = (["tritonclient[http]==2.73.0", "numpy"],)

# Writes what tritonclient sends for ARRAYS, binary and JSON, into argv[1].
GENERATE = r"""
import json, sys
from pathlib import Path
import ml_dtypes
import numpy as np
import tritonclient.http as httpclient
""" + ARRAYS_SOURCE + r"""
out = Path(sys.argv[1])
for mode in ("binary", "json"):
    binary = mode == "binary"
    arrays = [(t, a) for t, a in ARRAYS if binary or t != "BF16"]  # tritonclient sends BF16 binary only
    inputs = [httpclient.InferInput(f"in{i}", list(a.shape), t).set_data_from_numpy(a, binary_data=binary)
              for i, (t, a) in enumerate(arrays)]
    outputs = [httpclient.InferRequestedOutput("out0", binary_data=binary), httpclient.InferRequestedOutput("out1")]
    body, json_size = httpclient.InferenceServerClient.generate_request_body(
        inputs, outputs=outputs, request_id="r-" + mode, timeout=2500, priority=3)
    (out / f"{mode}.body").write_bytes(body)
    (out / f"{mode}.json").write_text(json.dumps({"json_size": json_size, "types": [t for t, _ in arrays]}))
print("OK")
"""

# Reads each answer in argv[1] with tritonclient and checks it holds ARRAYS.
READ = r"""
import json, sys
from pathlib import Path
import ml_dtypes
import numpy as np
import tritonclient.http as httpclient
""" + ARRAYS_SOURCE + r"""
for path in sorted(Path(sys.argv[1]).glob("*.answer")):
    meta = json.loads(path.with_suffix(".meta").read_text())
    result = httpclient.InferenceServerClient.parse_response_body(path.read_bytes(), header_length=meta["json_size"])
    assert result.get_response()["model_name"] == "m" and result.get_response()["id"] == "r1"
    for i, (datatype, want) in enumerate(ARRAYS):
        if i not in meta["sent"]:
            continue
        got = result.as_numpy(f"out{i}")
        if datatype == "BYTES":
            got = np.array([g if isinstance(g, bytes) else g.encode() for g in got.reshape(-1)], object)
            assert list(got) == list(want.reshape(-1)), (path, got, want)
            continue
        assert got.dtype == want.dtype and got.shape == want.shape, (path, datatype, got.dtype, got.shape)
        np.testing.assert_array_equal(got, want)
        if want.dtype.kind == "f":
            assert (np.signbit(got) == np.signbit(want)).all(), (path, datatype, got)
print("OK")
"""


@pytest.fixture(scope="module")
def tritonclient_python() -> str:
    try:
        return str(peer_venvs.ensure_venv(TRITONCLIENT, _STEPS, "import tritonclient.http, numpy, ml_dtypes"))
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        pytest.fail(f"cannot build the {TRITONCLIENT} venv: {exc}")


def run_tritonclient(python: str, script: str, directory: Path) -> None:
    result = subprocess.run([python, "-c", script, str(directory)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip().endswith("OK"), result.stderr


@pytest.mark.slow
def test_what_tritonclient_sends_decodes_to_its_arrays(tritonclient_python: str, tmp_path: Path) -> None:
    run_tritonclient(tritonclient_python, GENERATE, tmp_path)
    for mode in ("binary", "json"):
        meta = json.loads((tmp_path / f"{mode}.json").read_text())
        data = (tmp_path / f"{mode}.body").read_bytes()
        body = aligned_body(data, meta["json_size"] or 0)
        header_length = meta["json_size"] if meta["json_size"] is not None else None
        request = decode_request(body, header_length)
        assert request.id == f"r-{mode}" and request.timeout_us == 2500 and request.priority == 3
        assert request.output_names == ["out0", "out1"] and request.binary == [mode == "binary", True]
        # FP16 as JSON too: the server reads JSON data of every datatype (Triton refuses FP16 there)
        sent = [a for t, a in ARRAYS if mode == "binary" or t != "BF16"]
        assert [t for t, _ in ARRAYS if mode == "binary" or t != "BF16"] == meta["types"]
        for i, (want, got) in enumerate(zip(sent, request.inputs, strict=True)):
            assert request.input_names[i] == f"in{i}"
            assert_same(got, want, f"{mode} in{i}")
        if mode == "binary":  # the first blob sits at the aligned offset: a view
            assert inside(request.inputs[0], body)


@pytest.mark.slow
@pytest.mark.parametrize("binary", [True, False])
def test_tritonclient_reads_our_answers(tritonclient_python: str, tmp_path: Path, binary: bool) -> None:
    sent = [i for i, (t, _) in enumerate(ARRAYS) if binary or t not in ("FP16", "BF16")]
    answer = encode_outputs("m", "1", "r1", [(f"out{i}", ARRAYS[i][1]) for i in sent], [binary] * len(sent), False)
    (tmp_path / "a.answer").write_bytes(bytes(answer))
    (tmp_path / "a.meta").write_text(json.dumps({"json_size": answer.json_size, "sent": sent}))
    run_tritonclient(tritonclient_python, READ, tmp_path)
