# SPDX-License-Identifier: Apache-2.0
"""Untrusted bytes: every truncation, every single-bit flip and hand-made
lying buffers either raise ProtocolError or decode to values that round-trip
through our encoder; nothing crashes, nothing allocates more than the buffer
can describe. Plus a property test: encode -> decode is the identity.

Tests marked ``BUG`` in their docstring fail on the foundation code as
committed; the diagnosis and proposed fix are in the docstring.
"""
from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import flatbuffers
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tf_graphpipe import _native, dtypes
from tf_graphpipe.errors import ProtocolError, RemoteError

from support.wire_builder import (
    REQ_INFER,
    REQ_METADATA,
    REQ_NONE,
    RawIO,
    RawTensor,
    infer_response,
    metadata_response,
    request,
)

VECTOR_DECODERS = {
    "metadata_request.bin": "request",
    "infer_request_float32_2x3.bin": "request",
    "infer_request_float32_2x3_named.bin": "request",
    "infer_request_strings_2x2.bin": "request",
    "infer_request_multi_dtypes.bin": "request",
    "infer_response_float32_2x3.bin": "response",
    "infer_response_strings_2x2.bin": "response",
    "infer_response_multi_dtypes.bin": "response",
    "metadata_response.bin": "metadata",
    "go-echo/infer_response_float32_2x3.bin": "response",
    "go-echo/infer_response_strings_2x2.bin": "response",
    "go-echo/infer_response_strings_abcd_efgh.bin": "response",
    "go-echo/metadata_response.bin": "metadata",
}

DECODERS: dict[str, Callable[[Any], Any]] = {
    "request": _native.decode_request,
    "response": _native.decode_infer_response,
    "metadata": _native.decode_metadata_response,
}


def wire_types(arrays: list[np.ndarray]) -> list[int]:
    return [dtypes.STRING if a.dtype == object else dtypes.by_name(a.dtype.name).id for a in arrays]


def canonical(kind: str, decoded: Any) -> Any:
    """A comparable form of a decoded message (arrays as dtype/shape/bytes)."""
    def arr(a: np.ndarray) -> tuple:
        body = tuple(a.ravel().tolist()) if a.dtype == object else a.tobytes()
        return (a.dtype.str, a.shape, body)

    if kind == "response":
        return [arr(a) for a in decoded]
    if kind == "metadata":
        return decoded
    if decoded[0] == "metadata":
        return decoded
    _, config, input_names, inputs, output_names = decoded
    return (config, input_names, [arr(a) for a in inputs], output_names)


def reencode(kind: str, decoded: Any) -> bytes:
    if kind == "response":
        return bytes(_native.encode_infer_response(decoded, wire_types(decoded)))
    if kind == "metadata":
        return bytes(_native.encode_metadata_response(decoded))
    if decoded[0] == "metadata":
        return bytes(_native.encode_metadata_request())
    _, config, input_names, inputs, output_names = decoded
    return bytes(_native.encode_infer_request(inputs, wire_types(inputs), input_names, output_names, config))


def decoded_bytes(kind: str, decoded: Any) -> int:
    """Bytes of tensor payload a decode produced."""
    arrays = decoded if kind == "response" else (decoded[3] if kind == "request" and decoded[0] == "infer" else [])
    total = 0
    for a in arrays:
        total += sum(len(x) for x in a.ravel()) if a.dtype == object else a.nbytes
    return total


def check_untrusted(kind: str, body: bytes) -> str:
    """Decodes ``body``; returns "refused" or "decoded". A decoded message must
    be no larger than its buffer and must round-trip through our encoder."""
    try:
        decoded = DECODERS[kind](body)
    except ProtocolError:
        return "refused"
    except RemoteError as exc:
        # A flip can turn an empty `errors` vector into a non-empty one: a
        # valid message that says "refused". Must come from a response.
        assert kind == "response" and exc.status == 200
        return "decoded"
    assert decoded_bytes(kind, decoded) <= len(body), "decoded more bytes than the buffer holds"
    again = DECODERS[kind](reencode(kind, decoded))
    assert canonical(kind, again) == canonical(kind, decoded)
    return "decoded"


