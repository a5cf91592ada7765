# SPDX-License-Identifier: Apache-2.0
"""tf-graphpipe: remote models as nodes of TensorFlow graphs, over GraphPipe.

Importing the package loads its TensorFlow op library, which registers the
``GraphPipeCall`` op: import it before ``tf.saved_model.load`` of a model that
calls remote servers. The server (``serve``) is imported on first use, so a
process that only calls remote models never loads it.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tf_graphpipe import _quiet_start

_quiet_start.import_tensorflow()  # first: the tf-graphpipe command hides TensorFlow's start-up lines

from tf_graphpipe._version import __version__ as __version__
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
from tf_graphpipe.ops import RemoteCallResult, remote_call
from tf_graphpipe.url_variables import make_url_variable, repoint

if TYPE_CHECKING:
    from tf_graphpipe.server import serve


def __getattr__(name: str) -> Any:
    # PEP 562: `tf_graphpipe.serve` imports the server the first time it is asked for.
    if name == "serve":
        from tf_graphpipe.server import serve

        globals()["serve"] = serve  # later lookups find it without this function
        return serve
    raise AttributeError(f"module 'tf_graphpipe' has no attribute {name!r}")


__all__ = [
    "Client",
    "DeadlineExceeded",
    "GraphPipeError",
    "GraphPipeLayer",
    "ProtocolError",
    "RemoteCallResult",
    "RemoteError",
    "ServerUnavailable",
    "TransportError",
    "make_url_variable",
    "remote_call",
    "repoint",
    "serve",
]
