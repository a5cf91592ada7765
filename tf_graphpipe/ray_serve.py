# SPDX-License-Identifier: Apache-2.0
"""Serve a model on Ray Serve: many replicas across a cluster behind one URL,
answering GraphPipe and the Open Inference Protocol (KServe v2) exactly as
``tf-graphpipe serve`` does. Needs the ``ray`` extra
(``pip install 'tf-graphpipe[ray]'``).

Each replica (``GraphPipeModel``, ``ray_serve_replica``) loads the model
(or every model of a model repository, which it polls on its own) and runs
the server's own ASGI app, ``GraphPipeApp``: the same routes, metadata,
health, errors, size limit and dynamic batching (inside each replica) as
the server's own port.

A call whose replica died or became unreachable must fail as 503
Unavailable (which clients retry), not as Ray's plain 500 (a model failure).
Two ways, chosen by ``deployment(gateway=...)``:

* Ray's proxy calls the replicas directly, and a middleware in the proxy
  (``ray_serve_proxy``) answers 503 when Ray could not get an answer from
  the replica. Free for the calls that succeed, but the proxy must have been
  started with it: ``start_serve`` (which ``run`` and ``tf-graphpipe serve
  --ray`` use) does that, or set ``RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH``
  for ``ray start --head``.
* ``GraphPipeGateway`` (``ray_serve_gateway``), an ingress deployment on
  the head node, hands each call to a replica and answers 503 when Ray
  reports the replica lost or it has said nothing for ``lost_after_s``.
  Works with any proxy; costs a second crossing of Ray's object store for
  every body (docs/scaling.md has the figures).

By default (``gateway=None``) the application uses the proxy's middleware
when the running proxy has it, else the gateway.

Example::

    from ray import serve
    from tf_graphpipe.ray_serve import deployment

    serve.start(http_options={"host": "127.0.0.1", "port": 8000})
    serve.run(deployment("model.keras", num_replicas=4), name="classifier")
    # GraphPipe at http://127.0.0.1:8000/, v2 at .../v2/models/<name>

From Ray's own tooling, with ``build`` (an application builder)::

    serve run tf_graphpipe.ray_serve:build model=/models/model.keras num_replicas=2
"""
from __future__ import annotations

import json
import logging
import os
import socket
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tf_graphpipe.server.bodies import DEFAULT_MAX_REQUEST_BYTES
from tf_graphpipe.server.inline import DEFAULT_INLINE_MAX_US
from tf_graphpipe.server.repository import DEFAULT_POLL_SECONDS
from tf_graphpipe.server.specs import IOSpec

__all__ = ["DEFAULT_HEALTH_CHECK_PERIOD_S", "DEFAULT_HEALTH_CHECK_TIMEOUT_S", "RayApplication", "build",
           "deployment", "proxy_answers_lost_replicas", "run", "start_serve"]

log = logging.getLogger("tf_graphpipe.ray_serve")

MISSING_EXTRA = "tf_graphpipe.ray_serve needs Ray Serve: pip install 'tf-graphpipe[ray]'"

# Ray checks each replica this often and replaces one that fails to answer
# within the timeout (Ray's defaults, 10 s and 30 s, leave a dead replica in
# the routing tables for half a minute).
DEFAULT_HEALTH_CHECK_PERIOD_S = 2.0
DEFAULT_HEALTH_CHECK_TIMEOUT_S = 10.0
# Calls a replica holds at once when nothing says otherwise (Ray's default);
# with batching, at least a batch's worth, or batches could never fill.
DEFAULT_MAX_ONGOING_REQUESTS = 5
# The gateway holds every call in flight to every replica.
GATEWAY_MAX_ONGOING_REQUESTS = 256
# The head node's resource, which keeps the gateway beside the proxy.
HEAD_NODE_RESOURCE = "node:__internal_head__"


def _serve() -> Any:
    try:
        from ray import serve
    except ImportError as exc:
        raise ImportError(MISSING_EXTRA) from exc
    return serve


