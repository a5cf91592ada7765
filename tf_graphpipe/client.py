# SPDX-License-Identifier: Apache-2.0
"""``Client``: call a GraphPipe or Open Inference Protocol (v2) model server
from Python."""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from tf_graphpipe import _native, deadlines, dtypes, protocols, tracing
from tf_graphpipe.credentials import CallCredentials
from tf_graphpipe.errors import DeadlineExceeded

__all__ = ["Client"]

DEFAULT_MAX_RESPONSE_BYTES = 4 << 30


class Client:
    """A model client over tf-graphpipe's C++ codecs and libcurl transport.

    Speaks GraphPipe, or the Open Inference Protocol ("KServe v2", as Triton,
    KServe and MLServer serve it) when the URL's path is
    ``/v2/models/<name>[/versions/<v>]`` (``protocol`` overrides). v2 calls use
    the binary tensor extension unless ``binary=False``; v2 needs input names,
    so unless they are given, the model's metadata is fetched once per Client
    and its input order used (one process-wide cache per model, shared with
    ``remote_call``; ``metadata()`` refreshes it).

    Calls share one process-wide pool of keep-alive connections, run with the
    GIL released while bytes move, and may be made from many threads on one
    ``Client``. Outputs are NumPy arrays viewing the received body (one copy
    only where the peer misaligned the data); inputs are copied once, into the
    request.

    Args:
        url: the model's URL, e.g. ``"http://127.0.0.1:9000"`` (GraphPipe) or
            ``"http://127.0.0.1:8000/v2/models/resnet"`` (v2).
        timeout: seconds per call, connection included; ``None`` for no limit.
            Inside a deadline (``tf_graphpipe.deadlines.use``, or the model
            call a server is running, which carries its caller's), a call
            waits at most what is left of it. The server is told the time
            left at each attempt, and drops a call whose time has run out.
        retries: extra attempts when the server is unavailable (connection
            refused or reset, HTTP 503), with exponential backoff, within
            ``timeout``.
        max_response_bytes: answers larger than this fail with
            ``ProtocolError`` before the memory is taken.
        protocol: ``"graphpipe"`` or ``"v2"``; default: from the URL.
        binary: v2 only. True (default): tensors travel as raw bytes (binary
            tensor extension). False: inputs and outputs travel as JSON, for
            servers without the extension; inputs JSON cannot carry exactly
            (float16, bfloat16, non-UTF-8 bytes) still travel as raw bytes, and
            float16 / bfloat16 outputs need ``binary=True``.
        ca_file: PEM CA bundle an ``https://`` server's certificate must chain
            to (default: the system's store). Verification is never off.
        client_cert, client_key: PEM client certificate and key, for servers
            that require mutual TLS (the key may sit in ``client_cert``).
        auth_token_env, auth_token_file: where the bearer token is: an
            environment variable's name, or a file (its first non-empty line),
            read at every call; the Client keeps the name, never the token.
        headers: non-secret headers sent on every call (credentials are
            refused here: use the two options above).

    Every call also sends a W3C ``traceparent``: the current trace's
    (``tf_graphpipe.tracing.use``, the model call a server is running, or an
    active OpenTelemetry span), else a new one.

    Raises (from every call):
        RemoteError: the server refused the call; carries its text and status.
        ServerUnavailable, DeadlineExceeded: no usable answer came back.
        ProtocolError: the answer is not a valid GraphPipe message.
        TypeError, ValueError: the arguments cannot be sent as given.

    Example::

        with tf_graphpipe.Client("http://127.0.0.1:9000") as client:
            print(client.metadata()["inputs"])
            y = client.infer(np.ones((1, 4), np.float32))

        # A Triton or KServe model: same calls.
        with tf_graphpipe.Client("http://127.0.0.1:8000/v2/models/resnet") as client:
            y = client.infer({"images": np.ones((1, 224, 224, 3), np.float32)})
    """

    def __init__(
        self,
        url: str,
        timeout: float | None = 30.0,
        *,
        retries: int = 2,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        protocol: str | None = None,
        binary: bool = True,
        ca_file: str | os.PathLike[str] | None = None,
        client_cert: str | os.PathLike[str] | None = None,
        client_key: str | os.PathLike[str] | None = None,
        auth_token_env: str | None = None,
        auth_token_file: str | os.PathLike[str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ValueError(f"url must be an http:// or https:// URL, got {url!r}")
        if timeout is not None and not timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds or None, got {timeout!r}")
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        self.url = url
        self.timeout = timeout
        self.retries = retries
        self.max_response_bytes = max_response_bytes
        self.protocol = protocols.resolve(url, protocol)
        self.binary = bool(binary)
        self.credentials = CallCredentials.of(auth_token_env=auth_token_env, auth_token_file=auth_token_file,
                                              headers=headers, ca_file=ca_file, client_cert=client_cert,
                                              client_key=client_key)
        self._native_credentials = self.credentials.native()
        self._closed = False

    def infer(
        self,
        inputs: np.ndarray | Sequence[Any] | Mapping[str, Any],
        input_names: Sequence[str] | None = None,
        output_names: Sequence[str] | None = None,
        config: str | bytes | None = None,
    ) -> np.ndarray | list[np.ndarray]:
        """Runs the model once.

        Args:
            inputs: one array; a list or tuple of arrays (several inputs); or
                a dict name -> array (names sent in the dict's order). String
                tensors are object arrays of ``bytes`` (``str`` and ``S``/``U``
                arrays are sent as UTF-8 / their bytes).
            input_names: names for positional inputs; default: the server's
                input order (for v2, from its metadata, fetched once).
            output_names: outputs to return; default: all, in the server's order.
            config: an opaque string passed to the server (GraphPipe only).

        Returns:
            One array when the model has one output, else a list of arrays.
            String outputs are object arrays of ``bytes`` (NUL bytes intact).
        """
        self._check_open()
        _check_names("input_names", input_names)
        _check_names("output_names", output_names)
        arrays, names = _split_inputs(inputs, input_names)
        if self.protocol == protocols.V2 and config:
            raise ValueError("config is a GraphPipe feature; the v2 protocol has none")
        wire_arrays: list[np.ndarray] = []
        wire_types: list[int] = []
        for i, value in enumerate(arrays):
            what = f"input {names[i]!r}" if names else f"input {i}"
            array, wire_type = dtypes.wire_array(value, what, self.protocol)
            wire_arrays.append(array)
            wire_types.append(wire_type)
        # The call plan in cc/core, as the op makes the call: for v2 without
        # names, the input order comes from the model's metadata (cached).
        outputs = _native.call(
            self.url,
            self.protocol,
            wire_arrays,
            wire_types,
            names,
            list(output_names or []),
            _config_bytes(config),
            self.binary,
            self._timeout_seconds(),
            self.retries,
            self.max_response_bytes,
            self._call_credentials(),
        )
        return outputs[0] if len(outputs) == 1 else outputs

    def metadata(self) -> dict[str, Any]:
        """The model's metadata.

        Returns:
            ``{"name", "version", "server", "description", "inputs", "outputs"}``;
            ``inputs`` and ``outputs`` are lists of dicts with ``name``,
            ``description``, ``shape`` (a list, -1 for any size) and ``dtype``
            (a ``numpy.dtype``; ``object`` for String / BYTES, ``bool``,
            ``ml_dtypes.bfloat16`` for BF16; None if undeclared). For v2,
            ``version`` is the model's versions joined by ",", ``server``
            its ``platform``, and ``description`` is empty.
        """
        self._check_open()
        raw = _native.metadata(
            self.url, self.protocol, self._timeout_seconds(), self.retries, self.max_response_bytes,
            self._call_credentials(),
        )
        for key in ("inputs", "outputs"):
            raw[key] = [_io_entry(entry) for entry in raw[key]]
        return raw

    def _call_credentials(self) -> dict[str, object]:
        """This call's credentials: the Client's, and the current trace."""
        return {**self._native_credentials, "traceparent": tracing.outgoing()}

    def close(self) -> None:
        """Marks the client closed. Pooled connections stay with the process
        pool, where other clients of the same host keep using them."""
        self._closed = True

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client({self.url!r}, timeout={self.timeout!r}, protocol={self.protocol!r})"

    def _timeout_seconds(self) -> float:
        """This call's timeout (0: none): the Client's, capped at the time
        left of the deadline it runs within."""
        left = deadlines.remaining()
        if left is None:
            return 0.0 if self.timeout is None else float(self.timeout)
        if left <= 0:
            raise DeadlineExceeded(f"the caller's deadline passed {-left:.3f} s before the call to {self.url}")
        return left if self.timeout is None else min(float(self.timeout), left)

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError("this Client is closed")


def _split_inputs(
    inputs: Any, input_names: Sequence[str] | None
) -> tuple[list[Any], list[str]]:
    if isinstance(inputs, Mapping):
        if input_names is not None:
            raise ValueError("give input names either as dict keys or as input_names, not both")
        return list(inputs.values()), [str(k) for k in inputs]
    arrays = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
    names = list(input_names or [])
    if names and len(names) != len(arrays):
        raise ValueError(f"got {len(arrays)} inputs but {len(names)} input_names")
    return arrays, names


def _check_names(argument: str, names: object) -> None:
    if isinstance(names, (str, bytes)):
        raise TypeError(f"{argument} must be a list of names, got the single string {names!r}")


def _config_bytes(config: str | bytes | None) -> bytes:
    if config is None:
        return b""
    if isinstance(config, str):
        return config.encode("utf-8")
    if isinstance(config, bytes):
        return config
    raise TypeError(f"config must be str or bytes, got {type(config).__name__}")


def _io_entry(entry: dict[str, Any]) -> dict[str, Any]:
    type_id = entry.pop("type")
    entry["dtype"] = dtypes.numpy_dtype(type_id) if type_id else None
    return entry
