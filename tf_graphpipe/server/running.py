# SPDX-License-Identifier: Apache-2.0
"""``serve()``: a model, or a model repository, behind the server of
``http_server`` (httptools, uvloop when installed) on a background thread
with its own event loop."""
from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tf_graphpipe.server.bodies import (
    DEFAULT_MAX_REQUEST_BYTES,
    BodyBudget,
    default_inflight_bytes,
)
from tf_graphpipe.server.dispatcher import Dispatcher, SingleModel
from tf_graphpipe.server.http_server import DEFAULT_MAX_CONNECTIONS, HttpServer
from tf_graphpipe.server.inline import DEFAULT_INLINE_MAX_US
from tf_graphpipe.server.loading import load_model
from tf_graphpipe.server.model import Model
from tf_graphpipe.server.production import ProductionOptions
from tf_graphpipe.server.repository import DEFAULT_POLL_SECONDS, ModelRepository
from tf_graphpipe.server.repository_routes import open_repository, repository_dispatcher
from tf_graphpipe.server.served import ServedModel
from tf_graphpipe.server.specs import IOSpec, parse_spec
from tf_graphpipe.server.workers import ModelWorkers

if TYPE_CHECKING:
    from tf_graphpipe.server.onnx_models import SessionSettings

__all__ = ["RunningServer", "serve"]

log = logging.getLogger("tf_graphpipe.server")

STARTUP_TIMEOUT = 60.0
KEEP_ALIVE_SECONDS = 75  # longer than the usual client pool idle time
GRACEFUL_SHUTDOWN_SECONDS = 10
REQUEST_TIMEOUT_SECONDS = 60  # a request head, or a stalled body or answer (slow clients)


