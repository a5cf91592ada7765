# SPDX-License-Identifier: Apache-2.0
"""``serve()``'s production options, checked and built once at start-up:
TLS (``--tls-cert``, ``--tls-key``, ``--tls-client-ca``), bearer tokens
(``--auth-token-file``, ``--auth-health``), ``/metrics`` (``--no-metrics``),
the access log (``--access-log``) and OpenTelemetry spans (when the
application configured a tracer provider). docs/security.md says what each
protects.
"""
from __future__ import annotations

import logging
import os
import ssl
from dataclasses import dataclass, field

from tf_graphpipe.server.access_log import AccessLog
from tf_graphpipe.server.auth import Authenticator, TokenStore
from tf_graphpipe.server.metrics import EXTRA_HINT, MetricsRoutes, ServerMetrics, metrics_available
from tf_graphpipe.server.observe import RequestObserver
from tf_graphpipe.server.spans import RequestSpans
from tf_graphpipe.server.tls import TlsConfig

__all__ = ["Production", "ProductionOptions"]

log = logging.getLogger("tf_graphpipe.server")

PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class ProductionOptions:
    """The options as ``serve()`` takes them (see its docstring)."""

    tls_cert: PathLike | None = None
    tls_key: PathLike | None = None
    tls_client_ca: PathLike | None = None
    auth_token_file: PathLike | None = None
    auth_health: bool = False
    metrics: bool | None = None  # None: on when prometheus-client is installed
    access_log: bool = False

    def build(self) -> Production:
        """Reads the files and makes what the server runs with.

        Raises:
            ValueError, FileNotFoundError: a TLS or token file is missing or unusable.
            ImportError: ``metrics=True`` without prometheus-client.
        """
        tls = TlsConfig.from_options(self.tls_cert, self.tls_key, self.tls_client_ca)
        ssl_context = tls.server_context() if tls is not None else None
        auth = None
        if self.auth_token_file is not None:
            auth = Authenticator(TokenStore(self.auth_token_file), health_open=not self.auth_health)
        elif self.auth_health:
            raise ValueError("auth_health needs auth_token_file (the tokens to require)")
        metrics, off_reason = None, "metrics are off (--no-metrics)"
        if self.metrics or (self.metrics is None and metrics_available()):
            metrics = ServerMetrics()  # ImportError naming the extra when asked for and missing
        elif self.metrics is None:
            off_reason = f"metrics are off: {EXTRA_HINT}"
            log.info("no /metrics: %s", EXTRA_HINT)
        observer = RequestObserver(metrics, AccessLog() if self.access_log else None, RequestSpans.configured())
        return Production(ssl_context, auth, observer, MetricsRoutes(metrics, off_reason))


@dataclass(frozen=True)
class Production:
    """What the server runs with: the listening socket's TLS context, the
    token check, the request observer and the ``/metrics`` route."""

    ssl_context: ssl.SSLContext | None = None
    auth: Authenticator | None = None
    observer: RequestObserver = field(default_factory=RequestObserver)
    metrics_routes: MetricsRoutes = field(default_factory=lambda: MetricsRoutes(None))

    @property
    def scheme(self) -> str:
        return "https" if self.ssl_context is not None else "http"

    def describe(self) -> str:
        """For the start-up log line: what is on."""
        parts = [("mutual TLS" if self.ssl_context.verify_mode == ssl.CERT_REQUIRED else "TLS")
                 if self.ssl_context is not None else "plain HTTP"]
        if self.auth is not None:
            parts.append(f"bearer tokens ({self.auth.tokens.count} accepted)")
        if self.observer.metrics is not None:
            parts.append("/metrics")
        if self.observer.access_log is not None:
            parts.append("access log")
        if self.observer.spans is not None:
            parts.append("OpenTelemetry spans")
        return ", ".join(parts)
