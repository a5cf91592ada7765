# SPDX-License-Identifier: Apache-2.0
"""The request log (``--access-log``): one line per answered request, on the
``tf_graphpipe.access`` logger at INFO::

    127.0.0.1:50812 "POST /v2/models/resnet/infer" 200 in=602172 out=100416 3.41ms traceparent=00-4bf9...-01

The peer, the method and path (never the query string, where a careless
client may put a credential), status, body sizes, the time from the request's
arrival to its answer, and the trace it ran in: the caller's ``traceparent``,
or the one the server started for it. No other header is written.
"""
from __future__ import annotations

import logging
import sys

__all__ = ["LOGGER", "AccessLog", "log_to"]

LOGGER = "tf_graphpipe.access"
_log = logging.getLogger(LOGGER)


class AccessLog:
    """Writes the access log lines of one server."""

    def write(self, peer: str, method: bytes, path: bytes, status: int, bytes_in: int, bytes_out: int,
              seconds: float, traceparent: str) -> None:
        _log.info('%s "%s %s" %d in=%d out=%d %.2fms traceparent=%s', peer, method.decode("latin-1"),
                  path.decode("latin-1"), status, bytes_in, bytes_out, seconds * 1e3, traceparent)


def log_to(destination: str) -> logging.Handler:
    """Sends the access log to ``destination`` (``-``: stderr; else a file,
    appended to), on its own: the lines carry no level or logger name."""
    handler: logging.Handler
    handler = logging.StreamHandler(sys.stderr) if destination == "-" else logging.FileHandler(destination)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    _log.addHandler(handler)
    _log.setLevel(logging.INFO)
    _log.propagate = False
    return handler
