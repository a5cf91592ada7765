# SPDX-License-Identifier: Apache-2.0
"""Helpers for the server tests: ``tf-graphpipe serve`` as a subprocess, raw
HTTP, and small models importable as ``support.servers:NAME`` by a served process."""
from __future__ import annotations

import http.client
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

TESTS = Path(__file__).resolve().parent.parent
STARTUP_SECONDS = 90


# ---- models served by name (``support.servers:echo``...) ------------------------------------


def echo(*arrays: np.ndarray) -> list[np.ndarray]:
    """Returns its inputs unchanged: any number, any dtype."""
    return list(arrays)


def double(x: np.ndarray) -> np.ndarray:
    """One input, one output: ``2 * x``."""
    return x * 2


def config_echo(x: np.ndarray, *, config: bytes) -> list[np.ndarray]:
    """Returns ``x`` and the request's config as a rank-0 string tensor."""
    return [x, np.array(config, dtype=object)]


# ---- the CLI as a subprocess ----------------------------------------------------------


# The two ways to run the command: the installed script and the package's __main__.
SCRIPT = [str(Path(sys.executable).with_name("tf-graphpipe"))]
MODULE = [sys.executable, "-m", "tf_graphpipe"]


def cli_env(**changes: str | None) -> dict[str, str]:
    """The environment for a ``tf-graphpipe`` subprocess: this one, with the
    tests directory on PYTHONPATH (for ``support.module:callable`` models; the
    package itself comes from the environment: installed, or PYTHONPATH) and
    ``changes`` applied (None removes a variable)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in [str(TESTS), env.get("PYTHONPATH", "")] if p)
    for key, value in changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


class CliServer:
    """A ``tf-graphpipe serve ...`` process (``python -m tf_graphpipe`` unless
    ``launcher`` says otherwise), started and read until it prints its URL line."""

    def __init__(self, *args: str, launcher: Iterable[str] = MODULE, env: dict[str, str] | None = None) -> None:
        self.stderr = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            [*launcher, "serve", *args],
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            env=cli_env() if env is None else env,
        )
        self.url: str | None = None
        self.rest = b""  # stdout after the URL line, read at stop()

    def wait_url(self) -> str:
        """The URL line, once printed (fails with the process's stderr if not)."""
        if self.url is None:
            line = _read_line(self.process, STARTUP_SECONDS)
            if not line.startswith(("http://", "https://")):
                self.process.kill()
                raise AssertionError(f"server printed {line!r} instead of its URL; stderr:\n{self.stderr_text()}")
            self.url = line
        return self.url

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        """Sends ``sig`` and returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            code = self.process.wait(timeout)
            if not self.process.stdout.closed:
                self.rest = self.process.stdout.read()
            return code
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            self.process.stdout.close()

    def stderr_text(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read().decode(errors="replace")


def _read_line(process: subprocess.Popen[bytes], timeout: float) -> str:
    deadline = time.monotonic() + timeout
    data = b""
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while not data.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not selector.select(remaining):
                return data.decode(errors="replace")
            chunk = os.read(process.stdout.fileno(), 1)
            if not chunk:
                break
            data += chunk
    return data.decode(errors="replace").strip()


# ---- raw HTTP ------------------------------------------------------------------------


def connect(url: str, timeout: float = 30) -> http.client.HTTPConnection:
    parts = urlsplit(url)
    return http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)


def request(url: str, method: str, path: str = "/", body: bytes | Iterable[bytes] | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """One request on a fresh connection: (status, headers, body)."""
    connection = connect(url)
    try:
        headers = headers or {}
        chunked = headers.get("Transfer-Encoding") == "chunked"
        connection.request(method, path, body=body, headers=headers, encode_chunked=chunked)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()
