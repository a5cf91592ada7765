# SPDX-License-Identifier: Apache-2.0
"""tf-graphpipe: remote models as nodes of TensorFlow graphs, over GraphPipe.

Importing the package loads its TensorFlow op library, which registers the
``GraphPipeCall`` op: import it before ``tf.saved_model.load`` of a model that
calls remote servers.
"""

__version__ = "0.1.0"  # first: submodules read it while the package imports

from tf_graphpipe.client import Client
from tf_graphpipe.errors import (
    DeadlineExceeded,
    GraphPipeError,
    ProtocolError,
    RemoteError,
    ServerUnavailable,
    TransportError,
)
from tf_graphpipe.layers import GraphPipeLayer
from tf_graphpipe.ops import remote_call
from tf_graphpipe.server import serve
from tf_graphpipe.url_variables import make_url_variable, repoint


__all__ = [
    "Client",
    "DeadlineExceeded",
    "GraphPipeError",
    "GraphPipeLayer",
    "ProtocolError",
    "RemoteError",
    "ServerUnavailable",
    "TransportError",
    "make_url_variable",
    "remote_call",
    "repoint",
    "serve",
]
