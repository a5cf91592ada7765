# SPDX-License-Identifier: Apache-2.0
"""What a call presents besides its tensors: a bearer token read when the
call is made, non-secret headers, and the TLS files of an ``https://`` URL.

A token is named, never given: ``auth_token_env="MODEL_TOKEN"`` (an
environment variable) or ``auth_token_file="/run/secrets/model-token"`` (its
first non-empty line). The name is what a ``Client``, a graph or a saved
Keras layer keeps; the token is read on every call, by the C++ call plan
(``cc/core/call_credentials.h``) the op and the Client share, so a SavedModel
or a ``.keras`` file never holds it, a rotated token is picked up by the next
call, and no error message quotes it.

``headers=`` carries the rest (a tenant id, a routing hint): they are kept as
given, in exports too, so credentials are refused there with a pointer to
the two options above.
"""
from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CallCredentials", "check_headers"]

_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
# Credentials belong in auth_token_env / auth_token_file; the rest are set by
# the transport itself (framing, the target, the trace).
_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "x-api-key"})
_TRANSPORT_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection", "expect",
                                "content-type", "te", "upgrade", "traceparent", "tracestate",
                                "inference-header-content-length"})


def check_headers(headers: Mapping[str, str] | None) -> tuple[tuple[str, str], ...]:
    """``headers`` as checked ``(name, value)`` pairs.

    Raises:
        TypeError: not a mapping of str to str.
        ValueError: a malformed name or value (CR, LF, NUL), a credential
            (use auth_token_env / auth_token_file), or a header the transport
            sets itself.
    """
    if headers is None:
        return ()
    if not isinstance(headers, Mapping):
        raise TypeError(f"headers must be a mapping of header name to value, got {type(headers).__name__}")
    checked = []
    for name, value in headers.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise TypeError(f"headers must map str to str, got {type(name).__name__}: {type(value).__name__}")
        if not _HEADER_NAME.match(name):
            raise ValueError(f"header name {name!r} is not a valid HTTP token")
        if any(c in value for c in "\r\n\0"):
            raise ValueError(f"header {name!r}: the value holds CR, LF or NUL")
        lowered = name.lower()
        if lowered in _SECRET_HEADERS:
            raise ValueError(f"header {name!r} carries a credential, which headers= would keep (in exports "
                             "too): name it with auth_token_env= or auth_token_file= instead, read at call time")
        if lowered in _TRANSPORT_HEADERS:
            raise ValueError(f"header {name!r} is set by tf-graphpipe itself")
        checked.append((name, value))
    return tuple(checked)


@dataclass(frozen=True)
class CallCredentials:
    """A client's token source, headers and TLS files, checked once.

    Args:
        auth_token_env: name of the environment variable holding the token.
        auth_token_file: path of a file holding the token.
        headers: non-secret headers sent on every call.
        ca_file: PEM CA bundle that verifies an ``https://`` server (default:
            the system's store).
        client_cert, client_key: PEM client certificate and key, for a server
            that requires mutual TLS (the key may sit in ``client_cert``).
    """

    auth_token_env: str | None = None
    auth_token_file: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    ca_file: str | None = None
    client_cert: str | None = None
    client_key: str | None = None

    @classmethod
    def of(
        cls,
        *,
        auth_token_env: str | None = None,
        auth_token_file: str | os.PathLike[str] | None = None,
        headers: Mapping[str, str] | None = None,
        ca_file: str | os.PathLike[str] | None = None,
        client_cert: str | os.PathLike[str] | None = None,
        client_key: str | os.PathLike[str] | None = None,
    ) -> CallCredentials:
        """Checks the options as ``Client``, ``remote_call`` and
        ``GraphPipeLayer`` take them.

        Raises:
            ValueError, TypeError: an option that cannot work (the message says why).
        """
        if auth_token_env is not None and (not isinstance(auth_token_env, str) or not auth_token_env):
            raise ValueError(f"auth_token_env must name an environment variable, got {auth_token_env!r}")
        if auth_token_env and auth_token_file:
            raise ValueError("give auth_token_env or auth_token_file, not both")
        if client_key is not None and client_cert is None:
            raise ValueError("client_key needs client_cert (the certificate it belongs to)")
        return cls(
            auth_token_env=auth_token_env or None,
            auth_token_file=_path(auth_token_file),
            headers=check_headers(headers),
            ca_file=_existing(ca_file, "ca_file"),
            client_cert=_existing(client_cert, "client_cert"),
            client_key=_existing(client_key, "client_key"),
        )

    def header_lines(self) -> list[str]:
        """The non-secret headers as ``"Name: value"`` lines (the token is
        added by the C++ call plan when each call is made)."""
        return [f"{name}: {value}" for name, value in self.headers]

    def native(self) -> dict[str, object]:
        """The ``credentials`` argument of ``_native.call`` / ``metadata``
        (names and paths only; add ``traceparent`` per call)."""
        return {"headers": self.header_lines(), "auth_token_env": self.auth_token_env,
                "auth_token_file": self.auth_token_file, "ca_file": self.ca_file,
                "client_cert": self.client_cert, "client_key": self.client_key}


def _path(path: str | os.PathLike[str] | None) -> str | None:
    return None if path is None else os.fspath(path)


def _existing(path: str | os.PathLike[str] | None, option: str) -> str | None:
    if path is None:
        return None
    if not Path(path).is_file():
        raise FileNotFoundError(f"{option}: no such file: {os.fspath(path)!r}")
    return os.fspath(path)
