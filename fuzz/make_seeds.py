# SPDX-License-Identifier: Apache-2.0
"""Writes the seed corpus of each fuzz target: the golden vectors of
``tests/vectors`` (bytes from the reference peers) plus hand-made messages
that reach the decoders' refusal branches (lying shapes, unknown types and
union members, absent fields, error answers).

Usage: python fuzz/make_seeds.py OUT_DIR   (one subdirectory per target)
Needs only the ``flatbuffers`` runtime (via tests/support/wire_builder.py).
"""
from __future__ import annotations

import hashlib
import json
import struct
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from support import wire_builder as wb  # noqa: E402

VECTORS = REPO / "tests" / "vectors"

# Byte 0 / byte 1 of a read_answer_fuzzer or read_v2_answer_fuzzer input (see their .cc).
STATUS_200, STATUS_400, STATUS_404, STATUS_500, STATUS_503 = 0, 4, 5, 7, 9
OCTET, TEXT = 0, 1
METADATA_CALL = 0x80


def _vectors(prefix: str) -> list[bytes]:
    if not VECTORS.is_dir():
        sys.exit(f"make_seeds: golden vectors not found at {VECTORS}")
    return [p.read_bytes() for p in sorted(VECTORS.rglob(f"{prefix}*.bin"))]


def request_seeds() -> list[bytes]:
    T = wb.RawTensor
    return _vectors("metadata_request") + _vectors("infer_request") + [
        wb.request(wb.REQ_METADATA, with_table=False),
        wb.request(tensors=[T(type=10, shape=[2, -3], data=b"\0" * 24)]),
        wb.request(tensors=[T(type=10, shape=[1 << 40, 1 << 40], data=b"")]),
        wb.request(tensors=[T(type=8, shape=[0, 1 << 62], data=b"")]),
        wb.request(tensors=[T(type=0, shape=[1], data=b"\0")]),
        wb.request(tensors=[T(type=13, shape=[1], data=b"\0")]),
        wb.request(tensors=[T(type=12, shape=[2], data=None, string_val=[b"a\0b", b""])]),
        wb.request(tensors=[T(type=1, shape=None, data=None)]),
        wb.request(3),
        wb.request(255),
        wb.request(tensors=[T(type=11, shape=[], data=struct.pack("<d", 1.5))],
                   config=b"cfg", input_names=[b"x"], output_names=[b"y", b"z"]),
    ]


def infer_response_seeds() -> list[bytes]:
    T = wb.RawTensor
    return _vectors("infer_response") + [
        wb.infer_response(errors=[(3, b"no such output 'nope'"), (13, b"\xff\xfe not utf-8")]),
        wb.infer_response(tensors=None, errors=None),
        wb.infer_response(tensors=[T(type=9, shape=[3], data=b"\0" * 5)]),
        wb.infer_response(tensors=[T(type=12, shape=[1], data=b"", string_val=[b"x" * 40])]),
        wb.infer_response(tensors=[T(type=7, shape=[1, 1, 1, 1], data=b"\1" * 8)]),
    ]


def metadata_response_seeds() -> list[bytes]:
    return _vectors("metadata_response") + [
        wb.metadata_response(inputs=[wb.RawIO(type=0, shape=[-1, 224, 224, 3])],
                             outputs=[wb.RawIO(name=None, description=None, shape=None, type=None)]),
        wb.metadata_response(name=b"\xff", inputs=[wb.RawIO(type=13)]),
    ]


def answer_seeds() -> list[bytes]:
    seeds = [bytes([STATUS_200, OCTET]) + body for body in infer_response_seeds()]
    seeds += [bytes([STATUS_200 | METADATA_CALL, OCTET]) + body for body in metadata_response_seeds()]
    error = wb.infer_response(errors=[(3, b"bad input")])
    seeds += [
        bytes([STATUS_400, TEXT]) + b"model failed: bad input\n",
        bytes([STATUS_400, OCTET]) + error,
        bytes([STATUS_500, OCTET]) + error,
        bytes([STATUS_503, TEXT]) + b"overloaded",
        bytes([STATUS_400, TEXT]) + "d\u00e9j\u00e0 vu \u2603".encode() * 40,
        bytes([STATUS_500 | METADATA_CALL, OCTET]),
    ]
    return seeds


