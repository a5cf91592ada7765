# SPDX-License-Identifier: Apache-2.0
"""Byte compatibility with the existing GraphPipe peers.

Golden bytes from the reference Python client and the Go echo server
(``tests/vectors``, README there) decode to exactly the values the README
lists; what our encoder writes is read back identically by the reference
decoder (graphpipe==1.0.4 running in its own virtualenv).
"""
from __future__ import annotations

import hashlib
import json
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tf_graphpipe import _native, dtypes

from support import peer_venvs

F32_2X3 = np.array([[0, 0.5, 1], [1.5, 2, 2.5]], np.float32)
STRINGS_2X2 = np.array([[b"a", b"bc"], [b"", "d\u00e9f".encode()]], dtype=object)
MULTI = [
    np.array([-128, 0, 127], np.int8),
    np.array([[1, 2], [65535, 0]], np.uint16),
    np.array(-7, np.int64),
    np.zeros((0,), np.float64),
    np.array([1.0, -2.5], np.float16),
]

# name -> (decoder, expected value). Requests decode to the tuple of
# _native.decode_request; infer responses to their list of outputs.
EXPECTED: dict[str, tuple[str, Any]] = {
    "metadata_request.bin": ("request", ("metadata",)),
    "infer_request_float32_2x3.bin": ("request", ("infer", b"", [], [F32_2X3], [])),
    "infer_request_float32_2x3_named.bin": ("request", ("infer", b"cfg", ["input0"], [F32_2X3], ["output0"])),
    "infer_request_strings_2x2.bin": ("request", ("infer", b"", ["text"], [STRINGS_2X2], ["out"])),
    "infer_request_multi_dtypes.bin": ("request", ("infer", b"", [], MULTI, [])),
    "infer_response_float32_2x3.bin": ("response", [F32_2X3]),
    "infer_response_strings_2x2.bin": ("response", [STRINGS_2X2]),
    "infer_response_multi_dtypes.bin": ("response", MULTI),
    "metadata_response.bin": ("metadata", {
        "name": "my-model", "version": "1.2", "server": "reference-python", "description": "test vector",
        "inputs": [{"name": "input0", "description": "the input", "shape": [-1, 3], "type": 10}],
        "outputs": [{"name": "output0", "description": "the output", "shape": [-1, 3], "type": 10}],
    }),
    "go-echo/infer_response_float32_2x3.bin": ("response", [F32_2X3]),
    "go-echo/infer_response_strings_2x2.bin": ("response", [STRINGS_2X2]),
    "go-echo/infer_response_strings_abcd_efgh.bin": ("response", [np.array([b"abcd", b"efgh"], dtype=object)]),
    "go-echo/metadata_response.bin": ("metadata", {
        "name": "SimpleModel", "version": "", "server": "",
        "description": "A graphpipe server using the simple interface with automatic native type conversion.",
        "inputs": [{"name": "input0", "description": "", "shape": [0], "type": 8}],
        "outputs": [{"name": "output0", "description": "", "shape": [0], "type": 8}],
    }),
}

DECODERS = {
    "request": _native.decode_request,
    "response": _native.decode_infer_response,
    "metadata": _native.decode_metadata_response,
}


def assert_same_array(got: np.ndarray, want: np.ndarray, what: str = "") -> None:
    assert got.dtype == want.dtype, f"{what}: dtype {got.dtype}, expected {want.dtype}"
    assert got.shape == want.shape, f"{what}: shape {got.shape}, expected {want.shape}"
    if want.dtype == object:
        assert all(type(x) is bytes for x in got.ravel()), f"{what}: elements must be bytes"
        assert got.ravel().tolist() == want.ravel().tolist(), what
    else:
        assert got.tobytes() == want.tobytes(), f"{what}: {got!r} != {want!r}"


def assert_same_arrays(got: list[np.ndarray], want: list[np.ndarray]) -> None:
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want)):
        assert_same_array(g, w, f"tensor {i}")


def assert_decoded(kind: str, got: Any, want: Any) -> None:
    if kind == "response":
        assert_same_arrays(got, want)
    elif kind == "metadata":
        assert got == want
    else:
        assert got[0] == want[0]
        if want[0] == "infer":
            assert (got[1], got[2], got[4]) == (want[1], want[2], want[4])
            assert_same_arrays(got[3], want[3])


def test_every_vector_file_has_expected_values(vectors: Path) -> None:
    files = {p.relative_to(vectors).as_posix() for p in vectors.rglob("*.bin")}
    assert files == set(EXPECTED), "a vector file without expected values (or the reverse)"


