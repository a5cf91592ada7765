# SPDX-License-Identifier: Apache-2.0
"""End-to-end speed: client -> HTTP -> ``tf-graphpipe serve`` -> answer, as
ratios to anchors measured in the same run.

Workload (SPEC section 4): a request of 128x224x224x3 float32 (77 MB) to a
trivial model answering a constant 128x7x7x512 float32 (12.8 MB). Every server
runs in its own process, on 127.0.0.1, keep-alive where the client allows it.

Paths (each a ``Path``; a later benchmark adds JSON, TF Serving, Triton...):

* ``ceiling``   plain sockets moving the same bytes both ways, into reused
                buffers (no HTTP, no codec): the raw loopback transfer ceiling
* ``client``    ``tf_graphpipe.Client.infer``
* ``op``        ``tf_graphpipe.remote_call`` inside a ``tf.function``
* ``reference`` the reference client ``graphpipe==1.0.4`` (its own venv, a
                subprocess timing its own calls)

Small requests (1x4 float32): p50/p99 per call for the same paths, plus the
HTTP floor: a bare uvicorn raw-ASGI hello world (httptools, uvloop; its own
process) and ``tf-graphpipe serve``, both driven by the same keep-alive
raw-socket HTTP loop, so the ratio compares the servers and nothing else.

Repetitions interleave the paths (the order rotates) so drift on a shared
machine hits all of them alike; tables show medians and min-max.

Usage::

    .venv/bin/python bench/bench_e2e.py            # seed workload (~2 min)
    .venv/bin/python bench/bench_e2e.py --quick    # small sizes (~1 min)
    .venv/bin/python bench/bench_e2e.py --reps 15 --json out.json

Also the helper processes, started by the benchmark itself (stdlib + NumPy
only at import time, so the reference client's venv can run this file):
``--role ceiling-server|hello-server|reference-client``.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path as FilePath

import numpy as np

BENCH = FilePath(__file__).resolve().parent
REPO = BENCH.parent
SEED_REQUEST = (128, 224, 224, 3)
SEED_RESPONSE = (128, 7, 7, 512)
QUICK_REQUEST = (16, 224, 224, 3)
QUICK_RESPONSE = (16, 7, 7, 512)
SMALL = (1, 4)
RESPONSE_ENV = "TF_GRAPHPIPE_BENCH_RESPONSE"
STARTUP_SECONDS = 120


# ---- the served model -----------------------------------------------------------------

_RESPONSE: np.ndarray | None = None


def constant_model(x: np.ndarray) -> np.ndarray:
    """The benchmark's model: a constant answer (shape from the environment)
    for big requests, the input itself for small ones (the 1x4 call)."""
    global _RESPONSE
    if x.nbytes <= 4096:
        return x
    if _RESPONSE is None:
        shape = tuple(int(d) for d in os.environ[RESPONSE_ENV].split(","))
        _RESPONSE = np.ones(shape, np.float32)
    return _RESPONSE


# ---- helper processes ------------------------------------------------------------------


def _listen() -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    return sock


def ceiling_server(request_bytes: int, response_bytes: int) -> None:
    """Per connection: receive ``request_bytes`` into a reused buffer, answer
    ``response_bytes`` from a preallocated one; a thread per connection."""
    sock = _listen()
    answer = np.ones(response_bytes, np.uint8)
    print(f"{sock.getsockname()[1]}", flush=True)

    def serve(conn: socket.socket) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buffer = np.empty(request_bytes, np.uint8)
        buffer.fill(0)  # touched once: reused, like a warm server buffer
        view = memoryview(buffer)
        with conn:
            while True:
                filled = 0
                while filled < request_bytes:
                    got = conn.recv_into(view[filled:])
                    if not got:
                        return
                    filled += got
                conn.sendall(answer)

    while True:
        conn, _ = sock.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


def hello_server() -> None:
    """uvicorn (httptools, uvloop) with a raw ASGI hello world that reads the body."""
    import uvicorn

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] != "http":
            return
        more = True
        while more:
            message = await receive()
            more = message.get("more_body", False)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain"), (b"content-length", b"5")]})
        await send({"type": "http.response.body", "body": b"hello"})

    sock = _listen()
    print(f"{sock.getsockname()[1]}", flush=True)
    config = uvicorn.Config(app, http="httptools", loop="uvloop", lifespan="off", access_log=False,
                            log_config=None, server_header=False, date_header=False,
                            timeout_keep_alive=75)  # as tf-graphpipe serve (uvicorn's default is 5 s)
    uvicorn.Server(config).run(sockets=[sock])


def reference_client(url: str, request_shape: Sequence[int]) -> None:
    """Commands on stdin, one result line (JSON) each on stdout:
    ``seed`` -> seconds for one call; ``threads N K`` -> seconds for N threads
    doing K calls each; ``small N`` -> N latencies of a 1x4 call."""
    from graphpipe import remote

    x = np.ones(request_shape, np.float32)
    small = np.ones(SMALL, np.float32)
    remote.execute(url, small)
    print("ready", flush=True)
    for line in sys.stdin:
        command, *args = line.split()
        if command == "seed":
            start = time.perf_counter()
            remote.execute(url, x)
            result: object = time.perf_counter() - start
        elif command == "threads":
            count, calls = int(args[0]), int(args[1])
            result = threaded_seconds(lambda: remote.execute(url, x), count, calls)
        elif command == "small":
            result = []
            for _ in range(int(args[0])):
                start = time.perf_counter()
                remote.execute(url, small)
                result.append(time.perf_counter() - start)
        else:
            result = f"unknown command {command!r}"
        print(json.dumps(result), flush=True)


def threaded_seconds(call: Callable[[], object], count: int, calls: int) -> float:
    """Seconds for ``count`` threads each making ``calls`` calls."""
    barrier = threading.Barrier(count + 1)
    errors: list[BaseException] = []

    def work() -> None:
        barrier.wait()
        try:
            for _ in range(calls):
                call()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(count)]
    for thread in threads:
        thread.start()
    barrier.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return time.perf_counter() - start


class Process:
    """A helper process that prints one line (its port or URL) when ready."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None, stdin: bool = False) -> None:
        full_env = dict(os.environ, **(env or {}))
        # bench/ for its helper modules; the package itself from the
        # environment (installed, or PYTHONPATH=. in a checkout).
        full_env["PYTHONPATH"] = os.pathsep.join(p for p in [str(BENCH), full_env.get("PYTHONPATH", "")] if p)
        # Not the current directory first: `-m tf_graphpipe` started from the
        # repository root would import the source tree (no native module).
        full_env["PYTHONSAFEPATH"] = "1"
        self.process = subprocess.Popen(argv, stdout=subprocess.PIPE, stdin=subprocess.PIPE if stdin else None,
                                        stderr=subprocess.DEVNULL if "--quiet" in argv else None,
                                        env=full_env, text=True)
        self.line = self.read_line()

    def read_line(self) -> str:
        line = self.process.stdout.readline()  # type: ignore[union-attr]
        if not line:
            raise RuntimeError(f"{self.process.args} exited with {self.process.wait()}")
        return line.strip()

    def ask(self, command: str) -> object:
        self.process.stdin.write(command + "\n")  # type: ignore[union-attr]
        self.process.stdin.flush()  # type: ignore[union-attr]
        return json.loads(self.read_line())

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


