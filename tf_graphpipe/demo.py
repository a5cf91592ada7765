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
    with ``Client`` on a sample batch and then from a TensorFlow graph (a local
    preprocessing step, the remote model through ``remote_call`` inside
    ``tf.function``, a local argmax), prints the answers and stops the server.

    Args:
        out: where to print (default: stdout).

    Returns:
        0 when the answer matches the model computed locally, else 1.
    """
    import tensorflow as tf

    from tf_graphpipe import Client, remote_call, serve
    from tf_graphpipe.metadata_text import format_metadata
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

        @tf.function
        def classify(raw: tf.Tensor) -> tf.Tensor:
            # local -> remote -> local, in one graph
            scaled = raw * 0.5
            probabilities = remote_call(server.url, [scaled], output_dtypes=[tf.float32],
                                        output_shapes=[[None, 3]])[0]
            return tf.argmax(probabilities, axis=1)

        classes = classify(tf.constant(x * 2.0)).numpy()
        print(f"\nthe same call from a tf.function graph, followed by argmax: classes = {classes}", file=out)
        ok = ok and bool(np.array_equal(classes, np.argmax(expected(x), axis=1)))
        print("\nmatches the model computed locally" if ok else "\nMISMATCH with the local computation", file=out)
    out.flush()
    return 0 if ok else 1