def test_vector_files_match_readme_checksums(vectors: Path) -> None:
    readme = (vectors / "README.md").read_text()
    sums = dict((name, digest) for digest, name in re.findall(r"^([0-9a-f]{64})\s+(\S+)$", readme, re.M))
    assert set(sums) == set(EXPECTED)
    for name, digest in sums.items():
        assert hashlib.sha256((vectors / name).read_bytes()).hexdigest() == digest, name


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_vector_decodes_to_readme_values(vectors: Path, name: str) -> None:
    kind, want = EXPECTED[name]
    body = (vectors / name).read_bytes()
    assert_decoded(kind, DECODERS[kind](body), want)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_vector_decodes_from_writable_and_readonly_buffers(vectors: Path, name: str) -> None:
    kind, want = EXPECTED[name]
    body = (vectors / name).read_bytes()
    assert_decoded(kind, DECODERS[kind](bytearray(body)), want)
    assert_decoded(kind, DECODERS[kind](memoryview(body)), want)


def test_go_strings_without_nul_terminator_decode(vectors: Path) -> None:
    body = (vectors / "go-echo/infer_response_strings_abcd_efgh.bin").read_bytes()
    # Go writes back to front: "abcd" ends the buffer and "efgh" runs straight
    # into the next length prefix. No terminator to rely on.
    assert body.endswith(b"\x04\x00\x00\x00abcd")
    assert b"efgh\x04\x00\x00\x00abcd" in body
    (strings,) = _native.decode_infer_response(body)
    assert strings.tolist() == [b"abcd", b"efgh"]


def test_go_response_without_errors_field_decodes(vectors: Path) -> None:
    # Go omits the empty `errors` vector; Python writes it. Same tensor either way.
    go = _native.decode_infer_response((vectors / "go-echo/infer_response_float32_2x3.bin").read_bytes())
    py = _native.decode_infer_response((vectors / "infer_response_float32_2x3.bin").read_bytes())
    assert_same_arrays(go, py)


def test_misaligned_int64_data_is_copied_not_cast(vectors: Path) -> None:
    body = (vectors / "infer_response_multi_dtypes.bin").read_bytes()
    assert body.find(np.int64(-7).tobytes()) % 8 == 4  # README: Int64 data 4 bytes off
    backing = np.zeros(len(body) + 64, np.uint8)
    start = -backing.ctypes.data % 64
    aligned = backing[start:start + len(body)]  # buffer start 64-byte aligned
    aligned[:] = np.frombuffer(body, np.uint8)
    outputs = _native.decode_infer_response(aligned)
    scalar = outputs[2]
    assert scalar.shape == () and scalar.dtype == np.int64 and int(scalar) == -7
    assert scalar.flags.aligned and not np.shares_memory(scalar, aligned)


# ---- our bytes, read by the reference decoder ----

_REFERENCE_READER = r"""
import json, sys
import numpy as np
from graphpipe import convert

def tensor(a):
    a = np.asarray(a)
    if a.dtype.kind in "SUO":
        return {"dtype": "string", "shape": list(a.shape),
                "strings": [bytes(x).hex() for x in a.ravel().tolist()]}
    return {"dtype": a.dtype.name, "shape": list(a.shape), "hex": a.tobytes().hex()}

def text(x):
    return None if x is None else x.decode("utf-8")

out = []
for kind, path in zip(sys.argv[1::2], sys.argv[2::2]):
    buf = bytearray(open(path, "rb").read())
    if kind == "request":
        r = convert.deserialize_request(buf)
        if r is None:
            out.append({"kind": "metadata"})
        else:
            out.append({"kind": "infer", "config": text(r.config),
                        "input_names": [text(n) for n in r.input_names],
                        "output_names": [text(n) for n in r.output_names],
                        "tensors": [tensor(t) for t in r.input_tensors]})
    elif kind == "response":
        tensors, errors = convert.deserialize_infer_response(buf)
        out.append({"tensors": [tensor(t) for t in tensors],
                    "errors": [{"code": e["code"], "message": text(e["message"])} for e in errors]})
    else:
        m = convert.deserialize_metadata_response(buf)
        def io(x):
            return {"name": text(x.Name()), "description": text(x.Description()),
                    "shape": [int(d) for d in x.ShapeAsNumpy()], "type": x.Type()}
        out.append({"name": text(m.Name()), "version": text(m.Version()),
                    "server": text(m.Server()), "description": text(m.Description()),
                    "inputs": [io(m.Inputs(i)) for i in range(m.InputsLength())],
                    "outputs": [io(m.Outputs(i)) for i in range(m.OutputsLength())]})
print(json.dumps(out))
"""


def read_with_reference(messages: list[tuple[str, bytes]]) -> list[dict[str, Any]]:
    """Decodes (kind, body) pairs with graphpipe==1.0.4's own decoder."""
    with tempfile.TemporaryDirectory() as tmp:
        args: list[str] = []
        for i, (kind, body) in enumerate(messages):
            path = Path(tmp) / f"{i}.bin"
            path.write_bytes(body)
            args += [kind, str(path)]
        result = peer_venvs.run_reference(_REFERENCE_READER, *args)
    return json.loads(result.stdout)


def reference_form(a: np.ndarray) -> dict[str, Any]:
    """What the reference reader prints for an array it decoded."""
    if a.dtype == object:
        return {"dtype": "string", "shape": list(a.shape), "strings": [x.hex() for x in a.ravel().tolist()]}
    return {"dtype": a.dtype.name, "shape": list(a.shape), "hex": a.tobytes().hex()}


