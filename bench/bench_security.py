# SPDX-License-Identifier: Apache-2.0
"""What production serving costs: TLS against plain HTTP on the seed
workload, and the request path with Prometheus metrics on and off.

* **TLS**: ``Client.infer`` of the seed request (128x224x224x3 float32,
  77 MB, answered with 12.8 MB) to ``tf-graphpipe serve`` over ``https://``
  and over ``http://``, rows/s, the two servers alike but for
  ``--tls-cert/--tls-key``. The anchor bounding the TLS side: Python's
  ``ssl`` moving the same bytes both ways over a loopback socket pair with
  no HTTP and no codec (one core encrypting, one decrypting, as the real
  path does).
* **Metrics**: 1x4 float32 calls, p50 and p99, to a server with metrics on
  (the default) and one with ``--no-metrics``, on the default inline path
  and on a model worker (``--inline-max-us 0``, where the worker writes the
  answer itself).

Every server runs in its own process on 127.0.0.1; repetitions interleave
the sides (the order alternates) and tables show medians with min-max.

Usage::

    .venv/bin/python bench/bench_security.py            # seed workload
    .venv/bin/python bench/bench_security.py --quick    # 16 rows
"""
from __future__ import annotations

import argparse
import os
import socket
import ssl
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    REPO,
    SEED_REQUEST,
    SEED_RESPONSE,
    Report,
    Server,
    bench_main,
    interleaved,
    median,
    percentile,
    spread,
)

QUICK_ROWS = 16
TINY_ROWS = 2
SMALL = (1, 4)
RESPONSE_ENV = "TF_GRAPHPIPE_BENCH_RESPONSE"


def _certificates(directory: Path) -> object:
    sys.path.insert(0, str(REPO / "tests"))
    try:
        from support.certificates import make_certificates
    finally:
        sys.path.remove(str(REPO / "tests"))
    return make_certificates(directory)


def _server(response_shape: tuple[int, ...], *extra: str) -> Server:
    os.environ[RESPONSE_ENV] = ",".join(map(str, response_shape))  # read by bench_e2e:constant_model
    return Server([sys.executable, "-m", "tf_graphpipe", "serve", "bench_e2e:constant_model", "--port", "0",
                   "--log-level", "warning", "--max-request-bytes", str(2 << 30), *extra],
                  ready_prefix=("http://", "https://"), name=f"tf-graphpipe serve {' '.join(extra)}".strip())