def deployment(
    model: Any = None,
    *,
    repository: str | os.PathLike[str] | None = None,
    poll_seconds: float = DEFAULT_POLL_SECONDS,
    name: str | None = None,
    signature: str = "serving_default",
    input_specs: Sequence[IOSpec | str] | None = None,
    output_specs: Sequence[IOSpec | str] | None = None,
    onnx: Any = None,
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
    max_batch_size: int = 0,
    batch_timeout_ms: float = 5.0,
    workers: int | None = None,
    inline_max_us: float = DEFAULT_INLINE_MAX_US,
    debug: bool = False,
    num_replicas: int | str | None = None,
    autoscaling_config: Mapping[str, Any] | None = None,
    ray_actor_options: Mapping[str, Any] | None = None,
    max_ongoing_requests: int | None = None,
    health_check_period_s: float = DEFAULT_HEALTH_CHECK_PERIOD_S,
    health_check_timeout_s: float = DEFAULT_HEALTH_CHECK_TIMEOUT_S,
    gateway: bool | None = None,
    lost_after_s: float | None = None,
    gateway_options: Mapping[str, Any] | None = None,
) -> Any:
    """A Ray Serve application serving ``model`` on replicas.

    Args:
        model: what ``tf-graphpipe serve`` takes: a SavedModel directory, a
            ``.keras`` or ``.onnx`` file, ``"package.module:callable"``,
            ``"demo"``, or a Python callable (pickled to the replicas). A
            path must exist on every node where a replica may run; a
            relative path that exists here is made absolute.
        repository: instead of ``model``, a model repository directory
            (docs/model_repository.md) that every node where a replica may
            run sees (a shared volume). Each replica serves all of it and
            reads it again every ``poll_seconds``: the directory is what
            every replica converges to; the v2 load/unload requests are
            refused (docs/scaling.md).
        poll_seconds: with ``repository``, how often each replica reads it
            (0: only when the replica starts).
        name, signature, input_specs, output_specs, onnx: as ``serve()``
            (with a repository, each model's ``config.json`` sets the first
            four).
        max_request_bytes, max_batch_size, batch_timeout_ms, workers,
            inline_max_us, debug: the server's options, applied by each
            replica (batching merges the calls one replica holds).
        num_replicas: replicas to run (Ray's default: 1); ``"auto"`` for
            Ray's default autoscaling.
        autoscaling_config: Ray's autoscaling (``min_replicas``,
            ``max_replicas``, ``target_ongoing_requests``...), instead of
            ``num_replicas``.
        ray_actor_options: each replica's resources (``num_cpus``...),
            ``runtime_env`` and the rest of Ray's actor options.
        max_ongoing_requests: calls one replica holds at once (default 5,
            or ``max_batch_size`` when larger).
        health_check_period_s, health_check_timeout_s: how often Ray checks
            a replica, and how long it waits before replacing it.
        gateway: True: the gateway in front of the replicas; False: Ray's
            proxy calls them directly (a lost replica's calls are 503 only
            if the proxy has the middleware of ``start_serve``, else Ray's
            500); None: False when the running proxy has that middleware
            (``proxy_answers_lost_replicas``), else True.
        lost_after_s: the gateway answers 503 when a replica has said
            nothing for this long (default 10 s).
        gateway_options: Ray deployment options of the gateway
            (``num_replicas``, ``ray_actor_options``...; by default one
            replica on the head node, no CPU reserved).

    Returns:
        A ``ray.serve.Application``, for ``serve.run`` or a config file.

    Raises:
        ImportError: Ray Serve is not installed (the ``ray`` extra).
        ValueError: an option is out of range, or one a repository's
            ``config.json`` sets is given with ``repository``.
        FileNotFoundError: ``repository`` is not a directory.
    """
    serve = _serve()
    from tf_graphpipe.ray_serve_gateway import DEFAULT_LOST_AFTER_S, Gateway
    from tf_graphpipe.ray_serve_replica import ModelReplica

    if (model is None) == (repository is None):
        raise ValueError("deployment() takes a model or repository=DIR (one of them)")
    repository_options = None
    if repository is not None:
        given = [key for key, value in (("name", name), ("input_specs", input_specs),
                                        ("output_specs", output_specs)) if value]
        if signature != "serving_default":
            given.append("signature")
        if given:
            raise ValueError(f"{', '.join(given)}: with a repository, each model's config.json sets these")
        if poll_seconds < 0:
            raise ValueError(f"poll_seconds must be >= 0 (0: only when a replica starts), got {poll_seconds}")
        if not os.path.isdir(repository):
            raise FileNotFoundError(f"model repository {os.fspath(repository)!r} is not a directory")
        repository_options = {"root": os.path.abspath(repository), "poll_seconds": poll_seconds}
    if max_request_bytes < 1:
        raise ValueError(f"max_request_bytes must be >= 1, got {max_request_bytes}")
    if max_batch_size < 0:
        raise ValueError(f"max_batch_size must be >= 0 (0: no batching), got {max_batch_size}")
    if num_replicas is not None and autoscaling_config is not None:
        raise ValueError("give num_replicas or autoscaling_config, not both")
    load_options = {
        "name": name,
        "signature": signature,
        "input_specs": list(input_specs) if input_specs else None,
        "output_specs": list(output_specs) if output_specs else None,
        "onnx": onnx,
    }
    app_options = {
        "max_request_bytes": max_request_bytes,
        "max_batch_size": max_batch_size,
        "batch_timeout_ms": batch_timeout_ms,
        "workers": workers,
        "inline_max_us": inline_max_us,
        "debug": debug,
    }
    replica_options: dict[str, Any] = {
        "max_ongoing_requests": max_ongoing_requests or max(DEFAULT_MAX_ONGOING_REQUESTS, max_batch_size),
        "health_check_period_s": health_check_period_s,
        "health_check_timeout_s": health_check_timeout_s,
    }
    if num_replicas is not None:
        replica_options["num_replicas"] = num_replicas
    if autoscaling_config is not None:
        replica_options["autoscaling_config"] = dict(autoscaling_config)
    if ray_actor_options is not None:
        replica_options["ray_actor_options"] = dict(ray_actor_options)
    if gateway is None:
        gateway = not proxy_answers_lost_replicas()
        log.info("lost replicas answered 503 by %s", "the gateway (the proxy has no tf-graphpipe middleware)"
                 if gateway else "Ray's proxy (its tf-graphpipe middleware)")
    replica_class = ModelReplica if gateway else serve.ingress()(ModelReplica)
    replicas = serve.deployment(replica_class, name="GraphPipeModel", **replica_options)
    bound = replicas.bind(_portable(model), load_options, app_options, repository_options)
    if not gateway:
        return bound
    options: dict[str, Any] = {
        "num_replicas": 1,
        "max_ongoing_requests": GATEWAY_MAX_ONGOING_REQUESTS,
        "ray_actor_options": {"num_cpus": 0, "resources": {HEAD_NODE_RESOURCE: 0.001}},
        "health_check_period_s": health_check_period_s,
        "health_check_timeout_s": health_check_timeout_s,
    }
    options.update(gateway_options or {})
    front = serve.deployment(serve.ingress()(Gateway), name="GraphPipeGateway", **options)
    return front.bind(bound, max_request_bytes, DEFAULT_LOST_AFTER_S if lost_after_s is None else lost_after_s)


