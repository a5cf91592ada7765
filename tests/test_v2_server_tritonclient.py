# SPDX-License-Identifier: Apache-2.0
"""``tritonclient[http]==2.73.0`` (installed from PyPI into its own virtualenv,
reused between runs) against ``tf-graphpipe serve``: health, server and model
metadata, binary and JSON modes with every datatype its client supports (BF16
binary only, as tritonclient allows), several inputs and outputs, requested
outputs, and the error answers (404, 400, 500) with the server serving on.
Each check is a script run in that venv against a server of this process."""
from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

import tf_graphpipe

from support import peer_venvs
from support.v2_server_models import ARITH_INPUTS, ARITH_OUTPUTS, arith, echo

pytestmark = pytest.mark.slow

TRITONCLIENT = "tritonclient-2.73.0"
_STEPS = (["tritonclient[http]==2.73.0", "numpy"],)

PRELUDE = r"""
import sys
import ml_dtypes
import numpy as np
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

client = httpclient.InferenceServerClient(sys.argv[1], connection_timeout=30, network_timeout=60)
binary = len(sys.argv) > 2 and sys.argv[2] == "binary"
X = np.array([[1.5, -2.0, 0.0], [4.0, 0.25, -1.0]], np.float32)
Y = np.array([[1, 2, 3], [-4, 5, 2**40]], np.int64)

def arith_inputs(x=X, y=Y):
    a = httpclient.InferInput("x", list(x.shape), "FP32").set_data_from_numpy(x, binary_data=binary)
    b = httpclient.InferInput("y", list(y.shape), "INT64").set_data_from_numpy(y, binary_data=binary)
    return [a, b]

def error_of(call):
    try:
        call()
    except InferenceServerException as exc:
        return exc
    raise AssertionError("no error raised")
"""


@pytest.fixture(scope="module")
def python() -> str:
    try:
        return str(peer_venvs.ensure_venv(TRITONCLIENT, _STEPS, "import tritonclient.http, numpy, ml_dtypes"))
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        pytest.fail(f"cannot build the {TRITONCLIENT} venv: {exc}")


@pytest.fixture(scope="module")
def arith_server() -> Iterator[tf_graphpipe.server.RunningServer]:
    with tf_graphpipe.serve(arith, name="arith", input_specs=ARITH_INPUTS, output_specs=ARITH_OUTPUTS) as running:
        yield running


@pytest.fixture(scope="module")
def echo_server() -> Iterator[tf_graphpipe.server.RunningServer]:
    with tf_graphpipe.serve(echo, name="echo") as running:
        yield running