@pytest.fixture(scope="module")
def vector_bodies(vectors: Path) -> dict[str, bytes]:
    return {name: (vectors / name).read_bytes() for name in VECTOR_DECODERS}


def test_every_vector_is_covered(vectors: Path) -> None:
    assert {p.relative_to(vectors).as_posix() for p in vectors.rglob("*.bin")} == set(VECTOR_DECODERS)


@pytest.mark.parametrize("name", sorted(VECTOR_DECODERS))
def test_every_truncation_is_refused(vector_bodies: dict[str, bytes], name: str) -> None:
    kind, body = VECTOR_DECODERS[name], vector_bodies[name]
    full = canonical(kind, DECODERS[kind](body))
    for cut in range(len(body)):
        try:
            decoded = DECODERS[kind](body[:cut])
        except ProtocolError:
            continue
        # Only trailing padding (or a NUL terminator we don't require) may go.
        assert cut >= len(body) - 8, f"{name} cut to {cut} of {len(body)} bytes decoded"
        assert canonical(kind, decoded) == full, f"{name} cut to {cut} bytes decoded differently"


@pytest.mark.parametrize("name", sorted(VECTOR_DECODERS))
def test_every_single_bit_flip_is_refused_or_harmless(vector_bodies: dict[str, bytes], name: str) -> None:
    kind, body = VECTOR_DECODERS[name], vector_bodies[name]
    outcomes = {"refused": 0, "decoded": 0}
    flipped = bytearray(body)
    for bit in range(len(body) * 8):
        flipped[bit // 8] ^= 1 << (bit % 8)
        try:
            outcomes[check_untrusted(kind, bytes(flipped))] += 1
        except AssertionError as exc:
            raise AssertionError(f"{name}, bit {bit} flipped: {exc}") from exc
        finally:
            flipped[bit // 8] ^= 1 << (bit % 8)
    # The sweep must exercise both paths to mean anything.
    assert outcomes["refused"] > 0 and outcomes["decoded"] > 0, outcomes


# ---- hand-made lies ----

def f32(*values: float) -> bytes:
    return np.array(values, "<f4").tobytes()


LYING_RESPONSES = {
    "shape claims 10^12 elements, 4 bytes of data": [RawTensor(10, [10**6, 10**6], f32(1))],
    "negative dimension": [RawTensor(10, [-1, 4], f32(1, 2, 3, 4))],
    "negative dimensions that multiply positive": [RawTensor(10, [-2, -2], f32(1, 2, 3, 4))],
    "shape product overflows int64": [RawTensor(10, [2**32, 2**32, 2**32], b"")],
    "shape product overflows via int64 max": [RawTensor(1, [2**63 - 1, 2], b"")],
    "shape product wraps to the data length": [RawTensor(1, [2**32 + 1, 2**32], b"x")],
    "more data than the shape": [RawTensor(10, [2], f32(1, 2, 3))],
    "less data than the shape": [RawTensor(10, [3], f32(1, 2))],
    "data length not a multiple of itemsize": [RawTensor(8, [1], b"\x01" * 7)],
    "type value 0 (Null)": [RawTensor(0, [1], b"x")],
    "type field absent (Null)": [RawTensor(None, [1], b"x")],
    "type value 13": [RawTensor(13, [1], b"x")],
    "type value 255": [RawTensor(255, [1], b"x")],
    "strings: fewer than the shape": [RawTensor(12, [3], b"", [b"a", b"b"])],
    "strings: more than the shape": [RawTensor(12, [1], b"", [b"a", b"b"])],
    "strings with raw data too": [RawTensor(12, [1], b"x", [b"a"])],
    "string shape without string_val": [RawTensor(12, [2], b"", None)],
    "second tensor lies": [RawTensor(1, [1], b"x"), RawTensor(10, [10**9], b"")],
}


@pytest.mark.parametrize("lie", sorted(LYING_RESPONSES))
def test_lying_tensor_is_refused(lie: str) -> None:
    body = infer_response(LYING_RESPONSES[lie])
    with pytest.raises(ProtocolError):
        _native.decode_infer_response(body)
    with pytest.raises(ProtocolError):
        _native.decode_request(request(REQ_INFER, tensors=LYING_RESPONSES[lie]))


def test_zero_dimension_beside_a_huge_one_is_refused() -> None:
    """BUG (cc/core/codec.cc CountElements): a zero dimension makes the product
    0, so the other dimensions are never bounded; NumPy then refuses to build
    shape (0, 2**62) of float64 and the decoder raises NumPy's ValueError
    ("array is too big") instead of ProtocolError. Fix: bound the product of
    the non-zero dimensions (times itemsize) too, e.g. track it beside the
    element count in CountElements and reject it past 2^62 / 8."""
    for tensor in (RawTensor(11, [0, 2**62], b""), RawTensor(12, [0, 2**62], b"", [])):
        with pytest.raises(ProtocolError):
            _native.decode_infer_response(infer_response([tensor]))


def test_rank_beyond_numpy_limit_is_refused() -> None:
    """BUG (cc/core/codec.cc ReadTensor / cc/python/numpy_views.cc): a tensor of
    rank 70 passes the codec, then NumPy raises ValueError ("maximum supported
    dimension ... 64") while building the array. Fix: the codec refuses ranks
    above a documented maximum (NumPy's 64; TensorFlow allows 254) with
    kDataLoss, or ArrayOfView turns NumPy's refusal into ProtocolError."""
    for tensor in (RawTensor(1, [1] * 70, b"x"), RawTensor(12, [1] * 70, b"", [b"x"])):
        with pytest.raises(ProtocolError):
            _native.decode_infer_response(infer_response([tensor]))


def _shared_string_response(count: int, length: int) -> bytes:
    """One string of ``length`` bytes, referenced ``count`` times by one
    tensor's string_val (flatbuffers allow aliasing; no GraphPipe peer writes it)."""
    b = flatbuffers.Builder(length + 4 * count + 256)
    s = b.CreateString(b"x" * length)
    b.StartVector(4, count, 4)
    for _ in range(count):
        b.PrependUOffsetTRelative(s)
    strings = b.EndVector()
    b.StartVector(8, 1, 8)
    b.PrependInt64(count)
    shape = b.EndVector()
    b.StartObject(4)
    b.PrependUint8Slot(0, 12, 0)
    b.PrependUOffsetTRelativeSlot(1, shape, 0)
    b.PrependUOffsetTRelativeSlot(3, strings, 0)
    tensor = b.EndObject()
    b.StartVector(4, 1, 4)
    b.PrependUOffsetTRelative(tensor)
    tensors = b.EndVector()
    b.StartObject(2)
    b.PrependUOffsetTRelativeSlot(0, tensors, 0)
    b.Finish(b.EndObject())
    return bytes(b.Output())


def test_aliased_strings_cannot_amplify_memory() -> None:
    """BUG (cc/core/codec.cc ReadTensor + cc/python/numpy_views.cc ArrayOfView):
    string_val entries may all point at one long string; the verifier accepts
    it and the decoder makes a bytes object per entry. This 70 KB buffer
    decodes into 64 MiB (1024 x 64 KiB); an 8 MB one would ask for 4 TB.
    Fix: in ReadTensors, sum string lengths (and bytes that must be copied)
    over the message and return kDataLoss when the sum exceeds the buffer
    size: no real peer aliases, so a legitimate message never describes more
    bytes than it holds."""
    body = _shared_string_response(count=1024, length=64 << 10)
    assert len(body) < 80_000
    with pytest.raises(ProtocolError):
        _native.decode_infer_response(body)


def test_unaliased_strings_up_to_the_buffer_size_decode() -> None:
    # The guard the test above asks for must not refuse honest messages.
    strings = np.array([bytes([i]) * 1000 for i in range(64)], dtype=object)
    body = bytes(_native.encode_infer_response([strings], [dtypes.STRING]))
    (out,) = _native.decode_infer_response(body)
    assert out.tolist() == strings.tolist()


@pytest.mark.parametrize("union_type", [REQ_NONE, 3, 200, 255])
def test_unknown_request_union_type_is_refused(union_type: int) -> None:
    with pytest.raises(ProtocolError):
        _native.decode_request(request(union_type))
    with pytest.raises(ProtocolError):
        _native.decode_request(request(union_type, with_table=False))


def test_infer_request_without_its_table_is_refused() -> None:
    with pytest.raises(ProtocolError):
        _native.decode_request(request(REQ_INFER, with_table=False))


def test_metadata_request_without_its_table_is_a_metadata_request() -> None:
    assert _native.decode_request(request(REQ_METADATA, with_table=False)) == ("metadata",)


@pytest.mark.parametrize("kind", sorted(DECODERS))
@pytest.mark.parametrize("body", [b"", b"\x00", b"\x04\x00\x00", b"\x00" * 4, b"\x00" * 64,
                                  b"\xff\xff\xff\x7f" + b"\x00" * 12, b"\x08\x00\x00\x00" + b"\xff" * 12])
def test_empty_and_tiny_bodies_are_refused(kind: str, body: bytes) -> None:
    with pytest.raises(ProtocolError):
        DECODERS[kind](body)


def _patch_u32(body: bytes, at: int, value: int) -> bytes:
    return body[:at] + struct.pack("<I", value) + body[at + 4:]


@pytest.mark.parametrize("claimed", [2**31 - 1, 2**32 - 1, 1 << 20, 25])
def test_data_vector_length_lie_is_refused(vector_bodies: dict[str, bytes], claimed: int) -> None:
    body = vector_bodies["infer_response_float32_2x3.bin"]
    at = body.find(struct.pack("<I", 24) + f32(0, 0.5, 1))
    assert at > 0
    with pytest.raises(ProtocolError):
        _native.decode_infer_response(_patch_u32(body, at, claimed))


@pytest.mark.parametrize("claimed", [2**31 - 1, 2**32 - 1, 5, 9])
def test_string_length_lie_is_refused(vector_bodies: dict[str, bytes], claimed: int) -> None:
    # Go strings have no terminator: "abcd" ends the buffer, its length prefix
    # is the only bound.
    body = vector_bodies["go-echo/infer_response_strings_abcd_efgh.bin"]
    with pytest.raises(ProtocolError):
        _native.decode_infer_response(_patch_u32(body, len(body) - 8, claimed))


def test_root_and_vtable_offset_lies_are_refused(vector_bodies: dict[str, bytes]) -> None:
    body = vector_bodies["infer_response_float32_2x3.bin"]
    root = struct.unpack_from("<I", body)[0]
    for lie in (
        _patch_u32(body, 0, len(body)),            # root past the end
        _patch_u32(body, 0, len(body) - 2),        # root table straddles the end
        _patch_u32(body, root, 0x7FFFFFFF),        # vtable far before the buffer
        _patch_u32(body, root, (-0x7FFFFFFF) & 0xFFFFFFFF),  # vtable far after it
    ):
        with pytest.raises(ProtocolError):
            _native.decode_infer_response(lie)


@pytest.mark.parametrize("io_type", [13, 100, 255])
def test_metadata_with_unknown_type_is_refused(io_type: int) -> None:
    with pytest.raises(ProtocolError):
        _native.decode_metadata_response(metadata_response(inputs=[RawIO(type=io_type)]))


def test_metadata_with_undeclared_type_and_absent_fields_decodes() -> None:
    m = _native.decode_metadata_response(metadata_response(
        inputs=[RawIO(name=None, description=None, shape=None, type=None)]))
    assert m["inputs"] == [{"name": "", "description": "", "shape": [], "type": 0}]


def test_metadata_text_that_is_not_utf8_is_not_a_unicode_crash() -> None:
    """BUG (cc/python/native_module.cc MetadataDict / IOMetadataList): metadata
    strings are converted with pybind11's strict UTF-8 cast, so a server whose
    name or description holds one non-UTF-8 byte makes decode_metadata_response
    (and Client.metadata) raise UnicodeDecodeError, outside the documented
    exception tree. Request names already use PyUnicode_DecodeUTF8(...,
    "replace") (ToStrList). Fix: convert metadata text the same way (or raise
    ProtocolError)."""
    body = metadata_response(name=b"caf\xe9", inputs=[RawIO(name=b"in\xff", description=b"\xc3")])
    try:
        m = _native.decode_metadata_response(body)
    except ProtocolError:
        return
    assert m["name"] == "caf\ufffd" and m["inputs"][0]["name"] == "in\ufffd"


def test_error_message_that_is_not_utf8_is_a_remote_error() -> None:
    """BUG (cc/python/native_module.cc Raise): the status message is passed to
    errors._from_native as a std::string, which pybind11 decodes as strict
    UTF-8; an Error.message with a non-UTF-8 byte raises UnicodeDecodeError
    instead of RemoteError. Fix: build the message with
    PyUnicode_DecodeUTF8(data, size, "replace") before calling _from_native."""
    with pytest.raises(RemoteError) as info:
        _native.decode_infer_response(infer_response(None, [(7, b"bad \xff input")]))
    assert info.value.code == 7 and "bad" in info.value.message


def test_error_response_carries_code_and_text() -> None:
    with pytest.raises(RemoteError) as info:
        _native.decode_infer_response(bytes(_native.encode_error_response("no such output 'y'", 5)))
    assert (info.value.status, info.value.code) == (200, 5)
    assert "no such output 'y'" in info.value.message


def test_request_names_that_are_not_utf8_decode_with_replacement() -> None:
    decoded = _native.decode_request(request(REQ_INFER, input_names=[b"a\xffb"], output_names=[b"\xc3"]))
    assert decoded[2] == ["a\ufffdb"] and decoded[4] == ["\ufffd"]


def test_absent_shape_and_data_vectors() -> None:
    # Go omits empty vectors: an absent shape is rank 0 (one element), an
    # absent data vector is zero bytes.
    (scalar,) = _native.decode_infer_response(infer_response([RawTensor(10, None, f32(1.5))]))
    assert scalar.shape == () and float(scalar) == 1.5
    (empty,) = _native.decode_infer_response(infer_response([RawTensor(10, [0, 3], None)]))
    assert empty.shape == (0, 3) and empty.dtype == np.float32
    with pytest.raises(ProtocolError):
        _native.decode_infer_response(infer_response([RawTensor(10, [1], None)]))


# ---- property: encode -> decode is the identity ----

NUMERIC = ["uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64",
           "float16", "float32", "float64"]

shapes = hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5)


@st.composite
def wire_tensors(draw: st.DrawFn) -> np.ndarray:
    shape = draw(shapes)
    name = draw(st.sampled_from([*NUMERIC, "string"]))
    if name == "string":
        items = draw(st.lists(st.binary(max_size=12) | st.sampled_from([b"\x00", b"\xff", b"a\x00", b""]),
                              min_size=int(np.prod(shape)), max_size=int(np.prod(shape))))
        out = np.empty(shape, dtype=object)
        out.ravel()[:] = items if items else []
        return out
    return draw(hnp.arrays(np.dtype(name).newbyteorder("<"), shape))


def same_tensor(got: np.ndarray, want: np.ndarray) -> bool:
    if want.dtype == object:
        return got.dtype == object and got.shape == want.shape and got.ravel().tolist() == want.ravel().tolist()
    return got.dtype == want.dtype and got.shape == want.shape and got.tobytes() == want.tobytes()


@settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(tensors=st.lists(wire_tensors(), max_size=4),
       names=st.lists(st.text(max_size=6), max_size=3),
       config=st.binary(max_size=10))
def test_encode_then_decode_is_identity(tensors: list[np.ndarray], names: list[str], config: bytes) -> None:
    types = wire_types(tensors)
    out = _native.decode_infer_response(_native.encode_infer_response(tensors, types))
    assert len(out) == len(tensors) and all(same_tensor(g, w) for g, w in zip(out, tensors))
    kind, got_config, in_names, inputs, out_names = _native.decode_request(
        _native.encode_infer_request(tensors, types, names, names[::-1], config))
    assert (kind, got_config, in_names, out_names) == ("infer", config, names, names[::-1])
    assert all(same_tensor(g, w) for g, w in zip(inputs, tensors)) and len(inputs) == len(tensors)