# ---- raw HTTP keep-alive loop (the floor's yardstick) -----------------------------------


class RawHttp:
    """One keep-alive connection sending a prebuilt POST and reading the
    answer into a reused buffer with as little Python as possible (one
    ``sendall``, ``recv_into``): the same loop for every server, small
    answers or large."""

    def __init__(self, port: int, body: bytes) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.request = (b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\n"
                        b"Content-Length: %d\r\n\r\n" % len(body)) + body
        self.buffer = bytearray(1 << 16)

    def call(self) -> None:
        """Returns when the whole answer (sized by its Content-Length) is in;
        raises unless it is a 200."""
        self.sock.sendall(self.request)
        view, filled, need = memoryview(self.buffer), 0, -1
        while need < 0 or filled < need:
            if filled == len(view):
                raise ConnectionError("answer head larger than the buffer")
            got = self.sock.recv_into(view[filled:])
            if not got:
                raise ConnectionError("the server closed the connection")
            filled += got
            if need < 0:
                end = self.buffer.find(b"\r\n\r\n", 0, filled)
                if end >= 0:
                    length = content_length(bytes(self.buffer[:end]))
                    if length is None:
                        raise ConnectionError("answer without Content-Length")
                    need = end + 4 + length
                    if need > len(self.buffer):  # grow once, keep what came
                        grown = bytearray(need)
                        grown[:filled] = self.buffer[:filled]
                        self.buffer, view = grown, memoryview(grown)
        status = int(self.buffer[9:12])
        if status != 200:
            raise RuntimeError(f"the server answered {status}")

    def close(self) -> None:
        self.sock.close()


