# SPDX-License-Identifier: Apache-2.0
"""Real Open Inference Protocol (v2) peers for the tests: a Triton server
(PyTriton's ``tritonserver``) and kserve's ``ModelServer``, each run from its
own virtualenv (tests/support/peer_venvs.py) in a subprocess on 127.0.0.1 free ports,
serving the models in tests/support/v2_peers/. Also used by bench/bench_v2.py.
"""
from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from support import peer_venvs
from support.ports import free_port

PEERS = Path(__file__).resolve().parent / "v2_peers"
START_TIMEOUT = 240.0  # PyTriton loads its six models one after another (~20 s here)


class PeerError(RuntimeError):
    """A peer could not be built or started; the message says why."""


@dataclass
class PeerServer:
    """A running peer: ``base`` + model name is a v2 model URL."""

    name: str
    process: subprocess.Popen
    port: int
    log: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}/v2/models/"

    def url(self, model: str) -> str:
        return self.base + model

    def stop(self) -> None:
        if self.process.poll() is None:
            # Its own session: the signal reaches the servers it started too.
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)

    def __enter__(self) -> PeerServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _start(name: str, python: Path, script: str, args: list[str], port: int,
           models: tuple[str, ...] = ()) -> PeerServer:
    log = Path(tempfile.mkstemp(prefix=f"tf-graphpipe-{name}-", suffix=".log")[1])
    with open(log, "wb") as err:
        process = subprocess.Popen(
            [str(python), str(PEERS / script), *args],
            stdout=subprocess.PIPE, stderr=err, start_new_session=True, cwd=tempfile.gettempdir(),
        )
    server = PeerServer(name, process, port, log)
    ready = threading.Event()

    def watch() -> None:
        for line in process.stdout:  # type: ignore[union-attr]
            if line.strip() == b"READY":
                ready.set()

    threading.Thread(target=watch, daemon=True).start()
    deadline = time.monotonic() + START_TIMEOUT
    # The READY line, or the server itself saying each of `models` is ready:
    # seen here, PyTriton's run() once never returned though Triton served.
    while not ready.wait(0.2) and not (models and all(_model_ready(port, m) for m in models)):
        if process.poll() is not None or time.monotonic() > deadline:
            server.stop()
            tail = log.read_text(errors="replace")[-4000:]
            raise PeerError(f"{name} did not start (exit code {process.poll()}); its log {log} ends:\n{tail}")
    return server


def _model_ready(port: int, model: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/models/{model}/ready", timeout=1) as answer:
            return answer.status == 200
    except OSError:  # refused, reset, 4xx/5xx (HTTPError), timeout
        return False


def _python(build, what: str) -> Path:
    try:
        return build()
    except Exception as exc:  # a venv that cannot be built is a failure, with the reason
        raise PeerError(f"cannot build the {what} virtualenv under {peer_venvs.ROOT}: {exc}") from exc


# What tests/support/v2_peers/triton_models.py serves.
TRITON_MODELS = ("arith", "echo_bytes", "halves", "ident", "seed", "fail")


def start_triton() -> PeerServer:
    """Triton (tritonserver 2.51.0 from nvidia-pytriton 0.7.0) on free
    127.0.0.1 ports for HTTP, gRPC and metrics."""
    python = _python(peer_venvs.triton_python, "Triton (nvidia-pytriton, Debian's python3.11)")
    http, grpc, metrics = free_port(), free_port(), free_port()
    return _start("triton", python, "triton_models.py", [str(http), str(grpc), str(metrics)], http,
                  models=TRITON_MODELS)


def start_kserve() -> PeerServer:
    """kserve 0.21.0's ModelServer on a free 127.0.0.1 port (no gRPC)."""
    python = _python(peer_venvs.kserve_python, "kserve")
    port = free_port()
    return _start("kserve", python, "kserve_models.py", [str(port)], port)
