# SPDX-License-Identifier: Apache-2.0
"""A model repository: many models and versions from one directory, loaded
and swapped while the server serves.

The server asks one question per call, ``acquire(name, version)``, and gets
a ``ServedVersion`` with a lease on it (given back with ``exit``). Everything
else happens on the repository's own thread, which alone changes what is
served:

* it polls the directory every ``poll_seconds`` (0: never; only ``load`` and
  ``unload`` change anything), reading ``config.json`` when it changed;
* each model serves the versions its policy selects among those on disk that
  did not fail to load; a version that fails is logged with its error and
  tried again only once its files change, and the policy falls back to the
  next one (so the version being served stays);
* a new version is loaded and warmed in the background, then the table of
  served versions is replaced in one assignment (calls look it up without a
  lock), then the versions no longer selected are retired: calls in flight
  on them finish there, new calls reach the new table, and a retired
  version is unloaded when its last call ends (``served_version``);
* a model whose ``config.json`` changed is loaded again with it, the same
  way; a config that became invalid is logged and the old one kept.

Only this module knows about directories (``repository_layout`` reads them).
"""
from __future__ import annotations

import concurrent.futures
import logging
import os
import queue
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from tf_graphpipe.server.errors import FailedPrecondition, NotFound
from tf_graphpipe.server.model import Model
from tf_graphpipe.server.repository_config import ConfigError, ModelConfig, read_config
from tf_graphpipe.server.repository_layout import (
    Fingerprint,
    ModelOnDisk,
    Stamp,
    fingerprint,
    load_version,
    scan,
    scan_model,
    valid_model_name,
    warm_up,
)
from tf_graphpipe.server.served_version import ServedVersion

if TYPE_CHECKING:
    from tf_graphpipe.server.onnx_models import SessionSettings

__all__ = ["DEFAULT_POLL_SECONDS", "LoadFailed", "ModelNotFound", "ModelRepository"]

log = logging.getLogger("tf_graphpipe.server")

T = TypeVar("T")

DEFAULT_POLL_SECONDS = 1.0
LOAD_SWITCH_SECONDS = 0.0005  # the GIL switch interval while a version loads

# Version states, as GET /models shows them.
LOADING, AVAILABLE, DRAINING, FAILED = "loading", "available", "draining", "failed"


class ModelNotFound(NotFound):
    """No such model or version is served: 404, the name in the message."""


class LoadFailed(FailedPrecondition):
    """A ``load`` request that left the model with no version served."""


@dataclass(frozen=True)
class _Entry(Generic[T]):
    """One served model in the published table."""

    versions: dict[int, ServedVersion[T]]
    newest: ServedVersion[T]


@dataclass
class _ModelState(Generic[T]):
    """What the repository thread knows about one model directory."""

    name: str
    config: ModelConfig | None = None
    config_stamp: Stamp | None = None
    config_error: str | None = None
    loaded: dict[int, ServedVersion[T]] = field(default_factory=dict)
    broken: dict[int, tuple[Fingerprint, str]] = field(default_factory=dict)
    loading: int | None = None
    unloaded: bool = False  # by request: the poller leaves it alone until a load


