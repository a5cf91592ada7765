# SPDX-License-Identifier: Apache-2.0
"""What a served ONNX model refuses, and how: a request that does not fit the
graph is a 400 naming the input, before ONNX Runtime sees it; ONNX Runtime
failing during a run is a 500 with its message, and the server serves on; a
file ONNX Runtime cannot load, or a type no wire carries, stops the server
from starting with ONNX Runtime's reason; without onnxruntime the message
names the extra to install."""
from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import tf_graphpipe
from tf_graphpipe.errors import RemoteError
from tf_graphpipe.server import load_model
from tf_graphpipe.server.onnx_models import SessionSettings

from support import onnx_test_models as models
from support import servers


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx_refusals")


@pytest.fixture(scope="module")
def conv_server(model_dir: Path) -> Iterator[tf_graphpipe.server.RunningServer]:
    with tf_graphpipe.serve(models.conv(model_dir / "conv.onnx")) as server:
        yield server


def clients(server: tf_graphpipe.server.RunningServer) -> list[tf_graphpipe.Client]:
    return [tf_graphpipe.Client(server.url, timeout=30),
            tf_graphpipe.Client(f"{server.url}/v2/models/{server.model.name}", timeout=30)]


@pytest.mark.parametrize(
    ("sent", "says"),
    [
        (np.zeros((1, 3, 16, 16), np.float64), "input 'images': expected dtype float32, got float64"),
        (np.zeros((3, 16, 16), np.float32), "input 'images': expected shape [?, 3, 16, 16], got [3, 16, 16]"),
        (np.zeros((1, 4, 16, 16), np.float32), "input 'images': expected shape [?, 3, 16, 16], got [1, 4, 16, 16]"),
    ],
    ids=["dtype", "rank", "fixed_dim"],
)
def test_a_request_that_does_not_fit_the_graph_is_400_naming_the_input(conv_server, sent, says) -> None:
    for client in clients(conv_server):
        with pytest.raises(RemoteError) as error:
            client.infer(sent)
        assert error.value.status == 400 and says in error.value.message
    assert clients(conv_server)[0].infer(np.zeros((2, 3, 16, 16), np.float32)).shape == (2, 8, 16, 16)


def test_onnx_runtime_failing_during_a_run_is_500_with_its_message(model_dir: Path) -> None:
    with tf_graphpipe.serve(models.reshape_fails(model_dir / "reshape.onnx")) as server:
        for client in clients(server):
            with pytest.raises(RemoteError) as error:
                client.infer(np.arange(5, dtype=np.float32))  # odd: cannot be [2, -1]
            assert error.value.status == 500
            assert "model failed" in error.value.message and "reshape" in error.value.message.lower()
            assert client.infer(np.arange(6, dtype=np.float32)).shape == (2, 3)  # and it serves on


def test_a_string_that_is_not_utf8_is_400_naming_the_input(model_dir: Path) -> None:
    with tf_graphpipe.serve(models.strings(model_dir / "strings.onnx")) as server:
        for client in clients(server):
            with pytest.raises(RemoteError) as error:
                client.infer(np.array([b"ok", b"\xff\xfe"], dtype=object))
            assert error.value.status == 400
            assert "input 'text': string element 1 is not UTF-8" in error.value.message
            assert list(client.infer(np.array([b"ok"], dtype=object))) == [b"ok"]


def test_a_file_that_is_not_an_onnx_model_is_refused_with_onnx_runtimes_reason(tmp_path: Path) -> None:
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"this is not a protobuf at all \xff\x00\x01")
    with pytest.raises(ValueError, match=r"broken\.onnx: ONNX Runtime cannot load it: .*(Protobuf|protobuf|parsing)"):
        load_model(str(bad))


def test_an_operator_the_runtime_lacks_is_refused_with_onnx_runtimes_reason(tmp_path: Path) -> None:
    path = models.unknown_operator(tmp_path / "unknown_op.onnx")
    with pytest.raises(ValueError, match="ONNX Runtime cannot load it: .*FrobnicateTensor"):
        load_model(path)


def test_a_type_no_wire_carries_is_refused_naming_the_output(tmp_path: Path) -> None:
    path = models.float8_output(tmp_path / "float8.onnx")
    with pytest.raises(ValueError, match=r"output 'y': ONNX type tensor\(float8e4m3fn\) has no GraphPipe or v2 type"):
        load_model(path)