def content_length(head: bytes) -> int | None:
    """The Content-Length of an HTTP head (request or status line first)."""
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return None


# ---- paths ----------------------------------------------------------------------------


class Path:
    """One way of making the call. ``seed()`` times one seed call (seconds);
    ``threads(n, k)`` times n threads doing k seed calls each; ``small(n)``
    returns n latencies of the 1x4 call. None: not measured on this path."""

    name = ""
    seed_target: str | None = None

    def seed(self) -> float | None:
        return None

    def threads(self, count: int, calls: int) -> float | None:
        return None

    def small(self, count: int) -> list[float] | None:
        return None

    def close(self) -> None:
        pass


class Ceiling(Path):
    name = "raw loopback ceiling"

    def __init__(self, x: np.ndarray, response_bytes: int) -> None:
        self.server = Process([sys.executable, __file__, "--role", "ceiling-server",
                               str(x.nbytes), str(response_bytes)])
        self.port = int(self.server.line)
        self.request = memoryview(x).cast("B")
        self.response_bytes = response_bytes
        self.local = threading.local()

    def _connection(self) -> tuple[socket.socket, memoryview]:
        if not hasattr(self.local, "sock"):
            sock = socket.create_connection(("127.0.0.1", self.port))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            buffer = np.zeros(self.response_bytes, np.uint8)
            self.local.sock, self.local.view = sock, memoryview(buffer)
        return self.local.sock, self.local.view

    def _call(self) -> None:
        sock, view = self._connection()
        sock.sendall(self.request)
        filled = 0
        while filled < self.response_bytes:
            got = sock.recv_into(view[filled:])
            if not got:
                raise ConnectionError("the ceiling server closed the connection")
            filled += got

    def seed(self) -> float:
        start = time.perf_counter()
        self._call()
        return time.perf_counter() - start

    def threads(self, count: int, calls: int) -> float:
        return threaded_seconds(self._call, count, calls)

    def close(self) -> None:
        self.server.close()


class ClientPath(Path):
    name = "tf-graphpipe Client"

    def __init__(self, url: str, x: np.ndarray) -> None:
        from tf_graphpipe import Client

        self.client, self.x, self.small_x = Client(url), x, np.ones(SMALL, np.float32)
        self.local = threading.local()
        self.url = url
        self.client.infer(self.small_x)

    def _thread_client(self):  # type: ignore[no-untyped-def]
        from tf_graphpipe import Client

        if not hasattr(self.local, "client"):
            self.local.client = Client(self.url)
        return self.local.client

    def seed(self) -> float:
        start = time.perf_counter()
        self.client.infer(self.x)
        return time.perf_counter() - start

    def threads(self, count: int, calls: int) -> float:
        return threaded_seconds(lambda: self._thread_client().infer(self.x), count, calls)

    def small(self, count: int) -> list[float]:
        infer, x, samples = self.client.infer, self.small_x, []
        for _ in range(count):
            start = time.perf_counter()
            infer(x)
            samples.append(time.perf_counter() - start)
        return samples


