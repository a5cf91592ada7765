# SPDX-License-Identifier: Apache-2.0
"""The heads of the native server's HTTP/1.1 answers.

An ``Answer`` is framed as its head (status line, Content-Type,
Content-Length, Date, the answer's own header lines, Connection: close when
it is the last) followed by the answer's own buffers, with no copy. The
common case, 200 with a GraphPipe message on a keep-alive connection, is one
prebuilt prefix and a number. The Date header is formatted once a second
(``refresh``), not per answer.
"""
from __future__ import annotations

import time
from email.utils import formatdate

from tf_graphpipe.server.answer import OCTET_STREAM, Answer

__all__ = ["CONTINUE", "Heads"]

_REASONS = {
    100: b"Continue", 200: b"OK", 400: b"Bad Request", 404: b"Not Found", 405: b"Method Not Allowed",
    408: b"Request Timeout", 413: b"Content Too Large", 431: b"Request Header Fields Too Large",
    500: b"Internal Server Error", 503: b"Service Unavailable",
}
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class Heads:
    """Builds answer heads; ``refresh`` (about once a second) updates Date."""

    def __init__(self) -> None:
        self.date = b""
        self._ok_octet = b""
        self.refresh()

    def refresh(self, now: float | None = None) -> None:
        self.date = b"date: %s\r\n" % formatdate(time.time() if now is None else now, usegmt=True).encode()
        self._ok_octet = b"HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\n%scontent-length: " % self.date

    def head(self, answer: Answer, close: bool) -> bytes:
        """The status line and headers of ``answer``."""
        status = answer.status
        if status == 200 and answer.content_type == OCTET_STREAM and not close and not answer.headers:
            return b"%s%d\r\n\r\n" % (self._ok_octet, answer.length)
        return b"HTTP/1.1 %d %s\r\ncontent-type: %s\r\ncontent-length: %d\r\n%s%s%s\r\n" % (
            status, _REASONS.get(status, b"Unknown"), answer.content_type, answer.length, self.date,
            b"connection: close\r\n" if close else b"", answer.headers,
        )
