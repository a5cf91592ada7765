# SPDX-License-Identifier: Apache-2.0
"""Deadlines that travel: how long the caller of a call will still wait.

Every call tells the server its remaining time (GraphPipe: the
``GraphPipe-Timeout`` header, in microseconds; v2: the request's ``timeout``
parameter, in microseconds, as tritonclient sends it). The server drops a
call whose deadline has passed before running the model, and runs the model
inside that deadline (``use``): a ``Client`` call made from the model then
waits at most what is left (its own ``timeout`` is capped at it), so a chain
of servers gives up together rather than working for nobody.

Deadlines are ``time.monotonic()`` instants. Outside a server, ``use()`` sets
one for the calls a block makes; with none set, a call's own timeout holds.
"""
from __future__ import annotations

import contextlib
import contextvars
import time
from collections.abc import Iterator

__all__ = ["HEADER", "current", "enter", "from_microseconds", "leave", "parse_header", "remaining", "use"]

HEADER = "GraphPipe-Timeout"
# More than this many digits is not a deadline anyone waits for (11 days).
_MAX_DIGITS = 12

_current: contextvars.ContextVar[float | None] = contextvars.ContextVar("tf_graphpipe_deadline", default=None)


def current() -> float | None:
    """The deadline this code runs within (a ``time.monotonic()`` instant):
    set by the server around a model call, or by ``use()``; None outside both."""
    return _current.get()


def remaining() -> float | None:
    """Seconds left until ``current()`` (0 or less: passed); None without one."""
    deadline = _current.get()
    return None if deadline is None else deadline - time.monotonic()


@contextlib.contextmanager
def use(deadline: float | None) -> Iterator[float | None]:
    """Runs a block within ``deadline`` (a ``time.monotonic()`` instant; None:
    the enclosing one, if any): ``Client`` calls made in it wait at most until
    then. A deadline later than the enclosing one does not extend it."""
    token = enter(deadline)
    try:
        yield _current.get()
    finally:
        leave(token)


def enter(deadline: float | None) -> contextvars.Token[float | None]:
    """``use`` without a generator, for the server's per-call path: sets the
    deadline (capped at the enclosing one); ``leave(token)`` restores it."""
    outer = _current.get()
    if deadline is None or (outer is not None and outer < deadline):
        deadline = outer
    return _current.set(deadline)


def leave(token: contextvars.Token[float | None]) -> None:
    """Restores the deadline ``enter`` replaced."""
    _current.reset(token)


def from_microseconds(timeout_us: int | None, start: float) -> float | None:
    """The deadline ``timeout_us`` after ``start``; None for None or 0 (no
    deadline: tritonclient's default is 0)."""
    if not timeout_us:
        return None
    return start + timeout_us / 1e6


def parse_header(value: bytes | None) -> int | None:
    """The microseconds of a ``GraphPipe-Timeout`` value; None when absent or
    not a decimal integer (a malformed deadline is ignored, as an unknown
    header would be, rather than failing the call)."""
    if value is None:
        return None
    value = value.strip()
    if not value.isdigit() or len(value) > _MAX_DIGITS:
        return None
    return int(value)
