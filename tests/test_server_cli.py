# SPDX-License-Identifier: Apache-2.0
"""``tf-graphpipe``: ``serve`` as a real subprocess (URL line, 413, clean exit
on SIGTERM / SIGINT), ``info``, ``infer``, ``demo`` and ``--help``."""
from __future__ import annotations

import io
import json
import signal
from collections.abc import Iterator
from contextlib import redirect_stdout

import numpy as np
import pytest

from tf_graphpipe import Client, _native
from tf_graphpipe.cli import main
from tf_graphpipe.demo import run_demo

from support import servers

SPEC_ARGS = ("--input-spec", "x:float32:-1,3", "--output-spec", "y:float32:-1,3")


@pytest.fixture(scope="module")
def processes() -> Iterator[dict[str, servers.CliServer]]:
    """Three servers, started together so their imports overlap: one to call,
    one to stop with SIGTERM, one with SIGINT."""
    started = {
        "main": servers.CliServer("support.servers:double", "--port", "0", "--name", "doubler",
                                  "--max-request-bytes", "4096", *SPEC_ARGS),
        "term": servers.CliServer("support.servers:echo", "--port", "0", "--max-connections", "1",
                                  "--max-inflight-bytes", str(64 << 20)),
        "int": servers.CliServer("support.servers:echo", "--port", "0", "--log-level", "warning"),
    }
    try:
        for process in started.values():
            process.wait_url()
        yield started
    finally:
        for process in started.values():
            process.stop(signal.SIGKILL)


def test_serve_prints_exactly_one_url_line(processes) -> None:
    url = processes["main"].wait_url()
    assert url.startswith("http://127.0.0.1:") and int(url.rsplit(":", 1)[1]) > 0
    metadata = Client(url).metadata()
    assert metadata["name"] == "doubler"
    assert [(e["name"], e["shape"]) for e in metadata["inputs"]] == [("x", [-1, 3])]
    np.testing.assert_array_equal(Client(url).infer(np.ones((2, 3), np.float32)), np.full((2, 3), 2.0))


def test_serve_refuses_bodies_over_max_request_bytes_with_413(processes) -> None:
    url = processes["main"].wait_url()
    big = np.zeros((1000, 3), np.float32)  # 12 kB > --max-request-bytes 4096
    body = bytes(_native.encode_infer_request([big], [10], [], [], b""))
    status, _, answer = servers.request(url, "POST", "/", body)
    assert status == 413
    with pytest.raises(Exception, match="exceeds the server's limit of 4096 bytes"):
        _native.decode_infer_response(answer)
    np.testing.assert_array_equal(Client(url).infer(np.ones((1, 3), np.float32)), [[2, 2, 2]])


def test_serve_caps_connections_at_max_connections(processes) -> None:
    url = processes["term"].wait_url()
    first = servers.connect(url)
    try:
        first.request("GET", "/control/is_alive")
        assert first.getresponse().read() == b"ok"  # admitted, and kept open
        status, headers, body = servers.request(url, "GET", "/control/is_alive")
        assert status == 503 and headers["connection"] == "close" and b"max_connections" in body
    finally:
        first.close()


@pytest.mark.parametrize(("name", "sig"), [("term", signal.SIGTERM), ("int", signal.SIGINT)], ids=["SIGTERM", "SIGINT"])
def test_serve_exits_0_on_signal(processes, name: str, sig: int) -> None:
    process = processes[name]
    Client(process.wait_url()).infer(np.ones(2))  # a kept-alive connection is open
    assert process.stop(sig) == 0, process.stderr_text()
    assert process.rest == b"", "stdout holds more than the URL line"
    assert "Traceback" not in process.stderr_text()


def test_serve_logs_a_startup_banner(processes) -> None:
    assert "serving model 'doubler'" in processes["main"].stderr_text()


def test_info_prints_metadata(processes, capsys) -> None:
    url = processes["main"].wait_url()
    assert main(["info", url]) == 0
    text = capsys.readouterr().out
    assert "name: doubler" in text and "x: float32 [?, 3]" in text and "y: float32 [?, 3]" in text
    assert main(["info", url, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["inputs"][0]["dtype"] == "float32"


def test_infer_reads_and_writes_npy(processes, tmp_path, capsys) -> None:
    url = processes["main"].wait_url()
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.save(tmp_path / "x.npy", x)
    assert main(["infer", url, "--input", str(tmp_path / "x.npy"), "--input-name", "x",
                 "--output", str(tmp_path / "y.npy")]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), x * 2)
    assert main(["infer", url, "--input", str(tmp_path / "x.npy")]) == 0
    assert "output0: float32 [2, 3]" in capsys.readouterr().out


def test_infer_reports_server_errors(processes, tmp_path, capsys) -> None:
    np.save(tmp_path / "bad.npy", np.ones((2, 2), np.float64))
    assert main(["infer", processes["main"].wait_url(), "--input", str(tmp_path / "bad.npy")]) == 1
    assert "expected dtype float32, got float64" in capsys.readouterr().err


def test_serve_with_bad_model_exits_1() -> None:
    assert main(["serve", "/no/such/model/dir", "--port", "0"]) == 1


def test_help_describes_commands_options_and_examples(capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    for expected in ("--max-batch-size", "--signature", "(default: 9000)", "package.module:callable", "examples:",
                     "--max-connections", "(default: 1024)", "--max-inflight-bytes"):
        assert expected in text


def test_demo_serves_and_calls_the_demo_model() -> None:
    out = io.StringIO()
    with redirect_stdout(out):
        assert run_demo() == 0
    text = out.getvalue()
    assert "probabilities: float32 [?, 3]" in text and "matches the model computed locally" in text