class OpPath(Path):
    name = "remote_call op in tf.function"

    def __init__(self, url: str, x: np.ndarray, response_shape: Sequence[int]) -> None:
        import tensorflow as tf

        import tf_graphpipe

        def call(inputs: tf.Tensor) -> tf.Tensor:
            return tf_graphpipe.remote_call(url, [inputs], output_dtypes=[tf.float32])[0]

        self.function = tf.function(call)
        self.x = tf.constant(x)
        self.small_x = tf.ones(SMALL, tf.float32)
        self.function(self.x)
        self.function(self.small_x)

    def seed(self) -> float:
        start = time.perf_counter()
        self.function(self.x)
        return time.perf_counter() - start

    def threads(self, count: int, calls: int) -> float:
        return threaded_seconds(lambda: self.function(self.x), count, calls)

    def small(self, count: int) -> list[float]:
        function, x, samples = self.function, self.small_x, []
        for _ in range(count):
            start = time.perf_counter()
            function(x)
            samples.append(time.perf_counter() - start)
        return samples


def port_of(url: str) -> int:
    """The port of ``http://127.0.0.1:PORT``."""
    return int(url.rsplit(":", 1)[1])


def split_paths(x: np.ndarray, response_shape: Sequence[int], url: str, op: bool) -> list[Path]:
    """Rows that split the seed call's time (request_bounds.py): the server's
    cost (a raw HTTP client calling it, and a bare asyncio server: a Python
    event loop's floor), the client's and the op's (calling a server that
    answers canned bytes at once)."""
    from tf_graphpipe import _native

    from request_bounds import CannedServer, SeedOnly

    body = bytes(_native.encode_infer_request([x], [10], [], [], b""))
    raw = RawHttp(port_of(url), body)
    answer = bytes(_native.encode_infer_response([np.ones(response_shape, np.float32)], [10]))
    canned, loop_canned = CannedServer(answer), CannedServer(answer, event_loop=True)
    raw_loop = RawHttp(port_of(loop_canned.url), body)
    del body, answer
    client = ClientPath(canned.url, x)
    paths: list[Path] = [
        SeedOnly("split: raw-socket HTTP client → asyncio canned-answer server",  # type: ignore[list-item]
                 raw_loop.call, lambda: (raw_loop.close(), loop_canned.close())),
        SeedOnly("split: raw-socket HTTP client → tf-graphpipe serve", raw.call, raw.close),  # type: ignore[list-item]
        SeedOnly("split: Client → canned-answer server", lambda: client.client.infer(x),  # type: ignore[list-item]
                 client.client.close),
    ]
    if op:
        op_path = OpPath(canned.url, x, response_shape)
        paths.append(SeedOnly("split: op → canned-answer server",  # type: ignore[arg-type]
                              lambda: op_path.function(op_path.x), lambda: None))
    last = paths[-1]
    paths[-1] = SeedOnly(last.name, last.call, lambda: (last.closing(), canned.close()))  # type: ignore[attr-defined]
    return paths


class ReferencePath(Path):
    name = "reference client graphpipe 1.0.4"

    def __init__(self, url: str, request_shape: Sequence[int]) -> None:
        sys.path.insert(0, str(REPO / "tests"))
        from support.peer_venvs import reference_python

        self.client = Process([str(reference_python()), __file__, "--role", "reference-client", url,
                               ",".join(map(str, request_shape))], stdin=True)

    def seed(self) -> float:
        return float(self.client.ask("seed"))  # type: ignore[arg-type]

    def threads(self, count: int, calls: int) -> float:
        return float(self.client.ask(f"threads {count} {calls}"))  # type: ignore[arg-type]

    def small(self, count: int) -> list[float]:
        return list(self.client.ask(f"small {count}"))  # type: ignore[arg-type]

    def close(self) -> None:
        self.client.close()


class RawHttpPath(Path):
    """The keep-alive raw-socket loop, POSTing the 1x4 GraphPipe request."""

    def __init__(self, name: str, port: int, body: bytes) -> None:
        self.name = name
        self.http = RawHttp(port, body)
        self.http.call()

    def small(self, count: int) -> list[float]:
        call, samples = self.http.call, []
        for _ in range(count):
            start = time.perf_counter()
            call()
            samples.append(time.perf_counter() - start)
        return samples

    def close(self) -> None:
        self.http.close()


