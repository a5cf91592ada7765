# SPDX-License-Identifier: Apache-2.0
"""Security defaults of the server: it listens on loopback unless told
otherwise, refuses bodies over its limit (1 GiB by default), and its error
answers carry no model path and no stack trace unless debug is on."""
from __future__ import annotations

import inspect
import socket
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

import tf_graphpipe
from tf_graphpipe import Client, RemoteError, _native
from tf_graphpipe.cli import build_parser
from tf_graphpipe.server.app import DEFAULT_MAX_REQUEST_BYTES

X = np.arange(6, dtype=np.float32).reshape(2, 3)


def listening_address(port: int) -> str:
    """The local address the socket listening on ``port`` is bound to, from /proc/net/tcp{,6}."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, hex_port = fields[1].rsplit(":", 1)
            if int(hex_port, 16) == port and fields[3] == "0A":  # 0A: LISTEN
                if len(address) == 8:
                    return socket.inet_ntop(socket.AF_INET, bytes.fromhex(address)[::-1])
                words = bytes.fromhex(address)
                return socket.inet_ntop(socket.AF_INET6, b"".join(words[i:i + 4][::-1] for i in range(0, 16, 4)))
    raise AssertionError(f"nothing listens on port {port}")


def double(x: np.ndarray) -> np.ndarray:
    return x * 2


# ---- where it listens --------------------------------------------------------------------


def test_serve_listens_on_loopback_by_default() -> None:
    assert inspect.signature(tf_graphpipe.serve).parameters["host"].default == "127.0.0.1"
    with tf_graphpipe.serve(double) as server:
        assert server.host == "127.0.0.1" and server.url.startswith("http://127.0.0.1:")
        assert listening_address(server.port) == "127.0.0.1"


def test_cli_listens_on_loopback_by_default() -> None:
    args = build_parser().parse_args(["serve", "demo"])
    assert args.host == "127.0.0.1"
    assert args.max_request_bytes == DEFAULT_MAX_REQUEST_BYTES == 1 << 30
    assert args.debug is False


def test_host_says_otherwise_to_listen_on_all_interfaces() -> None:
    with tf_graphpipe.serve(double, host="0.0.0.0") as server:
        assert listening_address(server.port) == "0.0.0.0"
        # Still reached over loopback: the test's traffic stays on 127.0.0.1.
        np.testing.assert_array_equal(Client(f"http://127.0.0.1:{server.port}").infer(X), X * 2)


# ---- the size limit -------------------------------------------------------------------------


def test_default_limit_refuses_bodies_over_1_gib_from_the_header() -> None:
    with tf_graphpipe.serve(double) as server:
        with socket.create_connection((server.host, server.port), timeout=30) as sock:
            sock.sendall(f"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: {(1 << 30) + 1}\r\n\r\n".encode())
            answer = b""
            while b"\r\n\r\n" not in answer:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 413 ")
        np.testing.assert_array_equal(Client(server.url).infer(X), X * 2)


# ---- what error answers reveal ----------------------------------------------------------------


class Guarded(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32)])
    def __call__(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
        tf.debugging.assert_non_negative(x, message="x must be non-negative")
        return {"y": x * 2}


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("private-models") / "secret_model_v7"
    module = Guarded()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.__call__})
    return path


@pytest.fixture(scope="module")
def served_saved_model(saved_model: Path) -> Iterator[tf_graphpipe.server.RunningServer]:
    with tf_graphpipe.serve(str(saved_model)) as server:
        yield server


def _refusal(url: str, x: object, **kwargs: object) -> RemoteError:
    with pytest.raises(RemoteError) as caught:
        Client(url, retries=0).infer(x, **kwargs)
    return caught.value


LEAKS = ("Traceback", 'File "', ".py\", line", "site-packages")


def _assert_no_leak(message: str, model_path: Path) -> None:
    # The directory's base name is the model's public name; its location is not public.
    assert str(model_path.parent) not in message, message
    for leak in LEAKS:
        assert leak not in message, f"{leak!r} in {message!r}"


def test_model_failure_answer_has_no_path_or_stack_trace(served_saved_model, saved_model: Path) -> None:
    error = _refusal(served_saved_model.url, -X)
    assert error.status == 500 and "x must be non-negative" in error.message
    _assert_no_leak(error.message, saved_model)


@pytest.mark.parametrize(
    ("x", "kwargs"),
    [(X.astype(np.float64), {}), (np.zeros((2, 4), np.float32), {}), (X, {"output_names": ["nope"]}),
     (X, {"input_names": ["nope"]})],
    ids=["dtype", "shape", "output", "input"],
)
def test_caller_mistake_answers_have_no_path_or_stack_trace(served_saved_model, saved_model: Path, x, kwargs) -> None:
    error = _refusal(served_saved_model.url, x, **kwargs)
    assert error.status == 400
    _assert_no_leak(error.message, saved_model)


def test_invalid_body_answer_has_no_path_or_stack_trace(served_saved_model, saved_model: Path) -> None:
    from support import servers as http_helpers

    status, _, body = http_helpers.request(served_saved_model.url, "POST", "/", b"\xff" * 40)
    assert status == 400
    with pytest.raises(RemoteError) as caught:
        _native.decode_infer_response(body)
    _assert_no_leak(caught.value.message, saved_model)


def test_metadata_reveals_no_path(served_saved_model, saved_model: Path) -> None:
    from support import servers as http_helpers

    for method, body in (("GET", None), ("POST", bytes(_native.encode_metadata_request()))):
        status, _, answer = http_helpers.request(served_saved_model.url, method, "/", body)
        assert status == 200
        text = answer.decode("utf-8", "replace")
        assert str(saved_model.parent) not in text, text


def test_debug_puts_the_stack_trace_in_error_answers(saved_model: Path) -> None:
    with tf_graphpipe.serve(str(saved_model), debug=True) as server:
        error = _refusal(server.url, -X)
    assert error.status == 500 and "Traceback" in error.message and "x must be non-negative" in error.message