class ModelRepository(Generic[T]):
    """The models and versions of ``root``, served through ``build``.

    Args:
        root: the repository directory (``root/<name>/<version>/``).
        build: makes what the server needs to serve a loaded model (its
            batcher, metadata answers...) from the model and its config;
            called on the repository thread. Its exceptions fail the load.
        poll_seconds: how often the directory is read again; 0 never.
        leased: called with each version once built, before it is served
            (how what ``build`` made learns the lease its calls take).
        onnx: ONNX Runtime settings for every ``model.onnx`` version.

    ``start`` loads what the directory holds, on the calling thread, before
    anything is served; then the repository thread takes over.
    """

    def __init__(self, root: str | os.PathLike[str], build: Callable[[Model, ModelConfig], T], *,
                 poll_seconds: float = DEFAULT_POLL_SECONDS,
                 leased: Callable[[ServedVersion[T]], None] | None = None,
                 onnx: SessionSettings | None = None) -> None:
        if poll_seconds < 0:
            raise ValueError(f"poll_seconds must be >= 0 (0: only load and unload requests), got {poll_seconds}")
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise FileNotFoundError(f"model repository {str(self.root)!r} is not a directory")
        self.poll_seconds = poll_seconds
        self._build = build
        self._leased = leased
        self._onnx = onnx
        self._table: dict[str, _Entry[T]] = {}  # replaced, never changed: read without a lock
        self._single: str | None = None  # the model's name when the repository holds one model
        self._models: dict[str, _ModelState[T]] = {}  # the repository thread's alone
        self._draining: set[ServedVersion[T]] = set()
        self._status_lock = threading.Lock()  # _models' states and _draining, as read by other threads
        self._requests: queue.SimpleQueue[tuple[str, str, concurrent.futures.Future[None]] | None] = \
            queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._scan_failed = False

    # ---- life cycle -----------------------------------------------------------------

    def start(self) -> None:
        """Loads every model, then starts polling.

        Raises:
            ConfigError: a ``config.json`` is invalid (file and key named).
            OSError: the directory cannot be read.
        """
        found = scan(self.root)
        for name in sorted(found):
            state = self._models[name] = _ModelState(name)
            self._read_config(state, found[name], strict=True)
        for name in sorted(found):
            self._sync(self._models[name], found[name])
        self._update_single()
        if not found:
            log.warning("model repository %s holds no models yet", self.root)
        self._thread = threading.Thread(target=self._run, name="graphpipe-repository", daemon=True)
        self._thread.start()

    def close(self, timeout: float | None = 10.0) -> None:
        """Stops the repository thread (a load in progress finishes first, up
        to ``timeout``). What is served stays served."""
        self._stop.set()
        self._requests.put(None)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    # ---- the hot path ---------------------------------------------------------------

    def lookup(self, name: str | None, version: str | int | None = None) -> ServedVersion[T]:
        """The served version for a call, without a lease.

        Args:
            name: the model; None for a path that names none (served only
                when the repository holds exactly one model).
            version: a version number; None for the newest served.

        Raises:
            ModelNotFound: no such model or version is served.
        """
        table = self._table
        if name is None:
            name = self._single
            if name is None:
                raise ModelNotFound(self._which_model())
        entry = table.get(name)
        if entry is None:
            raise ModelNotFound(f"model {name!r} is not served ({self._serving(table)})")
        if version is None:
            return entry.newest
        served = entry.versions.get(version) if type(version) is int else None
        if served is None and isinstance(version, str) and version.isdigit():
            served = entry.versions.get(int(version))
        if served is None:
            have = ", ".join(map(str, sorted(entry.versions, reverse=True)))
            raise ModelNotFound(f"model {name!r} has no version {version} served (versions: {have})")
        return served

    def acquire(self, name: str | None, version: str | int | None = None) -> ServedVersion[T]:
        """``lookup`` with a lease taken: give it back with ``exit()``.
        Raises ModelNotFound."""
        for _ in range(8):  # retired between lookup and lease: the next table is published
            served = self.lookup(name, version)
            if served.enter():
                return served
        raise ModelNotFound(f"model {name!r} is being unloaded")

    def served_versions(self) -> list[ServedVersion[T]]:
        """Every version served now (not those draining)."""
        return [version for entry in self._table.values() for version in entry.versions.values()]

    def _which_model(self) -> str:
        names = sorted(self._table)
        if not names:
            return "this server serves no model yet"
        return f"this server serves {len(names)} models: call /models/<name> ({', '.join(names)})"

    def _update_single(self) -> None:
        models = self._models
        self._single = next(iter(models)) if len(models) == 1 else None

    @staticmethod
    def _serving(table: dict[str, Any]) -> str:
        return "models served: " + (", ".join(sorted(table)) or "none")

    # ---- requests (the v2 repository extension) -------------------------------------

    def load(self, name: str) -> concurrent.futures.Future[None]:
        """Loads (or reloads from disk) model ``name``, also after an
        ``unload``; its broken versions are tried again. The future fails
        with ModelNotFound (no such directory) or LoadFailed (no version
        could be served)."""
        return self._request("load", name)

    def unload(self, name: str) -> concurrent.futures.Future[None]:
        """Stops serving ``name`` until ``load``; polling leaves it alone.
        Done once no new call can reach it (calls in flight finish on it).
        The future fails with ModelNotFound for a name never seen."""
        return self._request("unload", name)

    def _request(self, what: str, name: str) -> concurrent.futures.Future[None]:
        future: concurrent.futures.Future[None] = concurrent.futures.Future()
        if self._stop.is_set():
            future.set_exception(RuntimeError("the model repository is closed"))
        else:
            self._requests.put((what, name, future))
        return future

    # ---- what is served, for GET /models, readiness and the repository index ---------

    @property
    def ready(self) -> bool:
        """True once every model the policies ask for is loaded: nothing is
        loading and every model (with a valid config, not unloaded by
        request) serves at least one version."""
        if self._thread is None:
            return False
        with self._status_lock:
            states = list(self._models.values())
        return all(
            state.loading is None and (state.unloaded or state.config is None or bool(state.loaded))
            for state in states
        )

    def models(self) -> list[dict[str, Any]]:
        """Every model with its versions and their states (``GET /models``)."""
        with self._status_lock:
            states = sorted(self._models.values(), key=lambda s: s.name)
            draining = list(self._draining)
            listed = []
            for state in states:
                versions: dict[int, dict[str, Any]] = {}
                for number, (_, error) in state.broken.items():
                    versions[number] = {"version": number, "state": FAILED, "error": error}
                for served in draining:
                    if served.name == state.name:
                        versions[served.version] = {"version": served.version, "state": DRAINING}
                for number in state.loaded:
                    versions[number] = {"version": number, "state": AVAILABLE}
                if state.loading is not None:
                    versions[state.loading] = {"version": state.loading, "state": LOADING}
                entry: dict[str, Any] = {
                    "name": state.name,
                    "versions": [versions[v] for v in sorted(versions, reverse=True)],
                }
                if state.unloaded:
                    entry["unloaded"] = True
                if state.config_error is not None:
                    entry["error"] = state.config_error
                listed.append(entry)
        return listed

    def index(self, ready_only: bool = False) -> list[dict[str, Any]]:
        """The v2 repository index (Triton's): one entry per model version
        with ``state`` READY / LOADING / UNLOADING / UNAVAILABLE (and a
        ``reason``), models on disk not loaded included."""
        triton = {AVAILABLE: "READY", LOADING: "LOADING", DRAINING: "UNLOADING", FAILED: "UNAVAILABLE"}
        entries: list[dict[str, Any]] = []
        listed = self.models()
        for model in listed:
            for version in model["versions"]:
                item = {"name": model["name"], "version": str(version["version"]),
                        "state": triton[version["state"]]}
                if "error" in version:
                    item["reason"] = version["error"]
                entries.append(item)
            if not model["versions"]:
                reason = "unloaded" if model.get("unloaded") else model.get("error", "no version to serve")
                entries.append({"name": model["name"], "state": "UNAVAILABLE", "reason": reason})
        known = {model["name"] for model in listed}
        try:
            on_disk = sorted(set(scan(self.root)) - known)
        except OSError:
            on_disk = []
        entries += [{"name": name, "state": "UNAVAILABLE", "reason": "not loaded"} for name in on_disk]
        if ready_only:
            entries = [e for e in entries if e["state"] == "READY"]
        return entries

    # ---- the repository thread ------------------------------------------------------

    def _run(self) -> None:
        next_poll = time.monotonic() + self.poll_seconds
        while not self._stop.is_set():
            timeout = max(0.0, next_poll - time.monotonic()) if self.poll_seconds > 0 else None
            try:
                request = self._requests.get(timeout=timeout)
            except queue.Empty:
                request = None
            if self._stop.is_set():
                break
            try:
                if request is not None:
                    self._serve_request(*request)
                elif self.poll_seconds > 0 and time.monotonic() >= next_poll:
                    self._poll()
                    next_poll = time.monotonic() + self.poll_seconds
            except Exception:  # a bug of ours: log it, keep serving what is served
                log.exception("model repository %s: unexpected error", self.root)
        while True:  # nobody will answer these any more
            try:
                request = self._requests.get_nowait()
            except queue.Empty:
                break
            if request is not None:
                request[2].set_exception(RuntimeError("the model repository is closed"))

    def _poll(self) -> None:
        try:
            found = scan(self.root)
        except OSError as exc:  # keep serving: an unreadable directory is not an empty one
            if not self._scan_failed:
                log.error("model repository %s cannot be read (%s); serving what is loaded", self.root, exc)
            self._scan_failed = True
            return
        self._scan_failed = False
        for name in sorted(set(found) | set(self._models)):
            disk = found.get(name)
            state = self._models.get(name)
            if state is None:
                state = _ModelState(name)
                with self._status_lock:
                    self._models[name] = state
                log.info("model repository: new model %r", name)
            if disk is None or not state.unloaded:
                self._sync(state, disk)
        self._update_single()

    def _serve_request(self, what: str, name: str, future: concurrent.futures.Future[None]) -> None:
        try:
            self._answer_request(what, name, future)
        finally:
            self._update_single()

    def _answer_request(self, what: str, name: str, future: concurrent.futures.Future[None]) -> None:
        disk = scan_model(self.root, name) if valid_model_name(name) else None
        state = self._models.get(name)
        if what == "unload":
            if state is None and disk is None:
                future.set_exception(ModelNotFound(f"model {name!r} is not in the repository {self.root}"))
                return
            if state is None:
                state = self._new_state(name)
            state.unloaded = True
            self._retire(state, set(state.loaded), "unloaded by request")
            log.info("model %r unloaded by request", name)
            future.set_result(None)
            return
        if disk is None:
            if state is not None:
                self._sync(state, None)
            future.set_exception(ModelNotFound(f"model {name!r} is not in the repository {self.root}"))
            return
        if state is None:
            state = self._new_state(name)
        state.unloaded = False
        with self._status_lock:
            state.broken.clear()
        self._sync(state, disk)
        if state.config is None:
            future.set_exception(LoadFailed(f"failed to load {name!r}: {state.config_error}"))
        elif not state.loaded:
            errors = "; ".join(f"version {v}: {e}" for v, (_, e) in sorted(state.broken.items())) or \
                f"no version directory in {disk.path}"
            future.set_exception(LoadFailed(f"failed to load {name!r}: {errors}"))
        else:
            future.set_result(None)

    def _new_state(self, name: str) -> _ModelState[T]:
        state: _ModelState[T] = _ModelState(name)
        with self._status_lock:
            self._models[name] = state
        return state

    # ---- one model: config, versions, swap -------------------------------------------

    def _read_config(self, state: _ModelState[T], disk: ModelOnDisk, strict: bool = False) -> bool:
        """Reads ``config.json`` if it changed; True when the config changed."""
        if state.config is not None and disk.config_stamp == state.config_stamp:
            return False
        state.config_stamp = disk.config_stamp
        try:
            config = read_config(disk.path)
        except ConfigError as exc:
            if strict:
                raise
            with self._status_lock:
                state.config_error = str(exc)
            if state.config is None:
                log.error("model %r is not served: %s", state.name, exc)
            else:
                log.error("model %r keeps its previous config: %s", state.name, exc)
            return False
        changed = state.config is not None and config != state.config
        with self._status_lock:
            state.config, state.config_error = config, None
        if changed:
            log.info("model %r: config.json changed; loading its versions again", state.name)
        return changed

    def _sync(self, state: _ModelState[T], disk: ModelOnDisk | None) -> None:
        """Brings what ``state`` serves in line with ``disk`` (None: the
        directory is gone) and its policy; loads run here."""
        if disk is None:
            self._retire(state, set(state.loaded), "its directory was removed")
            with self._status_lock:
                self._models.pop(state.name, None)
            log.info("model %r removed from the repository", state.name)
            return
        reload_all = self._read_config(state, disk)
        config = state.config
        if config is None:
            return
        retry = [v for v, (files, _) in list(state.broken.items())  # once its files change, or its config
                 if reload_all or v not in disk.versions or fingerprint(disk.versions[v]) != files]
        with self._status_lock:
            for number in retry:
                del state.broken[number]
        fresh: dict[int, ServedVersion[T]] = {}
        kept_old: set[int] = set()  # failed to load again with a new config: the old copy serves on
        while True:
            wanted = config.version_policy.select(v for v in disk.versions if v not in state.broken)
            missing = [v for v in wanted if v not in fresh and v not in kept_old
                       and (reload_all or v not in state.loaded)]
            if not missing:
                break
            for number in missing:
                served = self._load(state, number, disk.versions[number], config,
                                    record_failure=number not in state.loaded)
                if served is not None:
                    fresh[number] = served
                elif number in state.loaded:
                    kept_old.add(number)
        keep = {v: state.loaded[v] for v in wanted if v in state.loaded and v not in fresh}
        serving = {**keep, **fresh}
        gone = {v for v in state.loaded if v not in wanted or v in fresh}
        if not fresh and not gone:
            return
        old = state.loaded
        with self._status_lock:
            state.loaded = serving
        self._publish()
        self._retire(state, gone, "no longer selected by its version policy", old)
        if fresh:
            log.info("model %r: serving version%s %s", state.name, "s" if len(serving) > 1 else "",
                     ", ".join(map(str, sorted(serving, reverse=True))) or "none")

    def _load(self, state: _ModelState[T], number: int, path: Path, config: ModelConfig,
              record_failure: bool = True) -> ServedVersion[T] | None:
        """Loads and warms one version; None (logged, and recorded as broken
        if ``record_failure``) if it fails."""
        files = fingerprint(path)
        with self._status_lock:
            state.loading = number
        started = time.perf_counter()
        # Loading is mostly Python holding the GIL (object graph revival, tracing);
        # the event loop, wanting it back for every small call, would wait out a
        # whole switch interval (5 ms) each time. Shorter slices while a load runs
        # (bench_repository: median 1x4 call during a load 318 vs 3261 µs).
        previous = sys.getswitchinterval()
        sys.setswitchinterval(min(previous, LOAD_SWITCH_SECONDS))
        try:
            model = load_version(path, state.name, number, config, self._onnx)
            warmed = False
            try:
                warmed = warm_up(model)
            except Exception as exc:  # noqa: BLE001 - zeros may be no valid input: serve it anyway
                log.warning("model %r version %d: warm-up call on zeros failed (%s); serving it anyway",
                            state.name, number, exc)
            served = ServedVersion(state.name, number, model, self._build(model, config),
                                   time.perf_counter() - started, self._drained)
            if self._leased is not None:
                self._leased(served)
        except Exception as exc:  # noqa: BLE001 - any failure to load is logged, never fatal
            message = f"{type(exc).__name__}: {exc}"
            with self._status_lock:
                if record_failure:
                    state.broken[number] = (files, message)
                state.loading = None
            serving = ", ".join(map(str, sorted(state.loaded, reverse=True)))
            log.error("model %r version %d failed to load: %s%s", state.name, number, message,
                      f"; version {serving} stays served" if serving else "")
            return None
        finally:
            sys.setswitchinterval(previous)
        with self._status_lock:
            state.loading = None
        log.info("model %r version %d loaded in %.2f s (%s%s)", state.name, number, served.load_seconds,
                 model.description or type(model).__name__, ", warmed up" if warmed else "")
        return served

    def _publish(self) -> None:
        """Replaces the table calls look versions up in (one assignment)."""
        table: dict[str, _Entry[T]] = {}
        for name, state in self._models.items():
            if state.loaded:
                table[name] = _Entry(dict(state.loaded), state.loaded[max(state.loaded)])
        self._table = table

    def _retire(self, state: _ModelState[T], numbers: set[int], why: str,
                versions: dict[int, ServedVersion[T]] | None = None) -> None:
        """Stops serving ``numbers`` of ``state`` (from ``versions``, default
        what it serves now): published first, then retired, so a call that
        loses the race for a lease finds the new table."""
        versions = state.loaded if versions is None else versions
        retiring = [versions[v] for v in numbers if v in versions]
        if versions is state.loaded and retiring:
            with self._status_lock:
                state.loaded = {v: s for v, s in state.loaded.items() if v not in numbers}
            self._publish()
        for served in retiring:
            log.info("model %r version %d: %s; unloading once its %d calls in flight end",
                     served.name, served.version, why, served.in_flight)
            with self._status_lock:
                self._draining.add(served)
            served.retire()

    def _drained(self, served: ServedVersion[T]) -> None:
        """On whichever thread ended the last call: the version is unloaded."""
        with self._status_lock:
            self._draining.discard(served)
        log.info("model %r version %d unloaded", served.name, served.version)
