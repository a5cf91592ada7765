# SPDX-License-Identifier: Apache-2.0
"""Inputs handed to the C++ codec that are not NumPy arrays yet (lists,
scalars) are converted in C++; the converted array must live as long as the
bytes viewing it are used: while encoding, and for a message that references
its large inputs (``copy=False``), until its bytes are read."""
from __future__ import annotations

import gc

import numpy as np

from tf_graphpipe import _native, dtypes

INT64 = dtypes.by_name("int64").id


def _decoded_inputs(message: object) -> list[np.ndarray]:
    kind, _config, _names, inputs, _outputs = _native.decode_request(bytes(message))  # type: ignore[call-overload]
    assert kind == "infer"
    return list(inputs)


def test_converted_inputs_each_keep_their_own_values() -> None:
    # Two same-sized conversions: a freed first one is where NumPy puts the second.
    message = _native.encode_infer_request([[1, 2, 3], [4, 5, 6]], [INT64, INT64], [], [], b"")
    first, second = _decoded_inputs(message)
    assert first.tolist() == [1, 2, 3]
    assert second.tolist() == [4, 5, 6]


def test_converted_scalar_input_keeps_its_value() -> None:
    message = _native.encode_infer_request([7, [8]], [INT64, INT64], [], [], b"")
    scalar, vector = _decoded_inputs(message)
    assert scalar.shape == () and int(scalar) == 7
    assert vector.tolist() == [8]


def test_referencing_message_keeps_converted_input_alive_until_its_bytes_are_read() -> None:
    values = list(range(100_000))  # 800 KB as int64: referenced, not copied
    message = _native.encode_infer_request([values], [INT64], [], [], b"", copy=False)
    assert message.parts > 1
    # Reuse the memory a dead conversion would have left behind.
    gc.collect()
    scribbles = [np.full(100_000, -1, np.int64) for _ in range(8)]
    (decoded,) = _decoded_inputs(message)
    assert decoded.tolist() == values
    del scribbles
