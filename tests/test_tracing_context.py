# SPDX-License-Identifier: Apache-2.0
"""W3C traceparent: what is accepted, what is ignored, what a call sends."""
from __future__ import annotations

import threading

import pytest

from tf_graphpipe import tracing

VALID = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_valid_traceparent_is_read_field_by_field() -> None:
    parsed = tracing.parse(VALID)
    assert parsed == tracing.TraceParent("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", 1)
    assert parsed.sampled
    assert parsed.header == VALID
    assert tracing.parse(VALID.encode()) == parsed


@pytest.mark.parametrize("value", [
    "",
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",          # no flags
    "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",       # uppercase hex
    "00-00000000000000000000000000000000-00f067aa0ba902b7-01",       # zero trace id
    "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",       # zero span id
    "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",       # version ff
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",  # 00 has exactly four fields
    "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",      # later version, no dash
    "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
    "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
    b"\xff" * 55,
])
def test_malformed_traceparent_is_ignored(value: str | bytes) -> None:
    assert tracing.parse(value) is None


def test_later_version_is_read_by_its_prefix() -> None:
    parsed = tracing.parse("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-future-field")
    assert parsed == tracing.TraceParent("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", 0)


def test_outgoing_starts_a_new_trace_per_call_outside_any_trace() -> None:
    first, second = tracing.parse(tracing.outgoing()), tracing.parse(tracing.outgoing())
    assert first is not None and second is not None
    assert first.trace_id != second.trace_id


def test_outgoing_keeps_the_trace_set_by_use_and_only_inside_it() -> None:
    with tracing.use(VALID):
        assert tracing.outgoing() == VALID
        seen: list[str | None] = []
        # A thread does not inherit the block's trace: it starts its own.
        thread = threading.Thread(target=lambda: seen.append(tracing.current() and tracing.current().header))
        thread.start()
        thread.join(5)
        assert seen == [None]
    assert tracing.current() is None
    assert tracing.parse(tracing.outgoing()).trace_id != tracing.parse(VALID).trace_id


def test_explicit_traceparent_wins_and_is_checked() -> None:
    other = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"
    with tracing.use(VALID):
        assert tracing.outgoing(other) == other
    with pytest.raises(ValueError, match="not a W3C traceparent"):
        tracing.outgoing("not-a-trace")
    with pytest.raises(ValueError, match="not a W3C traceparent"), tracing.use("00-zz"):
        pass


def test_child_keeps_the_trace_under_a_new_span() -> None:
    parent = tracing.parse(VALID)
    child = parent.child()
    assert child.trace_id == parent.trace_id and child.flags == parent.flags
    assert child.span_id != parent.span_id and len(child.span_id) == 16


def test_outgoing_follows_an_active_opentelemetry_span() -> None:
    from opentelemetry.sdk.trace import TracerProvider  # the test extra installs the SDK

    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("work") as span:
        ids = span.get_span_context()
        assert tracing.outgoing() == f"00-{ids.trace_id:032x}-{ids.span_id:016x}-{int(ids.trace_flags):02x}"