# ---- the run --------------------------------------------------------------------------


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def run(args: argparse.Namespace) -> dict[str, object]:
    request_shape = QUICK_REQUEST if args.quick else SEED_REQUEST
    response_shape = QUICK_RESPONSE if args.quick else SEED_RESPONSE
    rows = request_shape[0]
    x = np.random.default_rng(0).standard_normal(request_shape, dtype=np.float32)
    response_bytes = int(np.prod(response_shape)) * 4

    from tf_graphpipe import _native

    small_body = bytes(_native.encode_infer_request([np.ones(SMALL, np.float32)], [10], [], [], b""))
    print(f"starting servers (request {x.nbytes / 1e6:.1f} MB, response {response_bytes / 1e6:.1f} MB)...",
          file=sys.stderr)
    server = Process([sys.executable, "-m", "tf_graphpipe", "serve", "bench_e2e:constant_model", "--port", "0",
                      "--log-level", "warning", "--max-request-bytes", str(2 << 30)],
                     env={RESPONSE_ENV: ",".join(map(str, response_shape))})
    hello = Process([sys.executable, __file__, "--role", "hello-server"])
    url = server.line
    port = port_of(url)
    paths: list[Path] = []
    try:
        paths.append(Ceiling(x, response_bytes))
        paths.append(ClientPath(url, x))
        if not args.no_op:
            paths.append(OpPath(url, x, response_shape))
        paths += split_paths(x, response_shape, url, not args.no_op)
        if not args.no_reference:
            paths.append(ReferencePath(url, request_shape))
        floors = [RawHttpPath("HTTP floor: uvicorn hello world (raw loop)", int(hello.line), small_body),
                  RawHttpPath("tf-graphpipe serve (raw loop)", port, small_body)]
        results = measure(paths, floors, args, rows)
    finally:
        for path in paths:
            path.close()
        server.close()
        hello.close()
    results["workload"] = {"request": list(request_shape), "response": list(response_shape),
                           "request_bytes": x.nbytes, "response_bytes": response_bytes}
    return results


def measure(paths: list[Path], floors: list[Path], args: argparse.Namespace, rows: int) -> dict[str, object]:
    seed: dict[str, list[float]] = {p.name: [] for p in paths}
    threaded: dict[str, list[float]] = {p.name: [] for p in paths}
    small: dict[str, list[float]] = {p.name: [] for p in [*floors, *paths]}
    everything = [*paths, *floors]
    for path in paths:  # warm-up: connections, first-touch pages, traces
        path.seed()
    for rep in range(args.reps):
        shift = rep % len(paths)
        for path in paths[shift:] + paths[:shift]:
            value = path.seed()
            if value is not None:
                seed[path.name].append(value)
        if not args.no_threads:
            for path in paths[shift:] + paths[:shift]:
                value = path.threads(args.threads, args.thread_calls)
                if value is not None:
                    threaded[path.name].append(args.threads * args.thread_calls * rows / value)
        shift = rep % len(everything)
        for path in everything[shift:] + everything[:shift]:
            samples = path.small(args.small_calls)
            if samples is not None:
                small[path.name].extend(samples)
        print(f"  rep {rep + 1}/{args.reps}", file=sys.stderr)
    return {"seed": seed, "threads": threaded, "small": {k: v for k, v in small.items() if v},
            "rows": rows, "thread_count": args.threads}


