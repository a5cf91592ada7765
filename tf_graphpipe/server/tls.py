# SPDX-License-Identifier: Apache-2.0
"""The server's TLS settings (``--tls-cert``, ``--tls-key``, ``--tls-client-ca``)
as one ``ssl.SSLContext``, made once at start-up.

TLS 1.2 at least, Python's default cipher suites (OpenSSL's secure set), ALPN
``http/1.1``. With a client CA, a client must present a certificate that CA
signed, or the handshake fails: an unauthenticated client never gets to
send a request (mutual TLS).
"""
from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from pathlib import Path

__all__ = ["TlsConfig"]


@dataclass(frozen=True)
class TlsConfig:
    """Where the server's certificate, key and (for mutual TLS) client CA are.

    Args:
        cert: PEM file with the server certificate (and its chain, leaf first).
        key: PEM file with the certificate's private key, unencrypted (default:
            in ``cert``).
        client_ca: PEM file of the CA(s) that sign client certificates; set,
            clients without such a certificate are refused in the handshake.
    """

    cert: str | os.PathLike[str]
    key: str | os.PathLike[str] | None = None
    client_ca: str | os.PathLike[str] | None = None

    @classmethod
    def from_options(
        cls,
        cert: str | os.PathLike[str] | None,
        key: str | os.PathLike[str] | None,
        client_ca: str | os.PathLike[str] | None,
    ) -> TlsConfig | None:
        """The config of ``serve()``'s and the CLI's three options; None for
        plain HTTP.

        Raises:
            ValueError: a key or client CA without a certificate.
        """
        if cert is None:
            if key is not None or client_ca is not None:
                raise ValueError("tls_key and tls_client_ca need tls_cert (the server's certificate)")
            return None
        return cls(cert, key, client_ca)

    def server_context(self) -> ssl.SSLContext:
        """The ``SSLContext`` the listening socket uses.

        Raises:
            FileNotFoundError: a file is missing.
            ValueError: a file is not what it should be (the message names it).
        """
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.set_alpn_protocols(["http/1.1"])
        cert, key = _existing(self.cert, "certificate"), _existing(self.key, "key") if self.key else None
        try:
            # An encrypted key would make OpenSSL prompt on the terminal: refuse it instead.
            context.load_cert_chain(cert, key, password=_no_password)
        except ssl.SSLError as exc:
            raise ValueError(f"TLS certificate {cert} or key {key or cert} is not usable: {exc.reason or exc}. "
                             "Expected PEM files: the certificate (chain, leaf first) and its unencrypted "
                             "private key") from exc
        if self.client_ca is not None:
            ca = _existing(self.client_ca, "client CA")
            try:
                context.load_verify_locations(cafile=ca)
            except ssl.SSLError as exc:
                raise ValueError(f"TLS client CA {ca} is not usable: {exc.reason or exc} "
                                 "(expected PEM certificates)") from exc
            context.verify_mode = ssl.CERT_REQUIRED
        return context


def _no_password() -> bytes:
    raise ValueError("the TLS key is encrypted; give the server an unencrypted key (file mode 0600)")


def _existing(path: str | os.PathLike[str], what: str) -> str:
    resolved = Path(path)
    if not resolved.is_file():
        raise FileNotFoundError(f"TLS {what} file not found: {resolved}")
    return str(resolved)
