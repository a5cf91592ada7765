# SPDX-License-Identifier: Apache-2.0
"""Bearer tokens the server accepts (``--auth-token-file``).

The file holds one token per line (blank lines and lines starting with ``#``
are skipped), so a rotation can list the old and the new token while clients
move over. The file is re-read when it changes (checked at most once a
second, on the request path: a ``stat``, no thread); write it atomically
(a new file renamed over the old) so no reader sees it half written.

A presented token is compared with every accepted one in constant time
(``hmac.compare_digest``), so neither timing nor the number of tokens tells a
caller how close it came. Tokens are never logged, and no message says which
token was presented.
"""
from __future__ import annotations

import hmac
import logging
import os
import threading
import time
from pathlib import Path

from tf_graphpipe.server.errors import Unauthenticated

__all__ = ["OPEN_PATHS", "Authenticator", "TokenStore"]

log = logging.getLogger("tf_graphpipe.server")

RELOAD_CHECK_SECONDS = 1.0
MAX_TOKEN_FILE_BYTES = 1 << 20
# The health routes: answered without a token unless asked (orchestrators'
# probes rarely carry credentials, and the answers say only up or down).
OPEN_PATHS = frozenset({b"/control/is_alive", b"/control/is_ready", b"/v2/health/live", b"/v2/health/ready"})
MISSING = "this server requires a bearer token: send 'Authorization: Bearer <token>'"
NOT_BEARER = "the Authorization header is not a bearer token: send 'Authorization: Bearer <token>'"
INVALID = "the bearer token was not accepted"


class TokenStore:
    """The accepted tokens, from a file, re-read when it changes.

    Args:
        path: the token file.
        check_seconds: how often (at most) the file's status is checked.

    Raises:
        FileNotFoundError, PermissionError: the file cannot be read.
        ValueError: it holds no token, or is implausibly large.
    """

    def __init__(self, path: str | os.PathLike[str], *, check_seconds: float = RELOAD_CHECK_SECONDS) -> None:
        self.path = Path(path)
        self.check_seconds = check_seconds
        self._lock = threading.Lock()  # one reload at a time; readers take the tuple as it is
        self._stamp = _stamp(self.path)
        self._tokens = _read_tokens(self.path)
        if not self._tokens:
            raise ValueError(f"token file {self.path} holds no token (one per line; '#' starts a comment)")
        self._next_check = time.monotonic() + check_seconds

    @property
    def count(self) -> int:
        """How many tokens are accepted now."""
        return len(self._tokens)

    def refusal(self, authorization: bytes | str | None) -> str | None:
        """None when ``authorization`` (the header's value) carries an accepted
        bearer token; else the message of the 401."""
        self._maybe_reload()
        if authorization is None:
            return MISSING
        if isinstance(authorization, str):
            authorization = authorization.encode("latin-1", "replace")
        scheme, _, presented = authorization.strip().partition(b" ")
        if scheme.lower() != b"bearer":
            return NOT_BEARER
        presented = presented.strip()
        accepted = False
        for token in self._tokens:  # every token, whatever matched: constant work
            accepted |= hmac.compare_digest(presented, token)
        return None if accepted else INVALID

    def _maybe_reload(self) -> None:
        now = time.monotonic()
        if now < self._next_check or not self._lock.acquire(blocking=False):
            return
        try:
            self._next_check = now + self.check_seconds
            try:
                stamp = _stamp(self.path)
                if stamp == self._stamp:
                    return
                tokens = _read_tokens(self.path)
            except (OSError, ValueError) as exc:  # keep serving with the tokens we have
                log.warning("token file %s could not be re-read (%s); keeping the %d tokens loaded before",
                            self.path, type(exc).__name__, len(self._tokens))
                return
            self._stamp = stamp
            self._tokens = tokens
            if tokens:
                log.info("token file %s re-read: %d tokens accepted", self.path, len(tokens))
            else:
                log.warning("token file %s holds no token now: every authenticated call is refused", self.path)
        finally:
            self._lock.release()


def _stamp(path: Path) -> tuple[int, int, int, int]:
    status = path.stat()
    return status.st_ino, status.st_size, status.st_mtime_ns, status.st_ctime_ns


def _read_tokens(path: Path) -> tuple[bytes, ...]:
    with path.open("rb") as file:
        data = file.read(MAX_TOKEN_FILE_BYTES + 1)
    if len(data) > MAX_TOKEN_FILE_BYTES:
        raise ValueError(f"token file {path} is larger than {MAX_TOKEN_FILE_BYTES} bytes")
    tokens = []
    for line in data.splitlines():
        line = line.strip()
        if line and not line.startswith(b"#"):
            tokens.append(line)
    return tuple(tokens)


class Authenticator:
    """The dispatcher's token check: which paths need a token, and the refusal.

    Args:
        tokens: the accepted tokens.
        health_open: health routes answer without a token (the default).
    """

    def __init__(self, tokens: TokenStore, *, health_open: bool = True) -> None:
        self.tokens = tokens
        self.open_paths = OPEN_PATHS if health_open else frozenset()

    def refusal(self, path: bytes, authorization: bytes | None) -> Unauthenticated | None:
        """None when the request may go on; else the 401 to answer."""
        if path in self.open_paths:
            return None
        message = self.tokens.refusal(authorization)
        return None if message is None else Unauthenticated(message)
