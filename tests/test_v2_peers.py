# SPDX-License-Identifier: Apache-2.0
"""The project's Client, remote_call and GraphPipeLayer against real Open
Inference Protocol (v2) servers: Triton (tritonserver from nvidia-pytriton
0.7.0) and kserve 0.21.0's ModelServer, each in its own virtualenv, serving
the models of tests/v2_peers/ on 127.0.0.1. Binary and JSON modes, several
inputs and outputs, BYTES with NUL, FP16, BOOL, exact 64-bit integers,
non-finite floats, and the peers' error answers. BF16 is in test_v2_codec.py:
neither peer has it (SPEC_V2 section 2)."""
from __future__ import annotations

import contextlib
import io

import keras
import ml_dtypes
import numpy as np
import pytest
import tensorflow as tf

import tf_graphpipe
from tf_graphpipe import cli
from tf_graphpipe.errors import RemoteError

from support.v2_peer_servers import PeerError, start_kserve, start_triton

pytestmark = pytest.mark.slow

X = np.array([[1.5, -2.0, 0.0], [4.0, 0.25, -1.0]], np.float32)
Y = np.array([[1, 2, 3], [-4, 5, 2**40]], np.int64)
SUM, NEG, POSITIVE = X.astype(np.float64) + Y, -Y, X > 0


@pytest.fixture(scope="session")
def triton():
    try:
        server = start_triton()
    except PeerError as exc:
        pytest.fail(str(exc))
    with server:
        yield server


@pytest.fixture(scope="session")
def kserve():
    try:
        server = start_kserve()
    except PeerError as exc:
        pytest.fail(str(exc))
    with server:
        yield server


@pytest.fixture(params=["triton", "kserve"])
def peer(request):
    return request.getfixturevalue(request.param)


binary_modes = pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])


def test_metadata_has_the_graphpipe_shape(peer) -> None:
    meta = tf_graphpipe.Client(peer.url("arith")).metadata()
    assert set(meta) == {"name", "version", "server", "description", "inputs", "outputs"}
    assert meta["name"] == "arith"
    assert meta["version"] == ("1" if peer.name == "triton" else "")
    assert [(e["name"], e["dtype"], e["shape"]) for e in meta["inputs"]] == [
        ("x", np.dtype(np.float32), [-1, -1]), ("y", np.dtype(np.int64), [-1, -1])]
    assert [(e["name"], e["dtype"]) for e in meta["outputs"]] == [
        ("sum", np.dtype(np.float64)), ("neg", np.dtype(np.int64)), ("positive", np.dtype(bool))]
    assert tf_graphpipe.Client(peer.url("echo_bytes")).metadata()["inputs"][0]["dtype"] == np.dtype(object)


@binary_modes
def test_several_inputs_and_outputs(peer, binary) -> None:
    with tf_graphpipe.Client(peer.url("arith"), binary=binary) as client:
        s, n, p = client.infer([X, Y])  # input names from the model's metadata
        np.testing.assert_array_equal(s, SUM)
        np.testing.assert_array_equal(n, NEG)
        assert p.dtype == bool and (p == POSITIVE).all()
        # named inputs in another order; a subset of outputs, in the order asked
        p, s = client.infer({"y": Y, "x": X}, output_names=["positive", "sum"])
        assert (p == POSITIVE).all() and (s == SUM).all()
        assert (client.infer([Y, X], input_names=["y", "x"], output_names=["neg"]) == NEG).all()


@binary_modes
def test_bytes_carry_nul_and_any_byte(peer, binary) -> None:
    items = [b"a\x00b", b"", "é".encode(), b"\x00" * 5]
    if peer.name == "triton" and binary:
        items.append(b"\xff\xfe")  # kserve decodes BYTES as UTF-8 text, JSON carries text only
    s = np.array(items, object)
    same, lengths = tf_graphpipe.Client(peer.url("echo_bytes"), binary=binary).infer(s)
    assert same.tolist() == items and lengths.tolist() == [len(i) for i in items]


def test_float16_and_bool_travel_binary(peer) -> None:
    h = np.array([0.5, -1.5, 40000], np.float16)  # 80000: past float16, inf
    flags = np.array([True, False, True])
    doubled, negated = tf_graphpipe.Client(peer.url("halves")).infer([h, flags])
    assert doubled.dtype == np.float16 and doubled.tolist() == [1.0, -3.0, np.inf]
    assert negated.tolist() == [False, True, False]


def test_json_mode_sends_float16_binary_and_the_peer_refuses_float16_json_output(peer) -> None:
    # FP16 has no JSON form: our JSON mode still sends it as a blob, but asks
    # outputs as JSON, which both peers refuse for FP16 (SPEC_V2 section 3).
    client = tf_graphpipe.Client(peer.url("halves"), binary=False)
    with pytest.raises(RemoteError, match="FP16 data via JSON is not supported") as raised:
        client.infer([np.array([1.0], np.float16), np.array([True])])
    assert raised.value.status == 400


@binary_modes
def test_64_bit_integers_exact_and_nonfinite_floats(peer, binary) -> None:
    u = np.array([2**64 - 1, 0, 2**53 + 1], np.uint64)
    i = np.array([-(2**63), 2**63 - 1, -(2**53) - 1], np.int64)
    f = np.array([np.nan, np.inf, -np.inf, 0.1], np.float32)
    u_out, i_out, f_out = tf_graphpipe.Client(peer.url("ident"), binary=binary).infer([u, i, f])
    assert u_out.tolist() == u.tolist() and i_out.tolist() == i.tolist()
    assert f_out[3] == np.float32(0.1) and np.isnan(f_out[0])
    if peer.name == "kserve" and not binary:
        assert np.isnan(f_out[1:3]).all()  # kserve writes every non-finite float as null
    else:
        assert f_out[1] == np.inf and f_out[2] == -np.inf


