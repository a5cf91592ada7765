# SPDX-License-Identifier: Apache-2.0
"""Small messages that decode into huge ones: flatbuffers let many offsets
share one string or table, the verifier accepts it, and a decoder that copies
(or builds a Python object) per offset turns kilobytes into gigabytes.

tests/test_codec_robustness.py covers aliased tensor strings and data, which
ReadTensors refuses once they claim more bytes than the message holds. The
same trick works everywhere else a decoder copies per entry: request names,
error messages, metadata entries, tensor shapes. No GraphPipe writer (the
reference Python and Go ones, ours) aliases, so every honest message claims
at most the bytes it holds, and each test also checks that an honest message
of the same size still decodes.

Proposed fix (cc/core/codec.cc), one rule for every decoder: charge each
entry read against a budget equal to the buffer size and return kDataLoss
when it runs out (as ReadTensors already does for tensor bytes and strings):
  * DecodeRequest: config, each input/output name: size + 4 (its length prefix);
  * ReadTensors: in addition to data and strings, 8 * rank + 8 per tensor
    (its shape vector's elements and length prefix, and its table offset);
  * DecodeInferResponse: each Error: message size + 4 + 8 (prefix + code);
  * ReadIOMetadata: each entry: name + description + 8 * rank + 12.
"""
from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import flatbuffers
import numpy as np
import pytest

import tf_graphpipe
from tf_graphpipe import Client, ProtocolError, _native

MiB = 1 << 20


# ---- aliased messages, built field by field ------------------------------------------


def _aliased_offsets(b: flatbuffers.Builder, target: int, count: int) -> int:
    b.StartVector(4, count, 4)
    for _ in range(count):
        b.PrependUOffsetTRelative(target)
    return b.EndVector()


def _empty_vector(b: flatbuffers.Builder) -> int:
    b.StartVector(4, 0, 4)
    return b.EndVector()


def aliased_names_request(count: int, length: int, slot: int) -> bytes:
    """An InferRequest whose input_names (slot 1) or output_names (slot 3)
    holds ``count`` offsets to one ``length``-byte string."""
    b = flatbuffers.Builder(length + 4 * count + 256)
    name = b.CreateString(b"n" * length)
    names = _aliased_offsets(b, name, count)
    empty = [_empty_vector(b) for _ in range(3)]
    config = b.CreateString(b"")
    b.StartObject(4)
    b.PrependUOffsetTRelativeSlot(0, config, 0)
    b.PrependUOffsetTRelativeSlot(1, names if slot == 1 else empty[0], 0)
    b.PrependUOffsetTRelativeSlot(2, empty[1], 0)
    b.PrependUOffsetTRelativeSlot(3, names if slot == 3 else empty[2], 0)
    infer = b.EndObject()
    b.StartObject(2)
    b.PrependUint8Slot(0, 1, 0)
    b.PrependUOffsetTRelativeSlot(1, infer, 0)
    b.Finish(b.EndObject())
    return bytes(b.Output())


def aliased_errors_response(count: int, length: int) -> bytes:
    """An InferResponse whose errors are ``count`` offsets to one Error."""
    b = flatbuffers.Builder(length + 4 * count + 256)
    message = b.CreateString(b"e" * length)
    b.StartObject(2)
    b.PrependInt64Slot(0, 3, 0)
    b.PrependUOffsetTRelativeSlot(1, message, 0)
    error = b.EndObject()
    errors = _aliased_offsets(b, error, count)
    b.StartObject(2)
    b.PrependUOffsetTRelativeSlot(1, errors, 0)
    b.Finish(b.EndObject())
    return bytes(b.Output())


def aliased_metadata_response(count: int, length: int) -> bytes:
    """A MetadataResponse whose inputs are ``count`` offsets to one IOMetadata."""
    b = flatbuffers.Builder(length + 4 * count + 512)
    name = b.CreateString(b"i" * length)
    b.StartObject(4)
    b.PrependUOffsetTRelativeSlot(0, name, 0)
    b.PrependUint8Slot(3, 10, 0)
    entry = b.EndObject()
    inputs = _aliased_offsets(b, entry, count)
    texts = [b.CreateString(b"") for _ in range(4)]
    outputs = _empty_vector(b)
    b.StartObject(6)
    for slot, text in enumerate(texts):
        b.PrependUOffsetTRelativeSlot(slot, text, 0)
    b.PrependUOffsetTRelativeSlot(4, inputs, 0)
    b.PrependUOffsetTRelativeSlot(5, outputs, 0)
    b.Finish(b.EndObject())
    return bytes(b.Output())


def aliased_empty_tensors_response(count: int, rank: int = 64) -> bytes:
    """An InferResponse with ``count`` offsets to one Float32 tensor of shape
    [0] * rank: no data, so the data/string guard charges nothing for it."""
    b = flatbuffers.Builder(8 * rank + 4 * count + 256)
    b.StartVector(8, rank, 8)
    for _ in range(rank):
        b.PrependInt64(0)
    shape = b.EndVector()
    data = b.CreateByteVector(b"")
    b.StartObject(4)
    b.PrependUint8Slot(0, 10, 0)
    b.PrependUOffsetTRelativeSlot(1, shape, 0)
    b.PrependUOffsetTRelativeSlot(2, data, 0)
    tensor = b.EndObject()
    tensors = _aliased_offsets(b, tensor, count)
    b.StartObject(2)
    b.PrependUOffsetTRelativeSlot(0, tensors, 0)
    b.Finish(b.EndObject())
    return bytes(b.Output())