def serve(
    model: Any = None,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    repository: str | os.PathLike[str] | None = None,
    poll_seconds: float = DEFAULT_POLL_SECONDS,
    name: str | None = None,
    signature: str = "serving_default",
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
    max_inflight_bytes: int | None = None,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    max_batch_size: int = 0,
    batch_timeout_ms: float = 5.0,
    debug: bool = False,
    workers: int | None = None,
    inline_max_us: float = DEFAULT_INLINE_MAX_US,
    input_specs: Sequence[IOSpec | str] | None = None,
    output_specs: Sequence[IOSpec | str] | None = None,
    onnx: SessionSettings | None = None,
    tls_cert: str | os.PathLike[str] | None = None,
    tls_key: str | os.PathLike[str] | None = None,
    tls_client_ca: str | os.PathLike[str] | None = None,
    auth_token_file: str | os.PathLike[str] | None = None,
    auth_health: bool = False,
    metrics: bool | None = None,
    access_log: bool = False,
) -> RunningServer:
    """Serves ``model`` (or every model of a model repository) over GraphPipe
    from a background thread; the same port answers the Open Inference
    Protocol (KServe v2: ``tritonclient``, or ``Client(server.url +
    "/v2/models/NAME")``) under ``/v2``.

    Args:
        model: ``"demo"``, a SavedModel directory, a ``.keras`` file, an
            ``.onnx`` file, ``"package.module:callable"``, a Keras model, a ``tf.Module``, a
            concrete function or ``tf.function``, or a Python callable on NumPy
            arrays (see ``tf_graphpipe.server.loading.load_model``).
        host: the address to listen on.
        port: the TCP port; 0 picks a free one (read it from ``.url``).
        repository: instead of ``model``, a model repository directory
            (``DIR/<name>/<version>/``, docs/model_repository.md): every model
            at ``/models/<name>[/versions/<v>]`` and ``/v2/models/<name>...``;
            each model's ``config.json`` may set its batching, else
            ``max_batch_size`` and ``batch_timeout_ms`` apply.
        poll_seconds: how often the repository is read again for new,
            changed and removed versions (0: only at startup and on the v2
            repository load/unload requests).
        name: the model name in metadata (default: from the model).
        signature: the SavedModel signature to serve.
        max_request_bytes: bodies larger than this get 413 (default 1 GiB).
        max_inflight_bytes: the most request-body bytes the server holds at
            once, over every connection (received, waiting or in a call); a
            body that would pass it gets 503 and the others go on. Bodies take
            it as their bytes arrive, not from their Content-Length. Default:
            2 GiB, or ``max_request_bytes`` if larger.
        max_connections: connections open at once; one more is answered 503
            and closed (default 1024).
        max_batch_size: > 0 merges concurrent calls into batches of up to this
            many rows (dynamic batching; off by default).
        batch_timeout_ms: how long a batch waits for more calls.
        debug: put tracebacks in error answers.
        workers: threads running the model (default: min(8, CPUs + 2)).
        inline_max_us: a call (body ≤ 16 MiB) to a model that has kept
            answering calls of its body's size class within this many µs runs
            on the event loop thread, skipping the hand-off to a worker (about
            100 µs on a small VM); 0 sends every call to a worker. Ignored when
            batching.
        input_specs, output_specs: declared inputs/outputs of a callable, as
            ``IOSpec`` or ``"name:dtype:shape"`` strings (e.g. ``"x:float32:-1,4"``).
        onnx: ONNX Runtime's threads and graph optimisation for an ``.onnx``
            model, or each ``model.onnx`` of a repository
            (``tf_graphpipe.server.onnx_models.SessionSettings``).
        tls_cert, tls_key: serve HTTPS with this PEM certificate (chain, leaf
            first) and its unencrypted key (default: in ``tls_cert``).
        tls_client_ca: mutual TLS: clients without a certificate signed by a
            CA in this PEM file are refused in the handshake.
        auth_token_file: require ``Authorization: Bearer <token>`` with a
            token listed in this file (one per line, re-read when it changes);
            others get 401. Health routes answer without one unless
            ``auth_health``.
        auth_health: require the token on health routes too.
        metrics: ``/metrics`` in the Prometheus format; None (default): on
            when prometheus-client is installed (``tf-graphpipe[metrics]``).
        access_log: one line per request, with its ``traceparent``, on the
            ``tf_graphpipe.access`` logger (INFO).

    Returns:
        A ``RunningServer``, already accepting connections; close it (or use
        it as a context manager) to stop.

    Raises:
        ValueError, FileNotFoundError, ImportError: ``model`` cannot be loaded.
        tf_graphpipe.server.repository_config.ConfigError (a ValueError): a
            repository model's ``config.json`` is invalid (file and key named).
        OSError: the address cannot be bound.

    Example::

        import numpy as np
        import tf_graphpipe

        with tf_graphpipe.serve(lambda x: x * 2) as server:
            client = tf_graphpipe.Client(server.url)
            print(client.infer(np.ones((1, 4), np.float32)))  # [[2. 2. 2. 2.]]
    """
    if (model is None) == (repository is None):
        raise ValueError("serve() takes a model or repository=DIR (one of them)")
    production = ProductionOptions(tls_cert, tls_key, tls_client_ca, auth_token_file, auth_health, metrics, access_log)
    if repository is not None:
        given = [key for key, value in (("name", name), ("input_specs", input_specs), ("output_specs", output_specs))
                 if value is not None]
        if signature != "serving_default":
            given.append("signature")
        if given:
            raise ValueError(f"{', '.join(given)}: with a repository, each model's config.json sets these")
        return RunningServer(
            None, host, port, repository=repository, poll_seconds=poll_seconds, onnx=onnx,
            max_request_bytes=max_request_bytes, max_inflight_bytes=max_inflight_bytes,
            max_connections=max_connections, max_batch_size=max_batch_size, batch_timeout_ms=batch_timeout_ms,
            debug=debug, workers=workers, inline_max_us=inline_max_us, production=production,
        )
    loaded = load_model(
        model,
        name=name,
        signature=signature,
        input_specs=_specs(input_specs),
        output_specs=_specs(output_specs),
        onnx=onnx,
    )
    return RunningServer(
        loaded,
        host,
        port,
        max_request_bytes=max_request_bytes,
        max_inflight_bytes=max_inflight_bytes,
        max_connections=max_connections,
        max_batch_size=max_batch_size,
        batch_timeout_ms=batch_timeout_ms,
        debug=debug,
        workers=workers,
        inline_max_us=inline_max_us,
        production=production,
    )


def _specs(specs: Sequence[IOSpec | str] | None) -> list[IOSpec] | None:
    if specs is None:
        return None
    return [s if isinstance(s, IOSpec) else parse_spec(s) for s in specs]


