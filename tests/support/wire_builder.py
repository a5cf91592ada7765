# SPDX-License-Identifier: Apache-2.0
"""Builds GraphPipe flatbuffers field by field with the flatbuffers Python
runtime, independently of tf-graphpipe's own encoder, so tests can make
messages our encoder refuses to write: lying shapes, unknown type values,
absent fields, unknown union members.

Field slots follow the schema's declaration order (SPEC section 1).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import flatbuffers

# Union Req
REQ_NONE, REQ_INFER, REQ_METADATA = 0, 1, 2


@dataclass
class RawTensor:
    """A Tensor table exactly as it will be written; None leaves a field out."""

    type: int | None = 10
    shape: Sequence[int] | None = ()
    data: bytes | None = b""
    string_val: Sequence[bytes] | None = None


@dataclass
class RawIO:
    name: bytes | None = b"x"
    description: bytes | None = b""
    shape: Sequence[int] | None = ()
    type: int | None = 10


def _strings(b: flatbuffers.Builder, items: Sequence[bytes]) -> int:
    offsets = [b.CreateString(s) for s in items]
    b.StartVector(4, len(offsets), 4)
    for o in reversed(offsets):
        b.PrependUOffsetTRelative(o)
    return b.EndVector()


def _int64s(b: flatbuffers.Builder, values: Sequence[int]) -> int:
    b.StartVector(8, len(values), 8)
    for v in reversed(values):
        b.PrependInt64(v)
    return b.EndVector()


def _tables(b: flatbuffers.Builder, offsets: Sequence[int]) -> int:
    b.StartVector(4, len(offsets), 4)
    for o in reversed(offsets):
        b.PrependUOffsetTRelative(o)
    return b.EndVector()


def _tensor(b: flatbuffers.Builder, t: RawTensor) -> int:
    strings = _strings(b, t.string_val) if t.string_val is not None else None
    data = b.CreateByteVector(t.data) if t.data is not None else None
    shape = _int64s(b, t.shape) if t.shape is not None else None
    b.StartObject(4)
    if t.type is not None:
        b.PrependUint8Slot(0, t.type, 0)
    if shape is not None:
        b.PrependUOffsetTRelativeSlot(1, shape, 0)
    if data is not None:
        b.PrependUOffsetTRelativeSlot(2, data, 0)
    if strings is not None:
        b.PrependUOffsetTRelativeSlot(3, strings, 0)
    return b.EndObject()


def infer_response(tensors: Sequence[RawTensor] | None = (),
                   errors: Sequence[tuple[int, bytes]] | None = None) -> bytes:
    b = flatbuffers.Builder(256)
    error_offsets = None
    if errors is not None:
        made = []
        for code, message in errors:
            m = b.CreateString(message)
            b.StartObject(2)
            b.PrependInt64Slot(0, code, 0)
            b.PrependUOffsetTRelativeSlot(1, m, 0)
            made.append(b.EndObject())
        error_offsets = _tables(b, made)
    tensor_offsets = _tables(b, [_tensor(b, t) for t in tensors]) if tensors is not None else None
    b.StartObject(2)
    if tensor_offsets is not None:
        b.PrependUOffsetTRelativeSlot(0, tensor_offsets, 0)
    if error_offsets is not None:
        b.PrependUOffsetTRelativeSlot(1, error_offsets, 0)
    b.Finish(b.EndObject())
    return bytes(b.Output())


def request(req_type: int = REQ_INFER, *, tensors: Sequence[RawTensor] = (),
            config: bytes = b"", input_names: Sequence[bytes] = (),
            output_names: Sequence[bytes] = (), with_table: bool = True) -> bytes:
    """A Request whose union says ``req_type``; the table written is an
    InferRequest for REQ_INFER (and for unknown values), empty otherwise."""
    b = flatbuffers.Builder(256)
    table = None
    if with_table:
        if req_type == REQ_METADATA:
            b.StartObject(0)
            table = b.EndObject()
        else:
            outs = _strings(b, output_names)
            tensor_offsets = _tables(b, [_tensor(b, t) for t in tensors])
            ins = _strings(b, input_names)
            cfg = b.CreateString(config)
            b.StartObject(4)
            b.PrependUOffsetTRelativeSlot(0, cfg, 0)
            b.PrependUOffsetTRelativeSlot(1, ins, 0)
            b.PrependUOffsetTRelativeSlot(2, tensor_offsets, 0)
            b.PrependUOffsetTRelativeSlot(3, outs, 0)
            table = b.EndObject()
    b.StartObject(2)
    b.PrependUint8Slot(0, req_type, 0)
    if table is not None:
        b.PrependUOffsetTRelativeSlot(1, table, 0)
    b.Finish(b.EndObject())
    return bytes(b.Output())


def metadata_response(name: bytes = b"m", version: bytes = b"", server: bytes = b"",
                      description: bytes = b"", inputs: Sequence[RawIO] = (),
                      outputs: Sequence[RawIO] = ()) -> bytes:
    b = flatbuffers.Builder(256)

    def io_list(items: Sequence[RawIO]) -> int:
        made = []
        for io in items:
            n = b.CreateString(io.name) if io.name is not None else None
            d = b.CreateString(io.description) if io.description is not None else None
            s = _int64s(b, io.shape) if io.shape is not None else None
            b.StartObject(4)
            if n is not None:
                b.PrependUOffsetTRelativeSlot(0, n, 0)
            if d is not None:
                b.PrependUOffsetTRelativeSlot(1, d, 0)
            if s is not None:
                b.PrependUOffsetTRelativeSlot(2, s, 0)
            if io.type is not None:
                b.PrependUint8Slot(3, io.type, 0)
            made.append(b.EndObject())
        return _tables(b, made)

    outs = io_list(outputs)
    ins = io_list(inputs)
    texts = [b.CreateString(s) for s in (name, version, server, description)]
    b.StartObject(6)
    for slot, offset in enumerate(texts):
        b.PrependUOffsetTRelativeSlot(slot, offset, 0)
    b.PrependUOffsetTRelativeSlot(4, ins, 0)
    b.PrependUOffsetTRelativeSlot(5, outs, 0)
    b.Finish(b.EndObject())
    return bytes(b.Output())