def encode_request(values: list[np.ndarray], input_names: list[str], output_names: list[str],
                   config: bytes) -> bytes:
    wired = [dtypes.wire_array(v) for v in values]
    return bytes(_native.encode_infer_request(
        [a for a, _ in wired], [t for _, t in wired], input_names, output_names, config))


def encode_response(values: list[np.ndarray]) -> bytes:
    wired = [dtypes.wire_array(v) for v in values]
    return bytes(_native.encode_infer_response([a for a, _ in wired], [t for _, t in wired]))


REQUEST_CASES = {name: want for name, (kind, want) in EXPECTED.items()
                 if kind == "request" and want[0] == "infer"}
RESPONSE_CASES = {name: want for name, (kind, want) in EXPECTED.items() if kind == "response"}
METADATA_CASES = {name: want for name, (kind, want) in EXPECTED.items() if kind == "metadata"}

ALL_DTYPES_RESPONSE = [
    (np.arange(24) % 200 - 100).astype(dt).reshape(2, 3, 4)
    for dt in ("uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64",
               "float16", "float32", "float64")
] + [np.array([b"\x00\xffinner\x00nul", b"\xc3(\xff"], dtype=object)]


@pytest.fixture(scope="module")
def reference_readings() -> dict[str, Any]:
    """Everything our encoder writes for this module, decoded by the reference
    in one subprocess."""
    messages: list[tuple[str, str, bytes]] = []
    for name, (_, config, input_names, values, output_names) in REQUEST_CASES.items():
        messages.append((f"request:{name}", "request", encode_request(values, input_names, output_names, config)))
    messages.append(("request:metadata", "request", bytes(_native.encode_metadata_request())))
    for name, values in RESPONSE_CASES.items():
        messages.append((f"response:{name}", "response", encode_response(values)))
    messages.append(("response:all-dtypes", "response", encode_response(ALL_DTYPES_RESPONSE)))
    messages.append(("response:error", "response", bytes(_native.encode_error_response("model failed: caf\u00e9", 13))))
    for name, metadata in METADATA_CASES.items():
        messages.append((f"metadata:{name}", "metadata", bytes(_native.encode_metadata_response(metadata))))
    read = read_with_reference([(kind, body) for _, kind, body in messages])
    return {label: r for (label, _, _), r in zip(messages, read)}


@pytest.mark.parametrize("name", sorted(REQUEST_CASES))
def test_reference_decoder_reads_our_requests(reference_readings: dict[str, Any], name: str) -> None:
    _, config, input_names, values, output_names = REQUEST_CASES[name]
    got = reference_readings[f"request:{name}"]
    assert got == {
        "kind": "infer",
        "config": config.decode(),
        "input_names": input_names,
        "output_names": output_names,
        "tensors": [reference_form(v) for v in values],
    }


def test_reference_decoder_reads_our_metadata_request(reference_readings: dict[str, Any]) -> None:
    assert reference_readings["request:metadata"] == {"kind": "metadata"}


@pytest.mark.parametrize("name", sorted(RESPONSE_CASES))
def test_reference_decoder_reads_our_responses(reference_readings: dict[str, Any], name: str) -> None:
    got = reference_readings[f"response:{name}"]
    assert got == {"tensors": [reference_form(v) for v in RESPONSE_CASES[name]], "errors": []}


def test_reference_decoder_reads_every_dtype_we_write(reference_readings: dict[str, Any]) -> None:
    got = reference_readings["response:all-dtypes"]
    want = [reference_form(v) for v in ALL_DTYPES_RESPONSE]
    # Leading and inner NULs and invalid UTF-8 survive (a trailing NUL would
    # not: the reference reads strings into fixed-width `S`, SPEC section 5).
    assert got == {"tensors": want, "errors": []}


def test_reference_decoder_reads_our_error_response(reference_readings: dict[str, Any]) -> None:
    assert reference_readings["response:error"] == {
        "tensors": [], "errors": [{"code": 13, "message": "model failed: caf\u00e9"}]}


@pytest.mark.parametrize("name", sorted(METADATA_CASES))
def test_reference_decoder_reads_our_metadata(reference_readings: dict[str, Any], name: str) -> None:
    assert reference_readings[f"metadata:{name}"] == METADATA_CASES[name]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_our_reencoding_decodes_to_the_same_values(vectors: Path, name: str) -> None:
    kind, want = EXPECTED[name]
    decoded = DECODERS[kind]((vectors / name).read_bytes())
    if kind == "response":
        again = _native.decode_infer_response(encode_response(decoded))
    elif kind == "metadata":
        again = _native.decode_metadata_response(bytes(_native.encode_metadata_response(decoded)))
    elif decoded[0] == "metadata":
        again = _native.decode_request(bytes(_native.encode_metadata_request()))
    else:
        _, config, input_names, values, output_names = decoded
        again = _native.decode_request(encode_request(values, input_names, output_names, config))
    assert_decoded(kind, again, want)
