# SPDX-License-Identifier: Apache-2.0
"""URLs kept in string variables, so saved models can be re-pointed.

A remote call whose URL is such a variable reads it at run time; assigning
the variable changes where every call using it goes, also in a SavedModel
loaded in another process. ``repoint`` finds them by name inside any Keras
model, ``tf.Module`` or loaded SavedModel.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import tensorflow as tf

from tf_graphpipe import replicas

__all__ = ["make_url_variable", "repoint"]

# Variable names start with this, which is how repoint recognises them.
URL_VARIABLE_NAME = "graphpipe_url"


def make_url_variable(url: str | Sequence[str]) -> tf.Variable:
    """A scalar string variable holding ``url``, for ``remote_call(url=...)``;
    a list of replicas is held as one string, their URLs separated by spaces."""
    return tf.Variable(replicas.join(url), trainable=False, dtype=tf.string, name=URL_VARIABLE_NAME)


def _url_variables(obj: Any) -> list[tf.Variable]:
    found: list[tf.Variable] = []
    seen: set[int] = set()
    for trackable in [obj, *tf.train.TrackableView(obj).descendants()]:
        if isinstance(trackable, tf.Variable) and id(trackable) not in seen:
            name = trackable.name.split("/")[-1]
            if trackable.dtype == tf.string and name.startswith(URL_VARIABLE_NAME):
                seen.add(id(trackable))
                found.append(trackable)
    return found


def repoint(obj: Any, url: str | Sequence[str], old: str | Sequence[str] | None = None) -> int:
    """Points every remote call inside ``obj`` at ``url``.

    Args:
        obj: a Keras model or layer, a ``tf.Module``, or what
            ``tf.saved_model.load`` returned.
        url: the new server URL, or a list of replicas.
        old: change only the calls that point at this URL (or list) now.

    Returns:
        How many URL variables changed.

    Example::

        loaded = tf.saved_model.load("exported")
        tf_graphpipe.repoint(loaded, "http://10.0.0.7:9000")
    """
    url = replicas.join(url)
    old = None if old is None else replicas.join(old)
    changed = 0
    for variable in _url_variables(obj):
        current = variable.numpy().decode("utf-8")
        if (old is None or current == old) and current != url:
            variable.assign(url)
            changed += 1
    return changed