def _v2_input(status: int, body: bytes, json_length: int | None = None, requested: int = 0,
              metadata: bool = False) -> bytes:
    """A read_v2_answer_fuzzer input (see read_v2_answer_fuzzer.cc)."""
    header_bits = 7 if json_length is None else 0  # 7: no Inference-Header-Content-Length
    length = json_length or 0
    return bytes([status | (METADATA_CALL if metadata else 0), header_bits << 3 | requested << 6,
                  length & 0xFF, length >> 8]) + body


def v2_answer_seeds() -> list[bytes]:
    def blob_answer(outputs: list[tuple[str, str, list[int], bytes]]) -> tuple[bytes, int]:
        header = json.dumps({"model_name": "m", "outputs": [
            {"name": n, "datatype": t, "shape": s, "parameters": {"binary_data_size": len(b)}}
            for n, t, s, b in outputs]}).encode()
        return header + b"".join(b for *_, b in outputs), len(header)

    fp32, fp32_length = blob_answer([("y", "FP32", [1, 2], struct.pack("<2f", 1.5, -2.0))])
    strings, strings_length = blob_answer(
        [("s", "BYTES", [2], struct.pack("<I", 3) + b"a\x00b" + struct.pack("<I", 0))])
    two, two_length = blob_answer([("a", "INT64", [1], struct.pack("<q", 7)), ("b", "BOOL", [2], b"\x01\x00")])
    json_only = json.dumps({"model_name": "m", "outputs": [
        {"name": "y", "datatype": "FP32", "shape": [1, 2], "data": [1.5, 2.0]},
        {"name": "z", "datatype": "INT64", "shape": [2], "data": [9007199254740993, -1]},
        {"name": "t", "datatype": "BYTES", "shape": [1], "data": ["caf\u00e9"]},
        {"name": "f", "datatype": "BF16", "shape": [1], "data": [1.0]}]}).encode()
    metadata = json.dumps({"name": "m", "versions": ["1"], "platform": "tf-graphpipe",
                           "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}],
                           "outputs": [{"name": "y", "datatype": "BYTES", "shape": [-1]}]}).encode()
    return [
        _v2_input(STATUS_200, fp32, fp32_length),
        _v2_input(STATUS_200, fp32, fp32_length, requested=1),
        _v2_input(STATUS_200, strings, strings_length),
        _v2_input(STATUS_200, two, two_length, requested=2),
        _v2_input(STATUS_200, fp32, fp32_length + 3),  # the header lies
        _v2_input(STATUS_200, json_only),
        _v2_input(STATUS_200, metadata, metadata=True),
        _v2_input(STATUS_400, b'{"error": "unexpected shape for input \'x\'"}'),
        _v2_input(STATUS_404, b'{"error": "Request for unknown model: \'m\' is not found"}'),
        _v2_input(STATUS_500, b'{"detail": "model raised"}'),
        _v2_input(STATUS_503, b"overloaded"),
        _v2_input(STATUS_500, b"<html>bad gateway</html>", metadata=True),
    ]


def _v2_request(body: bytes, json_length: int | None = None) -> bytes:
    """A decode_v2_request_fuzzer input (see decode_v2_request_fuzzer.cc)."""
    if json_length is None:
        return bytes([0, 0, 0]) + body
    return bytes([1, json_length & 0xFF, json_length >> 8]) + body


def _raw_v2_request(type_id: int, shape_pattern: int, body: bytes) -> bytes:
    return bytes([3, type_id, shape_pattern]) + body


