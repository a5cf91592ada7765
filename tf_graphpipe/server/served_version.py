# SPDX-License-Identifier: Apache-2.0
"""One loaded version of a model as calls reach it, with an explicit count
of the calls in flight on it.

A call takes a lease (``enter``) before it touches the version and gives it
back (``exit``) once its answer is encoded. Retiring a version (a newer one
swapped in, or it was removed) stops new leases at once; the version is
unloaded when the last lease is given back, so a call that started on it
finishes on it. Reference counts would not do: a batcher window, a view of an
input or a log record may keep the objects alive long after the call ended,
and nothing could say when the version is really idle.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from tf_graphpipe.server.model import Model

__all__ = ["ServedVersion"]

T = TypeVar("T")


class ServedVersion(Generic[T]):
    """A version of a model that is served (or draining).

    Attributes:
        name, version: which model and version this is.
        model: the loaded ``Model``.
        served: what the server built for it (its batcher, metadata...).
        load_seconds: how long loading and warming it took.
        drained: set once it is retired and no call is in flight on it.

    Thread-safe: leases are taken on the event loop or any other thread.
    """

    __slots__ = (
        "_in_flight",
        "_lock",
        "_on_drained",
        "_retired",
        "drained",
        "load_seconds",
        "model",
        "name",
        "served",
        "version",
    )

    def __init__(self, name: str, version: int, model: Model, served: T, load_seconds: float = 0.0,
                 on_drained: Callable[[ServedVersion[T]], None] | None = None) -> None:
        self.name = name
        self.version = version
        self.model = model
        self.served = served
        self.load_seconds = load_seconds
        self.drained = threading.Event()
        self._lock = threading.Lock()
        self._in_flight = 0
        self._retired = False
        self._on_drained = on_drained

    def enter(self) -> bool:
        """Takes a lease for one call; False when the version is retired
        (look it up again: a newer table is already published)."""
        with self._lock:
            if self._retired:
                return False
            self._in_flight += 1
            return True

    def exit(self) -> None:
        """Gives a lease back (exactly once per successful ``enter``)."""
        with self._lock:
            self._in_flight -= 1
            last = self._retired and self._in_flight == 0
        if last:
            self._finish()

    def retire(self) -> None:
        """No new leases; ``drained`` is set once the calls in flight end."""
        with self._lock:
            if self._retired:
                return
            self._retired = True
            idle = self._in_flight == 0
        if idle:
            self._finish()

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def retired(self) -> bool:
        return self._retired

    def _finish(self) -> None:
        self.drained.set()
        if self._on_drained is not None:
            self._on_drained(self)

    def __repr__(self) -> str:
        state = "drained" if self.drained.is_set() else "draining" if self._retired else "serving"
        return f"<ServedVersion {self.name!r} version {self.version} ({state}, {self._in_flight} in flight)>"
