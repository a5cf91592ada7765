# SPDX-License-Identifier: Apache-2.0
"""The v2 side of every way to serve: the ``tf-graphpipe serve`` command (the
model named by ``--name``), the ASGI app under uvicorn, and a TensorFlow model
whose signature declares the v2-only dtypes (BOOL, BF16). Helpers and the
``arith`` model are shared with test_v2_server.py."""
from __future__ import annotations

import json
import threading
import time

import ml_dtypes
import numpy as np
import pytest
import tensorflow as tf
import uvicorn
from test_v2_server import INFER, X, Y, binary_body

import tf_graphpipe
from tf_graphpipe import Client, RemoteError
from tf_graphpipe.server import load_model, parse_spec
from tf_graphpipe.server.app import GraphPipeApp

from support import servers
from support.v2_server_models import ARITH_INPUTS, ARITH_OUTPUTS, arith


def test_the_serve_command_answers_v2_for_the_named_model() -> None:
    specs = [f"--input-spec={s}" for s in ARITH_INPUTS] + [f"--output-spec={s}" for s in ARITH_OUTPUTS]
    cli = servers.CliServer("support.v2_server_models:arith", "--port", "0", "--name", "calc", "--log-level", "warning", *specs)
    try:
        url = cli.wait_url()
        s, n, p = Client(url + "/v2/models/calc").infer([X, Y])
        np.testing.assert_array_equal(n, -Y)
        assert servers.request(url, "GET", "/v2/models/arith")[0] == 404
    finally:
        assert cli.stop() == 0


def test_the_asgi_app_answers_v2_too(port) -> None:
    model = load_model(arith, name="arith", input_specs=[parse_spec(s) for s in ARITH_INPUTS],
                       output_specs=[parse_spec(s) for s in ARITH_OUTPUTS])
    app = GraphPipeApp.for_model(model, max_request_bytes=1 << 20)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        url = f"http://127.0.0.1:{port}"
        for binary in (True, False):
            s, n, p = Client(url + "/v2/models/arith", binary=binary).infer([X, Y])
            np.testing.assert_array_equal(n, -Y)
            assert p.dtype == bool and (p == (X > 0)).all()
        assert Client(url + "/v2/models/arith").metadata()["inputs"][0]["name"] == "x"
        status, _, body = servers.request(url, "GET", "/v2/models/other")
        assert status == 404 and "unknown model" in json.loads(body)["error"]
        body, headers = binary_body([("x", "FP32", X)])
        status, _, answer = servers.request(url, "POST", INFER, body, headers)
        assert status == 400 and "takes 2 inputs" in json.loads(answer)["error"]
        # Only the headers: the 413 must come from Content-Length alone (and a
        # body the server never reads would race its close with our send).
        connection = servers.connect(url)
        try:
            connection.putrequest("POST", INFER)
            connection.putheader("Content-Length", str(2 << 20))
            connection.endheaders()
            assert connection.getresponse().status == 413
        finally:
            connection.close()
        np.testing.assert_array_equal(Client(url).infer([X, Y], output_names=["neg"]), -Y)  # GraphPipe too
    finally:
        server.should_exit = True
        thread.join(30)
        app.close()


def test_a_tensorflow_model_with_v2_only_dtypes_declares_and_checks_them() -> None:
    @tf.function(input_signature=[tf.TensorSpec([None], tf.bool), tf.TensorSpec([None], tf.bfloat16)])
    def select(mask: tf.Tensor, values: tf.Tensor) -> dict[str, tf.Tensor]:
        kept = tf.where(mask, values, tf.zeros_like(values))
        return {"kept": kept, "count": tf.reduce_sum(tf.cast(mask, tf.int32))}

    with tf_graphpipe.serve(select, name="select") as running:
        status, _, body = servers.request(running.url, "GET", "/v2/models/select")
        meta = json.loads(body)
        assert [(t["name"], t["datatype"]) for t in meta["inputs"]] == [("mask", "BOOL"), ("values", "BF16")]
        assert [(t["name"], t["datatype"]) for t in meta["outputs"]] == [("count", "INT32"), ("kept", "BF16")]
        client = Client(running.url + "/v2/models/select")
        count, kept = client.infer([np.array([True, False, True]), np.array([1.5, 2, 3], ml_dtypes.bfloat16)])
        assert count == 2 and kept.dtype == ml_dtypes.bfloat16 and kept.tolist() == [1.5, 0, 3]
        with pytest.raises(RemoteError, match="expected dtype bool, got uint8"):
            client.infer([np.array([1, 0], np.uint8), np.array([1, 2], ml_dtypes.bfloat16)])
        # GraphPipe metadata cannot name bool or bfloat16: undeclared there
        assert Client(running.url).metadata()["inputs"][0]["dtype"] is None
