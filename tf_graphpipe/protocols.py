# SPDX-License-Identifier: Apache-2.0
"""Which protocol a URL speaks: the one rule every client entry point
(``Client``, ``remote_call``, ``GraphPipeLayer``, ``tf-graphpipe info/infer``)
follows.

A URL whose path is ``/v2/models/<name>`` (optionally ``/versions/<v>``;
a proxy's prefix before ``/v2`` is allowed) speaks the Open Inference
Protocol (KServe v2), any other URL speaks GraphPipe; ``protocol="graphpipe"``
or ``"v2"`` overrides. The rule itself lives in cc/core's call plan
(``ResolveTarget``), so the op kernel decides the same way at run time.
"""
from __future__ import annotations

from typing import Any

from tf_graphpipe import _native, replicas
from tf_graphpipe.dtypes import GRAPHPIPE, V2

__all__ = ["GRAPHPIPE", "V2", "resolve", "v2_endpoints"]

PROTOCOLS = (GRAPHPIPE, V2)


def v2_endpoints(url: str) -> dict[str, str] | None:
    """``{"model", "metadata_url", "infer_url"}`` for a v2 model URL, else None."""
    return _native.v2_model_url(url)


def resolve(url: str, protocol: str | None) -> str:
    """The protocol ``url`` is spoken in: ``protocol`` if given, else from the
    URL. Replicas (``replicas``: URLs separated by spaces) must all speak it.

    Raises:
        ValueError: an unknown protocol, ``"v2"`` for a URL that names no
            v2 model, or replicas that speak different protocols.
    """
    check_protocol_argument(protocol)
    urls = replicas.split(url)
    resolved: str = _native.resolve_protocol(urls[0] if urls else url, protocol)
    for other in urls[1:]:
        if _native.resolve_protocol(other, protocol) != resolved:
            raise ValueError(f"the replicas of {url!r} speak different protocols: {urls[0]!r} speaks "
                             f"{resolved}, {other!r} does not (replicas must be equivalent servers)")
    return resolved


def check_protocol_argument(protocol: Any) -> None:
    if protocol is not None and protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be 'graphpipe', 'v2' or None, got {protocol!r}")
