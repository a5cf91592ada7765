# SPDX-License-Identifier: Apache-2.0
"""A model repository behind the ASGI app (``GraphPipeApp.for_repository``,
what each Ray Serve replica runs) answers as the server's own port does on
the same directory: the listing, the v2 repository index, both protocols
by model and version, a new version picked up by polling, load and unload;
and an app told to refuse load/unload (a replica of many) says why."""
from __future__ import annotations

import asyncio
import http.client
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import uvicorn

import tf_graphpipe
from tf_graphpipe import _native
from tf_graphpipe.server.app import GraphPipeApp

from support.repository_fixtures import wait_for

POLL_SECONDS = 0.2
X = np.arange(6, dtype=np.float32).reshape(2, 3)
DOUBLE = {"callable": "support.servers:double", "inputs": ["x:float32:-1,3"], "outputs": ["y:float32:-1,3"]}
ECHO = {"callable": "support.servers:echo", "version_policy": "all"}


def add_model(root: Path, name: str, config: dict[str, Any], *versions: int) -> None:
    (root / name).mkdir(exist_ok=True)
    (root / name / "config.json").write_text(json.dumps(config))
    for version in versions:  # a callable's version directory holds nothing
        (root / name / f".incoming-{version}").mkdir()
        (root / name / f".incoming-{version}").rename(root / name / str(version))


@pytest.fixture
def repository(tmp_path: Path) -> Path:
    add_model(tmp_path, "double", DOUBLE, 1)
    add_model(tmp_path, "echo", ECHO, 1, 2)
    return tmp_path


@pytest.fixture
def front_ends(repository: Path) -> Iterator[dict[str, str]]:
    """{"native": url, "asgi": url}, both serving ``repository``."""
    app = GraphPipeApp.for_repository(repository, poll_seconds=POLL_SECONDS)
    asgi = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=asgi.run, daemon=True)
    thread.start()
    native = tf_graphpipe.serve(repository=repository, poll_seconds=POLL_SECONDS)
    try:
        deadline = time.monotonic() + 30
        while not asgi.started and time.monotonic() < deadline:
            time.sleep(0.02)
        assert asgi.started, "uvicorn did not start"
        yield {"native": native.url, "asgi": f"http://127.0.0.1:{asgi.servers[0].sockets[0].getsockname()[1]}"}
    finally:
        native.close()
        asgi.should_exit = True
        thread.join(30)
        app.close()


def request(url: str, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        connection.request(method, path, body=body)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def infer_body(x: np.ndarray) -> bytes:
    return bytes(_native.encode_infer_request([x], [10], [], [], b""))


SAME_ANSWERS = [
    ("GET", "/models", None),
    ("POST", "/v2/repository/index", b""),
    ("POST", "/v2/repository/index", b'{"ready": true}'),
    ("GET", "/v2/models/double"),
    ("GET", "/v2/models/echo/versions/1"),
    ("GET", "/v2/health/ready"),
    ("GET", "/v2/models/nothing"),
    ("POST", "/models/double", infer_body(X)),
    ("POST", "/models/double/versions/1", infer_body(X)),
    ("POST", "/models/echo/versions/2", infer_body(X)),
    ("POST", "/models/double/versions/7", infer_body(X)),
    ("POST", "/v2/repository/models/nothing/load", b""),
]


def test_the_asgi_app_answers_a_repository_as_the_server_does(front_ends: dict[str, str]) -> None:
    for method, path, *body in SAME_ANSWERS:
        native, asgi = (request(url, method, path, body[0] if body else None) for url in front_ends.values())
        assert native == asgi, (method, path)
    status, listing = request(front_ends["asgi"], "GET", "/models")
    assert status == 200
    assert {m["name"]: [v["version"] for v in m["versions"]] for m in json.loads(listing)["models"]} == \
        {"double": [1], "echo": [2, 1]}
    for url in front_ends.values():
        np.testing.assert_array_equal(tf_graphpipe.Client(url + "/models/double").infer(X), 2 * X)
        np.testing.assert_array_equal(tf_graphpipe.Client(url + "/v2/models/double/versions/1")
                                      .infer(X, output_names=["y"]), 2 * X)


def test_polling_load_and_unload_reach_the_asgi_app(front_ends: dict[str, str], repository: Path) -> None:
    add_model(repository, "double", DOUBLE, 2)
    for url in front_ends.values():  # the newest version replaces version 1 (policy: latest 1)
        wait_for(lambda url=url: request(url, "GET", "/v2/models/double/versions/2/ready")[0] == 200,
                 30, f"version 2 served at {url}")
        wait_for(lambda url=url: request(url, "GET", "/v2/models/double/versions/1/ready")[0] == 404,
                 30, f"version 1 retired at {url}")
        np.testing.assert_array_equal(tf_graphpipe.Client(url + "/v2/models/double").infer(
            X, output_names=["y"]), 2 * X)
    for what, status in (("unload", 404), ("load", 200)):
        for url in front_ends.values():
            assert request(url, "POST", f"/v2/repository/models/echo/{what}", b"")[0] == 200
            assert request(url, "GET", "/v2/models/echo")[0] == status, (what, url)


async def asgi_call(app: GraphPipeApp, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
    scope = {"type": "http", "method": method, "path": path, "raw_path": path.encode(), "query_string": b"",
             "headers": [(b"content-length", b"%d" % len(body))], "client": ("127.0.0.1", 1)}
    sent = False
    answer: dict[str, Any] = {"body": b""}

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Any) -> None:
        if message["type"] == "http.response.start":
            answer["status"] = message["status"]
        else:
            answer["body"] += bytes(message.get("body", b""))

    await asyncio.wait_for(app(scope, receive, send), 30)
    return answer["status"], answer["body"]


def test_an_app_told_to_refuse_load_and_unload_says_why(repository: Path) -> None:
    app = GraphPipeApp.for_repository(repository, poll_seconds=0, changes_refused="change the directory")
    try:
        for what in ("load", "unload"):
            status, body = asyncio.run(asgi_call(app, "POST", f"/v2/repository/models/echo/{what}"))
            assert status == 400
            assert json.loads(body)["error"] == f"{what} 'echo' refused: change the directory"
        assert asyncio.run(asgi_call(app, "GET", "/v2/models/echo"))[0] == 200  # still served
        status, body = asyncio.run(asgi_call(app, "POST", "/v2/repository/index"))
        assert status == 200 and {e["name"] for e in json.loads(body)} == {"double", "echo"}
    finally:
        app.close()
