# SPDX-License-Identifier: Apache-2.0
"""``GraphPipeLayer``: a remote model (GraphPipe or Open Inference Protocol v2)
as one layer of a Keras 3 model."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import keras
import tensorflow as tf

from tf_graphpipe import errors, protocols, replicas
from tf_graphpipe.client import Client
from tf_graphpipe.credentials import CallCredentials
from tf_graphpipe.ops import ON_ERROR_CHOICES, remote_call
from tf_graphpipe.url_variables import make_url_variable

__all__ = ["GraphPipeLayer"]


@keras.saving.register_keras_serializable(package="tf_graphpipe")
class GraphPipeLayer(keras.layers.Layer):  # type: ignore[misc]  # Keras ships no type information
    """Calls the model at ``url`` as a layer: a GraphPipe server, or a
    Triton / KServe model when the URL's path is ``/v2/models/<name>``
    (Open Inference Protocol; ``protocol`` overrides).

    The layer has no trainable weights and no gradient flows through it: a
    local head on top of it trains with ``fit`` while the remote part stays
    frozen. Its URL lives in a string variable the layer owns, so a saved and
    reloaded model can be re-pointed with ``tf_graphpipe.repoint``.

    Args:
        url: the model server's URL, or a list of equivalent replicas
            (``remote_call``: calls are shared and fail over among them).
        input_names: names to send with the inputs; default: the server's
            input order (or the keys when the layer is called on a dict).
        output_names: outputs to request; default: all, in the server's order.
        output_dtypes: one dtype per output. With ``output_shapes``, given
            explicitly the layer never touches the network until it is called;
            left out, the layer asks the server's metadata once, when built.
        output_shapes: one shape per output, batch dimension included, ``None``
            for unknown dims.
        timeout: seconds per call, retries included.
        retries: extra attempts when the server is unavailable.
        config: an opaque string sent to the server with every call
            (GraphPipe only).
        protocol: ``"graphpipe"`` or ``"v2"``; default: from the URL, on
            every call (so a re-point may cross protocols).
        binary: v2 only: tensors as raw bytes (default) or as JSON.
        ca_file, client_cert, client_key: TLS files for ``https://`` URLs.
        auth_token_env, auth_token_file: the name of the environment variable
            or file holding the bearer token, read at every call: a saved
            ``.keras`` file or exported SavedModel keeps the name, never the
            token.
        headers: non-secret headers sent on every call (saved with the layer).
        on_error: ``"raise"`` (default): a failed call fails the step.
            ``"status"``: it never does (see ``remote_call``); the layer then
            returns ``(outputs, status_code, status_message)``: ``outputs``
            as in raise mode (zeros of the declared shape after a failure),
            a scalar ``int32`` canonical code (0 = OK) and a scalar string
            message, for the whole batch.
        **kwargs: ``keras.layers.Layer`` arguments (``name``...).

    Called on one tensor, a list of tensors, or a dict name -> tensor; returns
    one tensor for one output, else a list (wrapped with the status when
    ``on_error="status"``). The status is one scalar per call, not per row:
    call such a model directly or export it (``model(x)``, ``model.export``),
    since ``predict`` concatenates outputs along a batch dimension.

    Raises:
        ValueError: at build time, when metadata is needed and the server at
            ``url`` cannot be reached or does not declare its output dtypes.

    Example::

        inputs = keras.Input((224, 224, 3))
        x = keras.layers.Rescaling(1 / 255)(inputs)
        features = tf_graphpipe.GraphPipeLayer("http://127.0.0.1:9000")(x)
        # or a model on Triton:
        # GraphPipeLayer("http://127.0.0.1:8000/v2/models/resnet")(x)
        outputs = keras.layers.Dense(10)(keras.layers.Flatten()(features))
        model = keras.Model(inputs, outputs)
    """

    def __init__(
        self,
        url: str | Sequence[str],
        input_names: Sequence[str] | None = None,
        output_names: Sequence[str] | None = None,
        output_dtypes: Sequence[Any] | None = None,
        output_shapes: Sequence[Sequence[int | None] | None] | None = None,
        timeout: float | None = 30.0,
        retries: int = 2,
        config: str = "",
        protocol: str | None = None,
        binary: bool = True,
        ca_file: str | None = None,
        client_cert: str | None = None,
        client_key: str | None = None,
        auth_token_env: str | None = None,
        auth_token_file: str | None = None,
        headers: dict[str, str] | None = None,
        on_error: str = "raise",
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)
        url = replicas.join(url)  # a list of replicas travels as one string
        self.input_names = list(input_names) if input_names is not None else None
        self.output_names = list(output_names) if output_names is not None else None
        self.output_dtypes = [tf.as_dtype(d).name for d in output_dtypes] if output_dtypes is not None else None
        self.output_shapes = (
            [None if s is None else [None if d is None or d < 0 else int(d) for d in s] for s in output_shapes]
            if output_shapes is not None
            else None
        )
        if self.output_dtypes is not None and self.output_shapes is not None:
            if len(self.output_dtypes) != len(self.output_shapes):
                raise ValueError(
                    f"output_shapes has {len(self.output_shapes)} entries but output_dtypes has "
                    f"{len(self.output_dtypes)}"
                )
        if on_error not in ON_ERROR_CHOICES:
            raise ValueError(f"on_error must be 'raise' or 'status', got {on_error!r}")
        self.on_error = on_error
        self.timeout = timeout
        self.retries = retries
        self.config = config
        protocols.resolve(url, protocol)  # refuses a bad protocol now, not at call time
        self.protocol = protocol
        self.binary = bool(binary)
        self.credentials = CallCredentials.of(auth_token_env=auth_token_env, auth_token_file=auth_token_file,
                                              headers=headers, ca_file=ca_file, client_cert=client_cert,
                                              client_key=client_key)
        # Output names read from v2 metadata, sent so answers come in the
        # order the output specs were inferred in. Not part of the config.
        self._metadata_output_names: list[str] | None = None
        # Keras must never XLA-compile a step around a network call.
        self.supports_jit = False
        self.url_variable = make_url_variable(url)

    @property
    def url(self) -> str:
        """The URL the layer calls now (after any re-point)."""
        url: str = self.url_variable.numpy().decode("utf-8")
        return url

    def repoint(self, url: str | Sequence[str]) -> None:
        """Calls ``url`` (or a list of replicas) from now on, also inside
        already traced functions."""
        self.url_variable.assign(replicas.join(url))

    def build(self, input_shape: Any = None) -> None:
        self._discover_outputs()
        self.built = True

    def call(self, inputs: Any) -> Any:
        output_dtypes, output_shapes = self._discover_outputs()
        tensors, names = self._flatten_inputs(inputs)
        options: dict[str, Any] = dict(
            output_dtypes=output_dtypes,
            output_shapes=output_shapes,
            input_names=names,
            output_names=self.output_names or self._metadata_output_names,
            config=self.config,
            timeout=self.timeout,
            retries=self.retries,
            protocol=self.protocol,
            binary=self.binary,
            **self._credential_options(),
        )
        if self.on_error == "status":
            result = remote_call(self.url_variable, tensors, on_error="status", **options)
            return _one_or_list(result.outputs), result.status_code, result.status_message
        return _one_or_list(remote_call(self.url_variable, tensors, **options))

    def compute_output_spec(self, inputs: Any) -> Any:
        output_dtypes, _ = self._discover_outputs()
        specs = [
            keras.KerasTensor(self._output_shape(i), dtype=dtype)
            for i, dtype in enumerate(output_dtypes)
        ]
        if self.on_error == "status":
            return (_one_or_list(specs), keras.KerasTensor((), dtype="int32"),
                    keras.KerasTensor((), dtype="string"))
        return _one_or_list(specs)

    def compute_output_shape(self, input_shape: Any) -> Any:
        output_dtypes, _ = self._discover_outputs()
        shapes = [self._output_shape(i) for i in range(len(output_dtypes))]
        if self.on_error == "status":
            return _one_or_list(shapes), (), ()
        return _one_or_list(shapes)

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = super().get_config()
        config.update(
            url=self.url,
            input_names=self.input_names,
            output_names=self.output_names,
            output_dtypes=self.output_dtypes,
            output_shapes=self.output_shapes,
            timeout=self.timeout,
            retries=self.retries,
            config=self.config,
            protocol=self.protocol,
            binary=self.binary,
            on_error=self.on_error,
            **self._credential_options(),
        )
        config.pop("trainable", None)
        return config

    def _credential_options(self) -> dict[str, Any]:
        """The TLS, token-source and header options, as the layer takes them
        (names and paths only: what the config and the graph may hold)."""
        c = self.credentials
        return {"ca_file": c.ca_file, "client_cert": c.client_cert, "client_key": c.client_key,
                "auth_token_env": c.auth_token_env, "auth_token_file": c.auth_token_file,
                "headers": dict(c.headers) or None}

    def _output_shape(self, index: int) -> tuple[int | None, ...] | None:
        shape = self.output_shapes[index] if self.output_shapes is not None else None
        return None if shape is None else tuple(shape)

    def _flatten_inputs(self, inputs: Any) -> tuple[list[Any], list[str] | None]:
        if isinstance(inputs, Mapping):
            names = self.input_names or list(inputs.keys())
            missing = [n for n in names if n not in inputs]
            if missing:
                raise ValueError(f"inputs dict lacks {missing}; it has {list(inputs.keys())}")
            return [inputs[n] for n in names], names
        tensors = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        return tensors, self.input_names

    def _discover_outputs(self) -> tuple[list[str], list[list[int | None] | None]]:
        """The output dtypes and shapes; what was not given comes from the
        server's metadata, read once."""
        if self.output_dtypes is not None and self.output_shapes is not None:
            return self.output_dtypes, self.output_shapes
        url = self.url
        try:
            client = Client(url, timeout=self.timeout, retries=self.retries, protocol=self.protocol,
                            **self._credential_options())
            metadata = client.metadata()
        except errors.GraphPipeError as exc:
            raise ValueError(
                f"GraphPipeLayer could not read the metadata of {url} to learn its output "
                f"dtypes and shapes: {exc}. Start the server, or pass output_dtypes and "
                "output_shapes to build the layer offline."
            ) from exc
        outputs = metadata["outputs"]
        if self.output_names is not None:
            by_name = {o["name"]: o for o in outputs}
            unknown = [n for n in self.output_names if n not in by_name]
            if unknown:
                raise ValueError(f"{url} has no outputs named {unknown}; it has {list(by_name)}")
            outputs = [by_name[n] for n in self.output_names]
        elif client.protocol == protocols.V2 and outputs:
            self._metadata_output_names = [o["name"] for o in outputs]
        if self.output_dtypes is None:
            undeclared = [o["name"] for o in outputs if o["dtype"] is None]
            if undeclared:
                raise ValueError(
                    f"{url} does not declare the dtype of outputs {undeclared}: pass output_dtypes"
                )
            self.output_dtypes = ["string" if o["dtype"].kind == "O" else o["dtype"].name for o in outputs]
        if self.output_shapes is None:
            self.output_shapes = [[None if d < 0 else int(d) for d in o["shape"]] for o in outputs]
        return self.output_dtypes, self.output_shapes


def _one_or_list(items: list[Any]) -> Any:
    """What the layer returns for its outputs: one alone, several as a list."""
    return items[0] if len(items) == 1 else list(items)