def run(python: str, server: tf_graphpipe.server.RunningServer, script: str, *args: str) -> None:
    result = subprocess.run([python, "-c", PRELUDE + script, f"{server.host}:{server.port}", *args],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"tritonclient script failed:\n{result.stderr}"
    assert result.stdout.strip().endswith("OK"), result.stdout


binary_modes = pytest.mark.parametrize("mode", ["binary", "json"])


def test_health_and_metadata(python, arith_server) -> None:
    run(python, arith_server, r"""
assert client.is_server_live() and client.is_server_ready()
assert client.is_model_ready("arith") and client.is_model_ready("arith", "1")
assert not client.is_model_ready("other") and not client.is_model_ready("arith", "2")
server = client.get_server_metadata()
assert server["name"] == "tf-graphpipe" and "binary_tensor_data" in server["extensions"], server
for version in ("", "1"):
    meta = client.get_model_metadata("arith", model_version=version)
    assert meta["name"] == "arith" and meta["versions"] == ["1"], meta
    assert [(t["name"], t["datatype"], t["shape"]) for t in meta["inputs"]] == [
        ("x", "FP32", [-1, -1]), ("y", "INT64", [-1, -1])], meta
    assert [t["name"] for t in meta["outputs"]] == ["sum", "neg", "positive"], meta
exc = error_of(lambda: client.get_model_metadata("other"))
assert exc.status() == "404" and "unknown model" in exc.message(), (exc.status(), exc.message())
print("OK")
""")


@binary_modes
def test_several_inputs_and_outputs(python, arith_server, mode) -> None:
    run(python, arith_server, r"""
result = client.infer("arith", arith_inputs(), request_id="r1")
assert result.get_response()["id"] == "r1" and result.get_response()["model_name"] == "arith"
np.testing.assert_array_equal(result.as_numpy("sum"), X.astype(np.float64) + Y)
np.testing.assert_array_equal(result.as_numpy("neg"), -Y)
assert result.as_numpy("positive").dtype == bool
np.testing.assert_array_equal(result.as_numpy("positive"), X > 0)
# requested outputs, in the order asked, each binary or JSON as asked
outputs = [httpclient.InferRequestedOutput("positive", binary_data=binary),
           httpclient.InferRequestedOutput("sum", binary_data=not binary)]
result = client.infer("arith", arith_inputs(), outputs=outputs)
names = [o["name"] for o in result.get_response()["outputs"]]
assert names == ["positive", "sum"], names
kinds = ["binary_data_size" in (o.get("parameters") or {}) for o in result.get_response()["outputs"]]
assert kinds == [binary, not binary], kinds
np.testing.assert_array_equal(result.as_numpy("sum"), X.astype(np.float64) + Y)
np.testing.assert_array_equal(result.as_numpy("positive"), X > 0)
assert result.as_numpy("neg") is None
print("OK")
""", mode)


@binary_modes
def test_every_datatype(python, echo_server, mode) -> None:
    run(python, echo_server, r"""
arrays = [
    ("BOOL", np.array([[True, False, True]])),
    ("UINT8", np.array([0, 7, 255], np.uint8)),
    ("UINT16", np.array([0, 65535], np.uint16)),
    ("UINT32", np.array([0, 2**32 - 1], np.uint32)),
    ("UINT64", np.array([0, 2**64 - 1], np.uint64)),
    ("INT8", np.array([-128, 127], np.int8)),
    ("INT16", np.array([-(2**15), 2**15 - 1], np.int16)),
    ("INT32", np.array([-(2**31), 2**31 - 1], np.int32)),
    ("INT64", np.array([[-(2**63)], [2**63 - 1]], np.int64)),
    ("FP16", np.array([1.5, -0.0, np.inf], np.float16)),
    ("FP32", np.array([1.5, np.nan, -np.inf, 3.4e38], np.float32)),
    ("FP64", np.array([0.1, np.nan, np.inf, 1e-300], np.float64)),
    ("BYTES", np.array([b"a\x00b", b"", "\u00e9".encode()], object)),
    ("FP32", np.zeros((0, 3), np.float32)),  # zero elements
]
if binary:  # tritonclient sends BF16 and non-UTF-8 BYTES only as binary
    arrays += [("BF16", np.array([1.5, -2.0, 3.0], ml_dtypes.bfloat16)),
               ("BYTES", np.array([[b"\xff\xfe"], [b"\x00"]], object))]
inputs = [httpclient.InferInput(f"in{i}", list(a.shape), t).set_data_from_numpy(a, binary_data=binary)
          for i, (t, a) in enumerate(arrays)]
# FP16 and BF16 have no JSON form: asked for as JSON they are refused (below), so ask them binary
outputs = [httpclient.InferRequestedOutput(f"output{i}", binary_data=binary or t in ("FP16", "BF16"))
           for i, (t, _) in enumerate(arrays)]
if not binary:
    fp16 = [i for i, (t, _) in enumerate(arrays) if t == "FP16"][0]
    as_json = [httpclient.InferRequestedOutput(f"output{fp16}", binary_data=False)]
    exc = error_of(lambda: client.infer("echo", inputs, outputs=as_json))
    assert exc.status() == "400" and f"output 'output{fp16}': FP16 data has no JSON form" in exc.message(), (
        exc.status(), exc.message())
for asked in (outputs, None):  # listed outputs, and none (binary_data_output)
    result = client.infer("echo", inputs, outputs=asked)
    for i, (datatype, want) in enumerate(arrays):
        got = result.as_numpy(f"output{i}")
        entry = result.get_output(f"output{i}")
        assert entry["datatype"] == datatype and entry["shape"] == list(want.shape), (entry, datatype)
        if datatype == "BYTES":
            got = np.array([g if isinstance(g, bytes) else g.encode() for g in got.reshape(-1)], object)
            assert list(got) == list(want.reshape(-1)), (got, want)
        else:
            assert got.dtype == want.dtype and got.shape == want.shape, (datatype, got.dtype, got.shape)
            np.testing.assert_array_equal(got, want)
print("OK")
""", mode)


@binary_modes
def test_errors_and_the_server_serving_on(python, arith_server, mode) -> None:
    run(python, arith_server, r"""
exc = error_of(lambda: client.infer("other", arith_inputs()))
assert exc.status() == "404" and "unknown model" in exc.message(), (exc.status(), exc.message())
wrong = httpclient.InferInput("x", [2, 3], "FP64").set_data_from_numpy(X.astype(np.float64), binary_data=binary)
exc = error_of(lambda: client.infer("arith", [wrong, arith_inputs()[1]]))
assert exc.status() == "400" and "expected dtype float32" in exc.message(), (exc.status(), exc.message())
exc = error_of(lambda: client.infer("arith", arith_inputs()[:1]))
assert exc.status() == "400" and "takes 2 inputs" in exc.message(), (exc.status(), exc.message())
exc = error_of(lambda: client.infer("arith", arith_inputs(),
                                    outputs=[httpclient.InferRequestedOutput("nope", binary_data=binary)]))
assert exc.status() == "400" and "unknown output 'nope'" in exc.message(), (exc.status(), exc.message())
exc = error_of(lambda: client.infer("arith", arith_inputs(x=np.full((1, 3), 13, np.float32), y=Y[:1])))
assert exc.status() == "500" and "thirteen is unlucky" in exc.message(), (exc.status(), exc.message())
for _ in range(3):  # the same pooled connections keep working
    np.testing.assert_array_equal(client.infer("arith", arith_inputs()).as_numpy("neg"), -Y)
print("OK")
""", mode)


def test_the_timeout_parameter_is_honoured(python) -> None:
    """tritonclient's ``timeout`` (microseconds, a request parameter; its
    ``client_timeout`` stays local): a call still queued behind a busy worker
    when its 0.3 s pass is answered 504 and never run."""
    ran: list[float] = []
    started, release = threading.Event(), threading.Event()

    def slow(x: np.ndarray) -> np.ndarray:
        ran.append(float(x[0, 0]))
        started.set()
        release.wait(30)  # busy until the tritonclient call has waited in the queue
        return x

    with tf_graphpipe.serve(slow, name="slow", workers=1, input_specs=["x:float32:-1,1"],
                            output_specs=["y:float32:-1,1"]) as server:
        first = threading.Thread(target=lambda: tf_graphpipe.Client(server.url, timeout=30).infer(
            np.ones((1, 1), np.float32)))
        first.start()
        script = PRELUDE + r"""
x = httpclient.InferInput("x", [1, 1], "FP32").set_data_from_numpy(np.full((1, 1), 2, np.float32))
print("SENDING", flush=True)
exc = error_of(lambda: client.infer("slow", [x], timeout=300_000))
assert exc.status() == "504" and "deadline passed" in exc.message(), (exc.status(), exc.message())
print("OK")
"""
        process = subprocess.Popen([python, "-c", script, f"{server.host}:{server.port}"],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert started.wait(30)
            assert process.stdout is not None and process.stdout.readline().strip() == "SENDING"
            time.sleep(0.6)  # the call is queued and its 0.3 s have passed
            release.set()
            out, err = process.communicate(timeout=60)
        finally:
            release.set()
            if process.poll() is None:
                process.kill()
                process.wait()
            first.join(30)
        assert process.returncode == 0 and out.strip() == "OK", err
    assert ran == [1.0]
