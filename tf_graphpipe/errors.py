# SPDX-License-Identifier: Apache-2.0
"""The exception tree every part of tf-graphpipe raises, and the one table that
maps the C++ core's status codes onto it.

::

    GraphPipeError                 anything that went wrong talking to a model
    ├── RemoteError                the server answered and said no
    │                              (.status: HTTP status, .code: protocol error
    │                              code or None, .message: the server's text)
    ├── ProtocolError              the bytes received are not a valid message
    └── TransportError             no usable answer came back
        ├── ServerUnavailable      refused, reset, closed, unresolvable host
        └── DeadlineExceeded       no answer within the timeout

Mistakes in the caller's own arguments are ``ValueError`` / ``TypeError``,
raised before anything is sent. TensorFlow ops raise the matching
``tf.errors`` classes instead (see ``tf_graphpipe.ops``).

How a status from the C++ core (``cc/core/status.h``, canonical codes as in
``tf.errors``) becomes an exception, in ``_from_native``:

=====================  =====================  =========================================
code                   raised                 when
=====================  =====================  =========================================
any, with an HTTP      ``RemoteError``        the server answered and refused the call
status                                        (4xx, 5xx, or an error table in the
                                              answer)
``INVALID_ARGUMENT``   ``ValueError``         the call cannot be made as given: a
                                              malformed URL, a v2 call with another
                                              input count than the model's, an
                                              inconsistent tensor
``DEADLINE_EXCEEDED``  ``DeadlineExceeded``   no answer within ``timeout``
``UNAVAILABLE``        ``ServerUnavailable``  refused, reset, closed mid-answer, host
                                              unknown (after ``retries``)
``DATA_LOSS``          ``ProtocolError``      the answer is not a valid message
``RESOURCE_EXHAUSTED`` ``ProtocolError``      the answer is larger than
                                              ``max_response_bytes``, or its memory
                                              cannot be had; refused before it is
                                              kept
``CANCELLED``          ``TransportError``     the HTTP client shut down mid-call
anything else          ``GraphPipeError``     (not produced by the client today)
=====================  =====================  =========================================
"""
from __future__ import annotations

__all__ = [
    "DeadlineExceeded",
    "GraphPipeError",
    "ProtocolError",
    "RemoteError",
    "ServerUnavailable",
    "TransportError",
]


class GraphPipeError(Exception):
    """Base class of every error tf-graphpipe raises about a remote call."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class RemoteError(GraphPipeError):
    """The server answered and refused the call.

    Attributes:
        status: the HTTP status of the answer (200 when an otherwise normal
            answer carried protocol errors).
        code: the ``Error.code`` the server sent, or None if it sent text.
        message: the full message, with the server's text verbatim.
    """

    def __init__(self, message: str, status: int, code: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class ProtocolError(GraphPipeError):
    """The bytes received are not a valid GraphPipe (or v2) message, or the
    answer is larger than ``max_response_bytes``."""


class TransportError(GraphPipeError):
    """The call did not produce a usable answer."""


class ServerUnavailable(TransportError):
    """The server could not be reached, or dropped the connection."""


class DeadlineExceeded(TransportError):
    """No answer arrived within the call's timeout."""


# Canonical codes (cc/core/status.h, same numbers as tf.errors / gRPC).
_CANCELLED = 1
_INVALID_ARGUMENT = 3
_DEADLINE_EXCEEDED = 4
_RESOURCE_EXHAUSTED = 8
_UNAVAILABLE = 14
_DATA_LOSS = 15

# The table above; a status with an HTTP status is a RemoteError whatever its code.
_LOCAL_ERRORS: dict[int, type[Exception]] = {
    _INVALID_ARGUMENT: ValueError,
    _DEADLINE_EXCEEDED: DeadlineExceeded,
    _UNAVAILABLE: ServerUnavailable,
    _CANCELLED: TransportError,
    _DATA_LOSS: ProtocolError,
    _RESOURCE_EXHAUSTED: ProtocolError,
}


def _from_native(code: int, message: str, http_status: int, error_code: int | None) -> Exception:
    """Builds the exception for a status from cc/core (called by _native)."""
    if http_status:
        return RemoteError(message, status=http_status, code=error_code)
    cls = _LOCAL_ERRORS.get(code, GraphPipeError)
    return cls(message)
