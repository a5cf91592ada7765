# SPDX-License-Identifier: Apache-2.0
"""A model repository plugged into the dispatcher: the ``ModelLookup`` that
finds a served model by name and version, and the route pieces only a
repository has.

* ``ModelPathRoutes`` (GraphPipe): ``GET /models`` lists every model, its
  versions and their states as JSON; ``/models/<name>`` serves the newest
  served version of ``<name>`` and ``/models/<name>/versions/<v>`` version
  ``<v>`` (POST a ``Request``, GET the metadata), as any GraphPipe path does.
* ``RepositoryApiRoutes`` (v2): the model repository extension tritonclient
  speaks: ``POST /v2/repository/index`` (body ``{"ready": true}`` for only
  the ready ones), ``POST /v2/repository/models/<name>/load`` and
  ``.../unload``, answered once the repository thread has done them.

Both go before the dispatcher's own v2 and GraphPipe pieces, which then reach
the repository's models through ``RepositoryLookup``. ``open_repository`` and
``repository_dispatcher`` put it together for every front end (the server's
own port, ``GraphPipeApp``).
"""
from __future__ import annotations

import concurrent.futures
import json
import os
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from tf_graphpipe.server.answer import JSON, Answer
from tf_graphpipe.server.bodies import BodyBudget
from tf_graphpipe.server.dispatcher import Dispatcher
from tf_graphpipe.server.endpoint import GRAPHPIPE_WIRE
from tf_graphpipe.server.errors import BadRequest, FailedPrecondition, MethodNotAllowed, NotFound
from tf_graphpipe.server.model import Model
from tf_graphpipe.server.production import Production
from tf_graphpipe.server.repository import DEFAULT_POLL_SECONDS, ModelRepository
from tf_graphpipe.server.repository_config import ModelConfig
from tf_graphpipe.server.routes import GET, Target, graphpipe_target, graphpipe_targets
from tf_graphpipe.server.served import ServedModel
from tf_graphpipe.server.served_version import ServedVersion
from tf_graphpipe.server.v2_endpoint import V2_WIRE
from tf_graphpipe.server.v2_wire import json_answer
from tf_graphpipe.server.workers import ModelWorkers

if TYPE_CHECKING:
    from tf_graphpipe.server.onnx_models import SessionSettings

__all__ = ["ModelPathRoutes", "RepositoryApiRoutes", "RepositoryLookup", "open_repository",
           "repository_dispatcher"]

MODELS_PATH = b"/models"
API_PREFIX = b"/v2/repository/"


def open_repository(
    root: str | os.PathLike[str],
    workers: ModelWorkers,
    *,
    poll_seconds: float = DEFAULT_POLL_SECONDS,
    onnx: SessionSettings | None = None,
    debug: bool = False,
    max_batch_size: int = 0,
    batch_timeout_ms: float = 5.0,
    inline_max_us: float,
) -> ModelRepository[ServedModel]:
    """The repository at ``root``, loaded (``start``): every model served on
    ``workers``, batching as its ``config.json`` says, else as the server's
    own options say.

    Raises:
        FileNotFoundError: ``root`` is not a directory.
        tf_graphpipe.server.repository_config.ConfigError: a ``config.json``
            is invalid (file and key named).
    """

    def build(loaded: Model, config: ModelConfig | None = None) -> ServedModel:
        batch = max_batch_size if config is None or config.max_batch_size is None else config.max_batch_size
        wait = batch_timeout_ms if config is None or config.batch_timeout_ms is None else config.batch_timeout_ms
        return ServedModel(loaded, workers, debug=debug, max_batch_size=batch, batch_timeout_ms=wait,
                           inline_max_us=inline_max_us)

    repository = ModelRepository(root, build, poll_seconds=poll_seconds, leased=_lease, onnx=onnx)
    repository.start()
    return repository


def _lease(version: ServedVersion[ServedModel]) -> None:
    """A repository version's calls take its lease (the dispatcher asks the ServedModel)."""
    version.served.lease = version


def repository_dispatcher(
    repository: ModelRepository[ServedModel],
    workers: ModelWorkers,
    budget: BodyBudget,
    *,
    debug: bool = False,
    production: Production | None = None,
    changes_refused: str | None = None,
) -> Dispatcher:
    """A ``Dispatcher`` serving ``repository``: ready once it is loaded, with
    its own routes before the v2 and GraphPipe ones. ``changes_refused``:
    why this server refuses the v2 load and unload requests (None: it
    takes them)."""
    dispatcher = Dispatcher(RepositoryLookup(repository), workers, budget, debug=debug,
                            models_ready=lambda: repository.ready, production=production)
    routes = dispatcher.routes
    routes.insert(1, RepositoryApiRoutes(repository, changes_refused))
    routes.insert(len(routes) - 1, ModelPathRoutes(repository))
    return dispatcher