def _portable(model: Any) -> Any:
    """A relative path that exists here, made absolute for the replicas."""
    if isinstance(model, (str, os.PathLike)) and os.path.exists(model):
        return os.path.abspath(model)
    return model


# ---- build: the application builder of `serve run` and Serve config files ----------


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def _mapping(value: Any) -> dict[str, Any]:
    if isinstance(value, Mapping):
        return dict(value)
    parsed = json.loads(value)
    if not isinstance(parsed, dict):
        raise ValueError(f"expected a JSON object, got {value!r}")
    return parsed


def _spec_list(value: Any) -> list[str]:
    if isinstance(value, str):  # several specs: "x:float32:-1,4;y:int64:-1"
        return [s.strip() for s in value.split(";") if s.strip()]
    return [str(s) for s in value]


def _replicas(value: Any) -> int | str:
    return "auto" if str(value) == "auto" else int(value)


def parse_autoscale(text: str) -> dict[str, int]:
    """``"MIN:MAX"`` as Ray's ``autoscaling_config`` (min/max replicas)."""
    low, sep, high = str(text).partition(":")
    if not sep or not low.isdigit() or not high.isdigit() or int(high) < max(1, int(low)):
        raise ValueError(f"autoscale must be MIN:MAX with 0 <= MIN <= MAX and MAX >= 1, got {text!r}")
    return {"min_replicas": int(low), "max_replicas": int(high)}


