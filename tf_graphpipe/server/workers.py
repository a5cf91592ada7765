# SPDX-License-Identifier: Apache-2.0
"""The threads that run the model, off the event loop.

``ModelWorkers.call_soon`` is the server's hand-off: one ``SimpleQueue.put``
to a waiting thread and one ``loop.call_soon_threadsafe`` back, with no
``concurrent.futures.Future`` / ``asyncio.Future`` pair and no coroutine per
call (``run_in_executor`` costs about twice as much). It is also an
``Executor``, so ``run_in_executor`` (the batcher, the ASGI app) works too.
"""
from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any

__all__ = ["ModelWorkers"]

log = logging.getLogger("tf_graphpipe.server")

_STOP = None


class ModelWorkers(Executor):
    """``count`` daemon threads taking work from one queue.

    Thread-safe. ``shutdown`` lets queued work finish, then stops the threads.
    """

    def __init__(self, count: int, name: str = "graphpipe-model") -> None:
        if count < 1:
            raise ValueError(f"workers must be >= 1, got {count}")
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._closed = False
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True) for i in range(count)
        ]
        for thread in self._threads:
            thread.start()

    def call_soon(self, function: Callable[[Any], Any], argument: Any,
                  loop: asyncio.AbstractEventLoop, callback: Callable[[Any], None]) -> None:
        """Runs ``function(argument)`` on a worker, then ``callback(result)``
        on ``loop``. ``function`` must not raise (its exceptions are logged
        and the callback is not called)."""
        if self._closed:
            raise RuntimeError("the model workers are shut down")
        self._queue.put((function, argument, loop, callback))

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        if self._closed:
            raise RuntimeError("the model workers are shut down")
        self._queue.put((_run_future, (future, fn, args, kwargs), None, None))
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        for _ in self._threads:
            self._queue.put(_STOP)
        if wait:
            for thread in self._threads:
                if thread is not threading.current_thread():
                    thread.join()

    def _work(self) -> None:
        get = self._queue.get
        while (item := get()) is not _STOP:
            _run(*item)
            # Drop the call before waiting for the next: its inputs are views
            # of a request body the connection reuses once nothing holds it
            # (else every large request takes, and faults in, a fresh buffer).
            del item


def _run(function: Callable[[Any], Any], argument: Any, loop: asyncio.AbstractEventLoop | None,
         callback: Callable[[Any], None] | None) -> None:
    try:
        result = function(argument)
    except BaseException:  # a bug of ours: never kill the worker
        log.exception("model worker: unexpected error")
        return
    if callback is not None:
        try:
            loop.call_soon_threadsafe(callback, result)  # type: ignore[union-attr]
        except RuntimeError:  # the loop is closed: nobody waits any more
            pass


def _run_future(work: tuple[Future[Any], Callable[..., Any], tuple[Any, ...], dict[str, Any]]) -> None:
    future, fn, args, kwargs = work
    if not future.set_running_or_notify_cancel():
        return
    try:
        future.set_result(fn(*args, **kwargs))
    except BaseException as exc:  # noqa: BLE001 - the future carries it to its waiter
        future.set_exception(exc)
