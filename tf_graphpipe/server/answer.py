# SPDX-License-Identifier: Apache-2.0
"""``Answer``: what the dispatcher hands a front end for every request, of
either protocol: status, body parts, content type, extra header lines, and
whether the connection closes after it.

The body is a list of buffers written in order with no joining copy (a native
GraphPipe message, or a v2 answer's JSON header and blob views). Front ends
add only the framing (Content-Length, Date, Connection) and never look inside.
"""
from __future__ import annotations

from typing import Any

__all__ = ["JSON", "OCTET_STREAM", "TEXT", "Answer"]

OCTET_STREAM = b"application/octet-stream"
JSON = b"application/json"
TEXT = b"text/plain"


class Answer:
    """One HTTP answer.

    Attributes:
        status: the HTTP status.
        parts: the body, as buffers (anything with the buffer protocol).
        content_type: the Content-Type value.
        headers: more header lines, each CRLF-terminated (e.g. ``allow``).
        length: the body's size in bytes.
        close: the connection closes once this is sent.
    """

    __slots__ = ("close", "content_type", "headers", "length", "parts", "status")

    def __init__(self, status: int, parts: list[Any], content_type: bytes, headers: bytes = b"",
                 length: int | None = None, close: bool = False) -> None:
        self.status = status
        self.parts = parts
        self.content_type = content_type
        self.headers = headers
        if length is None:
            length = sum(memoryview(p).nbytes for p in parts) if len(parts) != 1 else len(parts[0])
        self.length = length
        self.close = close

    @classmethod
    def of_message(cls, status: int, message: Any) -> Answer:
        """A native GraphPipe message (``_native.Message``) as the whole body."""
        return cls(status, [message], OCTET_STREAM, b"", len(message))

    @classmethod
    def of_v2(cls, status: int, answer: Any, close: bool = False) -> Answer:
        """A ``v2_wire.V2Answer`` (its parts, content type and header lines)."""
        return cls(status, answer.parts, answer.content_type, answer.headers, len(answer), close)

    def header_pairs(self) -> list[tuple[bytes, bytes]]:
        """``headers`` as (lower-case name, value) pairs, for ASGI."""
        pairs = []
        for line in self.headers.split(b"\r\n"):
            if line:
                name, _, value = line.partition(b":")
                pairs.append((name.strip().lower(), value.strip()))
        return pairs

    def body(self) -> bytes:
        """The body joined (tests and small answers; front ends write ``parts``)."""
        return b"".join(bytes(memoryview(p).cast("B")) for p in self.parts)

    def __repr__(self) -> str:
        return f"<Answer {self.status} {self.content_type.decode()} {self.length} bytes>"
