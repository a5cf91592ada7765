# SPDX-License-Identifier: Apache-2.0
"""``remote_call``: a remote model (GraphPipe or Open Inference Protocol v2)
as an op of a TensorFlow graph."""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, Literal, NamedTuple, overload

import tensorflow as tf
from tensorflow.python.framework import auto_control_deps_utils
from tensorflow.python.ops import resource_variable_ops

from tf_graphpipe import _loader, dtypes, protocols, replicas
from tf_graphpipe.credentials import CallCredentials

__all__ = ["RemoteCallResult", "remote_call"]

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
auto_control_deps_utils.register_read_only_resource_op("GraphPipeCallWithStatus")

# No gradient flows through a remote model: the tape treats its outputs as
# constants (stop_gradient semantics), so a local head on a remote feature
# extractor trains normally while the remote part stays fixed.
tf.no_gradient("GraphPipeCall")
tf.no_gradient("GraphPipeCallWithStatus")
tf.no_gradient("GraphPipeEndpoint")


ON_ERROR_CHOICES = ("raise", "status")


class RemoteCallResult(NamedTuple):
    """What ``remote_call(..., on_error="status")`` returns.

    Attributes:
        outputs: one tensor per output. After a failure, zeros (empty strings)
            of the declared shape; a dim declared ``None`` is 0 and an output
            of unknown rank is a 1-D tensor of length 0, so a failed output is
            empty unless its shape is fully declared.
        status_code: scalar ``tf.int32``, the canonical code (0 OK, 3
            INVALID_ARGUMENT, 4 DEADLINE_EXCEEDED, 13 INTERNAL, 14
            UNAVAILABLE, 15 DATA_LOSS...; the numbers of ``tf.errors``).
        status_message: scalar ``tf.string``, empty on success, else the
            message the error would have carried (the server's text included).
    """

    outputs: list[tf.Tensor]
    status_code: tf.Tensor
    status_message: tf.Tensor


def _wire_dtype(value: Any, what: str, protocol: str) -> tf.DType:
    dtype = tf.as_dtype(value)
    try:
        dtypes.by_name("string" if dtype == tf.string else dtype.name, protocol)
    except ValueError:
        kind = "GraphPipe wire type" if protocol == dtypes.GRAPHPIPE else "v2 datatype"
        raise tf.errors.InvalidArgumentError(None, None, f"{what}: dtype {dtype.name} has no {kind}") from None
    return dtype


def _current_url(url: str | tf.Tensor | tf.Variable) -> str | None:
    """The URL's value now, when it can be known while tracing."""
    if isinstance(url, str):
        return url
    try:
        if isinstance(url, tf.Variable):
            with tf.init_scope():
                current: str = url.numpy().decode("utf-8")
                return current
        value = tf.get_static_value(url)
        return None if value is None else bytes(value).decode("utf-8")
    except Exception:  # a variable created inside the function, a placeholder...
        return None


def _op_protocol(url: str | tf.Tensor | tf.Variable, protocol: str | None) -> tuple[str, str]:
    """(the op's protocol attr, the protocol to check dtypes against).

    A Python string URL fixes the protocol at trace time. A tensor or variable
    URL gets "auto": the kernel decides per call from the URL it reads, so a
    re-point may cross protocols; dtypes are checked against the current URL.
    """
    protocols.check_protocol_argument(protocol)
    if protocol is not None:
        if isinstance(url, str):
            protocols.resolve(url, protocol)
        return protocol, protocol
    if isinstance(url, str):
        chosen = protocols.resolve(url, None)
        return chosen, chosen
    current = _current_url(url)
    check = protocols.resolve(current, None) if current is not None else dtypes.V2
    return "auto", check


def _endpoint(url: str | tf.Tensor | tf.Variable) -> tf.Tensor:
    if isinstance(url, tf.Variable):
        if url.dtype != tf.string:
            raise TypeError(f"a URL variable must hold a tf.string, got {url.dtype.name}")
        # The op reads the variable through its handle. Recording the access
        # makes the enclosing function list the variable among those it uses,
        # which is how SavedModel exports (Keras' included) find and save it.
        resource_variable_ops.variable_accessed(url)
        return url.handle
    return _ops.graph_pipe_endpoint(url)


