# SPDX-License-Identifier: Apache-2.0
"""The op's outputs view the received answer instead of copying it, when its
tensor data is aligned (our server's GraphPipe answers, every v2 binary
answer's first blob), are copied when it is not (4-byte aligned peers, blobs
after an odd-sized one), and stay valid after later calls.

Where an output lives is read through the op library's testing hook
(``TfGraphPipeTestingLastAnswer``: the body range of the last answer and the
outputs viewed and copied so far), and ``np.asarray`` of an eager tensor,
which shares the tensor's memory.
"""
from __future__ import annotations

import ctypes
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import tensorflow as tf

from tf_graphpipe import _loader, remote_call

from support import servers, wire_builder
from support.graphpipe_test_servers import Reply, TestServer

LARGE = 1 << 15  # float32 elements: 128 KiB, over the op's 64 KiB viewing threshold


@dataclass
class LastAnswer:
    begin: int
    end: int
    viewed: int
    copied: int

    def holds(self, tensor: tf.Tensor) -> bool:
        array = np.asarray(tensor)
        address = array.ctypes.data
        return self.begin <= address and address + array.nbytes <= self.end


def last_answer() -> LastAnswer:
    _loader.load_ops()
    hook = ctypes.CDLL(str(_loader.library_path())).TfGraphPipeTestingLastAnswer
    begin, end = ctypes.c_uint64(), ctypes.c_uint64()
    viewed, copied = ctypes.c_int64(), ctypes.c_int64()
    hook(ctypes.byref(begin), ctypes.byref(end), ctypes.byref(viewed), ctypes.byref(copied))
    return LastAnswer(begin.value, end.value, viewed.value, copied.value)


@pytest.fixture(scope="module")
def served() -> Iterator[str]:
    server = servers.CliServer("support.servers:echo", "--port", "0", "--name", "echo",
                               "--log-level", "warning")
    try:
        yield server.wait_url().rstrip("/")
    finally:
        server.stop()


@pytest.mark.parametrize("path", ["", "/v2/models/echo"], ids=["graphpipe", "v2"])
def test_aligned_answer_is_viewed_in_place_in_tf_function(served: str, path: str) -> None:
    url = served + path

    @tf.function
    def call(x: tf.Tensor) -> tf.Tensor:
        return remote_call(url, [x], output_dtypes=[tf.float32], input_names=["x"] if path else None)[0]

    x = tf.range(LARGE, dtype=tf.float32)
    call(x)  # trace, connect (and for v2, the model's input names)
    before = last_answer()
    y = call(x)
    after = last_answer()
    assert after.holds(y)
    assert (after.viewed, after.copied) == (before.viewed + 1, before.copied)
    assert np.asarray(y).ctypes.data % 64 == 0
    np.testing.assert_array_equal(y.numpy(), x.numpy())


def test_outputs_stay_valid_after_later_calls_and_in_later_ops(served: str) -> None:
    kept = [remote_call(served, [tf.fill([LARGE], float(i))], output_dtypes=[tf.float32])[0]
            for i in range(4)]
    assert last_answer().holds(kept[-1])
    for i, y in enumerate(kept):
        np.testing.assert_array_equal(y.numpy(), np.full(LARGE, i, np.float32))
    # TensorFlow may reuse a buffer only one tensor holds for an op's output:
    # each output's bytes are its own, so the others do not change.
    doubled = [y * 2.0 for y in kept]
    for i, (y, d) in enumerate(zip(kept, doubled)):
        np.testing.assert_array_equal(y.numpy(), np.full(LARGE, i, np.float32))
        np.testing.assert_array_equal(d.numpy(), np.full(LARGE, 2 * i, np.float32))


