# SPDX-License-Identifier: Apache-2.0
"""TLS and mutual TLS on the serving port: real handshakes on 127.0.0.1 with
certificates the tests make, both protocols, keep-alive, a 77 MB call."""
from __future__ import annotations

import http.client
import json
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

import tf_graphpipe
from tf_graphpipe import _native
from tf_graphpipe.server import RunningServer

from support.certificates import Certificates, make_certificates

FLOAT32 = 10  # GraphPipe wire type of float32


def double(x: tf.TensorSpec([None, None], tf.float32)) -> tf.TensorSpec([None, None], tf.float32):
    return x * 2


def identity(x: tf.TensorSpec([None, 224, 224, 3], tf.float32)) -> tf.TensorSpec([None, 224, 224, 3], tf.float32):
    return x


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def tls_server(certs: Certificates) -> Iterator[RunningServer]:
    with tf_graphpipe.serve(double, name="double", tls_cert=certs.server_cert, tls_key=certs.server_key) as server:
        yield server


@pytest.fixture(scope="module")
def mtls_server(certs: Certificates) -> Iterator[RunningServer]:
    with tf_graphpipe.serve(double, name="double", tls_cert=certs.server_cert, tls_key=certs.server_key,
                            tls_client_ca=certs.ca) as server:
        yield server


def client_context(certs: Certificates, *, ca: Path | None = None, cert: Path | None = None,
                   key: Path | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca or certs.ca))
    if cert is not None:
        context.load_cert_chain(str(cert), str(key))
    return context


def connect(server: RunningServer, context: ssl.SSLContext, host: str = "127.0.0.1") -> http.client.HTTPSConnection:
    return http.client.HTTPSConnection(host, server.port, context=context, timeout=60)


def graphpipe_call(connection: http.client.HTTPConnection, x: np.ndarray) -> np.ndarray:
    body = bytes(_native.encode_infer_request([x], [FLOAT32], [], [], b""))
    connection.request("POST", "/", body=body)
    response = connection.getresponse()
    answer = response.read()
    assert response.status == 200, answer
    return _native.decode_infer_response(answer)[0]


def v2_call(connection: http.client.HTTPConnection, x: np.ndarray) -> dict:
    body = json.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": list(x.shape),
                                   "data": x.ravel().tolist()}]})
    connection.request("POST", "/v2/models/double/infer", body=body, headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    answer = response.read()
    assert response.status == 200, answer
    return json.loads(answer)


def test_url_says_https(tls_server: RunningServer) -> None:
    assert tls_server.url == f"https://127.0.0.1:{tls_server.port}"


def test_both_protocols_answer_over_tls_on_one_kept_alive_connection(
        tls_server: RunningServer, certs: Certificates) -> None:
    connection = connect(tls_server, client_context(certs))
    try:
        x = np.arange(8, dtype=np.float32).reshape(2, 4)
        for _ in range(3):
            np.testing.assert_array_equal(graphpipe_call(connection, x), x * 2)
            assert v2_call(connection, x)["outputs"][0]["data"] == (x * 2).ravel().tolist()
        socket_before = connection.sock
        connection.request("GET", "/v2/health/ready")
        response = connection.getresponse()
        assert (response.status, json.loads(response.read())) == (200, {"ready": True})
        assert connection.sock is socket_before  # keep-alive: the same TLS session all along
        assert connection.sock.version() in ("TLSv1.2", "TLSv1.3")
        assert connection.sock.selected_alpn_protocol() in (None, "http/1.1")
    finally:
        connection.close()


def test_host_name_localhost_verifies_too(tls_server: RunningServer, certs: Certificates) -> None:
    connection = connect(tls_server, client_context(certs), host="localhost")
    try:
        x = np.ones((1, 3), np.float32)
        np.testing.assert_array_equal(graphpipe_call(connection, x), x * 2)
    finally:
        connection.close()


def test_client_not_trusting_the_servers_ca_refuses_it(tls_server: RunningServer, certs: Certificates) -> None:
    connection = connect(tls_server, client_context(certs, ca=certs.other_ca))
    with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
        connection.request("GET", "/control/is_alive")
    connection.close()


def test_plain_http_to_a_tls_port_gets_no_answer_and_the_server_serves_on(
        tls_server: RunningServer, certs: Certificates) -> None:
    with socket.create_connection(("127.0.0.1", tls_server.port), timeout=10) as sock:
        sock.sendall(b"GET /control/is_alive HTTP/1.1\r\nHost: x\r\n\r\n")
        received = b""
        while chunk := sock.recv(4096):  # the server closes: a bad handshake
            received += chunk
        assert b"HTTP/1.1 200" not in received
    connection = connect(tls_server, client_context(certs))
    try:
        np.testing.assert_array_equal(graphpipe_call(connection, np.ones((1, 2), np.float32)), [[2, 2]])
    finally:
        connection.close()


def test_mutual_tls_accepts_a_client_certificate_from_its_ca(mtls_server: RunningServer, certs: Certificates) -> None:
    context = client_context(certs, cert=certs.client_cert, key=certs.client_key)
    connection = connect(mtls_server, context)
    try:
        x = np.ones((2, 2), np.float32)
        np.testing.assert_array_equal(graphpipe_call(connection, x), x * 2)
        assert v2_call(connection, x)["model_name"] == "double"
    finally:
        connection.close()


@pytest.mark.parametrize("which", ["none", "other CA"])
def test_mutual_tls_refuses_clients_without_a_certificate_from_its_ca(
        mtls_server: RunningServer, certs: Certificates, which: str) -> None:
    if which == "none":
        context = client_context(certs)
    else:
        context = client_context(certs, cert=certs.other_client_cert, key=certs.other_client_key)
    connection = connect(mtls_server, context)
    # TLS 1.3 finishes the client's side of the handshake before the server
    # checks the certificate: the refusal arrives as an alert on first read.
    with pytest.raises((ssl.SSLError, ConnectionError)):
        connection.request("GET", "/control/is_alive")
        connection.getresponse().read()
    connection.close()


@pytest.mark.slow
def test_77_mb_call_over_tls_is_byte_exact(certs: Certificates) -> None:
    rng = np.random.default_rng(7)
    x = rng.standard_normal((128, 224, 224, 3), dtype=np.float32)  # 77 MB each way
    with tf_graphpipe.serve(identity, tls_cert=certs.server_cert, tls_key=certs.server_key) as server:
        connection = connect(server, client_context(certs))
        try:
            y = graphpipe_call(connection, x)
            assert y.shape == x.shape and y.tobytes() == x.tobytes()
        finally:
            connection.close()


def test_tls_options_that_cannot_work_are_refused_at_start(certs: Certificates, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="need tls_cert"):
        tf_graphpipe.serve(double, tls_key=certs.server_key)
    with pytest.raises(ValueError, match="not usable"):
        tf_graphpipe.serve(double, tls_cert=certs.server_cert, tls_key=certs.client_key)
    with pytest.raises(FileNotFoundError, match="TLS certificate file not found"):
        tf_graphpipe.serve(double, tls_cert=tmp_path / "missing.pem", tls_key=certs.server_key)