# Every argument `build` takes, with what turns its text (from the command
# line; a config file may give typed values) into the option's value.
_BUILD_ARGS: dict[str, Callable[[Any], Any]] = {
    "repository": str,
    "poll_seconds": float,
    "name": str,
    "signature": str,
    "input_specs": _spec_list,
    "output_specs": _spec_list,
    "max_request_bytes": int,
    "max_batch_size": int,
    "batch_timeout_ms": float,
    "workers": int,
    "inline_max_us": float,
    "debug": _flag,
    "num_replicas": _replicas,
    "autoscaling_config": _mapping,
    "ray_actor_options": _mapping,
    "max_ongoing_requests": int,
    "health_check_period_s": float,
    "health_check_timeout_s": float,
    "gateway": _flag,
    "lost_after_s": float,
    "gateway_options": _mapping,
}


def build(args: Mapping[str, Any]) -> Any:
    """The application builder of Ray Serve's tooling: the arguments of
    ``deployment`` by name, as text (``serve run``) or typed (a config
    file's ``args``). ``model`` or ``repository`` is required;
    ``autoscale=MIN:MAX`` is short for ``autoscaling_config``; several specs
    are separated by ``;``.

    Example::

        serve run tf_graphpipe.ray_serve:build model=/models/resnet num_replicas=2 max_batch_size=32

    or, in a Serve config file::

        applications:
          - name: resnet
            route_prefix: /
            import_path: tf_graphpipe.ray_serve:build
            args: {model: /models/resnet, autoscale: "1:4"}

    Raises:
        ValueError: ``model`` and ``repository`` both missing (or both
            given), an unknown argument, or a value that does not parse.
    """
    options = dict(args)
    if ("model" in options) == ("repository" in options):
        raise ValueError("tf_graphpipe.ray_serve:build needs model=... (what tf-graphpipe serve takes) "
                         "or repository=DIR (a model repository), one of them")
    model = options.pop("model", None)
    if "autoscale" in options:
        options["autoscaling_config"] = parse_autoscale(options.pop("autoscale"))
    unknown = sorted(set(options) - set(_BUILD_ARGS))
    if unknown:
        known = ", ".join(["model", "autoscale", *_BUILD_ARGS])
        raise ValueError(f"unknown argument(s) {', '.join(unknown)}; known: {known}")
    parsed = {}
    for key, value in options.items():
        try:
            parsed[key] = _BUILD_ARGS[key](value)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"argument {key}={value!r}: {exc}") from exc
    return deployment(model, **parsed)


# ---- run: deploy onto a running cluster (tf-graphpipe serve --ray) ------------------


