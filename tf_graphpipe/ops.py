# SPDX-License-Identifier: Apache-2.0
"""``remote_call``: a remote GraphPipe model as an op of a TensorFlow graph."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import tensorflow as tf
from tensorflow.python.framework import auto_control_deps_utils
from tensorflow.python.ops import resource_variable_ops

from tf_graphpipe import _loader, dtypes

__all__ = ["remote_call"]

_ops = _loader.load_ops()

# The call is stateful: it must never be constant-folded or merged by CSE.
# Inside tf.function, automatic control dependencies chain stateful ops that
# touch no resource in program order, which would serialise a fan-out of
# remote calls; ops with resource inputs are ordered per resource instead.
# So the op takes one (its endpoint, or the variable holding its URL), and
# declares it read-only: calls sharing a URL variable then run concurrently,
# while an assignment to the variable (a re-point) stays ordered against them.
# tests/test_remote_op.py::test_fan_out_* fails without this line.
auto_control_deps_utils.register_read_only_resource_op("GraphPipeCall")

# No gradient flows through a remote model: the tape treats its outputs as
# constants (stop_gradient semantics), so a local head on a remote feature
# extractor trains normally while the remote part stays fixed.
tf.no_gradient("GraphPipeCall")
tf.no_gradient("GraphPipeEndpoint")


def _wire_dtype(value: Any, what: str) -> tf.DType:
    dtype = tf.as_dtype(value)
    try:
        dtypes.by_name("string" if dtype == tf.string else dtype.name)
    except ValueError:
        raise tf.errors.InvalidArgumentError(
            None, None, f"{what}: dtype {dtype.name} has no GraphPipe wire type"
        ) from None
    return dtype


def _endpoint(url: str | tf.Tensor | tf.Variable) -> tf.Tensor:
    if isinstance(url, tf.Variable):
        if url.dtype != tf.string:
            raise TypeError(f"a URL variable must hold a tf.string, got {url.dtype.name}")
        # The op reads the variable through its handle. Recording the access
        # makes the enclosing function list the variable among those it uses,
        # which is how SavedModel exports (Keras' included) find and save it.
        resource_variable_ops.variable_accessed(url)
        return url.handle
    if isinstance(url, str) and not url.startswith(("http://", "https://")):
        raise ValueError(f"url must be an http:// or https:// URL, got {url!r}")
    return _ops.graph_pipe_endpoint(url)


def remote_call(
    url: str | tf.Tensor | tf.Variable,
    inputs: Sequence[Any],
    *,
    output_dtypes: Sequence[Any],
    output_shapes: Sequence[Any] | None = None,
    input_names: Sequence[str] | None = None,
    output_names: Sequence[str] | None = None,
    config: str = "",
    timeout: float | None = 30.0,
    retries: int = 2,
) -> list[tf.Tensor]:
    """Calls the GraphPipe model at ``url`` from inside a TensorFlow graph.

    Works eagerly and inside ``tf.function``. The op is asynchronous: calls
    in one graph run concurrently (a fan-out of 8 calls to a server taking
    0.5 s each takes about 0.5 s) and share one process-wide pool of
    keep-alive connections. No gradient flows through it.

    Args:
        url: a Python string, a scalar ``tf.string`` tensor, or a scalar string
            ``tf.Variable`` holding the URL (assigning the variable re-points
            every call that uses it, also in a loaded SavedModel).
        inputs: the input tensors, in the server's input order unless
            ``input_names`` says otherwise.
        output_dtypes: one dtype per output (anything ``tf.as_dtype`` takes).
        output_shapes: one shape per output, ``None`` for an unknown dim; the
            op's static shapes, checked against what the server returns.
        input_names, output_names: names to send; default: the server's
            inputs and all its outputs, in metadata order.
        config: an opaque string passed to the server.
        timeout: seconds per call, retries included; ``None`` for no limit.
        retries: extra attempts when the server is unavailable (refused,
            reset, HTTP 503), with exponential backoff.

    Returns:
        A list of tensors, one per output.

    Raises (as ``tf.errors``, eagerly or when the graph runs):
        UnavailableError: refused, reset, unresolvable, or HTTP 503.
        DeadlineExceededError: no answer within ``timeout``.
        InvalidArgumentError: the server refused the call (error response,
            4xx), the outputs differ from the declared count, dtype or shape,
            or an input dtype has no GraphPipe wire type.
        InternalError: the model failed on the server (5xx other than 503).
        DataLossError: the answer is not a valid GraphPipe message.

    Example::

        @tf.function
        def features(images):
            return tf_graphpipe.remote_call(
                "http://127.0.0.1:9000", [images],
                output_dtypes=[tf.float32], output_shapes=[[None, 512]])[0]
    """
    tensors = [tf.convert_to_tensor(x) for x in inputs]
    for i, tensor in enumerate(tensors):
        _wire_dtype(tensor.dtype, f"input {i}")
    out_types = [_wire_dtype(d, f"output {i}") for i, d in enumerate(output_dtypes)]
    shapes: list[tf.TensorShape] = []
    if output_shapes is not None:
        if len(output_shapes) != len(out_types):
            raise ValueError(
                f"output_shapes has {len(output_shapes)} entries but output_dtypes has {len(out_types)}"
            )
        shapes = [tf.TensorShape(s) for s in output_shapes]
    if retries < 0:
        raise ValueError(f"retries must be >= 0, got {retries}")
    return _ops.graph_pipe_call(
        endpoint=_endpoint(url),
        inputs=tensors,
        Tout=out_types,
        output_shapes=shapes,
        input_names=list(input_names or []),
        output_names=list(output_names or []),
        config=config,
        timeout_seconds=0.0 if timeout is None else float(timeout),
        retries=int(retries),
    )
