# SPDX-License-Identifier: Apache-2.0
"""What the server answers, independent of the HTTP machinery: the routes of
SPEC section 2, precomputed metadata answers, and a POST body turned into
either an immediate answer or a checked ``Call`` for the model workers.

Both front ends use it: the asyncio protocol of ``http_server`` (what
``serve()`` runs) and the ASGI app of ``app`` (for mounting in an ASGI
server). Everything here that runs on the event loop is O(1) in the size of
the tensors: decoding verifies offsets and makes views.
"""
from __future__ import annotations

import json
import logging
from typing import Any

from tf_graphpipe import __version__, _native
from tf_graphpipe.errors import ProtocolError
from tf_graphpipe.server.batching import Batcher
from tf_graphpipe.server.inference import INVALID_ARGUMENT, RESOURCE_EXHAUSTED, Call, CallError, ModelRunner
from tf_graphpipe.server.inline import DEFAULT_INLINE_MAX_US, InlinePolicy
from tf_graphpipe.server.v2_endpoint import V2Endpoint
from tf_graphpipe.server.workers import ModelWorkers

__all__ = ["DEFAULT_MAX_REQUEST_BYTES", "Endpoint", "Refused", "SERVER_NAME", "HEALTH_PATHS"]

log = logging.getLogger("tf_graphpipe.server")

DEFAULT_MAX_REQUEST_BYTES = 1 << 30
SERVER_NAME = f"tf-graphpipe/{__version__}"
HEALTH_PATHS = frozenset({"/control/is_alive", "/control/is_ready"})
OCTET_STREAM = b"application/octet-stream"
NOT_ALLOWED = b"use POST (GraphPipe) or GET (metadata)\n"


class Refused(CallError):
    """A request refused before it reaches the model (400, 413...)."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code = status, code


def too_large(length: int | None, limit: int) -> Refused:
    """The 413 for a body of ``length`` bytes (None: length not known yet)."""
    if length is None:
        return Refused(413, RESOURCE_EXHAUSTED, f"request body exceeds the server's limit of {limit} bytes")
    return Refused(413, RESOURCE_EXHAUSTED, f"request body of {length} bytes exceeds the server's limit of {limit} bytes")


class Endpoint:
    """One served model: routes, metadata, checks, and the model workers.

    Args:
        runner: checks, runs and encodes calls to the model.
        workers: the threads where model calls run.
        max_request_bytes: larger bodies are refused with 413.
        max_batch_size: > 0 turns dynamic batching on.
        batch_timeout_ms: how long a batch waits for more calls.
        inline_max_us: small calls to a model that keeps answering them within
            this many µs run on the event loop, not a worker (0: never).
    """

    def __init__(
        self,
        runner: ModelRunner,
        workers: ModelWorkers,
        *,
        max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
        max_batch_size: int = 0,
        batch_timeout_ms: float = 5.0,
        inline_max_us: float = DEFAULT_INLINE_MAX_US,
    ) -> None:
        if max_request_bytes < 1:
            raise ValueError(f"max_request_bytes must be >= 1, got {max_request_bytes}")
        if max_batch_size < 0:
            raise ValueError(f"max_batch_size must be >= 0 (0: no batching), got {max_batch_size}")
        self.runner = runner
        self.workers = workers
        self.inline = InlinePolicy(inline_max_us)
        self.max_request_bytes = max_request_bytes
        self.batcher = (
            Batcher(runner, workers, max_batch_size, batch_timeout_ms / 1000.0) if max_batch_size > 0 else None
        )
        runner.batch_keys = self.batcher is not None
        self.ready = True
        model = runner.model
        common: dict[str, Any] = {
            "name": model.name,
            "version": model.version,
            "server": SERVER_NAME,
            "description": model.description,
        }
        wire = dict(common, inputs=[s.wire_metadata() for s in model.inputs],
                    outputs=[s.wire_metadata() for s in model.outputs])
        self.metadata_message = _native.encode_metadata_response(wire)
        self.metadata_json = json.dumps(
            dict(common, inputs=[s.json_metadata() for s in model.inputs],
                 outputs=[s.json_metadata() for s in model.outputs]),
            indent=2,
        ).encode() + b"\n"
        self.v2 = V2Endpoint(self)  # the Open Inference Protocol routes under /v2, same model

    def get(self, path: str) -> tuple[int, bytes, bytes]:
        """The answer to a GET (or HEAD): (status, body, content type)."""
        if path in HEALTH_PATHS:
            if self.ready or path.endswith("is_alive"):
                return 200, b"ok", b"text/plain"
            return 503, b"shutting down", b"text/plain"
        return 200, self.metadata_json, b"application/json"

    def prepare(self, body: Any) -> Call | _native.Message:
        """Decodes and checks a POST body: a ``Call`` for the model, or the
        answer itself (metadata). Raises CallError (400) for bad bodies."""
        try:
            request = _native.decode_request(body)
        except ProtocolError as exc:
            raise Refused(400, INVALID_ARGUMENT, f"request body is not a GraphPipe Request: {exc}") from exc
        if request[0] == "metadata":
            return self.metadata_message
        _, config, input_names, inputs, output_names = request
        return self.runner.prepare(config, input_names, inputs, output_names)

    def execute(self, call: Call) -> tuple[int, _native.Message]:
        """On a worker thread: runs ``call``; (status, answer), never raises."""
        try:
            return 200, self.runner.execute(call)
        except Exception as exc:  # noqa: BLE001 - every failure becomes an answer
            return self.error_answer(exc)

    def error_answer(self, exc: BaseException) -> tuple[int, _native.Message]:
        """(status, error InferResponse) for an exception; logs it."""
        if isinstance(exc, CallError):
            log.warning("POST -> %d: %s", exc.status, exc.message)
            return exc.status, _native.encode_error_response(exc.message, exc.code)
        log.error("POST -> 500: server error", exc_info=exc)
        return 500, _native.encode_error_response(self.runner.describe(exc, "server error"))