@dataclass
class RayApplication:
    """An application deployed by ``run``.

    Attributes:
        url: the model's URL on Ray Serve's proxy (GraphPipe; v2 under
            ``url + "/v2/models/NAME"``).
        name: the application's name in Ray Serve.
    """

    url: str
    name: str

    def close(self) -> None:
        """Deletes the application (Serve and its proxy keep running) and
        disconnects from the cluster."""
        import ray

        serve = _serve()
        try:
            serve.delete(self.name)
        finally:
            ray.shutdown()

    def __enter__(self) -> RayApplication:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def start_serve(host: str = "127.0.0.1", port: int = 8000, **options: Any) -> None:
    """Starts Ray Serve on the cluster this process is connected to, its
    HTTP proxy answering a lost replica's calls with 503 Unavailable
    (``ray_serve_proxy``): ``serve.start`` with the middleware named in the
    environment of Serve's controller, which its proxies inherit. If Serve
    already runs, its proxy stays as it was started.

    Args:
        host, port: where the proxy listens.
        options: more of ``serve.start``'s (``proxy_location``...).
    """
    from tf_graphpipe.ray_serve_proxy import PROXY_CALLBACK, PROXY_CALLBACK_VARIABLE

    serve = _serve()
    controller = dict(options.pop("controller_options", None) or {})
    runtime_env = dict(controller.get("runtime_env") or {})
    runtime_env["env_vars"] = {**runtime_env.get("env_vars", {}), PROXY_CALLBACK_VARIABLE: PROXY_CALLBACK}
    controller["runtime_env"] = runtime_env
    http_options = {"host": host, "port": port, **options.pop("http_options", {})}
    serve.start(http_options=http_options, controller_options=controller, **options)


def proxy_answers_lost_replicas(url: str | None = None, timeout: float = 5.0) -> bool:
    """Whether Ray Serve's proxy at ``url`` (default: the running Serve's)
    has the middleware of ``start_serve``: it answers ``GET /-/tf-graphpipe``.
    False when Serve is not running or its proxy cannot be reached."""
    from tf_graphpipe.ray_serve_proxy import PROBE_PATH

    url = url or _root_url()
    if not url:
        return False
    try:
        with urllib.request.urlopen(url.rstrip("/") + PROBE_PATH, timeout=timeout) as answer:
            return bool(answer.status == 200 and answer.read().startswith(b"tf-graphpipe"))
    except (OSError, urllib.error.URLError, ValueError):
        return False


def run(
    model: Any,
    address: str,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    app_name: str = "tf-graphpipe",
    route_prefix: str = "/",
    **options: Any,
) -> RayApplication:
    """Deploys ``deployment(model, **options)`` onto the Ray cluster at
    ``address`` and waits until every replica is ready (``model`` None with
    ``repository=DIR`` among the options).

    Args:
        address: the cluster (``"auto"``, ``HOST:PORT`` of its GCS, or a
            ``ray://`` client address).
        host, port: where Ray Serve's HTTP proxy listens, if Serve is not
            running on the cluster yet (else its own); port 0 picks one
            free on this machine (for a cluster whose head is this machine).
        app_name, route_prefix: the application's name and URL prefix.
        options: ``deployment``'s.

    Returns:
        A ``RayApplication`` with the proxy URL; ``close()`` deletes it.
    """
    serve = _serve()
    import ray

    if port == 0:
        with socket.socket() as probe:
            probe.bind((host, 0))
            port = probe.getsockname()[1]
    ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
    try:
        start_serve(host, port, proxy_location="HeadOnly")
        application = deployment(model, **options)  # after Serve starts: gateway=None asks its proxy
        serve.run(application, name=app_name, route_prefix=route_prefix)
        root = _root_url() or f"http://{host}:{port}"
    except BaseException:
        ray.shutdown()
        raise
    return RayApplication(root.rstrip("/") + (route_prefix if route_prefix != "/" else ""), app_name)


def _root_url() -> str | None:
    """The proxy's URL as Serve was started (perhaps not by us); None when
    not connected to Ray (asking would start a local Ray) or Serve is not running."""
    import ray

    if not ray.is_initialized():
        return None
    try:
        from ray.serve.context import _get_global_client

        client = _get_global_client()
        return str(client.root_url) if client is not None and client.root_url else None
    except Exception:  # noqa: BLE001 - a private API: fall back to what we asked for
        return None

