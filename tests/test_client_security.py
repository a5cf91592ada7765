# SPDX-License-Identifier: Apache-2.0
"""The calling side of TLS and tokens: ``Client``, ``remote_call`` and
``GraphPipeLayer`` over ``https://`` (verified, mutual TLS), bearer tokens
named by variable or file and read at each call, non-secret headers, and an
export that holds the token's name, never the token."""
from __future__ import annotations

import http.server
import socket
import ssl
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_graphpipe
from tf_graphpipe import Client, RemoteError, ServerUnavailable, _native
from tf_graphpipe.server import RunningServer

from support.certificates import Certificates, make_certificates

TOKEN = "tok-5b0e1f7c2a9d4e63b8a1"
ROTATED = "tok-rotated-0c4f9e2d7b15"
TOKEN_ENV = "TF_GRAPHPIPE_TEST_TOKEN"


def double(x: tf.TensorSpec([None, 2], tf.float32)) -> tf.TensorSpec([None, 2], tf.float32):
    return x * 2


def identity(x: tf.TensorSpec([None, 224, 224, 3], tf.float32)) -> tf.TensorSpec([None, 224, 224, 3], tf.float32):
    return x


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def token_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tokens") / "tokens"
    path.write_text(f"{TOKEN}\n{ROTATED}\n")
    return path


@pytest.fixture(scope="module")
def tls_server(certs: Certificates, token_file: Path) -> Iterator[RunningServer]:
    with tf_graphpipe.serve(double, name="double", tls_cert=certs.server_cert, tls_key=certs.server_key,
                            tls_client_ca=certs.ca, auth_token_file=token_file) as server:
        yield server


@pytest.fixture(scope="module")
def token_server(token_file: Path) -> Iterator[RunningServer]:
    with tf_graphpipe.serve(double, name="double", auth_token_file=token_file) as server:
        yield server


