# SPDX-License-Identifier: Apache-2.0
"""remote_call(..., on_error="status"): a failed call is data, not an error.
Every error class a call can meet (transport, the server's refusal, an answer
unlike the declared outputs, a malformed answer) comes back as the canonical
code and message with zero outputs, eagerly, inside tf.function and from a
SavedModel reloaded in a fresh process; real servers on 127.0.0.1."""
from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import tensorflow as tf

import tf_graphpipe
from tf_graphpipe import remote_call

from support.graphpipe_test_servers import (
    EchoServer,
    ErrorResponseServer,
    GarbageServer,
    SilentServer,
    TextErrorServer,
    TruncatingServer,
)
from support.ports import free_port

X = np.arange(6, dtype=np.float32).reshape(2, 3)


@dataclass
class Case:
    """A server that fails the call one way, and what the status must say."""

    serve: Callable[[], contextlib.AbstractContextManager[str]]  # yields the URL to call
    code: int
    message: str
    output_dtype: tf.DType = tf.float32
    output_shape: tuple[int | None, ...] = (2, 3)


@contextlib.contextmanager
def running(server: Any) -> Iterator[str]:
    with server:
        yield server.url


@contextlib.contextmanager
def nothing_listening() -> Iterator[str]:
    yield f"http://127.0.0.1:{free_port()}/"


@contextlib.contextmanager
def unknown_v2_model() -> Iterator[str]:
    with tf_graphpipe.serve("demo") as server:
        yield server.url.rstrip("/") + "/v2/models/missing"


CASES = {
    "refused": Case(nothing_listening, tf.errors.UNAVAILABLE, "cannot reach"),
    "deadline": Case(lambda: running(SilentServer()), tf.errors.DEADLINE_EXCEEDED, "deadline"),
    "http_400": Case(lambda: running(TextErrorServer(400, "input 'x' has the wrong rank")),
                     tf.errors.INVALID_ARGUMENT, "input 'x' has the wrong rank"),
    "http_404": Case(lambda: running(TextErrorServer(404, "no model here")),
                     tf.errors.INVALID_ARGUMENT, "no model here"),
    "http_500": Case(lambda: running(TextErrorServer(500, "the model raised ZeroDivisionError")),
                     tf.errors.INTERNAL, "the model raised ZeroDivisionError"),
    "http_503": Case(lambda: running(TextErrorServer(503, "overloaded")), tf.errors.UNAVAILABLE,
                     "overloaded"),
    "error_table": Case(lambda: running(ErrorResponseServer("no such output 'nope'", code=3)),
                        tf.errors.INVALID_ARGUMENT, "no such output 'nope'"),
    "malformed": Case(lambda: running(GarbageServer()), tf.errors.DATA_LOSS,
                      "malformed GraphPipe message"),
    "cut_short": Case(lambda: running(TruncatingServer()), tf.errors.UNAVAILABLE, ""),
    "wrong_dtype": Case(lambda: running(EchoServer()), tf.errors.INVALID_ARGUMENT,
                        "expected dtype int32, got float32", output_dtype=tf.int32),
    "wrong_shape": Case(lambda: running(EchoServer()), tf.errors.INVALID_ARGUMENT,
                        r"expected shape [2,4], got [2,3]", output_shape=(2, 4)),
    "v2_unknown_model": Case(unknown_v2_model, tf.errors.INVALID_ARGUMENT,
                             "unknown model: 'missing' is not found"),
}


def call_with_status(url: str, case: Case, x: Any) -> tf_graphpipe.RemoteCallResult:
    return remote_call(url, [x], output_dtypes=[case.output_dtype],
                       output_shapes=[list(case.output_shape)], timeout=0.5, retries=0,
                       on_error="status")


def assert_failed_as(result: tf_graphpipe.RemoteCallResult, case: Case) -> None:
    message = result.status_message.numpy().decode()
    assert int(result.status_code.numpy()) == case.code, message
    assert case.message in message
    (output,) = result.outputs
    assert output.dtype == case.output_dtype
    np.testing.assert_array_equal(output.numpy(), np.zeros(case.output_shape))


@pytest.mark.parametrize("mode", ["eager", "tf_function"])
@pytest.mark.parametrize("name", list(CASES))
def test_every_error_class_is_a_status_not_an_error(name: str, mode: str) -> None:
    case = CASES[name]
    with case.serve() as url:
        def call(x: Any) -> tf_graphpipe.RemoteCallResult:
            return call_with_status(url, case, x)

        assert_failed_as((tf.function(call) if mode == "tf_function" else call)(X), case)


