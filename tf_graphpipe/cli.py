# SPDX-License-Identifier: Apache-2.0
"""The ``tf-graphpipe`` command: serve a model, inspect or call a server, run the demo."""
from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from tf_graphpipe.metadata_text import dtype_name, format_metadata

__all__ = ["main", "build_parser"]

EPILOG = """\
examples:
  tf-graphpipe serve ./my_saved_model --port 9000
  tf-graphpipe serve model.keras --port 0 --max-batch-size 32 --batch-timeout-ms 2
  tf-graphpipe serve mypackage.models:predict --input-spec x:float32:-1,4
  tf-graphpipe serve demo
  tf-graphpipe serve --model-repository ./models --poll-seconds 5
  tf-graphpipe serve demo --tls-cert cert.pem --tls-key key.pem --auth-token-file tokens
  tf-graphpipe info http://127.0.0.1:9000
  tf-graphpipe info http://127.0.0.1:8000/v2/models/resnet      (Triton, KServe: v2)
  tf-graphpipe infer http://127.0.0.1:9000 --input x.npy --output y.npy
  tf-graphpipe demo
"""

SERVE_EPILOG = """\
MODEL is one of:
  DIR                      a SavedModel directory (see --signature)
  FILE.keras               a Keras model file
  FILE.onnx                an ONNX model (PyTorch, scikit-learn...), run by ONNX
                           Runtime (pip install 'tf-graphpipe[onnx]'); inputs and
                           outputs come from the graph. By default a call uses
                           every CPU and calls take turns (concurrent calls x
                           --intra-op-threads <= CPUs, whatever --workers is);
                           --intra-op-threads 1 runs up to CPUs calls at once
  package.module:callable  a Python function on NumPy arrays; declare its inputs
                           and outputs with tf.TensorSpec annotations or
                           --input-spec / --output-spec (NAME:DTYPE:SHAPE, e.g.
                           x:float32:-1,4; -1 is any size)
  demo                     the embedded demo model (float32 [batch, 4] -> [batch, 3])

or, instead of MODEL, --model-repository DIR: every model of DIR/<name>/<version>/
(SavedModel, model.keras, or a callable named in DIR/<name>/config.json), at
URL/models/<name>[/versions/<v>] and URL/v2/models/<name>[/versions/<v>]; new
versions are loaded while serving (docs/model_repository.md).

Once listening, prints one line with the URL (http://HOST:PORT) on stdout.
The same port also answers the Open Inference Protocol (KServe v2, e.g.
tritonclient) for the model, named by --name: URL/v2/models/NAME[/infer].
A call that says how long its caller waits (GraphPipe-Timeout header, v2
`timeout` parameter, in microseconds) and is still queued when that time is up
is answered 504 without running the model.
Stops cleanly, exit code 0, on SIGINT (Ctrl-C) or SIGTERM.

examples:
  tf-graphpipe serve ./export/1 --port 9000
  tf-graphpipe serve model.keras --port 0 --name classifier
  tf-graphpipe serve cnn.onnx --max-batch-size 64 --intra-op-threads 2
  tf-graphpipe serve mypackage.models:predict --input-spec x:float32:-1,4 --output-spec y:float32:-1
  tf-graphpipe serve --model-repository ./models --port 9000
  tf-graphpipe serve /models/model.keras --ray auto --replicas 4 --port 8000     (Ray Serve)
"""


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps epilog layout; shows defaults that say something."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        shows_default = action.default not in (None, False, argparse.SUPPRESS) and "%(default)" not in text
        if action.option_strings and shows_default:
            text += " (default: %(default)s)"
        return text


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``tf-graphpipe`` and its subcommands."""
    from tf_graphpipe.server.app import DEFAULT_MAX_REQUEST_BYTES
    from tf_graphpipe.server.http_server import DEFAULT_MAX_CONNECTIONS
    from tf_graphpipe.server.inline import DEFAULT_INLINE_MAX_US
    from tf_graphpipe.server.repository import DEFAULT_POLL_SECONDS

    parser = argparse.ArgumentParser(
        prog="tf-graphpipe",
        description="Serve TensorFlow models over GraphPipe, and call GraphPipe servers.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    defaults = ServeFormatter = _HelpFormatter
    serve = commands.add_parser(
        "serve", help="serve a model over GraphPipe (and KServe v2)",
        description="Serve a model over GraphPipe and the Open Inference Protocol (KServe v2), over HTTP.",
        epilog=SERVE_EPILOG, formatter_class=ServeFormatter,
    )
    serve.add_argument("model", metavar="MODEL", nargs="?", help="what to serve (see below)")
    serve.add_argument("--model-repository", metavar="DIR",
                       help="serve every model and version in DIR instead of one MODEL")
    serve.add_argument("--poll-seconds", type=float, default=DEFAULT_POLL_SECONDS, metavar="S",
                       help="with --model-repository: read DIR again every S seconds, loading new versions "
                            "(0: only at startup and on the v2 repository load/unload requests)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=9000, help="TCP port; 0 picks a free one")
    serve.add_argument("--name", help="model name in metadata (default: from the model)")
    serve.add_argument("--signature", default="serving_default", help="SavedModel signature to serve")
    serve.add_argument("--max-request-bytes", type=int, default=DEFAULT_MAX_REQUEST_BYTES,
                       help="larger request bodies are refused with HTTP 413")
    serve.add_argument("--max-inflight-bytes", type=int, default=None, metavar="BYTES",
                       help="the most request-body bytes held at once over all connections, counted as "
                            "they arrive; a body that would pass it is refused with HTTP 503 "
                            "(default: 2 GiB, or --max-request-bytes if larger)")
    serve.add_argument("--max-connections", type=int, default=DEFAULT_MAX_CONNECTIONS,
                       help="connections open at once; one more is answered HTTP 503 and closed")
    serve.add_argument("--max-batch-size", type=int, default=0,
                       help="merge concurrent calls into batches of up to N rows (0: no batching)")
    serve.add_argument("--batch-timeout-ms", type=float, default=5.0,
                       help="how long a batch waits for more calls")
    serve.add_argument("--workers", type=int, default=None, help="threads running the model (default: CPUs + 2, max 8)")
    serve.add_argument("--inline-max-us", type=float, default=DEFAULT_INLINE_MAX_US, metavar="US",
                       help="run a call (body <= 16 MiB) on the event loop, skipping the hand-off to a "
                            "worker thread, once the model keeps answering calls of that size (bodies up to "
                            "64 KiB, then classes 4x larger each) within US microseconds (0: always use a worker)")
    serve.add_argument("--input-spec", action="append", metavar="NAME:DTYPE:SHAPE",
                       help="declare an input of a callable (repeat for each, in order)")
    serve.add_argument("--output-spec", action="append", metavar="NAME:DTYPE:SHAPE",
                       help="declare an output of a callable (repeat for each, in order)")
    onnx = serve.add_argument_group("ONNX models (FILE.onnx)")
    onnx.add_argument("--intra-op-threads", type=int, metavar="N",
                      help="threads computing one call, the worker's own included (default: the CPUs "
                           "this process may use); CPUs // N calls run at once")
    onnx.add_argument("--inter-op-threads", type=int, metavar="N",
                      help="> 1 runs independent graph branches in parallel with N threads (default: 1, sequential)")
    onnx.add_argument("--graph-optimization", default="all", choices=["disable", "basic", "extended", "all"],
                      help="ONNX Runtime's graph optimisation level")
    _add_security_options(serve)
    ray = serve.add_argument_group("on a Ray cluster (the ray extra; docs/scaling.md)")
    ray.add_argument("--ray", metavar="ADDRESS",
                     help="deploy onto the Ray cluster at ADDRESS (auto, HOST:PORT, ray://...) with Ray Serve; "
                          "--host/--port are then its HTTP proxy's, and the proxy URL is printed once ready")
    ray.add_argument("--replicas", type=int, metavar="N", help="replicas of the model (default: 1)")
    ray.add_argument("--autoscale", metavar="MIN:MAX", help="let Ray Serve keep between MIN and MAX replicas")
    serve.add_argument("--debug", action="store_true", help="send tracebacks in error answers (never in production)")
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                       help="logging level on stderr (debug: one line per request)")

    info = commands.add_parser("info", help="print a server's metadata", formatter_class=defaults,
                               description="Print the metadata of the GraphPipe model at URL; for the root "
                                           "of a server on a model repository, its models and versions.")
    info.add_argument("url", metavar="URL")
    info.add_argument("--json", action="store_true", help="print JSON instead of a table")
    info.add_argument("--timeout", type=float, default=30.0, help="seconds")
    info.add_argument("--protocol", choices=["graphpipe", "v2"],
                      help="default: v2 for URLs whose path is /v2/models/NAME, else graphpipe")

    infer = commands.add_parser(
        "infer", help="call a server with .npy inputs", formatter_class=ServeFormatter,
        description="Call the GraphPipe model at URL with inputs from .npy files: a curl for GraphPipe.",
        epilog="examples:\n  tf-graphpipe infer http://127.0.0.1:9000 --input x.npy --output y.npy\n"
               "  tf-graphpipe infer URL --input a.npy --input-name a --input b.npy --input-name b "
               "--output out.npz\n",
    )
    infer.add_argument("url", metavar="URL")
    infer.add_argument("--input", action="append", required=True, metavar="FILE.npy",
                       help="an input array (repeat for several inputs)")
    infer.add_argument("--input-name", action="append", metavar="NAME",
                       help="name of each --input, in the same order (default: the server's order)")
    infer.add_argument("--output-name", action="append", metavar="NAME", help="outputs to ask for (default: all)")
    infer.add_argument("--output", metavar="FILE", help="save outputs to FILE.npy (one output) or FILE.npz (several)")
    infer.add_argument("--config", help="the request's config string")
    infer.add_argument("--timeout", type=float, default=30.0, help="seconds")
    infer.add_argument("--protocol", choices=["graphpipe", "v2"],
                       help="default: v2 for URLs whose path is /v2/models/NAME, else graphpipe")

    for command in (info, infer):
        _add_client_options(command)

    commands.add_parser("demo", help="serve the demo model and call it", formatter_class=defaults,
                        description="Start a server on the embedded demo model, call it with the Client, stop it.")
    return parser


def _add_security_options(serve: argparse.ArgumentParser) -> None:
    group = serve.add_argument_group("TLS, tokens, metrics and logs (docs/security.md)")
    group.add_argument("--tls-cert", metavar="FILE", help="serve HTTPS with this PEM certificate (chain, leaf first)")
    group.add_argument("--tls-key", metavar="FILE",
                       help="the certificate's unencrypted PEM key (default: in --tls-cert)")
    group.add_argument("--tls-client-ca", metavar="FILE",
                       help="mutual TLS: refuse clients without a certificate signed by a CA in this PEM file")
    group.add_argument("--auth-token-file", metavar="FILE",
                       help="require 'Authorization: Bearer <token>' with a token listed in FILE (one per line; "
                            "re-read when it changes)")
    group.add_argument("--auth-health", action="store_true",
                       help="require the token on health routes too (default: they answer without one, for probes)")
    group.add_argument("--no-metrics", action="store_true", help="do not serve /metrics")
    group.add_argument("--access-log", nargs="?", const="-", metavar="FILE",
                       help="one line per request (with its traceparent) to FILE, or stderr without FILE")


def _add_client_options(command: argparse.ArgumentParser) -> None:
    group = command.add_argument_group("TLS and credentials")
    group.add_argument("--ca-file", metavar="FILE",
                       help="verify an https:// server against this PEM CA bundle (default: the system's store)")
    group.add_argument("--client-cert", metavar="FILE", help="PEM client certificate, for servers requiring mutual TLS")
    group.add_argument("--client-key", metavar="FILE", help="the client certificate's PEM key (default: in it)")
    tokens = group.add_mutually_exclusive_group()
    tokens.add_argument("--auth-token-env", metavar="VAR",
                        help="send the bearer token held in environment variable VAR")
    tokens.add_argument("--auth-token-file", metavar="FILE", help="send the bearer token held in FILE")
    group.add_argument("--header", action="append", metavar="NAME:VALUE", default=[],
                       help="send this (non-secret) header on the call (repeat for several)")


def _client_options(args: argparse.Namespace) -> dict[str, Any]:
    """The ``Client`` keyword arguments of ``info`` / ``infer``'s options."""
    headers = {}
    for text in args.header:
        name, colon, value = text.partition(":")
        if not colon:
            raise ValueError(f"--header {text!r}: expected NAME:VALUE")
        headers[name.strip()] = value.strip()
    options = {"ca_file": args.ca_file, "client_cert": args.client_cert, "client_key": args.client_key,
               "auth_token_env": args.auth_token_env, "auth_token_file": args.auth_token_file,
               "headers": headers or None}
    return {key: value for key, value in options.items() if value is not None}