@overload
def remote_call(
    url: str | Sequence[str] | tf.Tensor | tf.Variable,
    inputs: Sequence[Any],
    *,
    output_dtypes: Sequence[Any],
    output_shapes: Sequence[Any] | None = None,
    input_names: Sequence[str] | None = None,
    output_names: Sequence[str] | None = None,
    config: str = "",
    timeout: float | None = 30.0,
    retries: int = 2,
    protocol: str | None = None,
    binary: bool = True,
    ca_file: str | os.PathLike[str] | None = None,
    client_cert: str | os.PathLike[str] | None = None,
    client_key: str | os.PathLike[str] | None = None,
    auth_token_env: str | None = None,
    auth_token_file: str | os.PathLike[str] | None = None,
    headers: Mapping[str, str] | None = None,
    on_error: Literal["raise"] = "raise",
) -> list[tf.Tensor]: ...


@overload
def remote_call(
    url: str | Sequence[str] | tf.Tensor | tf.Variable,
    inputs: Sequence[Any],
    *,
    output_dtypes: Sequence[Any],
    output_shapes: Sequence[Any] | None = None,
    input_names: Sequence[str] | None = None,
    output_names: Sequence[str] | None = None,
    config: str = "",
    timeout: float | None = 30.0,
    retries: int = 2,
    protocol: str | None = None,
    binary: bool = True,
    ca_file: str | os.PathLike[str] | None = None,
    client_cert: str | os.PathLike[str] | None = None,
    client_key: str | os.PathLike[str] | None = None,
    auth_token_env: str | None = None,
    auth_token_file: str | os.PathLike[str] | None = None,
    headers: Mapping[str, str] | None = None,
    on_error: Literal["status"],
) -> RemoteCallResult: ...


