# SPDX-License-Identifier: Apache-2.0
"""``ServedModel``: one model as the dispatcher serves it, with everything
that is per model: its runner (checks, run, encode), its GraphPipe and v2
sides, its batcher and its inline policy. A model repository holds many of
these by name and version; the dispatcher finds one through a
``ModelLookup`` and never asks what kind of model it is.
"""
from __future__ import annotations

from concurrent.futures import Executor
from typing import Any, Protocol

from tf_graphpipe.server.batching import Batcher
from tf_graphpipe.server.endpoint import Endpoint
from tf_graphpipe.server.inference import ModelRunner
from tf_graphpipe.server.inline import DEFAULT_INLINE_MAX_US, InlinePolicy
from tf_graphpipe.server.model import Model
from tf_graphpipe.server.v2_endpoint import V2Endpoint

__all__ = ["Lease", "ServedModel"]


class Lease(Protocol):
    """What a model repository hands each version it serves: every call
    holds it from its head to its answer, so a retired version is unloaded
    only once its calls have ended."""

    def enter(self) -> bool:
        """Takes it for one call; False once the version is retired."""
        ...

    def exit(self) -> None:
        """Gives it back (once per successful ``enter``)."""
        ...


class ServedModel:
    """A model, ready to be dispatched to.

    Args:
        model: the adapter (SavedModel, ``.keras``, callable...).
        executor: where batches run (the server's model workers).
        debug: tracebacks in error answers.
        max_batch_size: > 0 turns dynamic batching on.
        batch_timeout_ms: how long a batch waits for more calls.
        inline_max_us: calls (bodies up to 16 MiB) to a model that keeps
            answering calls of their size within this many µs run on the event
            loop, not a worker (0: never).

    Attributes:
        name, version: as clients address it (``version`` a string).
        ready: False once the model stops taking calls (unloading).
        lease: set by a model repository: calls take it (``enter``/``exit``).
        targets: what route pieces built for this model, by piece: it lives
            and dies with the model (a cache keyed by the model elsewhere
            would keep an unloaded version alive).
    """

    def __init__(
        self,
        model: Model,
        executor: Executor,
        *,
        debug: bool = False,
        max_batch_size: int = 0,
        batch_timeout_ms: float = 5.0,
        inline_max_us: float = DEFAULT_INLINE_MAX_US,
    ) -> None:
        if max_batch_size < 0:
            raise ValueError(f"max_batch_size must be >= 0 (0: no batching), got {max_batch_size}")
        self.model = model
        self.name, self.version = model.name, str(model.version)
        self.runner = ModelRunner(model, debug=debug)
        self.batcher = (
            Batcher(self.runner, executor, max_batch_size, batch_timeout_ms / 1000.0) if max_batch_size > 0 else None
        )
        self.runner.batch_keys = self.batcher is not None
        self.inline = InlinePolicy(inline_max_us)
        self.ready = True
        self.graphpipe = Endpoint(self.runner)
        self.v2 = V2Endpoint(self.runner)
        self.lease: Lease | None = None
        self.targets: dict[str, Any] = {}

    def enter(self) -> bool:
        """Admits one call (always, outside a repository); False when this
        version is retired: look the model up again."""
        lease = self.lease
        return lease is None or lease.enter()

    def exit(self) -> None:
        """The call admitted by ``enter`` is answered."""
        if self.lease is not None:
            self.lease.exit()

    def __repr__(self) -> str:
        return f"<ServedModel {self.name!r} version {self.version}>"
