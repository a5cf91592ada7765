# SPDX-License-Identifier: Apache-2.0
"""A URL, or several equivalent replicas of one model: the ``url`` every
client entry point (``Client``, ``remote_call``, ``GraphPipeLayer``, URL
variables) takes.

Several replicas travel as one string, their URLs separated by spaces
(``"http://10.0.0.7:9000 http://10.0.0.8:9000"``: a URL holds no unescaped
whitespace), so a scalar string variable, a graph attribute or a
SavedModel holds a list as it holds one URL, and assigning it re-points to
another list. The call plan in cc/core splits it again and fails a call
over to the next replica when one is unavailable (``cc/core/replicas.h``).
"""
from __future__ import annotations

from collections.abc import Sequence

__all__ = ["join", "split"]

URL_SCHEMES = ("http://", "https://")


def join(url: str | Sequence[str]) -> str:
    """The one string for ``url``: a URL, a space-separated list of them, or
    a list or tuple of URLs (joined with spaces).

    Raises:
        ValueError: no URL, or one that is not ``http://`` or ``https://``.
        TypeError: ``url`` is neither a string nor a sequence of strings.
    """
    if isinstance(url, str):
        urls = url.split()
    elif isinstance(url, (list, tuple)) and all(isinstance(u, str) for u in url):
        urls = [part for u in url for part in u.split()]
    else:
        raise TypeError(f"url must be a URL string or a list of URL strings, got {url!r}")
    if not urls:
        raise ValueError(f"url must be an http:// or https:// URL, got {url!r}")
    for one in urls:
        if not one.startswith(URL_SCHEMES):
            raise ValueError(f"url must be an http:// or https:// URL, got {one!r}")
    return " ".join(urls)


def split(url: str) -> list[str]:
    """The replicas of a URL string (one element for a single URL)."""
    return url.split()
