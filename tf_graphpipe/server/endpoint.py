# SPDX-License-Identifier: Apache-2.0
"""The GraphPipe side of one served model (SPEC section 2), independent of the
HTTP machinery: its metadata answers, a POST body turned into either the
answer itself (a metadata request) or a checked ``Call``, and how GraphPipe
answers (a native message) and errors (an ``InferResponse`` whose ``errors``
carry the message and the wire code) are rendered.

Everything here that runs on the event loop is O(1) in the size of the
tensors: decoding verifies offsets and makes views.
"""
from __future__ import annotations

import json
from typing import Any

from tf_graphpipe import __version__, _native
from tf_graphpipe.errors import ProtocolError
from tf_graphpipe.server.answer import JSON, OCTET_STREAM, Answer
from tf_graphpipe.server.errors import BadRequest, Failure
from tf_graphpipe.server.inference import Call, ModelRunner

__all__ = ["GRAPHPIPE_WIRE", "SERVER_NAME", "Endpoint", "GraphPipeWire"]

SERVER_NAME = f"tf-graphpipe/{__version__}"


class GraphPipeWire:
    """How GraphPipe renders a call's result and an error."""

    name = "graphpipe"

    @staticmethod
    def ok(result: Any) -> Answer:
        return Answer.of_message(200, result)

    @staticmethod
    def error(failure: Failure) -> Answer:
        message = _native.encode_error_response(failure.message, failure.code)
        return Answer(failure.status, [message], OCTET_STREAM, failure.headers, len(message), failure.close)


GRAPHPIPE_WIRE = GraphPipeWire()


class Endpoint:
    """GraphPipe for one model: metadata (JSON for GET, a flatbuffer for a
    POSTed metadata request) and infer calls.

    Args:
        runner: checks, runs and encodes calls to the model.
    """

    wire = GRAPHPIPE_WIRE

    def __init__(self, runner: ModelRunner) -> None:
        self.runner = runner
        model = runner.model
        common: dict[str, Any] = {
            "name": model.name,
            "version": model.version,
            "server": SERVER_NAME,
            "description": model.description,
        }
        wire = dict(common, inputs=[s.wire_metadata() for s in model.inputs],
                    outputs=[s.wire_metadata() for s in model.outputs])
        self.metadata_message = Answer.of_message(200, _native.encode_metadata_response(wire))
        metadata_json = json.dumps(
            dict(common, inputs=[s.json_metadata() for s in model.inputs],
                 outputs=[s.json_metadata() for s in model.outputs]),
            indent=2,
        ).encode() + b"\n"
        self.metadata_json = Answer(200, [metadata_json], JSON)

    def metadata(self, body: Any, header_length: int | None) -> Answer:
        """The answer to a GET (or HEAD): the metadata as JSON."""
        return self.metadata_json

    def prepare(self, body: Any, header_length: int | None = None) -> Call | Answer:
        """Decodes and checks a POST body: a ``Call`` for the model, or the
        answer itself (metadata). Raises BadRequest for bad bodies."""
        try:
            request = _native.decode_request(body)
        except ProtocolError as exc:
            raise BadRequest(f"request body is not a GraphPipe Request: {exc}") from exc
        if request[0] == "metadata":
            return self.metadata_message
        _, config, input_names, inputs, output_names = request
        return self.runner.prepare(config, input_names, inputs, output_names)
