# SPDX-License-Identifier: Apache-2.0
"""When a model call may run on the event loop instead of a worker thread.

Handing a call to a worker and back costs two thread wake-ups and a GIL
hand-over: about 100 µs on a small VM, more than a 1x4 call to a fast model
costs in total, and more again when the machine is busy (each wake-up waits
for a core): a 2.4 MB call to a model answering a constant took 0.74–1.00 ms
per call on the loop against 0.98–1.49 ms through a worker (bench/README.md).
Running such a call on the loop thread saves that, but a slow model there
would stall every other connection. So a call runs inline only when the
model's recent time on calls of its body's size class (bodies up to 64 KiB,
then each class four times larger, up to 16 MiB; a moving average, so one
preempted call does not count) is within the limit. Bodies over 16 MiB
always go to a worker: moving them costs milliseconds, so the hand-off is
noise there. An inline call that takes over ``STALL_SECONDS`` (or ten times
the limit, if more: longer than a preempted thread on a busy VM waits)
stalled the loop: the next ``penalty`` timed calls, of any size, go to
workers whatever the averages say, and the penalty doubles each time (up to
``MAX_PENALTY``), which bounds how often a model that is only sometimes slow
can stall it.

The counters are updated from worker threads without a lock: a lost update
only nudges the heuristic, it cannot make an answer wrong.
"""
from __future__ import annotations

__all__ = ["DEFAULT_INLINE_MAX_US", "InlinePolicy"]

DEFAULT_INLINE_MAX_US = 200.0
SMALLEST_CLASS_BYTES = 64 << 10  # bodies up to this size are one class
CLASS_GROWTH = 4  # each further class holds bodies this many times larger
SIZE_CLASSES = 5  # up to 64 KiB * 4**4 = 16 MiB
MAX_INLINE_BODY_BYTES = SMALLEST_CLASS_BYTES * CLASS_GROWTH ** (SIZE_CLASSES - 1)  # larger: always a worker
WARM_UP_CALLS = 8  # calls of a class timed on workers before its first inline one
AVERAGE_WEIGHT = 1 / 8  # of the newest call in the moving average
STALL_SECONDS = 0.01
FIRST_PENALTY = 64
MAX_PENALTY = 1 << 16


class InlinePolicy:
    """Decides, per call, between the loop thread and a worker.

    Args:
        max_us: a call runs inline while the model's moving-average time on
            calls of its body's size class (model and encoding) is at most
            this many microseconds; 0 turns inlining off.
    """

    def __init__(self, max_us: float = DEFAULT_INLINE_MAX_US) -> None:
        if max_us < 0:
            raise ValueError(f"inline_max_us must be >= 0 (0: never inline), got {max_us}")
        self.max_seconds = max_us / 1e6
        self.stall_seconds = max(STALL_SECONDS, 10 * self.max_seconds)
        self.average = [0.0] * SIZE_CLASSES  # seconds, per size class
        self.timed = [0] * SIZE_CLASSES  # calls seen, per size class
        self.penalty = FIRST_PENALTY // 2
        self.cooldown = 0  # timed calls still sent to workers after a stall

    def size_class(self, body_bytes: int) -> int | None:
        """The size class a call with a body this large is timed in, None if
        it always runs on a worker (inlining off, or over 16 MiB)."""
        if self.max_seconds <= 0 or body_bytes > MAX_INLINE_BODY_BYTES:
            return None
        size_class, limit = 0, SMALLEST_CLASS_BYTES
        while body_bytes > limit:
            size_class, limit = size_class + 1, limit * CLASS_GROWTH
        return size_class

    def admits(self, size_class: int = 0) -> bool:
        """Whether the next call of this size class runs on the loop thread
        (loop thread only)."""
        if self.cooldown > 0:
            self.cooldown -= 1
            return False
        return self.timed[size_class] >= WARM_UP_CALLS and self.average[size_class] <= self.max_seconds

    def record(self, seconds: float, inline: bool, size_class: int = 0) -> None:
        """The model time of a timed call of this size class, wherever it ran."""
        self.timed[size_class] += 1
        self.average[size_class] += (seconds - self.average[size_class]) * AVERAGE_WEIGHT
        if inline and seconds > self.stall_seconds:
            self.penalty = min(2 * self.penalty, MAX_PENALTY)
            self.cooldown = self.penalty