class RunningServer:
    """A GraphPipe server running on a background thread with its own event
    loop (uvloop when installed) and its own model worker threads.

    Attributes:
        url: ``http://HOST:PORT`` (``https://`` with TLS), the model's URL.
        host, port: where it listens.
        model: the served ``Model`` (None when serving a repository).
        repository: the ``ModelRepository`` served, or None.
        dispatcher: what it answers (routes, limits, scheduling); its
            ``ready`` turns False when closing.
    """

    def __init__(
        self,
        model: Model | None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        repository: str | os.PathLike[str] | None = None,
        poll_seconds: float = DEFAULT_POLL_SECONDS,
        onnx: SessionSettings | None = None,
        max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
        max_inflight_bytes: int | None = None,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        max_batch_size: int = 0,
        batch_timeout_ms: float = 5.0,
        debug: bool = False,
        workers: int | None = None,
        inline_max_us: float = DEFAULT_INLINE_MAX_US,
        keep_alive_timeout: float = KEEP_ALIVE_SECONDS,
        request_timeout: float = REQUEST_TIMEOUT_SECONDS,
        graceful_timeout: float = GRACEFUL_SHUTDOWN_SECONDS,
        production: ProductionOptions | None = None,
    ) -> None:
        self.model = model
        self.repository: ModelRepository[ServedModel] | None = None
        built = (production or ProductionOptions()).build()  # files read and checked before any thread starts
        self._workers = ModelWorkers(workers or min(8, (os.cpu_count() or 1) + 2))

        try:
            if max_inflight_bytes is None:
                max_inflight_bytes = default_inflight_bytes(max_request_bytes)
            budget = BodyBudget(max_inflight_bytes, max_request_bytes)
            if repository is not None:  # everything loaded before the server listens
                self.repository = open_repository(
                    repository, self._workers, poll_seconds=poll_seconds, onnx=onnx, debug=debug,
                    max_batch_size=max_batch_size, batch_timeout_ms=batch_timeout_ms, inline_max_us=inline_max_us)
                self.dispatcher = repository_dispatcher(self.repository, self._workers, budget, debug=debug,
                                                        production=built)
            elif model is not None:
                served = ServedModel(model, self._workers, debug=debug, max_batch_size=max_batch_size,
                                     batch_timeout_ms=batch_timeout_ms, inline_max_us=inline_max_us)
                self.dispatcher = Dispatcher(SingleModel(served), self._workers, budget, debug=debug,
                                             production=built)
            else:
                raise ValueError("RunningServer takes a model or a repository")
            self._http = HttpServer(
                self.dispatcher,
                keep_alive_timeout=keep_alive_timeout,
                request_timeout=request_timeout,
                max_connections=max_connections,
                graceful_timeout=graceful_timeout,
                ssl_context=built.ssl_context,
            )
            self._socket = _listen(host, port)
        except BaseException:
            if self.repository is not None:
                self.repository.close()
            self._workers.shutdown(wait=False)
            raise
        self.host = host
        self.port = self._socket.getsockname()[1]
        scheme = built.scheme
        self.url = f"{scheme}://[{host}]:{self.port}" if ":" in host else f"{scheme}://{host}:{self.port}"
        self._loop = _new_event_loop()
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"graphpipe-server-{self.port}", daemon=True)
        self._thread.start()
        if not self._started.wait(STARTUP_TIMEOUT) or self._error is not None:
            error = self._error
            self.close()
            raise RuntimeError(f"GraphPipe server on {self.url} did not start") from error
        if self.repository is not None:
            names = sorted({version.name for version in self.repository.served_versions()})
            log.info("serving model repository %s at %s: %d models (%s), polled every %s; %s", self.repository.root,
                     self.url, len(names), ", ".join(names) or "none yet",
                     f"{poll_seconds:g} s" if poll_seconds > 0 else "never (load/unload requests only)",
                     built.describe())
        elif model is not None:
            batching = (f"batching up to {max_batch_size} rows within {batch_timeout_ms:g} ms"
                        if max_batch_size > 0 else "no batching")
            log.info(
                "serving model %r (%d inputs, %d outputs) at %s; %s; %s",
                model.name, len(model.inputs), len(model.outputs), self.url, batching, built.describe(),
            )

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._serve())
        except BaseException as exc:  # reported by __init__ or close()
            self._error = exc
            log.exception("GraphPipe server on %s stopped with an error", self.url)
        finally:
            self._started.set()
            self._loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        await self._http.start([self._socket])
        self._started.set()
        await self._stop.wait()
        await self._http.shutdown()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def close(self, timeout: float | None = None) -> None:
        """Stops accepting, lets calls in flight finish, stops the threads."""
        if self._closed:
            return
        self._closed = True
        self.dispatcher.close()
        if self._stop is not None:
            try:
                self._loop.call_soon_threadsafe(self._stop.set)
            except RuntimeError:  # the loop already stopped
                pass
        self._thread.join(timeout)
        if self.repository is not None:
            self.repository.close()
        self._workers.shutdown(wait=True)
        self._socket.close()

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if self.running else "closed"
        what = repr(self.model.name) if self.model is not None else f"repository {str(self.repository_root)!r}"
        return f"<RunningServer {what} at {self.url} ({state})>"

    @property
    def repository_root(self) -> Path | None:
        return self.repository.root if self.repository is not None else None


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _new_event_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop

