# SPDX-License-Identifier: Apache-2.0
"""A model's ``config.json`` in a model repository: parsed, checked, and the
version policy it sets.

Every key is optional; a file that is absent means the defaults. Unknown keys
and bad values are refused with the file and the key named, so a typo never
silently becomes a default::

    {
      "version_policy": {"latest": 2},        # or "all", or {"specific": [1, 3]}
      "max_batch_size": 32,                   # 0: no batching (default: the server's)
      "batch_timeout_ms": 2,
      "signature": "serving_default",         # the SavedModel signature served
      "callable": "mypackage.models:predict", # a Python function instead of model files
      "inputs": ["x:float32:-1,4"],           # a callable's declared inputs ...
      "outputs": ["y:float32:-1"]             # ... and outputs (NAME:DTYPE:SHAPE)
    }
"""
from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tf_graphpipe.server.specs import IOSpec, parse_spec

__all__ = ["CONFIG_FILE", "ConfigError", "ModelConfig", "VersionPolicy", "parse_config", "read_config"]

CONFIG_FILE = "config.json"


class ConfigError(ValueError):
    """A ``config.json`` that cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class VersionPolicy:
    """Which versions present on disk are served.

    Attributes:
        kind: ``"latest"``, ``"all"`` or ``"specific"``.
        latest: how many of the newest versions, for ``"latest"``.
        specific: the versions named, for ``"specific"``.
    """

    kind: str = "latest"
    latest: int = 1
    specific: tuple[int, ...] = ()

    def select(self, available: Iterable[int]) -> list[int]:
        """The versions to serve out of ``available``, newest first."""
        newest_first = sorted(set(available), reverse=True)
        if self.kind == "all":
            return newest_first
        if self.kind == "specific":
            return [v for v in newest_first if v in self.specific]
        return newest_first[: self.latest]

    def describe(self) -> str:
        if self.kind == "all":
            return "all versions"
        if self.kind == "specific":
            return "versions " + ", ".join(map(str, self.specific))
        return "the newest version" if self.latest == 1 else f"the {self.latest} newest versions"


@dataclass(frozen=True)
class ModelConfig:
    """What ``config.json`` says about one model (None: the server's default)."""

    version_policy: VersionPolicy = VersionPolicy()
    max_batch_size: int | None = None
    batch_timeout_ms: float | None = None
    signature: str = "serving_default"
    callable: str | None = None
    inputs: tuple[IOSpec, ...] | None = None
    outputs: tuple[IOSpec, ...] | None = None


def read_config(model_dir: Path) -> ModelConfig:
    """The config of the model in ``model_dir`` (defaults when it has no
    ``config.json``). Raises ConfigError."""
    path = model_dir / CONFIG_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ModelConfig()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read: {exc}") from exc
    return parse_config(text, str(path))


def parse_config(text: str, where: str) -> ModelConfig:
    """Parses the text of a ``config.json``; ``where`` names it in errors.

    Raises:
        ConfigError: not JSON, not an object, an unknown key or a bad value.
    """
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{where}: not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise ConfigError(f"{where}: expected a JSON object, got {_kind(document)}")
    unknown = sorted(set(document) - set(_KEYS))
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (known keys: {', '.join(_KEYS)})")
    values: dict[str, Any] = {key: _KEYS[key](document[key], f"{where}: key {key!r}") for key in document}
    if values.get("callable") is None:
        for key in ("inputs", "outputs"):
            if key in values:
                raise ConfigError(f"{where}: key {key!r} declares a callable's {key}; it needs 'callable' "
                                  "(SavedModel and Keras models declare their own)")
    return ModelConfig(**values)


def _version_policy(value: Any, where: str) -> VersionPolicy:
    if value == "all":
        return VersionPolicy("all")
    if not isinstance(value, dict) or len(value) != 1:
        raise ConfigError(f'{where}: expected {{"latest": N}}, "all" or {{"specific": [versions]}}, got {value!r}')
    ((kind, argument),) = value.items()
    if kind == "latest":
        return VersionPolicy("latest", latest=_positive_int(argument, f"{where}: 'latest'"))
    if kind == "specific":
        if not isinstance(argument, list) or not argument:
            raise ConfigError(f"{where}: 'specific' expects a non-empty list of versions, got {argument!r}")
        versions = tuple(_positive_int(v, f"{where}: 'specific'") for v in argument)
        return VersionPolicy("specific", specific=tuple(sorted(set(versions))))
    raise ConfigError(f'{where}: unknown policy {kind!r} (expected "latest", "all" or "specific")')


def _positive_int(value: Any, where: str) -> int:
    if type(value) is not int or value < 1:
        raise ConfigError(f"{where}: expected a positive integer, got {value!r}")
    return value


def _batch_size(value: Any, where: str) -> int:
    if type(value) is not int or value < 0:
        raise ConfigError(f"{where}: expected an integer >= 0 (0: no batching), got {value!r}")
    return value


def _milliseconds(value: Any, where: str) -> float:
    if type(value) not in (int, float) or not math.isfinite(value) or value < 0:
        raise ConfigError(f"{where}: expected a number of milliseconds >= 0, got {value!r}")
    return float(value)


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: expected a non-empty string, got {value!r}")
    return value


def _callable(value: Any, where: str) -> str:
    text = _text(value, where)
    module, sep, attribute = text.partition(":")
    if not (sep and module and attribute):
        raise ConfigError(f"{where}: expected 'package.module:function', got {value!r}")
    return text


def _specs(value: Any, where: str) -> tuple[IOSpec, ...]:
    if not isinstance(value, list):
        raise ConfigError(f"{where}: expected a list of 'NAME:DTYPE:SHAPE' strings, got {value!r}")
    specs = []
    for entry in value:
        if not isinstance(entry, str):
            raise ConfigError(f"{where}: expected 'NAME:DTYPE:SHAPE' strings (e.g. 'x:float32:-1,4'), got {entry!r}")
        try:
            specs.append(parse_spec(entry))
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ConfigError(f"{where}: names must differ, got {names}")
    return tuple(specs)


_KEYS = {
    "version_policy": _version_policy,
    "max_batch_size": _batch_size,
    "batch_timeout_ms": _milliseconds,
    "signature": _text,
    "callable": _callable,
    "inputs": _specs,
    "outputs": _specs,
}


def _kind(value: Any) -> str:
    return {list: "a list", str: "a string", int: "a number", float: "a number", bool: "a boolean"}.get(
        type(value), "null" if value is None else type(value).__name__)
