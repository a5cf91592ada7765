# SPDX-License-Identifier: Apache-2.0
"""When a model call may run on the event loop instead of a worker thread.

Handing a call to a worker and back costs two thread wake-ups and a GIL
hand-over: about 100 µs on a small VM, more than a 1x4 call to a fast model
costs in total (bench/README.md). Running such a call on the loop thread
saves that, but a slow model there would stall every other connection. So a
call runs inline only when its body is small and the model's recent time on
small calls (a moving average, so one preempted call does not count) is
within the limit. An inline call that takes over ``STALL_SECONDS`` (or ten
times the limit, if more: longer than a preempted thread on a busy VM waits)
stalled the loop: the next ``penalty`` small calls go to workers whatever
the average says, and the penalty doubles each time (up to ``MAX_PENALTY``),
which bounds how often a model that is only sometimes slow can stall it.

The counters are updated from worker threads without a lock: a lost update
only nudges the heuristic, it cannot make an answer wrong.
"""
from __future__ import annotations

__all__ = ["DEFAULT_INLINE_MAX_US", "InlinePolicy"]

DEFAULT_INLINE_MAX_US = 200.0
MAX_INLINE_BODY_BYTES = 64 << 10  # larger bodies always go to a worker
WARM_UP_CALLS = 8  # small calls timed on workers before the first inline one
AVERAGE_WEIGHT = 1 / 8  # of the newest call in the moving average
STALL_SECONDS = 0.01
FIRST_PENALTY = 64
MAX_PENALTY = 1 << 16


class InlinePolicy:
    """Decides, per call, between the loop thread and a worker.

    Args:
        max_us: small calls run inline while the model's moving-average time
            on them (model and encoding) is at most this many microseconds;
            0 turns inlining off.
    """

    def __init__(self, max_us: float = DEFAULT_INLINE_MAX_US) -> None:
        if max_us < 0:
            raise ValueError(f"inline_max_us must be >= 0 (0: never inline), got {max_us}")
        self.max_seconds = max_us / 1e6
        self.stall_seconds = max(STALL_SECONDS, 10 * self.max_seconds)
        self.average = 0.0  # seconds
        self.timed = 0  # small calls seen
        self.penalty = FIRST_PENALTY // 2
        self.cooldown = 0  # small calls still sent to workers after a stall

    def small(self, body_bytes: int) -> bool:
        """Whether a call with a body this large is timed (and may run inline)."""
        return self.max_seconds > 0 and body_bytes <= MAX_INLINE_BODY_BYTES

    def admits(self) -> bool:
        """Whether the next small call runs on the loop thread (loop thread only)."""
        if self.cooldown > 0:
            self.cooldown -= 1
            return False
        return self.timed >= WARM_UP_CALLS and self.average <= self.max_seconds

    def record(self, seconds: float, inline: bool) -> None:
        """The model time of a small call, wherever it ran."""
        self.timed += 1
        self.average += (seconds - self.average) * AVERAGE_WEIGHT
        if inline and seconds > self.stall_seconds:
            self.penalty = min(2 * self.penalty, MAX_PENALTY)
            self.cooldown = self.penalty
