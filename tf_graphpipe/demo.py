# SPDX-License-Identifier: Apache-2.0
"""``tf-graphpipe demo``: serve the embedded demo model and call it, in one process.

The README's first example: nothing to download, nothing to start by hand.
"""
from __future__ import annotations

import sys
from typing import TextIO

import numpy as np

__all__ = ["run_demo"]


def run_demo(out: TextIO | None = None) -> int:
    """Serves the ``demo`` model on a free port, prints its metadata, calls it
    with ``Client`` on a sample batch, prints the answer and stops the server.

    Args:
        out: where to print (default: stdout).

    Returns:
        0 when the answer matches the model computed locally, else 1.
    """
    from tf_graphpipe import Client, serve
    from tf_graphpipe.cli import format_metadata
    from tf_graphpipe.server.demo_model import expected, sample_input

    out = out or sys.stdout
    with serve("demo") as server:
        print(f"serving the demo model at {server.url}\n", file=out)
        client = Client(server.url)
        print(format_metadata(client.metadata()), file=out)
        x = sample_input()
        print(f"\ncalling it with x = \n{x}\n", file=out)
        y = client.infer(x)
        print(f"probabilities =\n{np.array2string(y, precision=4)}", file=out)
        ok = bool(np.allclose(y, expected(x), atol=1e-5))
        print("\nmatches the model computed locally" if ok else "\nMISMATCH with the local computation", file=out)
    out.flush()
    return 0 if ok else 1
