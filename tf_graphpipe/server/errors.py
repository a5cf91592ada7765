# SPDX-License-Identifier: Apache-2.0
"""The server's one error table: every way a request can fail, as an
exception, and what each becomes on the wire.

``ERROR_TABLE`` maps an exception class to its HTTP status, the wire error
code (the canonical codes of ``cc/core/status.h``, as ``tf.errors`` and gRPC
number them; a GraphPipe error answer carries it in ``Error.code``) and the
level it is logged at. ``failure`` looks an exception up, logs it once, and
gives the ``Failure`` a protocol renders: GraphPipe as an ``InferResponse``
with errors, the Open Inference Protocol as ``{"error": ...}``. Both sides
answer and log the same failure the same way.

Anything that is not a ``ServerError`` is a bug of ours or a model's surprise:
500, logged with its traceback, described without file paths (unless debug).
"""
from __future__ import annotations

import logging
import re
import traceback
from dataclasses import dataclass

__all__ = [
    "ERROR_TABLE",
    "BadRequest",
    "BodyTooLarge",
    "DeadlinePassed",
    "Failure",
    "FailedPrecondition",
    "HeadTooLarge",
    "MethodNotAllowed",
    "ModelFailed",
    "NotFound",
    "Overloaded",
    "RequestTimeout",
    "Rule",
    "ServerError",
    "Unauthenticated",
    "describe",
    "failure",
]

log = logging.getLogger("tf_graphpipe.server")

# Error.code values: the canonical codes of cc/core/status.h.
INVALID_ARGUMENT = 3
DEADLINE_EXCEEDED = 4
NOT_FOUND = 5
RESOURCE_EXHAUSTED = 8
FAILED_PRECONDITION = 9
UNIMPLEMENTED = 12
INTERNAL = 13
UNAVAILABLE = 14
UNAUTHENTICATED = 16


class ServerError(Exception):
    """A request that ends in an error answer; its row in ``ERROR_TABLE``
    says how. ``headers``: header lines (CRLF-terminated) the answer adds."""

    headers = b""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def status(self) -> int:
        """The HTTP status the table gives this error."""
        return rule_of(self).status

    @property
    def code(self) -> int:
        """The wire error code the table gives this error."""
        return rule_of(self).code


class BadRequest(ServerError):
    """The caller's mistake: a body that is not a valid message, a request
    that does not fit the model (count, name, dtype, shape, output), bad HTTP."""


class NotFound(ServerError):
    """No such route, model or version."""


class MethodNotAllowed(ServerError):
    """The route exists but not for this method; ``allow`` lists those it takes."""

    def __init__(self, message: str, allow: str) -> None:
        super().__init__(message)
        self.headers = b"allow: %s\r\n" % allow.encode()


class RequestTimeout(ServerError):
    """A request head not complete, or a body making no progress, in time."""


class DeadlinePassed(ServerError):
    """The caller's deadline (``GraphPipe-Timeout``, v2 ``timeout``) passed
    before the model ran: nobody waits for the answer, so the model is not run.
    Also a Python model's own remote call that ran out of time (the inherited
    deadline, or its own timeout): the answer a gateway gives, 504."""


class BodyTooLarge(ServerError):
    """A body over the server's ``max_request_bytes``."""


class HeadTooLarge(ServerError):
    """A request line and headers over the server's ``max_header_bytes``."""


class Overloaded(ServerError):
    """The server is at a limit shared by every client (open connections,
    request bytes in flight): retry later, elsewhere or slower."""

    headers = b"retry-after: 1\r\n"


class FailedPrecondition(ServerError):
    """The request is well formed but the server's state refuses it (e.g. a
    model that could not be loaded)."""


class Unauthenticated(ServerError):
    """No accepted bearer token (``--auth-token-file``): 401, and the body is
    not read. The message says what was wrong, never which token came."""

    headers = b'www-authenticate: Bearer realm="tf-graphpipe"\r\n'


class ModelFailed(ServerError):
    """The model raised, or returned something that cannot be sent."""


@dataclass(frozen=True)
class Rule:
    """What a kind of failure becomes: HTTP status, wire code, log level, and
    whether the connection closes after the answer (the server stopped reading
    the request, so what follows on the connection cannot be trusted)."""

    status: int
    code: int
    level: int
    close: bool = False


ERROR_TABLE: dict[type[BaseException], Rule] = {
    BadRequest: Rule(400, INVALID_ARGUMENT, logging.WARNING),
    NotFound: Rule(404, NOT_FOUND, logging.INFO),
    MethodNotAllowed: Rule(405, UNIMPLEMENTED, logging.INFO),
    RequestTimeout: Rule(408, DEADLINE_EXCEEDED, logging.WARNING, close=True),
    # 504 as google.rpc maps DEADLINE_EXCEEDED; not 408, which says the server
    # timed out reading the request (and closes the connection).
    DeadlinePassed: Rule(504, DEADLINE_EXCEEDED, logging.INFO),
    BodyTooLarge: Rule(413, RESOURCE_EXHAUSTED, logging.WARNING, close=True),
    HeadTooLarge: Rule(431, RESOURCE_EXHAUSTED, logging.WARNING, close=True),
    Overloaded: Rule(503, UNAVAILABLE, logging.WARNING, close=True),
    FailedPrecondition: Rule(400, FAILED_PRECONDITION, logging.WARNING),
    ModelFailed: Rule(500, INTERNAL, logging.ERROR),
    Unauthenticated: Rule(401, UNAUTHENTICATED, logging.INFO, close=True),
}
UNEXPECTED = Rule(500, INTERNAL, logging.ERROR)


@dataclass(frozen=True)
class Failure:
    """An error answer to render: ``message`` is what the client reads."""

    status: int
    code: int
    message: str
    headers: bytes = b""
    close: bool = False


def rule_of(exc: BaseException) -> Rule:
    """The table's row for ``exc`` (its nearest listed class), or UNEXPECTED."""
    for kind in type(exc).__mro__:
        rule = ERROR_TABLE.get(kind)
        if rule is not None:
            return rule
    return UNEXPECTED


def failure(exc: BaseException, where: str, *, debug: bool = False, close: bool = False) -> Failure:
    """``exc`` looked up in the table and logged once, ``where`` naming the
    request (``"POST /v2/models/m/infer"``); ``close`` forces Connection: close."""
    rule = rule_of(exc)
    if isinstance(exc, ServerError):
        message, headers = exc.message, exc.headers
        if log.isEnabledFor(rule.level):
            log.log(rule.level, "%s -> %d: %s", where, rule.status, message)
    else:
        message, headers = describe(exc, "server error", debug), b""
        log.error("%s -> %d: server error", where, rule.status, exc_info=exc)
    return Failure(rule.status, rule.code, message, headers, rule.close or close)


def describe(exc: BaseException, what: str, debug: bool = False) -> str:
    """A message for the client: the exception's own text without the
    TensorFlow node trace (file paths); the full traceback if ``debug``."""
    if debug:
        return f"{what}: " + "".join(traceback.format_exception(exc)).rstrip()
    return f"{what}: {type(exc).__name__}: {_public_text(exc)}"


_TF_NOISE = re.compile(r"^(Graph execution error:|Detected at node .* defined at|File \"|\[\[)")


def _public_text(exc: BaseException) -> str:
    text = getattr(exc, "message", None)
    text = text if isinstance(text, str) else str(exc)
    lines = [line.strip() for line in text.splitlines()]
    kept = [line for line in lines if line and not _TF_NOISE.match(line)]
    return re.sub(r"\s*\[Op:[^\]]*\]$", "", " ".join(kept)) or type(exc).__name__
