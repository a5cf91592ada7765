# SPDX-License-Identifier: Apache-2.0
"""W3C Trace Context: the ``traceparent`` header every call carries.

A call belongs to a trace: ``00-<trace id>-<parent span id>-<flags>``
(https://www.w3.org/TR/trace-context/). The server reads the header a call
brings (or starts a trace when there is none), writes it in its access log,
and runs the model inside that trace (``current()``); a ``Client`` call made
from inside the model sends the same trace id on, so a chain of models keeps
one trace. Outside a server, ``use()`` sets the trace for the calls a block
makes; with none set (and no OpenTelemetry span active), each call starts a
trace of its own.

Only ids travel; nothing here records spans. The server's OpenTelemetry
spans, when the SDK is configured, are made in ``tf_graphpipe.server.spans``.
"""
from __future__ import annotations

import contextlib
import contextvars
import os
import random
import re
import sys
from collections.abc import Iterator
from typing import NamedTuple

__all__ = ["HEADER", "TraceParent", "current", "new_trace", "outgoing", "parse", "use"]

HEADER = "traceparent"
SAMPLED = 0x01
# version-trace_id-parent_id-flags, lowercase hex; a later version may append "-..." fields.
_FORMAT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
# Ids need to be unique, not secret (OpenTelemetry's SDK makes them the same
# way): a generator of our own, seeded from the OS, so no syscall per call.
_random = random.Random(os.urandom(16))
os.register_at_fork(after_in_child=lambda: _random.seed(os.urandom(16)))  # a forked worker makes ids of its own
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16


class TraceParent(NamedTuple):
    """One ``traceparent``: the trace, the caller's span in it, and the flags.

    Attributes:
        trace_id: 32 lowercase hex digits, never all zero.
        span_id: 16 lowercase hex digits, never all zero: the span of the
            caller, which the callee's spans name as their parent.
        flags: the trace flags byte (bit 0: sampled).
    """

    trace_id: str
    span_id: str
    flags: int = SAMPLED

    @property
    def header(self) -> str:
        """The header value, ``00-<trace_id>-<span_id>-<flags>``."""
        return f"00-{self.trace_id}-{self.span_id}-{self.flags:02x}"

    @property
    def sampled(self) -> bool:
        return bool(self.flags & SAMPLED)

    def child(self) -> TraceParent:
        """The same trace under a new span of this process."""
        return TraceParent(self.trace_id, _span_id(), self.flags)


def parse(value: str | bytes | None) -> TraceParent | None:
    """The ``TraceParent`` of a header value; None when absent or malformed
    (the W3C rule: a receiver ignores a header it cannot parse and starts a
    new trace). A version above 00 is read by its 00 prefix, as the
    specification asks; version ff is invalid."""
    if value is None:
        return None
    if isinstance(value, bytes):
        try:
            value = value.decode("ascii")
        except UnicodeDecodeError:
            return None
    match = _FORMAT.fullmatch(value.strip())
    if match is None:
        return None
    version, trace_id, span_id, flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest) or trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
        return None
    return TraceParent(trace_id, span_id, int(flags, 16))


def new_trace(sampled: bool = True) -> TraceParent:
    """A new trace with a random id (the start of a chain)."""
    trace_id = f"{_random.getrandbits(128):032x}"
    while trace_id == _ZERO_TRACE:  # pragma: no cover - one chance in 2**128
        trace_id = f"{_random.getrandbits(128):032x}"
    return TraceParent(trace_id, _span_id(), SAMPLED if sampled else 0)


_current: contextvars.ContextVar[TraceParent | None] = contextvars.ContextVar("tf_graphpipe_trace", default=None)


def current() -> TraceParent | None:
    """The trace this code runs in: set by the server around a model call, or
    by ``use()``; None outside both."""
    return _current.get()


@contextlib.contextmanager
def use(trace: TraceParent | str | None) -> Iterator[TraceParent | None]:
    """Runs a block inside ``trace`` (a ``TraceParent`` or header value):
    ``Client`` calls made in it carry that trace id.

    Raises:
        ValueError: ``trace`` is a string that is not a valid traceparent.
    """
    if isinstance(trace, str):
        parsed = parse(trace)
        if parsed is None:
            raise ValueError(f"not a W3C traceparent: {trace!r} (expected 00-<32 hex>-<16 hex>-<2 hex>)")
        trace = parsed
    token = _current.set(trace)
    try:
        yield trace
    finally:
        _current.reset(token)


def outgoing(explicit: str | None = None) -> str:
    """The ``traceparent`` a call sends: ``explicit`` when the caller gave one
    (checked), else the current trace (``current()``, or the active
    OpenTelemetry span when that SDK is in use), else a new trace.

    Raises:
        ValueError: ``explicit`` is not a valid traceparent.
    """
    if explicit is not None:
        if parse(explicit) is None:
            raise ValueError(f"not a W3C traceparent: {explicit!r} (expected 00-<32 hex>-<16 hex>-<2 hex>)")
        return explicit
    trace = _current.get()
    if trace is None:
        trace = _opentelemetry_span()
    return (trace or new_trace()).header


def _opentelemetry_span() -> TraceParent | None:
    """The active OpenTelemetry span's context, when the application has
    imported OpenTelemetry (never imported from here)."""
    api = sys.modules.get("opentelemetry.trace")
    if api is None:
        return None
    context = api.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return TraceParent(f"{context.trace_id:032x}", f"{context.span_id:016x}", int(context.trace_flags))


def _span_id() -> str:
    span_id = f"{_random.getrandbits(64):016x}"
    while span_id == _ZERO_SPAN:  # pragma: no cover - one chance in 2**64
        span_id = f"{_random.getrandbits(64):016x}"
    return span_id
