# SPDX-License-Identifier: Apache-2.0
"""One model call, from decoded request to encoded answer: check the request
against the model's declared inputs (the caller's mistakes: 400), run the model
(its failures: 500), select the outputs and encode them with one copy.

Runs on worker threads; nothing here touches the event loop.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tf_graphpipe import _native, deadlines, dtypes
from tf_graphpipe.errors import DeadlineExceeded as RemoteDeadlineExceeded
from tf_graphpipe.server.errors import BadRequest, DeadlinePassed, ModelFailed, describe
from tf_graphpipe.server.model import InputRejected, Model

__all__ = ["BadRequest", "Call", "ModelFailed", "ModelRunner", "expired"]

log = logging.getLogger("tf_graphpipe.server")


@dataclass
class Call:
    """A checked request: inputs in the model's input order.

    ``batch_key`` is None when the call cannot be merged with others; calls with
    equal keys differ at most in their first dimension (``rows``). ``encode``
    turns the selected outputs into this call's answer (None: a GraphPipe
    InferResponse; the v2 endpoint sets its own). ``ran``: set by the batcher,
    (start, end, rows, counted) of the model run that answered it, for metrics
    and spans (``counted``: False for the other calls of a merged batch).
    ``timeout_us``: the caller's remaining time as its request said (v2's
    ``timeout`` parameter); ``deadline``: when the caller stops waiting (a
    ``time.monotonic()`` instant, set by the dispatcher; None: never).
    """

    inputs: list[np.ndarray]
    output_names: tuple[str, ...]
    config: bytes
    rows: int = 0
    batch_key: tuple[Any, ...] | None = None
    encode: Callable[[list[tuple[str, np.ndarray]]], Any] | None = None
    ran: tuple[float, float, int, bool] | None = None
    timeout_us: int | None = None
    deadline: float | None = None


def expired(call: Call) -> DeadlinePassed | None:
    """The error for a call whose caller has stopped waiting, else None."""
    deadline = call.deadline
    if deadline is None:
        return None
    late = time.monotonic() - deadline
    if late < 0:
        return None
    return DeadlinePassed(f"the caller's deadline passed {late * 1e3:.0f} ms before the model could run it; "
                          "the model was not run")


class ModelRunner:
    """Checks, runs and encodes calls to one model. Thread-safe if the model is."""

    def __init__(self, model: Model, debug: bool = False) -> None:
        self.model = model
        self.debug = debug
        self.batch_keys = True  # False when nothing batches: prepare() skips computing them
        self._input_index = {spec.name: i for i, spec in enumerate(model.inputs)}
        self._output_names = {spec.name for spec in model.outputs}
        # Merging along axis 0 is only sound when no input fixes its first dim.
        self._batchable = not model.variadic and all(
            spec.shape is None or (len(spec.shape) > 0 and spec.shape[0] < 0) for spec in model.inputs
        )

    def prepare(
        self, config: bytes, input_names: Sequence[str], inputs: Sequence[np.ndarray], output_names: Sequence[str]
    ) -> Call:
        """Orders and checks a decoded request. Raises BadRequest."""
        model = self.model
        if input_names and len(input_names) != len(inputs):
            raise BadRequest(f"request has {len(inputs)} input tensors but {len(input_names)} input names")
        if not model.variadic and len(inputs) != len(model.inputs):
            declared = ", ".join(repr(s.name) for s in model.inputs) or "none"
            raise BadRequest(f"model {model.name!r} takes {len(model.inputs)} inputs ({declared}), got {len(inputs)}")
        ordered = list(inputs)
        if input_names and not model.variadic:
            ordered = [None] * len(inputs)  # type: ignore[list-item]
            for name, array in zip(input_names, inputs, strict=True):  # lengths checked above
                index = self._input_index.get(name)
                if index is None:
                    known = ", ".join(repr(s.name) for s in model.inputs)
                    raise BadRequest(f"unknown input {name!r} (model inputs: {known})")
                if ordered[index] is not None:
                    raise BadRequest(f"input {name!r} given twice")
                ordered[index] = array
        for spec, array in zip(model.inputs, ordered, strict=False):  # a variadic model declares none
            problem = spec.check(array, f"input {spec.name!r}")
            if problem:
                raise BadRequest(problem)
        if self._output_names:
            for name in output_names:
                if name not in self._output_names:
                    known = ", ".join(repr(s.name) for s in model.outputs)
                    raise BadRequest(f"unknown output {name!r} (model outputs: {known})")
        call = Call(ordered, tuple(output_names), config)
        if self.batch_keys and self._batchable and ordered and all(a.ndim > 0 for a in ordered):
            rows = ordered[0].shape[0]
            if all(a.shape[0] == rows for a in ordered):
                call.rows = rows
                call.batch_key = (
                    tuple((a.dtype.str, a.shape[1:]) for a in ordered),
                    call.output_names,
                    config,
                )
        return call

    def run(self, call: Call) -> list[tuple[str, np.ndarray]]:
        """Runs the model; the requested outputs (default all) by name.

        Raises:
            BadRequest: an output name the model did not produce, or the
                model refused the inputs (it raised InputRejected).
            DeadlinePassed: the caller's deadline passed before the model
                ran, or a remote call the model made (``Client``) ran out of
                time, so that a chain of servers answers 504 end to end.
            ModelFailed: the model raised.
        """
        try:
            if call.deadline is None:
                results = self.model.run(call.inputs, call.config)
            else:
                late = expired(call)
                if late is not None:
                    raise late
                # The model's own Client calls wait at most what its caller still waits.
                token = deadlines.enter(call.deadline)
                try:
                    results = self.model.run(call.inputs, call.config)
                finally:
                    deadlines.leave(token)
        except DeadlinePassed:
            raise
        except RemoteDeadlineExceeded as exc:  # a call the model made ran out of time: 504, as a gateway
            raise DeadlinePassed(self.describe(exc, "a remote call of the model ran out of time")) from exc
        except InputRejected as exc:  # the caller's mistake, found by the model itself
            raise BadRequest(str(exc)) from exc
        except Exception as exc:  # the model's own failure, whatever it is
            raise ModelFailed(self.describe(exc, "model failed")) from exc
        if not call.output_names:
            return list(results.items())
        selected = []
        for name in call.output_names:
            if name not in results:
                raise BadRequest(f"unknown output {name!r} (model outputs: {', '.join(map(repr, results))})")
            selected.append((name, results[name]))
        return selected

    def encode(self, outputs: Sequence[tuple[str, np.ndarray]]) -> _native.Message:
        """The InferResponse for ``outputs`` (one copy). Raises ModelFailed."""
        arrays, wire_types = [], []
        try:
            for name, value in outputs:
                array, wire_type = dtypes.wire_array(value, f"output {name!r}")
                arrays.append(array)
                wire_types.append(wire_type)
            return _native.encode_infer_response(arrays, wire_types)
        except (TypeError, ValueError) as exc:
            raise ModelFailed(str(exc)) from exc

    def execute(self, call: Call) -> Any:
        """``encode(run(call))``, with the call's own encoder if it has one."""
        return (call.encode or self.encode)(self.run(call))

    def describe(self, exc: BaseException, what: str) -> str:
        """A message for the client about ``exc`` (``errors.describe``, with
        the traceback if this runner is in debug mode)."""
        return describe(exc, what, self.debug)