@binary_modes
def test_remote_call_in_a_tf_function_fans_out(peer, binary) -> None:
    url = peer.url("arith")

    @tf.function
    def twice(x, y):
        kwargs = dict(output_dtypes=[tf.float64, tf.int64, tf.bool], output_shapes=[[None, 3]] * 3, binary=binary)
        first = tf_graphpipe.remote_call(url, [x, y], **kwargs)  # input names from metadata
        second = tf_graphpipe.remote_call(url, [x * 2, y], **kwargs)
        return first[0] + second[0], first[2]

    total, positive = twice(tf.constant(X), tf.constant(Y))
    np.testing.assert_allclose(total.numpy(), X * 3.0 + 2 * Y)
    assert (positive.numpy() == POSITIVE).all()


def test_remote_call_strings_and_named_outputs(peer) -> None:
    items = [b"a\x00b", b"xyz"]
    same, lengths = tf_graphpipe.remote_call(
        peer.url("echo_bytes"), [tf.constant(items)], output_dtypes=[tf.string, tf.int32],
        input_names=["s"], output_names=["same", "lengths"])
    assert same.numpy().tolist() == items and lengths.numpy().tolist() == [3, 3]


def test_layer_infers_its_outputs_from_metadata(peer) -> None:
    layer = tf_graphpipe.GraphPipeLayer(peer.url("arith"))
    x = keras.Input((3,), dtype="float32")
    y = keras.Input((3,), dtype="int64")
    outputs = layer([x, y])
    assert [o.dtype for o in outputs] == ["float64", "int64", "bool"]
    assert [tuple(o.shape) for o in outputs] == [(None, None)] * 3
    model = keras.Model([x, y], outputs)
    s, n, p = model.predict([X, Y], verbose=0)
    np.testing.assert_array_equal(s, SUM)
    assert (n == NEG).all() and (p == POSITIVE).all()
    assert layer.get_config()["protocol"] is None  # decided from the URL on each call


def test_unknown_model_is_404_and_says_so(peer) -> None:
    url = peer.url("no_such_model")
    for call in (lambda c: c.metadata(), lambda c: c.infer(np.ones(2, np.float32), input_names=["x"])):
        with pytest.raises(RemoteError, match=r"HTTP 404, no such model") as raised:
            call(tf_graphpipe.Client(url))
        assert raised.value.status == 404
    with pytest.raises(tf.errors.InvalidArgumentError, match="HTTP 404, no such model"):
        tf_graphpipe.remote_call(url, [tf.ones(2)], output_dtypes=[tf.float32], input_names=["x"])
    with pytest.raises(tf.errors.InvalidArgumentError, match="reading the input names.*HTTP 404"):
        tf_graphpipe.remote_call(url, [tf.ones(2)], output_dtypes=[tf.float32])
    with pytest.raises(ValueError, match="could not read the metadata"):
        tf_graphpipe.GraphPipeLayer(url)(tf.ones((1, 2)))


def _bad_input(peer):
    # Triton checks datatypes (400); kserve does not, but refuses BF16, which
    # it has no mapping for (400 "invalid datatype").
    if peer.name == "triton":
        return [X, X.copy()], "data-type is 'FP32', but model 'arith' expects 'INT64'"
    return [X, np.ones((2, 3), ml_dtypes.bfloat16)], "invalid datatype"


def test_bad_input_is_400_with_the_peers_text(peer) -> None:
    inputs, text = _bad_input(peer)
    with pytest.raises(RemoteError, match=text) as raised:
        tf_graphpipe.Client(peer.url("arith")).infer(inputs)
    assert raised.value.status == 400
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"HTTP 400.*" + text):
        tf_graphpipe.remote_call(peer.url("arith"), inputs, output_dtypes=[tf.float64, tf.int64, tf.bool])


def test_model_failure_is_500_and_the_next_call_works(peer) -> None:
    # kserve closes the connection after a 500 without saying so (SPEC_V2
    # section 6): the next call on the pooled connection must still succeed.
    client = tf_graphpipe.Client(peer.url("fail"), retries=0)
    good = tf_graphpipe.Client(peer.url("arith"), retries=0)
    for _ in range(3):
        with pytest.raises(RemoteError, match="the model failed on purpose") as raised:
            client.infer(np.ones(2, np.float32))
        assert raised.value.status == 500
        assert (good.infer([X, Y])[1] == NEG).all()
    with pytest.raises(tf.errors.InternalError, match="the model failed on purpose"):
        tf_graphpipe.remote_call(peer.url("fail"), [tf.ones(2)], output_dtypes=[tf.float32])


def test_wrong_input_count_names_the_models_inputs(peer) -> None:
    # One message from the call plan both share.
    with pytest.raises(ValueError, match=r"model 'arith' at \S+ has 2 inputs \(x, y\), the call gives 1"):
        tf_graphpipe.Client(peer.url("arith")).infer(X)
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"model 'arith' at \S+ has 2 inputs \(x, y\), the call gives 1"):
        tf_graphpipe.remote_call(peer.url("arith"), [X], output_dtypes=[tf.float64])


def test_cli_info_and_infer_speak_v2(peer, tmp_path) -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.main(["info", peer.url("arith")]) == 0
    assert "x: float32 [?, ?]" in out.getvalue() and "positive: bool [?, ?]" in out.getvalue()
    np.save(tmp_path / "x.npy", X)
    np.save(tmp_path / "y.npy", Y)
    assert cli.main(["infer", peer.url("arith"), "--input", str(tmp_path / "x.npy"),
                     "--input", str(tmp_path / "y.npy"), "--output", str(tmp_path / "out.npz")]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "out.npz")["output0"], SUM)
