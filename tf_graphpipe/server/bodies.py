# SPDX-License-Identifier: Apache-2.0
"""Request bodies: where they are received, how many bytes of them the server
holds at once, and how their buffers are reused.

* ``BodyBudget`` bounds the request bytes in flight across every connection
  (received, waiting, or in a call). A body takes budget as its bytes arrive,
  in steps that double with what it has received, never from what its
  Content-Length announces: a client announcing 1 GiB and sending 10 bytes
  holds 256 KiB. A body that cannot take its next step is refused (503,
  ``Overloaded``) and its memory let go, so the others go on. The last
  eighth of the budget is kept for small bodies (up to 64 KiB, taken whole),
  so a flood of large uploads never starves small calls.
* ``BodyLease`` is one body: the front end writes bytes into ``writable()``
  (the kernel's ``recv_into``) or ``write()`` (a parser's or an ASGI
  server's chunks), and calls ``release()`` once the answer is handed over,
  which gives the budget back.
* A large body's buffer comes from a ``BufferPool`` and returns to it when the
  last view of it dies (a ``weakref.finalize`` on the object every view of
  the body keeps alive), not when the lease is released: a model may keep an
  input (a view of the body), a v2 answer may be a view of an input still
  being written, and a buffer neither can see is never handed to another
  request. Fresh pages cost a page fault and a kernel memset each, so reuse
  matters for large bodies; the pool keeps at most a quarter of the budget,
  and nothing idle for more than ``POOL_IDLE_SECONDS``.

A known-length body's buffer is mapped at its full size up front (``np.empty``
touches no page, so it holds address space, not memory); its memory is
committed only by the copies into it, which the budget has granted first.

Leases and the budget are used on the event loop thread only; the pool is
thread-safe (a finalizer runs wherever the last view dies).
"""
from __future__ import annotations

import ctypes
import logging
import threading
import time
import weakref
from typing import Any, cast

import numpy as np

from tf_graphpipe.server.errors import BadRequest, BodyTooLarge, Overloaded

__all__ = [
    "BLOB_ALIGNMENT",
    "DEFAULT_MAX_INFLIGHT_BYTES",
    "DEFAULT_MAX_REQUEST_BYTES",
    "BodyBudget",
    "BodyLease",
    "BufferPool",
    "default_inflight_bytes",
]

log = logging.getLogger("tf_graphpipe.server")

DEFAULT_MAX_REQUEST_BYTES = 1 << 30
DEFAULT_MAX_INFLIGHT_BYTES = 2 << 30
BLOB_ALIGNMENT = 64  # a v2 body's first blob lands at this alignment: inputs are views, not copies
SMALL_BODY_BYTES = 64 << 10  # taken from the budget whole, and may use its reserve
FIRST_STEP_BYTES = 256 << 10  # a large body's first grant; each next one doubles what it holds
RESERVE_FRACTION = 8  # 1/8 of the budget is for small bodies only
POOLED_BYTES = 1 << 20  # bodies this large take and give back pooled buffers
POOL_IDLE_SECONDS = 5.0


def default_inflight_bytes(max_request_bytes: int) -> int:
    """The budget when none is given: 2 GiB, or one largest body if larger."""
    return max(DEFAULT_MAX_INFLIGHT_BYTES, max_request_bytes)


