# SPDX-License-Identifier: Apache-2.0
"""``tf-graphpipe serve`` with the production options: HTTPS, tokens, the
access log and ``--no-metrics``, as an operator starts it."""
from __future__ import annotations

import http.client
import ssl
from pathlib import Path

import numpy as np

from tf_graphpipe import _native

from support.certificates import make_certificates
from support.servers import CliServer

TOKEN = "cli-token-93e1a7f4c0"
TRACE = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_serve_https_with_tokens_writes_an_access_log_without_the_token(tmp_path: Path) -> None:
    certs = make_certificates(tmp_path / "certs")
    tokens = tmp_path / "tokens"
    tokens.write_text(TOKEN + "\n")
    server = CliServer("demo", "--port", "0", "--tls-cert", str(certs.server_cert), "--tls-key",
                       str(certs.server_key), "--auth-token-file", str(tokens), "--access-log", "--no-metrics")
    try:
        url = server.wait_url()
        assert url.startswith("https://127.0.0.1:")
        port = int(url.rsplit(":", 1)[1])
        body = bytes(_native.encode_infer_request([np.ones((1, 4), np.float32)], [10], [], [], b""))
        context = ssl.create_default_context(cafile=str(certs.ca))
        answers = []
        for token in (TOKEN, None):
            connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=30)
            headers = {"traceparent": TRACE} | ({"Authorization": f"Bearer {token}"} if token else {})
            connection.request("POST", "/", body=body, headers=headers)
            response = connection.getresponse()
            answers.append((response.status, response.read()))
            connection.close()
        assert [status for status, _ in answers] == [200, 401]
        assert _native.decode_infer_response(answers[0][1])[0].shape == (1, 3)
        connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=30)
        connection.request("GET", "/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert connection.getresponse().status == 404  # --no-metrics
        connection.close()
    finally:
        assert server.stop() == 0
    log = server.stderr_text()
    assert f'"POST /" 200 in={len(body)}' in log and f"traceparent={TRACE}" in log
    assert '"POST /" 401' in log
    assert TOKEN not in log
