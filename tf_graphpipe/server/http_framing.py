# SPDX-License-Identifier: Apache-2.0
"""The heads of the server's HTTP/1.1 answers, and an answer framed as the
buffers to write (head first, then the message's own memory: no copy).

The common case, 200 with a GraphPipe message on a keep-alive connection, is
one prebuilt prefix and a number.
"""
from __future__ import annotations

from typing import Any

from tf_graphpipe.server.endpoint import OCTET_STREAM
from tf_graphpipe.server.v2_wire import V2Answer

__all__ = ["CONTINUE", "answer_head", "framed_answer"]

_REASONS = {
    100: b"Continue", 200: b"OK", 400: b"Bad Request", 404: b"Not Found", 405: b"Method Not Allowed",
    408: b"Request Timeout",
    413: b"Content Too Large", 431: b"Request Header Fields Too Large", 500: b"Internal Server Error",
    503: b"Service Unavailable",
}
_OK_OCTET_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ncontent-length: "
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


def answer_head(status: int, content_type: bytes, length: int, close: bool, extra: bytes = b"") -> bytes:
    """The status line and headers; ``extra`` is more header lines, CRLF-terminated."""
    if status == 200 and content_type is OCTET_STREAM and not close and not extra:
        return b"%s%d\r\n\r\n" % (_OK_OCTET_HEAD, length)
    return b"HTTP/1.1 %d %s\r\ncontent-type: %s\r\ncontent-length: %d\r\n%s%s\r\n" % (
        status, _REASONS.get(status, b"Unknown"), content_type, length,
        b"connection: close\r\n" if close else b"", extra,
    )


def framed_answer(status: int, answer: Any, close: bool) -> list[Any]:
    """A POST answer as the buffers to write: the head, then a GraphPipe
    message or the parts of a v2 answer."""
    if type(answer) is V2Answer:
        return [answer_head(status, answer.content_type, len(answer), close, answer.headers), *answer.parts]
    return [answer_head(status, OCTET_STREAM, len(answer), close), answer]