# ---- the decoders ---------------------------------------------------------------------


def outcome(decode, body: bytes) -> str:
    """What decoding did, in few words (a failing assertion must not print 40 MB)."""
    try:
        decoded = decode(body)
    except ProtocolError:
        return "ProtocolError"
    except Exception as exc:  # noqa: BLE001: reported, not raised
        return f"{type(exc).__name__} with a {len(str(exc)):,}-character message"
    return f"decoded into {type(decoded).__name__} of {len(decoded):,} entries"


@pytest.mark.parametrize("slot", [1, 3], ids=["input_names", "output_names"])
def test_aliased_request_names_cannot_amplify_memory(slot: int) -> None:
    """BUG (cc/core/codec.cc DecodeRequest; cc/python/native_module.cc
    ToStrList): this 42 KB request decodes into 2,000 Python strings of 20 KB,
    40 MB; a 1 MB request asks for about 60 GB, in the server (the server's
    own count check comes after decoding). Fix: see the module docstring."""
    body = aliased_names_request(count=2000, length=20_000, slot=slot)
    assert len(body) < 45_000
    assert outcome(_native.decode_request, body) == "ProtocolError"


def test_aliased_error_messages_cannot_amplify_memory() -> None:
    """BUG (cc/core/codec.cc DecodeInferResponse, copying each Error.message;
    graphpipe_answer.cc Refusal, joining them): a 42 KB answer becomes a 40 MB
    exception message in the client; an 8 MB one asks for terabytes."""
    body = aliased_errors_response(count=2000, length=20_000)
    assert len(body) < 45_000
    assert outcome(_native.decode_infer_response, body) == "ProtocolError"


def test_aliased_metadata_entries_cannot_amplify_memory() -> None:
    """BUG (cc/core/codec.cc ReadIOMetadata copies name, description and shape
    per entry): a 42 KB metadata answer becomes 40 MB in the client."""
    body = aliased_metadata_response(count=2000, length=20_000)
    assert len(body) < 45_000
    assert outcome(_native.decode_metadata_response, body) == "ProtocolError"


def test_aliased_empty_tensors_cannot_amplify_memory() -> None:
    """BUG (cc/core/codec.cc ReadTensors charges data and strings, not shapes):
    20,000 offsets to one rank-64 empty tensor, 80 KB, decode into 20,000
    shape vectors and NumPy arrays of rank 64 (about 30 MB)."""
    body = aliased_empty_tensors_response(count=20_000)
    assert len(body) < 81_000
    assert outcome(_native.decode_infer_response, body) == "ProtocolError"


def test_honest_messages_of_the_same_sizes_still_decode() -> None:
    """The guard the tests above ask for must not refuse what honest peers write."""
    names = [f"name{i:05d}".encode() * 10 for i in range(1000)]
    request = bytes(_native.encode_infer_request([np.zeros(1, np.float32)], [10], [n.decode() for n in names[:1]],
                                                 [n.decode() for n in names], b"c" * 10_000))
    assert len(_native.decode_request(request)[4]) == 1000
    arrays = [np.zeros([0] * 64, np.float32) for _ in range(500)]
    (decoded) = _native.decode_infer_response(bytes(_native.encode_infer_response(arrays, [10] * 500)))
    assert len(decoded) == 500 and decoded[0].shape == (0,) * 64
    metadata = {"name": "m", "version": "", "server": "", "description": "",
                "inputs": [{"name": f"in{i}" * 50, "description": "d" * 100, "shape": [-1] * 64, "type": 10}
                           for i in range(300)],
                "outputs": []}
    assert len(_native.decode_metadata_response(bytes(_native.encode_metadata_response(metadata)))["inputs"]) == 300


# ---- the server, black-box --------------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[tf_graphpipe.server.RunningServer]:
    with tf_graphpipe.serve(lambda x: x * 2, name="double") as running:
        yield running


def _peak_rss_after_reset() -> tuple[int, callable]:
    Path("/proc/self/clear_refs").write_text("5")

    def kib(field: str) -> int:
        line = next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith(field + ":"))
        return int(line.split()[1]) * 1024

    return kib("VmRSS"), lambda: kib("VmHWM")


def test_server_memory_stays_bounded_for_an_aliased_request(server) -> None:
    """BUG (as test_aliased_request_names_cannot_amplify_memory, seen from
    outside): a 162 KB POST makes the server hold 8,000 strings of 20 KB
    (160 MB, in this process: the server runs here) before it answers 400."""
    from support import servers as http_helpers

    body = aliased_names_request(count=8000, length=20_000, slot=1)
    assert len(body) < 170_000
    before, peak = _peak_rss_after_reset()
    results: list[int] = []
    thread = threading.Thread(target=lambda: results.append(http_helpers.request(server.url, "POST", "/", body)[0]))
    thread.start()
    thread.join(60)
    assert results == [400]
    assert peak() - before < 48 * MiB, f"the server's peak memory grew by {(peak() - before) / MiB:.0f} MiB"
    np.testing.assert_array_equal(Client(server.url).infer(np.ones(3, np.float32)), [2, 2, 2])