class BufferPool:
    """Free large body buffers, kept for reuse (thread-safe).

    Args:
        max_bytes: the most it keeps; a buffer given back past that is freed.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._free: list[tuple[float, np.ndarray]] = []
        self._bytes = 0
        self._lock = threading.Lock()

    def take(self, size: int) -> np.ndarray | None:
        """A free buffer of at least ``size`` bytes and less than twice that."""
        now = time.monotonic()
        with self._lock:
            self._trim(now)
            for i, (_, buffer) in enumerate(self._free):
                if size <= buffer.size < 2 * size:
                    del self._free[i]
                    self._bytes -= buffer.size
                    return buffer
        return None

    def give(self, buffer: np.ndarray) -> None:
        """``buffer`` is free (no view of it is left)."""
        with self._lock:
            if self._bytes + buffer.size <= self.max_bytes:
                self._free.append((time.monotonic(), buffer))
                self._bytes += buffer.size

    def trim(self) -> None:
        """Frees what has been idle for over POOL_IDLE_SECONDS."""
        with self._lock:
            self._trim(time.monotonic())

    def _trim(self, now: float) -> None:
        kept = [(t, b) for t, b in self._free if now - t <= POOL_IDLE_SECONDS]
        if len(kept) != len(self._free):
            self._free = kept
            self._bytes = sum(b.size for _, b in kept)

    @property
    def free_bytes(self) -> int:
        return self._bytes


class BodyBudget:
    """The request bytes in flight across every connection (loop thread only).

    Args:
        max_bytes: the most the server holds at once; at least
            ``max_request_bytes``, else the largest bodies never fit (a warning).
        max_request_bytes: one body's limit (413 past it).
    """

    def __init__(self, max_bytes: int = DEFAULT_MAX_INFLIGHT_BYTES,
                 max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES) -> None:
        if max_request_bytes < 1:
            raise ValueError(f"max_request_bytes must be >= 1, got {max_request_bytes}")
        if max_bytes < 1:
            raise ValueError(f"max_inflight_bytes must be >= 1, got {max_bytes}")
        if max_bytes < max_request_bytes:
            log.warning("max_inflight_bytes (%d) is below max_request_bytes (%d): bodies over %d bytes "
                        "can never be received (503)", max_bytes, max_request_bytes,
                        max_bytes - max_bytes // RESERVE_FRACTION)
        self.max_bytes = max_bytes
        self.max_request_bytes = max_request_bytes
        self.large_limit = max_bytes - max_bytes // RESERVE_FRACTION
        self.in_flight = 0
        self.pool = BufferPool(max_bytes // 4)

    def lease(self, size: int | None, align_at: int = 0) -> BodyLease:
        """A lease for a body of ``size`` bytes (None: chunked, size unknown)
        whose byte ``align_at`` (a v2 body's first blob) is BLOB_ALIGNMENT-aligned.

        Raises:
            BodyTooLarge: ``size`` is over ``max_request_bytes``.
            Overloaded: the budget cannot take the body's first bytes.
        """
        if size is not None and size > self.max_request_bytes:
            raise BodyTooLarge(f"request body of {size} bytes exceeds the server's limit of "
                               f"{self.max_request_bytes} bytes")
        return BodyLease(self, size, align_at)

    def take(self, count: int, small: bool) -> None:
        """Counts ``count`` more bytes in flight. Raises Overloaded."""
        limit = self.max_bytes if small else self.large_limit
        if self.in_flight + count > limit:
            raise Overloaded(f"the server holds {self.in_flight} bytes of request bodies and takes at most "
                             f"{self.max_bytes} (max_inflight_bytes): retry later")
        self.in_flight += count

    def give(self, count: int) -> None:
        self.in_flight -= count


def _pooled_body(pool: BufferPool, size: int, align_at: int) -> np.ndarray:
    """``size`` bytes of a pooled buffer, byte ``align_at`` aligned. Every view
    of the result keeps one ctypes array alive; its finalizer gives the
    buffer back to the pool once the last view is gone."""
    padded = size + BLOB_ALIGNMENT
    buffer = pool.take(padded)
    if buffer is None:
        buffer = np.empty(padded, np.uint8)  # no memset: pages are touched by the kernel's copy
    shift = -(buffer.ctypes.data + align_at) % BLOB_ALIGNMENT
    holder = (ctypes.c_uint8 * size).from_buffer(cast(Any, buffer), shift)
    weakref.finalize(holder, pool.give, buffer).atexit = False
    return np.frombuffer(cast(Any, holder), np.uint8)


def _small_body(size: int, align_at: int) -> np.ndarray:
    if not align_at:
        # malloc's 16-byte alignment suits every dtype's own; a 64-byte start
        # (what TensorFlow needs to alias a tensor) would cost more to find
        # (``.ctypes`` is ~4 us) than copying a small input does.
        return np.empty(size, np.uint8)
    buffer = np.empty(size + BLOB_ALIGNMENT, np.uint8)
    shift = -(buffer.ctypes.data + align_at) % BLOB_ALIGNMENT
    return buffer[shift:shift + size]


class BodyLease:
    """One request body being received, then held until its answer is out.

    ``body()`` is the received body: a NumPy uint8 array (Content-Length),
    a bytearray (chunked) or ``b""``.
    """

    __slots__ = ("_buffer", "_view", "budget", "filled", "granted", "size", "small")

    def __init__(self, budget: BodyBudget, size: int | None, align_at: int) -> None:
        self.budget = budget
        self.size = size
        self.filled = 0
        self.granted = 0
        self.small = size is not None and size <= SMALL_BODY_BYTES
        self._view: memoryview | None = None
        self._buffer: Any
        if size is None:
            self._buffer = bytearray()
        elif size == 0:
            self._buffer = b""
        else:
            if self.small:
                budget.take(size, True)
                self.granted = size
            else:
                self._grant()
            self._buffer = (_pooled_body(budget.pool, size, align_at) if size >= POOLED_BYTES
                            else _small_body(size, align_at))
            self._view = memoryview(self._buffer)

    @property
    def complete(self) -> bool:
        """Every announced byte has arrived (a chunked body: never by itself)."""
        return self.size is not None and self.filled == self.size

    def _grant(self) -> None:
        """Takes the next step of budget. Raises Overloaded."""
        step = max(FIRST_STEP_BYTES, self.granted)
        if self.size is not None:
            step = min(step, self.size - self.granted)
        self.budget.take(step, False)
        self.granted += step

    def writable(self) -> memoryview:
        """The unfilled part of the body the budget covers, for ``recv_into``
        (known length only). Raises Overloaded."""
        if self.filled == self.granted:
            self._grant()
        return self._view[self.filled:self.granted]  # type: ignore[index]

    def received(self, count: int) -> None:
        """``count`` bytes were written into ``writable()``."""
        self.filled += count

    def write(self, chunk: Any) -> None:
        """Copies ``chunk`` in. Raises BadRequest (past the Content-Length),
        BodyTooLarge (a chunked body past the server's limit) or Overloaded."""
        size = len(chunk)
        end = self.filled + size
        limit = self.budget.max_request_bytes if self.size is None else self.size
        if end > limit:
            if self.size is None:
                raise BodyTooLarge(f"request body exceeds the server's limit of {limit} bytes")
            raise BadRequest(f"request body longer than its Content-Length of {self.size} bytes")
        while end > self.granted:
            self._grant()
        if self._view is not None:
            self._view[self.filled:end] = chunk
        else:
            self._buffer += chunk
        self.filled = end

    def body(self) -> Any:
        return self._buffer

    def let_go(self) -> None:
        """Drops the lease's own views of the buffer (the budget stays taken
        until ``release``): once nothing else views it, the buffer returns to
        its pool. For whoever holds the request when the body is no longer
        needed, on whatever thread."""
        self._buffer = b""
        self._view = None

    def release(self) -> None:
        """The answer is handed over: the budget is given back. The buffer
        returns to its pool once nothing views it any more."""
        self.budget.give(self.granted)
        self.granted = self.filled = 0
        self._buffer = b""
        self._view = None