class RepositoryLookup:
    """The dispatcher's ``ModelLookup`` over a ``ModelRepository``."""

    def __init__(self, repository: ModelRepository[ServedModel]) -> None:
        self.repository = repository

    def get(self, name: str | None, version: str | None = None) -> ServedModel:
        """Raises NotFound (404, naming the model) for what is not served."""
        return self.repository.lookup(name, version).served

    def models(self) -> list[ServedModel]:
        return [version.served for version in self.repository.served_versions()]

    def ready(self) -> bool:
        return self.repository.ready


class ModelPathRoutes:
    """``/models`` and ``/models/<name>[/versions/<v>]``, over GraphPipe."""

    wire = GRAPHPIPE_WIRE

    def __init__(self, repository: ModelRepository[ServedModel]) -> None:
        self.repository = repository
        self._listing = Target(GRAPHPIPE_WIRE, self._list)

    def resolve(self, method: bytes, path: bytes) -> Target | None:
        if path == MODELS_PATH or path == MODELS_PATH + b"/":
            if method not in GET:
                raise MethodNotAllowed(f"{method.decode('latin-1')} /models: the list of models takes GET",
                                       "GET, HEAD")
            return self._listing
        if not path.startswith(MODELS_PATH + b"/"):
            return None
        parts = path.decode("latin-1").rstrip("/").split("/")[2:]  # after "", "models"
        name, version = unquote(parts[0]), None
        if len(parts) == 3 and parts[1] == "versions":
            version = unquote(parts[2])
        elif len(parts) != 1:
            raise NotFound(f"unknown path {path.decode('latin-1')!r} (models are at /models/<name> "
                           "and /models/<name>/versions/<v>)")
        served = self.repository.lookup(name, version).served
        return graphpipe_target(method, graphpipe_targets(served))

    def _list(self, body: Any, header_length: int | None) -> Answer:
        text = json.dumps({"models": self.repository.models()}, indent=1).encode() + b"\n"
        return Answer(200, [text], JSON)


class RepositoryApiRoutes:
    """The v2 model repository extension: index, load, unload.

    Args:
        repository: what the routes list and change.
        changes_refused: when set, load and unload are answered 400
            FAILED_PRECONDITION with this reason (a repository that many
            replicas each serve, which one request would reach only one of).
    """

    wire = V2_WIRE

    def __init__(self, repository: ModelRepository[ServedModel], changes_refused: str | None = None) -> None:
        self.repository = repository
        self.changes_refused = changes_refused
        self._index = Target(V2_WIRE, self._list)

    def resolve(self, method: bytes, path: bytes) -> Target | None:
        if not path.startswith(API_PREFIX):
            return None
        text = path.decode("latin-1")
        parts = text.rstrip("/").split("/")[3:]  # after "", "v2", "repository"
        if parts == ["index"]:
            target = self._index
        elif len(parts) == 3 and parts[0] == "models" and parts[2] in ("load", "unload"):
            target = self._change(unquote(parts[1]), parts[2])
        else:
            raise NotFound(f"unknown v2 repository path {text!r} (index, models/<name>/load, "
                           "models/<name>/unload)")
        if method != b"POST":
            raise MethodNotAllowed(f"{method.decode('latin-1')} {text}: the repository extension takes POST",
                                   "POST")
        return target

    def _list(self, body: Any, header_length: int | None) -> Answer:
        request = _json_body(body, "index")
        ready = request.get("ready", False)
        if not isinstance(ready, bool):
            raise BadRequest(f"repository index: 'ready' must be true or false, got {ready!r}")
        return Answer.of_v2(200, json_answer(self.repository.index(ready_only=ready)))

    def _change(self, name: str, what: str) -> Target:
        repository = self.repository

        def respond(body: Any, header_length: int | None) -> concurrent.futures.Future[Answer]:
            if self.changes_refused is not None:
                raise FailedPrecondition(f"{what} {name!r} refused: {self.changes_refused}")
            parameters = _json_body(body, what).get("parameters") or {}
            if not isinstance(parameters, dict):
                raise BadRequest(f"{what} {name!r}: 'parameters' must be an object, got {parameters!r}")
            ignored = {"unload_dependents"} if what == "unload" else set()
            refused = sorted(set(parameters) - ignored)
            if refused:
                raise BadRequest(f"{what} {name!r}: parameters {', '.join(map(repr, refused))} are not "
                                 "supported; the repository on disk (its config.json) is the model's config")
            done = repository.load(name) if what == "load" else repository.unload(name)
            answered: concurrent.futures.Future[Answer] = concurrent.futures.Future()

            def finished(future: concurrent.futures.Future[None]) -> None:
                error = future.exception()
                if error is None:
                    answered.set_result(Answer.of_v2(200, json_answer({})))
                else:
                    answered.set_exception(error)

            done.add_done_callback(finished)
            return answered

        return Target(V2_WIRE, respond)


def _json_body(body: Any, what: str) -> dict[str, Any]:
    """A request's JSON object; an empty body is ``{}`` (tritonclient sends none for the index)."""
    if not len(body):
        return {}
    try:
        value = json.loads(bytes(body))
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"{what}: the body is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise BadRequest(f"{what}: expected a JSON object, got {type(value).__name__}")
    return value
