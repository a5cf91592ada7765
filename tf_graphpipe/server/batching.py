# SPDX-License-Identifier: Apache-2.0
"""Dynamic batching: calls that agree in everything but their first dimension
(same inputs' dtypes and trailing shapes, same outputs, same config) and arrive
within ``timeout`` of each other are concatenated along axis 0, run once and
split back, so each caller gets exactly its rows.

A window closes when it holds ``max_batch_size`` rows or ``timeout`` after its
first call. A call larger than ``max_batch_size`` runs alone. If the merged run
fails, or its outputs do not keep the batch dimension, each call is run again on
its own so one caller's bad rows cannot fail the others.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

import numpy as np

from tf_graphpipe import _native
from tf_graphpipe.server.errors import ServerError
from tf_graphpipe.server.inference import Call, ModelRunner, expired

__all__ = ["Batcher"]

log = logging.getLogger("tf_graphpipe.server")

_Pending = tuple[Call, "asyncio.Future[_native.Message]"]
BatchKey = tuple[Any, ...]


class Batcher:
    """Merges concurrent calls to ``runner`` (used on one event loop only)."""

    def __init__(self, runner: ModelRunner, executor: Executor, max_batch_size: int, timeout: float) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 0 (0: no batching), got {max_batch_size}")
        if timeout < 0:
            raise ValueError(f"batch timeout must be >= 0, got {timeout}")
        self.runner = runner
        self.executor = executor
        self.max_batch_size = max_batch_size
        self.timeout = timeout
        self._windows: dict[BatchKey, list[_Pending]] = {}
        self._rows: dict[BatchKey, int] = {}
        self._timers: dict[BatchKey, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._warned_unsplittable = False

    async def submit(self, call: Call) -> _native.Message:
        """The encoded answer to ``call``, merged with others when possible.
        Raises ServerError like ``ModelRunner.execute``."""
        loop = asyncio.get_running_loop()
        key = call.batch_key
        if key is None or call.rows >= self.max_batch_size:
            return await loop.run_in_executor(self.executor, self._execute_alone, call)
        if self._rows.get(key, 0) + call.rows > self.max_batch_size:
            self._flush(key)
        future: asyncio.Future[_native.Message] = loop.create_future()
        window = self._windows.setdefault(key, [])
        window.append((call, future))
        self._rows[key] = self._rows.get(key, 0) + call.rows
        if self._rows[key] >= self.max_batch_size:
            self._flush(key)
        elif len(window) == 1:
            self._timers[key] = loop.call_later(self.timeout, self._flush, key)
        return await future

    def _flush(self, key: BatchKey) -> None:
        window = self._windows.pop(key, None)
        self._rows.pop(key, None)
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        if not window:
            return
        task = asyncio.get_running_loop().create_task(self._run(window))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, window: list[_Pending]) -> None:
        loop = asyncio.get_running_loop()
        calls = [call for call, _ in window]
        try:
            answers = await loop.run_in_executor(self.executor, self._execute_window, calls)
        except BaseException as exc:  # noqa: BLE001 - never leave a caller waiting
            answers = [exc] * len(window)
        for (_, future), answer in zip(window, answers, strict=True):
            if future.done():  # the caller went away
                continue
            if isinstance(answer, BaseException):
                future.set_exception(answer)
            else:
                future.set_result(answer)

    def _execute_alone(self, call: Call) -> _native.Message:
        """On a worker thread: one call on its own; raises like ``execute``."""
        start = time.perf_counter()
        try:
            answer: _native.Message = self.runner.execute(call)
            return answer
        finally:
            call.ran = (start, time.perf_counter(), call.rows, True)

    def _execute_window(self, calls: list[Call]) -> list[_native.Message | BaseException]:
        """On a worker thread: the answer (or error) of each call; calls
        whose caller stopped waiting while they sat in the window or the
        worker queue are answered so without running."""
        late = [expired(call) for call in calls]
        if any(late):
            live = [call for call, gone in zip(calls, late, strict=True) if gone is None]
            ran = iter(self._execute_window(live) if live else [])
            return [gone if gone is not None else next(ran) for gone in late]
        if len(calls) > 1:
            start = time.perf_counter()
            try:
                answers = self._execute_merged(calls)
            except _Unmergeable:
                pass
            except ServerError as exc:
                log.debug("merged batch of %d calls failed (%s); running them one by one", len(calls), exc)
            else:
                end, rows = time.perf_counter(), sum(call.rows for call in calls)
                for i, call in enumerate(calls):  # the run counts once, each call's wait once
                    call.ran = (start, end, rows, i == 0)
                return answers
        return [_answer(self._execute_alone, call) for call in calls]

    def _execute_merged(self, calls: list[Call]) -> list[_native.Message | BaseException]:
        first = calls[0]
        merged_inputs = [
            np.concatenate([call.inputs[i] for call in calls], axis=0) for i in range(len(first.inputs))
        ]
        total = sum(call.rows for call in calls)
        # The merged run lasts as long as its most patient caller waits.
        deadline = None if any(call.deadline is None for call in calls) else max(
            call.deadline for call in calls if call.deadline is not None)
        outputs = self.runner.run(Call(merged_inputs, first.output_names, first.config, total, first.batch_key,
                                       deadline=deadline))
        if any(value.ndim == 0 or value.shape[0] != total for _, value in outputs):
            if not self._warned_unsplittable:
                self._warned_unsplittable = True
                log.warning(
                    "model %r: outputs do not keep the batch dimension (%s for %d rows); "
                    "batched calls run one by one",
                    self.runner.model.name,
                    [list(np.shape(v)) for _, v in outputs],
                    total,
                )
            raise _Unmergeable
        answers: list[_native.Message | BaseException] = []
        start = 0
        for call in calls:
            end = start + call.rows
            encode = call.encode or self.runner.encode
            answers.append(_answer(encode, [(name, value[start:end]) for name, value in outputs]))
            start = end
        return answers


class _Unmergeable(Exception):
    """The model's outputs cannot be split back into the calls' rows."""


def _answer(function: Callable[[Any], _native.Message], argument: object) -> _native.Message | BaseException:
    try:
        return function(argument)
    except ServerError as exc:
        return exc