def test_a_good_answer_has_status_zero_and_an_empty_message() -> None:
    with EchoServer() as server:
        (y,), code, message = remote_call(server.url, [X], output_dtypes=[tf.float32],
                                          on_error="status")
        np.testing.assert_array_equal(y.numpy(), X)
        assert int(code.numpy()) == 0 and message.numpy() == b""


def test_failed_outputs_of_unknown_dims_are_empty_with_the_declared_rank(port: int) -> None:
    @tf.function
    def call(x: tf.Tensor) -> tf_graphpipe.RemoteCallResult:
        result = remote_call(f"http://127.0.0.1:{port}/", [x], output_dtypes=[tf.float32, tf.string],
                             output_shapes=[[None, 3], None], retries=0, on_error="status")
        # Static shapes are the declared ones; the status outputs are scalars.
        assert result.outputs[0].shape.as_list() == [None, 3]
        assert result.status_code.shape.rank == 0 and result.status_message.shape.rank == 0
        return result

    (features, tokens), code, _ = call(X)
    assert int(code.numpy()) == tf.errors.UNAVAILABLE
    assert features.shape == (0, 3)
    assert tokens.shape == (0,) and tokens.dtype == tf.string  # unknown rank: [0]


def test_a_step_goes_on_with_a_fallback_when_the_server_fails(port: int) -> None:
    @tf.function
    def features(x: tf.Tensor) -> tf.Tensor:
        (remote,), code, _ = remote_call(f"http://127.0.0.1:{port}/", [x], output_dtypes=[tf.float32],
                                         output_shapes=[[2, 3]], retries=0, on_error="status")
        return tf.where(code == 0, remote, -tf.ones_like(x))

    np.testing.assert_array_equal(features(X).numpy(), -np.ones_like(X))


def test_argument_mistakes_still_raise_before_any_call() -> None:
    with pytest.raises(ValueError, match="on_error must be 'raise' or 'status'"):
        remote_call("http://127.0.0.1:9/", [X], output_dtypes=[tf.float32], on_error="ignore")
    with pytest.raises(tf.errors.InvalidArgumentError, match="has no GraphPipe wire type"):
        remote_call("http://127.0.0.1:9/", [tf.zeros([2], tf.bool)], output_dtypes=[tf.float32],
                    on_error="status")


def test_every_error_class_is_a_status_in_a_reloaded_saved_model(tmp_path: Any) -> None:
    class Extractor(tf.Module):
        def __init__(self, url: str) -> None:
            super().__init__()
            self.url = tf_graphpipe.make_url_variable(url)

        @tf.function(input_signature=[tf.TensorSpec([2, 3], tf.float32)])
        def __call__(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
            (y,), code, message = remote_call(self.url, [x], output_dtypes=[tf.float32],
                                              output_shapes=[[2, 3]], timeout=0.5, retries=0,
                                              on_error="status")
            return {"y": y, "code": code, "message": message}

    # Each class whose declared outputs are the module's (dtype and shape
    # mismatches are checked above: the saved signature fixes them).
    names = [n for n, c in CASES.items() if (c.output_dtype, c.output_shape) == (tf.float32, (2, 3))]
    with contextlib.ExitStack() as stack:
        urls = {name: stack.enter_context(CASES[name].serve()) for name in names}
        with EchoServer() as good:
            tf.saved_model.save(Extractor(good.url), str(tmp_path / "module"))
            urls["ok"] = good.url
            np.save(tmp_path / "x.npy", X)
            script = f"""
                import json, numpy as np, tensorflow as tf
                import tf_graphpipe
                loaded = tf.saved_model.load({str(tmp_path / "module")!r})
                x = np.load({str(tmp_path / "x.npy")!r})
                seen = {{}}
                for name, url in {urls!r}.items():
                    loaded.url.assign(url)
                    out = loaded(x)
                    seen[name] = [int(out["code"]), out["message"].numpy().decode(), out["y"].numpy().tolist()]
                print(json.dumps(seen))
            """
            result = subprocess.run([sys.executable, "-c", textwrap.dedent(script)],
                                    capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-4000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["ok"] == [0, "", X.tolist()]
    for name in names:
        code, message, y = seen[name]
        assert (code, CASES[name].message in message) == (CASES[name].code, True), (name, message)
        assert y == np.zeros((2, 3)).tolist()
