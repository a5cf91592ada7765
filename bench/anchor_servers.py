# SPDX-License-Identifier: Apache-2.0
"""The trivial model every path serves, and the anchor servers, each run as
its own process on 127.0.0.1.

Model (importable as ``anchor_servers:features`` by ``tf-graphpipe serve``):
a batch of images N×224×224×3 float32 in, N×7×7×512 float32 features out,
filled with a constant (a fresh array per call, as a real model would
return), so that only transport and serialization are measured.
``anchor_servers:echo`` returns its input (the 1×4 small-call case).

Servers (``python bench/anchor_servers.py KIND --port P``; each prints its
URL on stdout once it listens, and stops on SIGTERM):

- ``tf-rpc``: TensorFlow's in-graph RPC server
  (``tf.distribute.experimental.rpc.Server``, gRPC) with the methods
  ``features`` and ``echo`` as tf.functions; prints ``grpc://HOST:PORT``.
- ``json``: a JSON HTTP API as the seed measured it: the body is
  ``{"inputs": nested lists}``, decoded with ``ujson`` into NumPy, answered
  with ``{"outputs": nested lists}`` (``ujson.dumps(y.tolist())``).
- ``tfs``: TensorFlow Serving's protobuf over HTTP: the body is a serialized
  ``tensorflow.serving.PredictRequest``, decoded with ``tf.make_ndarray``;
  the answer a ``PredictResponse`` built with ``tf.make_tensor_proto``.
- ``hello``: a bare HTTP/1.1 server answering a few bytes (a latency floor).

The HTTP servers are the standard library's threading server with HTTP/1.1
keep-alive (one thread per connection).
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

from anchor_wire import json_array, json_body, predict_request_array, predict_response

FEATURES = (7, 7, 512)
FILL = 0.5


def features(x: np.ndarray) -> np.ndarray:
    """The trivial model: N×224×224×3 -> N×7×7×512 (constant)."""
    return np.full((x.shape[0], *FEATURES), FILL, np.float32)


def echo(x: np.ndarray) -> np.ndarray:
    return x


# ---- TensorFlow's in-graph RPC ---------------------------------------------------------


def serve_tf_rpc(host: str, port: int) -> None:
    import tensorflow as tf

    address = f"{host}:{port}"
    server = tf.distribute.experimental.rpc.Server.create("grpc", address)

    @tf.function(input_signature=[tf.TensorSpec([None, 224, 224, 3], tf.float32)])
    def tf_features(x: tf.Tensor) -> tf.Tensor:
        return tf.fill([tf.shape(x)[0], *FEATURES], tf.constant(FILL, tf.float32))

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32)])
    def tf_echo(x: tf.Tensor) -> tf.Tensor:
        return tf.identity(x)

    server.register("features", tf_features)
    server.register("echo", tf_echo)
    server.start()
    print(f"grpc://{address}", flush=True)
    _wait_for_sigterm()


# ---- HTTP servers ----------------------------------------------------------------------


def _handler(answer: Callable[[bytes], tuple[bytes, str]]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # else headers and body meet Nagle + delayed ACK (40 ms)

        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length) if length else b""
            try:
                data, content_type = answer(body)
                status = 200
            except Exception as error:  # noqa: BLE001 - the client sees it
                data, content_type, status = str(error).encode(), "text/plain", 400
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST  # noqa: N815

        def log_message(self, *args: object) -> None:
            pass

    return Handler


def json_answer(body: bytes) -> tuple[bytes, str]:
    x = json_array("inputs", body)
    y = features(x) if x.ndim == 4 else echo(x)
    return json_body("outputs", y), "application/json"


def tfs_answer_factory() -> Callable[[bytes], tuple[bytes, str]]:
    import tensorflow  # noqa: F401 - loaded before the first request, not during it

    def answer(body: bytes) -> tuple[bytes, str]:
        x, model = predict_request_array(body)
        y = features(x) if x.ndim == 4 else echo(x)
        return predict_response(y, model), "application/x-protobuf"

    return answer


def hello_answer(body: bytes) -> tuple[bytes, str]:
    return b"hello", "text/plain"


def serve_http(host: str, port: int, answer: Callable[[bytes], tuple[bytes, str]]) -> None:
    server = ThreadingHTTPServer((host, port), _handler(answer))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"http://{host}:{server.server_address[1]}", flush=True)
    _wait_for_sigterm()
    server.shutdown()


def _wait_for_sigterm() -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    while not stop.wait(3600):
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description="anchor servers for the benchmarks")
    parser.add_argument("kind", choices=["tf-rpc", "json", "tfs", "hello"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    if args.kind == "tf-rpc":
        serve_tf_rpc(args.host, args.port)
    elif args.kind == "json":
        serve_http(args.host, args.port, json_answer)
    elif args.kind == "tfs":
        serve_http(args.host, args.port, tfs_answer_factory())
    else:
        serve_http(args.host, args.port, hello_answer)
    sys.stdout.flush()
    os._exit(0)  # TF's gRPC threads may otherwise hold the exit


if __name__ == "__main__":
    main()