def remote_call(
    url: str | Sequence[str] | tf.Tensor | tf.Variable,
    inputs: Sequence[Any],
    *,
    output_dtypes: Sequence[Any],
    output_shapes: Sequence[Any] | None = None,
    input_names: Sequence[str] | None = None,
    output_names: Sequence[str] | None = None,
    config: str = "",
    timeout: float | None = 30.0,
    retries: int = 2,
    protocol: str | None = None,
    binary: bool = True,
    ca_file: str | os.PathLike[str] | None = None,
    client_cert: str | os.PathLike[str] | None = None,
    client_key: str | os.PathLike[str] | None = None,
    auth_token_env: str | None = None,
    auth_token_file: str | os.PathLike[str] | None = None,
    headers: Mapping[str, str] | None = None,
    on_error: str = "raise",
) -> list[tf.Tensor] | RemoteCallResult:
    """Calls the model at ``url`` from inside a TensorFlow graph.

    Speaks GraphPipe, or the Open Inference Protocol ("KServe v2": Triton,
    KServe, MLServer) when the URL's path is ``/v2/models/<name>[/versions/<v>]``
    (``protocol`` overrides). For a URL tensor or variable, the protocol is
    decided on each call from the URL it holds.

    Works eagerly and inside ``tf.function``. The op is asynchronous: calls
    in one graph run concurrently (a fan-out of 8 calls to a server taking
    0.5 s each takes about 0.5 s) and share one process-wide pool of
    keep-alive connections. No gradient flows through it.

    Args:
        url: a Python string, a scalar ``tf.string`` tensor, or a scalar string
            ``tf.Variable`` holding the URL (assigning the variable re-points
            every call that uses it, also in a loaded SavedModel). Several
            equivalent replicas: a list of URLs, or one string of them
            separated by spaces (so a variable holds them too): calls are
            shared among them, and a call that finds one unavailable
            (refused, reset, HTTP 503) goes on to the next within its
            timeout; one found unavailable is skipped for a short while.
        inputs: the input tensors, in the server's input order unless
            ``input_names`` says otherwise.
        output_dtypes: one dtype per output (anything ``tf.as_dtype`` takes).
        output_shapes: one shape per output, ``None`` for an unknown dim; the
            op's static shapes, checked against what the server returns.
        input_names, output_names: names to send; default: the server's
            inputs and all its outputs, in metadata order. For v2, which
            needs input names, the op fetches the model's metadata on its
            first call (asynchronously) and keeps its input order per URL.
        config: an opaque string passed to the server (GraphPipe only).
        timeout: seconds per call, retries included; ``None`` for no limit.
        retries: extra attempts when the server is unavailable (refused,
            reset, HTTP 503), with exponential backoff.
        protocol: ``"graphpipe"`` or ``"v2"``; default: from the URL.
        binary: v2 only: tensors as raw bytes (the binary tensor extension,
            default) or, False, as JSON for servers without it.
        ca_file, client_cert, client_key: TLS files for ``https://`` (the
            server is verified against the system's store or ``ca_file``).
        auth_token_env, auth_token_file: the name of the environment variable
            or file holding the bearer token: the graph (and a SavedModel of
            it) keeps the name; the token is read at every call.
        headers: non-secret headers sent on every call (kept in the graph).
        on_error: ``"raise"`` (default): a failed call fails the step with
            the errors below. ``"status"``: it never does; the call returns
            a ``RemoteCallResult`` whose status says what failed, for a step
            that goes on without the remote model (TensorFlow Serving's
            RemotePredict does the same). Every failure of the call itself
            is reported so: transport (refused, deadline), the server's
            refusal (4xx, 5xx), an answer that differs from the declared
            outputs, a malformed answer. Mistakes in the arguments are
            still raised here, before any graph runs (a dtype with no wire
            type, a bad ``url``...), and a call the step itself cancels
            still ends the step.

    Every call sends a new W3C ``traceparent``.

    Returns:
        A list of tensors, one per output; with ``on_error="status"``, a
        ``RemoteCallResult(outputs, status_code, status_message)``.

    Raises (as ``tf.errors``, eagerly or when the graph runs; with
    ``on_error="status"`` these become the status instead):
        UnavailableError: refused, reset, unresolvable, or HTTP 503.
        DeadlineExceededError: no answer within ``timeout``.
        InvalidArgumentError: the server refused the call (error response,
            4xx; 404 for an unknown v2 model), the outputs differ from the
            declared count, dtype or shape, or a dtype has no type in the
            protocol (bool and bfloat16 travel over v2 only).
        InternalError: the model failed on the server (5xx other than 503).
        DataLossError: the answer is not a valid GraphPipe or v2 message.
        ResourceExhaustedError: the answer is larger than 4 GiB, or its
            memory cannot be had.

    Example::

        @tf.function
        def features(images):
            return tf_graphpipe.remote_call(
                "http://127.0.0.1:9000", [images],
                output_dtypes=[tf.float32], output_shapes=[[None, 512]])[0]

        # A model on Triton: input names come from its metadata.
        y = tf_graphpipe.remote_call(
            "http://127.0.0.1:8000/v2/models/resnet", [images],
            output_dtypes=[tf.float32])[0]

        # Go on without the remote features when the server fails.
        (features,), code, message = tf_graphpipe.remote_call(
            "http://127.0.0.1:9000", [images], output_dtypes=[tf.float32],
            output_shapes=[[8, 512]], on_error="status")
        features = tf.where(code == 0, features, fallback_features)
    """
    if on_error not in ON_ERROR_CHOICES:
        raise ValueError(f"on_error must be 'raise' or 'status', got {on_error!r}")
    if isinstance(url, (str, list, tuple)):
        url = replicas.join(url)  # one string, checked; the kernel splits it per call
    op_protocol, check = _op_protocol(url, protocol)
    if check == dtypes.V2 and config:
        raise ValueError("config is a GraphPipe feature; the v2 protocol has none")
    tensors = [tf.convert_to_tensor(x) for x in inputs]
    for i, tensor in enumerate(tensors):
        _wire_dtype(tensor.dtype, f"input {i}", check)
    out_types = [_wire_dtype(d, f"output {i}", check) for i, d in enumerate(output_dtypes)]
    shapes: list[tf.TensorShape] = []
    if output_shapes is not None:
        if len(output_shapes) != len(out_types):
            raise ValueError(
                f"output_shapes has {len(output_shapes)} entries but output_dtypes has {len(out_types)}"
            )
        shapes = [tf.TensorShape(s) for s in output_shapes]
    if retries < 0:
        raise ValueError(f"retries must be >= 0, got {retries}")
    credentials = CallCredentials.of(auth_token_env=auth_token_env, auth_token_file=auth_token_file,
                                     headers=headers, ca_file=ca_file, client_cert=client_cert,
                                     client_key=client_key)
    call = _ops.graph_pipe_call_with_status if on_error == "status" else _ops.graph_pipe_call
    result: Any = call(
        endpoint=_endpoint(url),
        inputs=tensors,
        Tout=out_types,
        output_shapes=shapes,
        input_names=list(input_names or []),
        output_names=list(output_names or []),
        config=config,
        timeout_seconds=0.0 if timeout is None else float(timeout),
        retries=int(retries),
        protocol=op_protocol,
        v2_binary=bool(binary),
        headers=credentials.header_lines(),
        auth_token_env=credentials.auth_token_env or "",
        auth_token_file=credentials.auth_token_file or "",
        ca_file=credentials.ca_file or "",
        client_cert=credentials.client_cert or "",
        client_key=credentials.client_key or "",
    )
    if on_error == "status":
        return RemoteCallResult(list(result.outputs), result.status_code, result.status_message)
    outputs: list[tf.Tensor] = result
    return outputs