def main(argv: Sequence[str] | None = None) -> int:
    """Runs ``tf-graphpipe``; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "serve":
        _check_serve_args(parser, args)
    try:
        if args.command == "serve":
            return _serve(args)
        if args.command == "info":
            return _info(args)
        if args.command == "infer":
            return _infer(args)
        from tf_graphpipe.demo import run_demo

        return run_demo()
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # one line for the user; --debug / log-level debug for more
        if getattr(args, "debug", False) or getattr(args, "log_level", "") == "debug":
            raise
        print(f"tf-graphpipe {args.command}: error: {exc}", file=sys.stderr)
        return 1


_PER_MODEL_OPTIONS = (("name", "--name"), ("input_spec", "--input-spec"), ("output_spec", "--output-spec"))


def _check_serve_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if (args.model is None) == (args.model_repository is None):
        parser.error("serve takes MODEL or --model-repository DIR (one of them)")
    if args.model_repository is not None:
        given = [flag for key, flag in _PER_MODEL_OPTIONS if getattr(args, key)]
        if args.signature != "serving_default":
            given.append("--signature")
        if given:
            parser.error(f"{', '.join(given)}: with --model-repository, set these per model in its config.json")


def _serve(args: argparse.Namespace) -> int:
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from tf_graphpipe.server import serve
    from tf_graphpipe.server.onnx_models import SessionSettings

    if args.ray is not None:
        return _serve_on_ray(args, stop, previous)
    if args.access_log is not None:
        from tf_graphpipe.server.access_log import log_to

        log_to(args.access_log)

    try:
        server = serve(
            args.model, args.host, args.port, repository=args.model_repository, poll_seconds=args.poll_seconds,
            name=args.name, signature=args.signature,
            max_request_bytes=args.max_request_bytes, max_inflight_bytes=args.max_inflight_bytes,
            max_connections=args.max_connections, max_batch_size=args.max_batch_size,
            batch_timeout_ms=args.batch_timeout_ms, debug=args.debug, workers=args.workers,
            inline_max_us=args.inline_max_us,
            input_specs=args.input_spec, output_specs=args.output_spec,
            onnx=SessionSettings(args.intra_op_threads, args.inter_op_threads, args.graph_optimization),
            tls_cert=args.tls_cert, tls_key=args.tls_key, tls_client_ca=args.tls_client_ca,
            auth_token_file=args.auth_token_file, auth_health=args.auth_health,
            metrics=False if args.no_metrics else None, access_log=args.access_log is not None,
        )
        with server:
            print(server.url, flush=True)
            stop.wait()
            logging.getLogger("tf_graphpipe.server").info("stopping %s", server.url)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def _serve_on_ray(args: argparse.Namespace, stop: threading.Event, previous: dict[Any, Any]) -> int:
    from tf_graphpipe.ray_serve import parse_autoscale, run
    from tf_graphpipe.server.onnx_models import SessionSettings

    if args.replicas is not None and args.autoscale is not None:
        raise ValueError("give --replicas or --autoscale, not both")
    if args.tls_cert or args.tls_client_ca or args.auth_token_file:
        raise ValueError("--tls-* and --auth-token-file are not applied on Ray: terminate TLS and check tokens in "
                         "front of Ray Serve's proxy (docs/scaling.md)")
    per_model: dict[str, Any] = {"name": args.name, "signature": args.signature, "input_specs": args.input_spec,
                                 "output_specs": args.output_spec}
    if args.model_repository is not None:  # each model's config.json says these (checked)
        per_model = {"repository": args.model_repository, "poll_seconds": args.poll_seconds}
    try:
        application = run(
            args.model, args.ray, host=args.host, port=args.port, **per_model,
            max_request_bytes=args.max_request_bytes, max_batch_size=args.max_batch_size,
            batch_timeout_ms=args.batch_timeout_ms, debug=args.debug, workers=args.workers,
            inline_max_us=args.inline_max_us,
            onnx=SessionSettings(args.intra_op_threads, args.inter_op_threads, args.graph_optimization),
            num_replicas=args.replicas,
            autoscaling_config=parse_autoscale(args.autoscale) if args.autoscale else None,
        )
        for sig in previous:  # ray.init installs its own handlers, which abort the process
            signal.signal(sig, lambda signum, frame: stop.set())
        with application:
            print(application.url, flush=True)
            stop.wait()
            logging.getLogger("tf_graphpipe.ray_serve").info("deleting %s", application.name)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def _info(args: argparse.Namespace) -> int:
    from tf_graphpipe import Client

    options = _client_options(args)
    listing = _repository_listing(args.url, args.timeout, options) if args.protocol is None else None
    if listing is not None:
        print(json.dumps(listing, indent=2) if args.json else format_models(args.url, listing))
        return 0

    metadata = Client(args.url, timeout=args.timeout, protocol=args.protocol, **options).metadata()
    if args.json:
        for key in ("inputs", "outputs"):
            for entry in metadata[key]:
                entry["dtype"] = dtype_name(entry["dtype"])
        print(json.dumps(metadata, indent=2))
        return 0
    print(format_metadata(metadata))
    return 0


def _repository_listing(url: str, timeout: float, options: dict[str, Any]) -> dict[str, Any] | None:
    """``GET URL/models`` when URL is a server's root and the server serves a
    model repository; None otherwise (any other server answers metadata, or
    nothing, there). ``options``: the ``Client`` options of the command
    line (TLS files, token, headers), applied to this request too."""
    import os
    import ssl
    import urllib.request
    from pathlib import Path
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or parts.path not in ("", "/"):
        return None
    headers = dict(options.get("headers") or {})
    token = (os.environ.get(options["auth_token_env"], "") if "auth_token_env" in options
             else Path(options["auth_token_file"]).read_text().strip() if "auth_token_file" in options else "")
    if token:
        headers["Authorization"] = f"Bearer {token}"
    context = None
    if parts.scheme == "https":
        context = ssl.create_default_context(cafile=options.get("ca_file"))
        if "client_cert" in options:
            context.load_cert_chain(options["client_cert"], options.get("client_key"))
    request = urllib.request.Request(url.rstrip("/") + "/models", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as answer:  # noqa: S310
            listing = json.loads(answer.read())
    except (OSError, ValueError):  # refused, 404, not JSON: not a repository; the metadata call says why
        return None
    if isinstance(listing, dict) and isinstance(listing.get("models"), list):
        return listing
    return None


def format_models(url: str, listing: dict[str, Any]) -> str:
    """``GET /models`` as a short table: one line per model, its versions and states."""
    models = listing["models"]
    lines = [f"{len(models)} model{'s' if len(models) != 1 else ''} at {url}:"]
    width = max((len(m["name"]) for m in models), default=0)
    for model in models:
        versions = ", ".join(f"{v['version']} ({v['state']})" for v in model["versions"]) or "no version served"
        notes = [note for note in ("unloaded" if model.get("unloaded") else "", model.get("error", "")) if note]
        lines.append(f"  {model['name']:<{width}}  {versions}" + "".join(f"  [{note}]" for note in notes))
    lines.append(f"call {url.rstrip('/')}/models/<name>[/versions/<v>] (GraphPipe) or /v2/models/<name> (v2)")
    return "\n".join(lines)


def _infer(args: argparse.Namespace) -> int:
    from tf_graphpipe import Client

    arrays = [np.load(path, allow_pickle=False) for path in args.input]
    names = args.input_name or None
    if names and len(names) != len(arrays):
        raise ValueError(f"got {len(arrays)} --input but {len(names)} --input-name")
    client = Client(args.url, timeout=args.timeout, protocol=args.protocol, **_client_options(args))
    result = client.infer(arrays, input_names=names, output_names=args.output_name, config=args.config)
    outputs = result if isinstance(result, list) else [result]
    labels = args.output_name or [f"output{i}" for i in range(len(outputs))]
    if args.output:
        if len(outputs) == 1 and not args.output.endswith(".npz"):
            np.save(args.output, outputs[0], allow_pickle=outputs[0].dtype == object)
        elif args.output.endswith(".npz"):
            np.savez(args.output, **dict(zip(labels, outputs)))
        else:
            raise ValueError(f"the server returned {len(outputs)} outputs: save them to a .npz file")
        return 0
    for label, value in zip(labels, outputs):
        print(f"{label}: {value.dtype if value.dtype != object else 'string'} {list(value.shape)}")
        print(np.array2string(value, threshold=200))
    return 0