@pytest.fixture
def token_env(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    return TOKEN_ENV


def mtls(certs: Certificates, **extra: object) -> dict[str, object]:
    return {"ca_file": certs.ca, "client_cert": certs.client_cert, "client_key": certs.client_key, **extra}


# ---- Client over TLS -------------------------------------------------------------------


def test_client_calls_an_https_server_verified_against_ca_file(tls_server: RunningServer, certs: Certificates,
                                                               token_env: str) -> None:
    for url in (tls_server.url, tls_server.url + "/v2/models/double"):
        client = Client(url, auth_token_env=token_env, **mtls(certs))
        np.testing.assert_array_equal(client.infer(np.ones((1, 2), np.float32)), [[2, 2]])
        assert client.metadata()["name"] == "double"


def test_client_refuses_a_server_its_ca_file_did_not_sign(tls_server: RunningServer, certs: Certificates,
                                                          token_env: str) -> None:
    client = Client(tls_server.url, retries=0, auth_token_env=token_env, **mtls(certs, ca_file=certs.other_ca))
    with pytest.raises(ServerUnavailable, match="(?i)certificate"):
        client.infer(np.ones((1, 2), np.float32))


@pytest.fixture
def counting_tls_listener(certs: Certificates) -> Iterator[tuple[str, list[int]]]:
    """(url, accepted): a TLS server showing a certificate ``other_ca``
    signed, that counts the connections it accepts and answers none (the
    client gives up at the handshake anyway)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certs.other_server_cert, certs.other_server_key)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    accepted: list[int] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            accepted.append(1)
            conn.settimeout(5)
            try:
                with context.wrap_socket(conn, server_side=True):
                    pass
            except (ssl.SSLError, OSError):  # the client's "unknown CA" alert, or its close
                conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"https://localhost:{listener.getsockname()[1]}", accepted
    finally:
        stop.set()
        thread.join(10)
        listener.close()


def test_an_untrusted_certificate_is_not_retried(counting_tls_listener: tuple[str, list[int]],
                                                 certs: Certificates) -> None:
    """The same server shows the same certificate on a retry: one
    connection, not one per retry, and the error says why."""
    url, accepted = counting_tls_listener
    client = Client(url, retries=3, timeout=10, ca_file=certs.ca)
    with pytest.raises(ServerUnavailable, match="certificate is not trusted"):
        client.infer(np.ones((1, 2), np.float32))
    assert len(accepted) == 1
    with pytest.raises(tf.errors.UnavailableError, match="certificate is not trusted"):
        tf_graphpipe.remote_call(url, [tf.ones((1, 2))], output_dtypes=[tf.float32], retries=3, timeout=10,
                                 ca_file=str(certs.ca))
    assert len(accepted) == 2


def test_a_replica_list_moves_past_an_untrusted_certificate(counting_tls_listener: tuple[str, list[int]],
                                                             tls_server: RunningServer, certs: Certificates,
                                                             token_env: str) -> None:
    untrusted, accepted = counting_tls_listener
    client = Client([untrusted, tls_server.url], retries=0, timeout=10, auth_token_env=token_env, **mtls(certs))
    for _ in range(4):  # round robin: the untrusted one comes up first at least once
        np.testing.assert_array_equal(client.infer(np.ones((1, 2), np.float32)), [[2, 2]])
    assert len(accepted) >= 1


def test_client_refuses_an_https_server_unknown_to_the_system_store(tls_server: RunningServer,
                                                                    certs: Certificates, token_env: str) -> None:
    client = Client(tls_server.url, retries=0, auth_token_env=token_env, client_cert=certs.client_cert,
                    client_key=certs.client_key)
    with pytest.raises(ServerUnavailable, match="(?i)certificate"):
        client.infer(np.ones((1, 2), np.float32))


def test_client_without_a_client_certificate_is_refused_by_mutual_tls(tls_server: RunningServer,
                                                                      certs: Certificates, token_env: str) -> None:
    client = Client(tls_server.url, retries=0, ca_file=certs.ca, auth_token_env=token_env)
    with pytest.raises(ServerUnavailable):
        client.infer(np.ones((1, 2), np.float32))
    other = Client(tls_server.url, retries=0, auth_token_env=token_env,
                   **mtls(certs, client_cert=certs.other_client_cert, client_key=certs.other_client_key))
    with pytest.raises(ServerUnavailable):
        other.infer(np.ones((1, 2), np.float32))


@pytest.mark.slow
def test_77_mb_client_call_over_tls_is_byte_exact(certs: Certificates) -> None:
    x = np.random.default_rng(3).standard_normal((128, 224, 224, 3), dtype=np.float32)
    with tf_graphpipe.serve(identity, tls_cert=certs.server_cert, tls_key=certs.server_key) as server:
        for url in (server.url, server.url + "/v2/models/identity"):
            y = Client(url, timeout=300, ca_file=certs.ca).infer(x)
            assert y.tobytes() == x.tobytes(), url


def test_client_tls_options_that_cannot_work_are_refused_before_any_call(certs: Certificates) -> None:
    with pytest.raises(ValueError, match="client_key needs client_cert"):
        Client("https://127.0.0.1:1", client_key=certs.client_key)
    with pytest.raises(FileNotFoundError, match="ca_file"):
        Client("https://127.0.0.1:1", ca_file=certs.directory / "missing.pem")


# ---- tokens ------------------------------------------------------------------------------


def test_token_from_an_environment_variable_is_read_at_each_call(token_server: RunningServer,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    client = Client(token_server.url, retries=0, auth_token_env=TOKEN_ENV)
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    np.testing.assert_array_equal(client.infer(np.ones((1, 2), np.float32)), [[2, 2]])
    monkeypatch.setenv(TOKEN_ENV, "not-a-token")
    with pytest.raises(RemoteError) as refused:
        client.infer(np.ones((1, 2), np.float32))
    assert refused.value.status == 401 and "not accepted" in refused.value.message
    monkeypatch.delenv(TOKEN_ENV)
    with pytest.raises(ValueError, match=f"environment variable '{TOKEN_ENV}' is not set"):
        client.infer(np.ones((1, 2), np.float32))


def test_token_from_a_file_follows_the_file(token_server: RunningServer, tmp_path: Path) -> None:
    path = tmp_path / "client-token"
    path.write_text(TOKEN + "\n")
    client = Client(token_server.url + "/v2/models/double", retries=0, auth_token_file=path)
    np.testing.assert_array_equal(client.infer(np.ones((1, 2), np.float32)), [[2, 2]])
    path.write_text(ROTATED + "\n")
    np.testing.assert_array_equal(client.infer(np.ones((1, 2), np.float32)), [[2, 2]])
    path.write_text("wrong\n")
    with pytest.raises(RemoteError) as refused:
        client.infer(np.ones((1, 2), np.float32))
    assert refused.value.status == 401


def test_a_client_without_a_token_gets_401_with_the_servers_message(token_server: RunningServer) -> None:
    with pytest.raises(RemoteError) as refused:
        Client(token_server.url, retries=0).infer(np.ones((1, 2), np.float32))
    assert refused.value.status == 401 and "requires a bearer token" in refused.value.message


def test_credentials_are_refused_in_headers(token_server: RunningServer) -> None:
    for name in ("Authorization", "cookie", "Proxy-Authorization"):
        with pytest.raises(ValueError, match="auth_token_env= or auth_token_file="):
            Client(token_server.url, headers={name: "Bearer " + TOKEN})
    with pytest.raises(ValueError, match="CR, LF or NUL"):
        Client(token_server.url, headers={"X-Tenant": "a\r\nInjected: 1"})


class _HeaderRecorder(http.server.BaseHTTPRequestHandler):
    """Answers every POST with the echo of its GraphPipe body; keeps the heads."""

    protocol_version = "HTTP/1.1"
    seen: list[dict[str, str]] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _HeaderRecorder.seen.append({k.lower(): v for k, v in self.headers.items()})
        _, _, _, inputs, _ = _native.decode_request(body)
        answer = bytes(_native.encode_infer_response([np.array(a) for a in inputs], [10] * len(inputs)))
        self.send_response(200)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture
def recorder() -> Iterator[str]:
    _HeaderRecorder.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _HeaderRecorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_headers_token_and_traceparent_reach_the_server(recorder: str, token_env: str) -> None:
    client = Client(recorder, auth_token_env=token_env, headers={"X-Tenant": "blue"})
    client.infer(np.ones((1, 2), np.float32))
    with tf_graphpipe.tracing.use("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"):
        client.infer(np.ones((1, 2), np.float32))
    first, second = _HeaderRecorder.seen
    assert first["x-tenant"] == "blue" and first["authorization"] == f"Bearer {TOKEN}"
    assert tf_graphpipe.tracing.parse(first["traceparent"]) is not None
    assert second["traceparent"] == "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_the_op_sends_headers_token_and_a_fresh_traceparent_on_every_call(recorder: str, token_env: str) -> None:
    @tf.function
    def call(x: tf.Tensor) -> tf.Tensor:
        return tf_graphpipe.remote_call(recorder, [x], output_dtypes=[tf.float32], auth_token_env=token_env,
                                        headers={"X-Tenant": "green"})[0]

    for _ in range(2):
        np.testing.assert_array_equal(call(tf.ones((1, 2))), [[1, 1]])
    first, second = _HeaderRecorder.seen
    assert first["authorization"] == f"Bearer {TOKEN}" and first["x-tenant"] == "green"
    traces = [tf_graphpipe.tracing.parse(seen["traceparent"]) for seen in (first, second)]
    assert all(traces) and traces[0].trace_id != traces[1].trace_id


# ---- the op and the layer ----------------------------------------------------------------


def test_remote_call_over_mutual_tls_with_a_token(tls_server: RunningServer, certs: Certificates,
                                                  token_env: str) -> None:
    @tf.function
    def call(x: tf.Tensor) -> tf.Tensor:
        return tf_graphpipe.remote_call(tls_server.url, [x], output_dtypes=[tf.float32],
                                        auth_token_env=token_env, **mtls(certs))[0]

    np.testing.assert_array_equal(call(tf.ones((2, 2))), [[2, 2], [2, 2]])


def test_remote_call_with_a_missing_or_wrong_token_fails_with_a_clear_message(
        token_server: RunningServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def call(**token: str) -> None:
        tf_graphpipe.remote_call(token_server.url, [tf.ones((1, 2))], output_dtypes=[tf.float32], **token)

    with pytest.raises(tf.errors.InvalidArgumentError, match="auth_token_file .* cannot be read"):
        call(auth_token_file=str(tmp_path / "missing"))
    monkeypatch.delenv("TF_GRAPHPIPE_UNSET_VARIABLE", raising=False)
    with pytest.raises(tf.errors.InvalidArgumentError, match="'TF_GRAPHPIPE_UNSET_VARIABLE' is not set"):
        call(auth_token_env="TF_GRAPHPIPE_UNSET_VARIABLE")
    monkeypatch.setenv(TOKEN_ENV, "not-the-token")
    with pytest.raises(tf.errors.InvalidArgumentError, match="not accepted") as refused:
        call(auth_token_env=TOKEN_ENV)
    assert "not-the-token" not in str(refused.value)


def _files_holding(root: Path, secret: bytes) -> list[str]:
    """Every file under ``root`` whose bytes hold ``secret``; the members of a
    zip (a ``.keras`` file, compressed) are searched one by one too."""
    found = []
    for path in root.rglob("*"):
        if not path.is_file():
            continue
        if secret in path.read_bytes():
            found.append(str(path))
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                found += [f"{path}:{name}" for name in archive.namelist() if secret in archive.read(name)]
    return found


def test_exports_hold_the_tokens_name_never_the_token(tls_server: RunningServer, certs: Certificates,
                                                      token_env: str, tmp_path: Path) -> None:
    inputs = keras.Input((2,))
    layer = tf_graphpipe.GraphPipeLayer(tls_server.url, auth_token_env=token_env, headers={"X-Tenant": "blue"},
                                        **mtls(certs))
    model = keras.Model(inputs, layer(inputs))
    np.testing.assert_array_equal(model(np.ones((1, 2), np.float32)), [[2, 2]])
    model.export(str(tmp_path / "saved"))
    model.save(tmp_path / "model.keras")
    assert list(tmp_path.rglob("*.pb")) and (tmp_path / "model.keras").is_file()
    token = TOKEN.encode()
    assert _files_holding(tmp_path, token) == []
    # The name is there, so the reloaded export reads the token at call time.
    assert _files_holding(tmp_path / "saved", TOKEN_ENV.encode())
    reloaded = tf.saved_model.load(str(tmp_path / "saved"))
    np.testing.assert_array_equal(reloaded.serve(tf.ones((1, 2))), [[2, 2]])
    restored = keras.models.load_model(tmp_path / "model.keras")
    np.testing.assert_array_equal(restored(np.ones((1, 2), np.float32)), [[2, 2]])