def test_a_sklearn_zipmap_output_is_refused_with_the_option_that_fixes_it(tmp_path: Path) -> None:
    path, _ = models.sklearn_pipeline(tmp_path / "zipmap.onnx", zipmap=True)
    with pytest.raises(ValueError, match=r"output 'output_probability': ONNX type seq\(map.*'zipmap': False"):
        load_model(path)


def test_string_inputs_beside_bfloat16_are_refused_with_the_reason(tmp_path: Path) -> None:
    path = models.identity_of_every_type(tmp_path / "string_and_bf16.onnx", ["string", "bfloat16"])
    with pytest.raises(ValueError, match="string inputs and bfloat16 tensors in one model are not supported"):
        load_model(path)


def test_a_missing_model_file_is_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_model(str(tmp_path / "nothing.onnx"))


def test_a_repository_version_directory_loads_its_model_onnx(tmp_path: Path) -> None:
    from tf_graphpipe.server.onnx_models import load_onnx_model

    version = tmp_path / "classifier" / "3"
    version.mkdir(parents=True)
    models.gemm_softmax(version / "model.onnx")
    model = load_onnx_model(version)
    assert model.name == "classifier" and [s.name for s in model.inputs] == ["x"]
    with pytest.raises(FileNotFoundError, match="model.onnx"):
        load_onnx_model(tmp_path)


def test_session_settings_refuse_nonsense() -> None:
    with pytest.raises(ValueError, match="intra_op_threads must be >= 1"):
        SessionSettings(intra_op_threads=0)
    with pytest.raises(ValueError, match="graph_optimization must be one of"):
        SessionSettings(graph_optimization="max")


def test_default_settings_keep_concurrent_calls_within_the_cpus() -> None:
    from tf_graphpipe.server.onnx_models import available_cpus

    cpus = available_cpus()
    assert SessionSettings().intra == cpus and SessionSettings().concurrent_calls == 1
    assert SessionSettings(intra_op_threads=1).concurrent_calls == cpus


def _cli(args: list[str], hide_onnxruntime: bool = False) -> subprocess.CompletedProcess[str]:
    prelude = "import sys\n" + ("sys.modules['onnxruntime'] = None\n" if hide_onnxruntime else "")
    script = prelude + "from tf_graphpipe.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    return subprocess.run([sys.executable, "-c", script, *args], check=False, capture_output=True, text=True,
                          timeout=120)


def test_serve_refuses_to_start_on_a_broken_model_with_the_reason(tmp_path: Path) -> None:
    path = models.unknown_operator(tmp_path / "unknown_op.onnx")
    result = _cli(["serve", str(path), "--port", "0"])
    assert result.returncode == 1
    assert "ONNX Runtime cannot load it" in result.stderr and "FrobnicateTensor" in result.stderr
    assert "http://" not in result.stdout


def test_without_onnxruntime_the_message_names_the_extra(tmp_path: Path) -> None:
    path = models.gemm_softmax(tmp_path / "gemm.onnx")
    result = _cli(["serve", str(path), "--port", "0"], hide_onnxruntime=True)
    assert result.returncode == 1
    assert "pip install 'tf-graphpipe[onnx]'" in result.stderr, result.stderr


def test_serve_applies_the_onnx_options_and_serves(tmp_path: Path) -> None:
    path = models.gemm_softmax(tmp_path / "gemm.onnx")
    server = servers.CliServer(str(path), "--port", "0", "--intra-op-threads", "1", "--inter-op-threads", "2",
                               "--graph-optimization", "basic")
    try:
        url = server.wait_url()
        x = np.ones((3, 8), np.float32)
        assert tf_graphpipe.Client(url, timeout=30).infer(x).tobytes() == models.ort_run(path, {"x": x})[
            "probabilities"].tobytes()
    finally:
        assert server.stop() == 0


def test_serve_help_documents_the_onnx_options(capsys) -> None:
    from tf_graphpipe.cli import main

    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    text = capsys.readouterr().out
    options = ("FILE.onnx", "--intra-op-threads", "--inter-op-threads", "--graph-optimization", "tf-graphpipe[onnx]")
    for option in options:
        assert option in text, option