def _seconds(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def _small_samples(call: Callable[[], object], count: int) -> list[float]:
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    return samples


class TlsCeiling:
    """Python's ``ssl`` over a loopback socket pair, the seed's bytes both
    ways into reused buffers: what TLS alone allows on this machine."""

    def __init__(self, certs: object, request_bytes: int, response_bytes: int) -> None:
        server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server_context.load_cert_chain(str(certs.server_cert), str(certs.server_key))  # type: ignore[attr-defined]
        client_context = ssl.create_default_context(cafile=str(certs.ca))  # type: ignore[attr-defined]
        listener = socket.create_server(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        self.request, self.response = np.ones(request_bytes, np.uint8), np.ones(response_bytes, np.uint8)
        self.thread = threading.Thread(target=self._serve, args=(listener, server_context), daemon=True)
        self.thread.start()
        self.sock = client_context.wrap_socket(socket.create_connection(("127.0.0.1", port)),
                                               server_hostname="127.0.0.1")
        self.received = memoryview(np.empty(response_bytes, np.uint8))

    def _serve(self, listener: socket.socket, context: ssl.SSLContext) -> None:
        raw, _ = listener.accept()
        listener.close()
        with context.wrap_socket(raw, server_side=True) as conn:
            buffer = memoryview(np.empty(self.request.nbytes, np.uint8))
            while True:
                filled = 0
                while filled < len(buffer):
                    got = conn.recv_into(buffer[filled:])
                    if not got:
                        return
                    filled += got
                conn.sendall(self.response)

    def call(self) -> None:
        self.sock.sendall(self.request)
        filled = 0
        while filled < len(self.received):
            filled += self.sock.recv_into(self.received[filled:])

    def close(self) -> None:
        self.sock.close()
        self.thread.join(10)


def run(args: argparse.Namespace) -> Report:
    from tf_graphpipe import Client

    rows = TINY_ROWS if args.tiny else QUICK_ROWS if args.quick else SEED_REQUEST[0]
    reps = args.reps or (1 if args.tiny else 5 if args.quick else 7)
    small_calls = 50 if args.tiny else 2000
    request_shape, response_shape = (rows, *SEED_REQUEST[1:]), (rows, *SEED_RESPONSE[1:])
    x = np.random.default_rng(0).standard_normal(request_shape, dtype=np.float32)
    small_x = np.ones(SMALL, np.float32)
    response_bytes = int(np.prod(response_shape)) * 4
    report = Report("Production serving: TLS vs plain HTTP, metrics on vs off")
    with tempfile.TemporaryDirectory() as directory:
        certs = _certificates(Path(directory))
        tls_flags = ("--tls-cert", str(certs.server_cert), "--tls-key", str(certs.server_key))  # type: ignore[attr-defined]
        servers = {"plain": _server(response_shape), "tls": _server(response_shape, *tls_flags),
                   "no-metrics": _server(response_shape, "--no-metrics"),
                   # Calls on a model worker, which writes its own answer (design.md, Threads).
                   "worker": _server(response_shape, "--inline-max-us", "0"),
                   "worker-no-metrics": _server(response_shape, "--no-metrics", "--inline-max-us", "0")}
        ceiling = TlsCeiling(certs, x.nbytes, response_bytes)
        try:
            clients = {name: Client(server.line, timeout=120, ca_file=str(certs.ca))  # type: ignore[attr-defined]
                       for name, server in servers.items()}
            for client in clients.values():  # warm-up: connections, first-touch pages
                client.infer(x)
                client.infer(small_x)
            ceiling.call()
            seed: dict[str, list[float]] = {"plain": [], "tls": [], "ceiling": []}
            small: dict[str, list[float]] = {"plain": [], "no-metrics": [], "tls": [], "worker": [],
                                             "worker-no-metrics": []}
            p50s: dict[str, list[float]] = {name: [] for name in small}
            for rep in range(reps):
                interleaved(rep, [lambda: seed["plain"].append(_seconds(lambda: clients["plain"].infer(x))),
                                  lambda: seed["tls"].append(_seconds(lambda: clients["tls"].infer(x))),
                                  lambda: seed["ceiling"].append(_seconds(ceiling.call))])
                for name in (list(small) if rep % 2 == 0 else reversed(list(small))):
                    samples = _small_samples(lambda name=name: clients[name].infer(small_x), small_calls)
                    small[name].extend(samples)
                    p50s[name].append(percentile(samples, 50))
                print(f"  rep {rep + 1}/{reps}", file=sys.stderr)
        finally:
            ceiling.close()
            for server in servers.values():
                server.stop()
    throughput = {name: [rows / s for s in values] for name, values in seed.items()}
    tls_ratio = median(throughput["tls"]) / median(throughput["plain"])
    ceiling_ratio = median(throughput["tls"]) / median(throughput["ceiling"])
    report.add(f"Seed workload: {rows}x224x224x3 float32 in ({x.nbytes / 1e6:.1f} MB), "
               f"{rows}x7x7x512 out ({response_bytes / 1e6:.1f} MB); {reps} interleaved repetitions.", "")
    report.add("| path | rows/s (median) | min–max | vs plain HTTP |", "|---|---:|---:|---:|")
    plain = median(throughput["plain"])
    for name, label in (("plain", "Client, http://"), ("tls", "Client, https:// (TLS)"),
                        ("ceiling", "TLS alone: Python ssl, loopback socket pair (no HTTP, no codec)")):
        report.add(f"| {label} | {median(throughput[name]):.1f} | {spread(throughput[name], 1, 1)} | "
                   f"{median(throughput[name]) / plain:.2f}x |")
    report.add("", f"1x4 float32 calls: {small_calls} per side per repetition; p50 is the median of the "
               "repetitions' p50s.", "")
    report.add("| server | p50 µs | p50 min–max | p99 µs |", "|---|---:|---:|---:|")
    for name, label in (("plain", "metrics on (default)"), ("no-metrics", "--no-metrics"), ("tls", "TLS, metrics on"),
                        ("worker", "on a worker (--inline-max-us 0), metrics on"),
                        ("worker-no-metrics", "on a worker, --no-metrics")):
        report.add(f"| {label} | {median(p50s[name]) * 1e6:.0f} | {spread(p50s[name], 1e6, 0)} | "
                   f"{percentile(small[name], 99) * 1e6:.0f} |")
    metrics_ratio = median(p50s["plain"]) / median(p50s["no-metrics"])
    worker_ratio = median(p50s["worker"]) / median(p50s["worker-no-metrics"])
    anchor = median(throughput["ceiling"]) / plain
    report.add("", f"TLS runs at {tls_ratio:.2f}x plain HTTP; TLS alone (two Python ssl sockets, no HTTP, no "
               f"codec) moves the seed at {anchor:.2f}x plain, and the TLS path at {ceiling_ratio:.2f}x of that. "
               "The server decrypts and encrypts with Python's ssl records in asyncio's SSL transport (one "
               "extra copy into its memory BIO, one read per 16 KiB record); the client is libcurl's OpenSSL "
               "in C: encryption and that record handling bound the TLS path, not HTTP or the codec.")
    report.target("seed over TLS ≥ 0.5x plain HTTP rows/s", f"{tls_ratio:.2f}x", tls_ratio >= 0.5)
    report.target("1x4 p50, metrics on vs off, within 5 %", f"{metrics_ratio:.3f}x", abs(metrics_ratio - 1) <= 0.05)
    report.target("1x4 p50 on a worker, metrics on vs off, within 5 %", f"{worker_ratio:.3f}x",
                  abs(worker_ratio - 1) <= 0.05)
    return report


def main() -> None:
    bench_main(__doc__.splitlines()[0], run)


if __name__ == "__main__":
    main()