def report(results: dict[str, object]) -> str:
    seed: dict[str, list[float]] = results["seed"]  # type: ignore[assignment]
    threaded: dict[str, list[float]] = results["threads"]  # type: ignore[assignment]
    small: dict[str, list[float]] = results["small"]  # type: ignore[assignment]
    workload: dict[str, object] = results["workload"]  # type: ignore[assignment]
    rows = int(results["rows"])  # type: ignore[arg-type]
    count = results["thread_count"]
    ceiling = _median(seed[Ceiling.name])
    reference = _median(seed.get(ReferencePath.name, []))
    ceiling_5 = _median(threaded.get(Ceiling.name, []))
    lines = [
        f"Request {workload['request']} float32 ({workload['request_bytes'] / 1e6:.1f} MB), response "
        f"{workload['response']} float32 ({workload['response_bytes'] / 1e6:.1f} MB); "
        f"{len(seed[Ceiling.name])} interleaved repetitions, medians (min–max).",
        "",
        f"| path | ms per call | × ceiling speed | × reference speed | rows/s, 1 thread | rows/s, {count} threads "
        f"| {count} threads × ceiling |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, samples in seed.items():
        if not samples:
            continue
        med = _median(samples)
        five = _median(threaded.get(name, []))
        threads_cells = "– | –" if five != five else f"{five:,.0f} | {five / ceiling_5:.2f}"  # nan: not timed
        lines.append(
            f"| {name} | {med * 1e3:.1f} ({min(samples) * 1e3:.1f}–{max(samples) * 1e3:.1f}) "
            f"| {ceiling / med:.2f} | {reference / med:.2f} | {rows / med:,.0f} | {threads_cells} |"
        )
    lines += ["", "The `split:` rows divide a call's time past the ceiling: the server's (a raw-socket HTTP "
              "client calling it; against a bare asyncio server answering canned bytes, a Python event "
              "loop's floor), the client's and the op's (calling a server that answers canned bytes "
              "as soon as the body is in)."]
    floor_name = next((n for n in small if n.startswith("HTTP floor")), None)
    floor = _pct(small[floor_name], 50) if floor_name else float("nan")
    lines += [
        "",
        f"Small request {list(SMALL)} float32, {len(next(iter(small.values())))} calls per path, interleaved.",
        "",
        "| path | p50 µs | p99 µs | p50 × HTTP floor |",
        "|---|---|---|---|",
    ]
    for name, samples in small.items():
        p50 = _pct(samples, 50)
        lines.append(f"| {name} | {p50 * 1e6:.0f} | {_pct(samples, 99) * 1e6:.0f} | {p50 / floor:.2f} |")
    client = _median(seed[ClientPath.name])
    op = _median(seed.get(OpPath.name, []))
    server_small = _pct(small.get("tf-graphpipe serve (raw loop)", []), 50)
    targets = [
        ("Client ≥ 0.6× ceiling", ceiling / client, 0.6),
        ("Client ≥ 3.5× reference", reference / client, 3.5),
        ("op ≥ 0.9× ceiling", ceiling / op, 0.9),
    ]
    lines += ["", "| target | measured | holds |", "|---|---|---|"]
    for label, value, goal in targets:
        lines.append(f"| {label} | {value:.2f} | {'yes' if value >= goal else 'NO'} |")
    ratio = server_small / floor
    holds = "yes" if ratio <= 1.5 else "NO"
    lines.append(f"| small p50 ≤ 1.5× HTTP floor (server, same loop) | {ratio:.2f} | {holds} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="16 images instead of 128, fewer calls")
    parser.add_argument("--reps", type=int, default=None, help="interleaved repetitions (default 9, quick 5)")
    parser.add_argument("--threads", type=int, default=5, help="client threads for the throughput column")
    parser.add_argument("--thread-calls", type=int, default=None, help="calls per thread per repetition")
    parser.add_argument("--small-calls", type=int, default=None, help="1x4 calls per path per repetition")
    parser.add_argument("--no-op", action="store_true", help="skip the tf.function op path")
    parser.add_argument("--no-reference", action="store_true", help="skip the reference client")
    parser.add_argument("--no-threads", action="store_true", help="skip the multi-thread throughput runs")
    parser.add_argument("--json", metavar="FILE", help="also write the raw samples as JSON")
    parser.add_argument("--role", help=argparse.SUPPRESS)
    parser.add_argument("role_args", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.role == "ceiling-server":
        ceiling_server(int(args.role_args[0]), int(args.role_args[1]))
        return 0
    if args.role == "hello-server":
        hello_server()
        return 0
    if args.role == "reference-client":
        reference_client(args.role_args[0], [int(d) for d in args.role_args[1].split(",")])
        return 0
    args.reps = args.reps or (5 if args.quick else 9)
    args.thread_calls = args.thread_calls or (2 if args.quick else 1)
    args.small_calls = args.small_calls or (200 if args.quick else 400)
    results = run(args)
    if args.json:
        with open(args.json, "w") as out:
            json.dump(results, out, indent=1)
    print(report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