class FourByteAlignedServer(TestServer):
    """Answers every call with ``tensor``, written by the flatbuffers Python
    runtime (as the Go and Python servers write them: data aligned to 4
    bytes), with a leading rank chosen so the data is not 64-byte aligned."""

    def __init__(self, tensor: np.ndarray) -> None:
        super().__init__()
        payload = tensor.tobytes()
        for extra_rank in range(16):
            shape = [1] * extra_rank + list(tensor.shape)
            body = wire_builder.infer_response([wire_builder.RawTensor(type=10, shape=shape, data=payload)])
            if body.find(payload) % 64 != 0:
                self.body = body
                return
        raise AssertionError("no layout put the data off a 64-byte boundary")

    def respond(self, body: bytes) -> Reply:
        return Reply(body=self.body)


def test_answer_aligned_to_4_bytes_only_is_copied_exactly() -> None:
    values = np.arange(LARGE, dtype=np.float32) - 7.5
    with FourByteAlignedServer(values) as server:
        before = last_answer()
        y = remote_call(server.url, [tf.zeros([1])], output_dtypes=[tf.float32])[0]
        after = last_answer()
    assert not after.holds(y)
    assert (after.viewed, after.copied) == (before.viewed, before.copied + 1)
    np.testing.assert_array_equal(np.asarray(y).reshape(-1), values)


class _BlobsHandler(BaseHTTPRequestHandler):
    """A v2 server answering three FP32 blobs after a JSON header of 5 bytes
    modulo 64: the first blob lands aligned only because the client places
    the body so, the second follows a 64 KiB blob (aligned too), the third
    follows one of 64 KiB + 4 bytes (not aligned)."""

    protocol_version = "HTTP/1.1"
    blobs = [np.arange(n, dtype=np.float32) + k for k, n in
             enumerate([1 << 14, (1 << 14) + 1, 1 << 14])]

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        outputs = [{"name": f"y{i}", "datatype": "FP32", "shape": [b.size],
                    "parameters": {"binary_data_size": b.nbytes}} for i, b in enumerate(self.blobs)]
        header = json.dumps({"model_name": "blobs", "outputs": outputs}).encode()
        header += b" " * ((5 - len(header)) % 64)
        body = header + b"".join(b.tobytes() for b in self.blobs)
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Inference-Header-Content-Length", str(len(header)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def blobs_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _BlobsHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v2/models/blobs"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_v2_blobs_are_viewed_where_aligned_and_copied_where_not(blobs_url: str) -> None:
    before = last_answer()
    ys = remote_call(blobs_url, [tf.zeros([1])], output_dtypes=[tf.float32] * 3, input_names=["x"])
    after = last_answer()
    assert [after.holds(y) for y in ys] == [True, True, False]
    assert (after.viewed, after.copied) == (before.viewed + 2, before.copied + 1)
    for y, expected in zip(ys, _BlobsHandler.blobs):
        np.testing.assert_array_equal(y.numpy(), expected)


HUGE = (5 << 20) // 4  # float32 elements: 5 MiB, an answer whose block is kept for reuse


def test_a_kept_output_keeps_its_answer_memory_from_later_answers(served: str) -> None:
    # Large answers' blocks are reused once nothing views them (cc/core/block_pool.h):
    # never while an output still does.
    kept = remote_call(served, [tf.fill([HUGE], 1.0)], output_dtypes=[tf.float32])[0]
    kept_answer = last_answer()
    assert kept_answer.holds(kept)
    bodies = set()
    for i in range(3):
        y = remote_call(served, [tf.fill([HUGE], float(i + 2))], output_dtypes=[tf.float32])[0]
        answer = last_answer()
        assert answer.end <= kept_answer.begin or kept_answer.end <= answer.begin
        np.testing.assert_array_equal(y.numpy(), np.full(HUGE, i + 2, np.float32))
        bodies.add(answer.begin)
        del y  # its block goes back to the pool: the next answer may land there
    assert len(bodies) == 1, "each answer's block is freed with its output and serves the next answer"
    np.testing.assert_array_equal(kept.numpy(), np.full(HUGE, 1.0, np.float32))
