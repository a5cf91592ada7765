# SPDX-License-Identifier: Apache-2.0
"""Compatibility with the reference GraphPipe client (``graphpipe==1.0.4``, in
its own venv, through its public ``graphpipe.remote`` functions only), and the
reference decoder reading our answers to the golden request vectors."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import tensorflow as tf

import tf_graphpipe

from support import peer_venvs, servers

ECHO_ALL_DTYPES = r"""
import sys
import numpy as np
from graphpipe import remote

url = sys.argv[1]
inputs = [np.array([0, 255], np.uint8), np.array([-128, 127], np.int8),
          np.array([0, 65535], np.uint16), np.array([-32768, 32767], np.int16),
          np.array([0, 2**32 - 1], np.uint32), np.array([-2**31, 2**31 - 1], np.int32),
          np.array([0, 2**64 - 1], np.uint64), np.array([-2**63, 2**63 - 1], np.int64),
          np.array([1.5, -2.0], np.float16), np.array([[1.25, -3.5]], np.float32),
          np.array([[1e300], [-1e-300]], np.float64),
          np.array([b"a\x00b", b"\xff\xfe", b"plain", b"\x00lead"], dtype=object),
          np.array(7, np.int64),                      # rank 0
          np.zeros((0, 3), np.float32),               # empty
          np.zeros((2, 0), np.int32)]                 # empty in the last dim
outputs = remote.execute_multi(url, inputs, None, None)
assert len(outputs) == len(inputs), len(outputs)
for sent, got in zip(inputs, outputs):
    assert got.shape == sent.shape, (sent.shape, got.shape)
    if sent.dtype == object:
        assert [bytes(s) for s in got.ravel()] == list(sent.ravel()), got
    else:
        assert got.dtype == sent.dtype, (sent.dtype, got.dtype)
        assert np.array_equal(got, sent), (sent, got)
one = remote.execute(url, np.arange(6, dtype=np.float32).reshape(2, 3))
assert np.array_equal(one, np.arange(6, dtype=np.float32).reshape(2, 3))
print("ok")
"""

NAMES_AND_CONFIG = r"""
import sys
import numpy as np
from graphpipe import remote

url = sys.argv[1]
x = np.array([[1.0, 2.0]], np.float32)
value, config = remote.execute_multi(url, [x], ["x"], ["output0", "output1"], config="cfg \u00e9")
assert np.array_equal(value, x)
assert config.shape == () and bytes(config) == "cfg \u00e9".encode(), config
assert remote.execute(url, x, input_name="x", output_name="output1") == b""
print("ok")
"""

METADATA = r"""
import sys
from graphpipe import remote
from graphpipe.graphpipefb.Type import Type

url = sys.argv[1]
m = remote.metadata(url)
assert m.Name() == b"annotated", m.Name()
assert m.Server().startswith(b"tf-graphpipe/"), m.Server()
assert remote.get_input_names(url) == ["x", "label"]
assert remote.get_output_names(url) == ["scaled", "label"]
assert remote.get_input_shapes(url) == [[None, 2], [None]]
assert [m.Inputs(i).Type() for i in range(2)] == [Type.Float32, Type.String]
assert [m.Outputs(i).Type() for i in range(2)] == [Type.Float32, Type.String]
print("ok")
"""

DECODE_ANSWERS = r"""
import sys
from pathlib import Path
import numpy as np
from graphpipe import convert

for request_path in sys.argv[1:]:
    request_path = Path(request_path)
    answer = (request_path.parent / (request_path.stem + ".answer")).read_bytes()
    if request_path.name == "metadata_request.bin":
        m = convert.deserialize_metadata_response(answer)
        assert m.Name() == b"echo" and m.InputsLength() == 0, m.Name()
        continue
    request = convert.deserialize_request(request_path.read_bytes())
    outputs, errors = convert.deserialize_infer_response(answer)
    assert errors == [], errors
    assert len(outputs) == len(request.input_tensors), request_path.name
    for sent, got in zip(request.input_tensors, outputs):
        assert got.shape == sent.shape and got.dtype == sent.dtype, (request_path.name, sent, got)
        assert np.array_equal(got, sent), (request_path.name, sent, got)
print("ok")
"""


def text_to_out(text: tf.TensorSpec([None, None], tf.string)) -> {"out": tf.TensorSpec([None, None], tf.string)}:
    return {"out": text}


@pytest.fixture(scope="module")
def echo_url() -> Iterator[str]:
    with tf_graphpipe.serve(servers.echo, name="echo") as server:
        yield server.url


def test_reference_client_round_trips_every_wire_dtype(echo_url: str, reference_python: Path) -> None:
    assert peer_venvs.run_reference(ECHO_ALL_DTYPES, echo_url).stdout.strip() == "ok"


def test_reference_client_input_and_output_names_and_config(reference_python: Path) -> None:
    with tf_graphpipe.serve(servers.config_echo, input_specs=["x:float32:-1,2"]) as server:
        assert peer_venvs.run_reference(NAMES_AND_CONFIG, server.url).stdout.strip() == "ok"


def test_reference_client_reads_metadata(reference_python: Path) -> None:
    from test_server_models import annotated

    with tf_graphpipe.serve(annotated) as server:
        assert peer_venvs.run_reference(METADATA, server.url).stdout.strip() == "ok"


def test_reference_decoder_reads_answers_to_golden_requests(
    echo_url: str, vectors: Path, reference_python: Path, tmp_path: Path
) -> None:
    requests = sorted(vectors.glob("infer_request_*.bin")) + [vectors / "metadata_request.bin"]
    assert len(requests) >= 5
    with tf_graphpipe.serve(text_to_out) as strings_server:
        for path in requests:
            url = strings_server.url if "strings" in path.name else echo_url
            status, headers, answer = servers.request(url, "POST", "/", path.read_bytes())
            assert status == 200, (path.name, answer)
            assert headers["content-type"] == "application/octet-stream"
            (tmp_path / path.name).write_bytes(path.read_bytes())
            (tmp_path / (path.stem + ".answer")).write_bytes(answer)
    copies = [str(tmp_path / path.name) for path in requests]
    assert peer_venvs.run_reference(DECODE_ANSWERS, *copies).stdout.strip() == "ok"