def v2_request_seeds() -> list[bytes]:
    def binary(inputs: list[tuple[str, str, list[int], bytes]], **extra: object) -> bytes:
        header = json.dumps({"inputs": [
            {"name": n, "datatype": t, "shape": s, "parameters": {"binary_data_size": len(b)}}
            for n, t, s, b in inputs], **extra}).encode()
        return _v2_request(header + b"".join(b for *_, b in inputs), len(header))

    def as_json(**request: object) -> bytes:
        return _v2_request(json.dumps(request).encode())

    strings = struct.pack("<I", 3) + b"a\x00b" + struct.pack("<I", 0) + struct.pack("<I", 2) + b"\xff\xfe"
    every_type = [
        {"name": "b", "datatype": "BOOL", "shape": [2], "data": [True, False]},
        {"name": "u8", "datatype": "UINT8", "shape": [2], "data": [0, 255]},
        {"name": "u64", "datatype": "UINT64", "shape": [1], "data": [18446744073709551615]},
        {"name": "i64", "datatype": "INT64", "shape": [1, 2], "data": [[-9223372036854775808, 7]]},
        {"name": "h", "datatype": "FP16", "shape": [2], "data": [1.5, 65504]},
        {"name": "bf", "datatype": "BF16", "shape": [1], "data": [-2.0]},
        {"name": "f", "datatype": "FP32", "shape": [3], "data": [0.1, -0.0, 3.4e38]},
        {"name": "d", "datatype": "FP64", "shape": [], "data": 1e-300},
        {"name": "s", "datatype": "BYTES", "shape": [2], "data": ["caf\u00e9", ""]},
    ]
    non_finite = json.dumps({"inputs": [{"name": "f", "datatype": "FP32", "shape": [3],
                                         "data": [float("nan"), float("inf"), float("-inf")]}]}).encode()
    assert b"NaN" in non_finite  # Python writes Triton's bare tokens
    return [
        # what tritonclient sends: binary inputs, requested outputs, id and parameters
        binary([("x", "FP32", [1, 2], struct.pack("<2f", 1.5, -2.0)), ("y", "INT64", [1], struct.pack("<q", 7))],
               id="r1", parameters={"timeout": 1500, "priority": 1},
               outputs=[{"name": "sum", "parameters": {"binary_data": True}}, {"name": "neg"}]),
        binary([("s", "BYTES", [3], strings)], parameters={"binary_data_output": True}),
        binary([("m", "BOOL", [3], b"\x01\x00\x01"), ("e", "FP32", [0, 3], b"")]),
        binary([("h", "FP16", [2], b"\x00\x3c\x00\xbc"), ("bf", "BF16", [1], b"\x80\x3f")]),
        as_json(inputs=every_type, outputs=[{"name": "o", "parameters": {"binary_data": False}}]),
        _v2_request(non_finite),
        as_json(inputs=[{"name": "x", "datatype": "FP32", "shape": [2, 2], "data": [[1, 2], [3, 4]]}]),
        # refusals: lying sizes, wrong types, shared memory, trailing bytes, a bad header length
        binary([("x", "FP32", [2], b"\0" * 4)]),
        binary([("s", "BYTES", [1 << 40], b"\0" * 8)]),
        as_json(inputs=[{"name": "x", "datatype": "FP32", "shape": [1 << 30, 1 << 30], "data": []}]),
        as_json(inputs=[{"name": "x", "datatype": "INT8", "shape": [1], "data": [300]}]),
        as_json(inputs=[{"name": "x", "datatype": "FP32", "shape": [1], "parameters": {"shared_memory_region": "r"}}]),
        bytes([1, 2, 0]) + b"{}" + b"trailing",
        bytes([2, 0, 0]) + b"{}",
        _v2_request(b"{not json"),
        # raw binary requests: FP32 with shape [-1, 3]; BOOL [-1]; an undeclared shape
        _raw_v2_request(10, 1, struct.pack("<6f", *range(6))),
        _raw_v2_request(13, 0, b"\x01\x00\x02"),
        _raw_v2_request(10, 8, b"\0" * 8),
    ]


def main(out: Path) -> None:
    corpora = {
        "decode_request_fuzzer": request_seeds(),
        "decode_infer_response_fuzzer": infer_response_seeds(),
        "decode_metadata_response_fuzzer": metadata_response_seeds(),
        "read_answer_fuzzer": answer_seeds(),
        "read_v2_answer_fuzzer": v2_answer_seeds(),
        "decode_v2_request_fuzzer": v2_request_seeds(),
    }
    for target, seeds in corpora.items():
        directory = out / target
        directory.mkdir(parents=True, exist_ok=True)
        for seed in seeds:  # named by content, as libFuzzer names its finds
            (directory / hashlib.sha1(seed).hexdigest()).write_bytes(seed)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(Path(sys.argv[1]))
