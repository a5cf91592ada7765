# SPDX-License-Identifier: Apache-2.0
"""tf-graphpipe: remote models as nodes of TensorFlow graphs, over GraphPipe."""
from tf_graphpipe.client import Client
from tf_graphpipe.errors import (
    DeadlineExceeded,
    GraphPipeError,
    ProtocolError,
    RemoteError,
    ServerUnavailable,
    TransportError,
)

__version__ = "0.1.0"

__all__ = [
    "Client",
    "DeadlineExceeded",
    "GraphPipeError",
    "ProtocolError",
    "RemoteError",
    "ServerUnavailable",
    "TransportError",
]
