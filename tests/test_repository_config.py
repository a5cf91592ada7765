# SPDX-License-Identifier: Apache-2.0
"""config.json of a repository model: the version policy, the keys, and
refusals that name the file and the key."""
from __future__ import annotations

import pytest

from tf_graphpipe.server.repository_config import (
    ConfigError,
    ModelConfig,
    VersionPolicy,
    parse_config,
    read_config,
)
from tf_graphpipe.server.specs import IOSpec


def test_no_config_file_means_the_newest_version_and_server_defaults(tmp_path) -> None:
    config = read_config(tmp_path)
    assert config == ModelConfig()
    assert config.version_policy.select([1, 3, 2]) == [3]
    assert config.max_batch_size is None and config.batch_timeout_ms is None


@pytest.mark.parametrize(
    ("policy", "on_disk", "served"),
    [
        ({"latest": 1}, [1, 2, 3], [3]),
        ({"latest": 2}, [1, 2, 3], [3, 2]),
        ({"latest": 5}, [4, 9], [9, 4]),
        ("all", [1, 2, 10], [10, 2, 1]),
        ({"specific": [1, 3]}, [1, 2, 3], [3, 1]),
        ({"specific": [7]}, [1, 2], []),
    ],
)
def test_version_policy_selects_versions_on_disk(policy, on_disk, served) -> None:
    import json

    config = parse_config(json.dumps({"version_policy": policy}), "config.json")
    assert config.version_policy.select(on_disk) == served


def test_every_key_is_read() -> None:
    text = """{
      "version_policy": {"specific": [3, 1, 3]},
      "max_batch_size": 16,
      "batch_timeout_ms": 2.5,
      "signature": "classify",
      "callable": "mypackage.models:predict",
      "inputs": ["x:float32:-1,4"],
      "outputs": ["y:float32:-1"]
    }"""
    config = parse_config(text, "m/config.json")
    assert config.version_policy == VersionPolicy("specific", specific=(1, 3))
    assert (config.max_batch_size, config.batch_timeout_ms, config.signature) == (16, 2.5, "classify")
    assert config.callable == "mypackage.models:predict"
    assert config.inputs == (IOSpec("x", 10, (-1, 4)),)
    assert config.outputs == (IOSpec("y", 10, (-1,)),)


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ('{"versions": 2}', "unknown key 'versions'"),
        ('{"version_policy": {"latest": 0}}', "key 'version_policy'"),
        ('{"version_policy": {"latest": 1.5}}', "key 'version_policy'"),
        ('{"version_policy": {"newest": 1}}', "unknown policy 'newest'"),
        ('{"version_policy": "some"}', "key 'version_policy'"),
        ('{"version_policy": {"specific": []}}', "key 'version_policy'"),
        ('{"version_policy": {"specific": [1, -2]}}', "key 'version_policy'"),
        ('{"max_batch_size": -1}', "key 'max_batch_size'"),
        ('{"max_batch_size": true}', "key 'max_batch_size'"),
        ('{"batch_timeout_ms": "2"}', "key 'batch_timeout_ms'"),
        ('{"batch_timeout_ms": -1}', "key 'batch_timeout_ms'"),
        ('{"signature": ""}', "key 'signature'"),
        ('{"callable": "no_function_named"}', "key 'callable'"),
        ('{"callable": "m:f", "inputs": ["x:complex64:-1"]}', "key 'inputs'"),
        ('{"callable": "m:f", "inputs": "x:float32"}', "key 'inputs'"),
        ('{"callable": "m:f", "outputs": ["y", "y"]}', "key 'outputs'"),
        ('{"inputs": ["x:float32:-1"]}', "key 'inputs'"),
        ("[1, 2]", "expected a JSON object"),
        ("{'single': 'quotes'}", "not valid JSON"),
    ],
)
def test_bad_config_is_refused_naming_file_and_key(tmp_path, text, named) -> None:
    model = tmp_path / "classifier"
    model.mkdir()
    (model / "config.json").write_text(text)
    with pytest.raises(ConfigError) as info:
        read_config(model)
    message = str(info.value)
    assert message.startswith(str(model / "config.json") + ":"), message
    assert named in message, message


def test_unreadable_config_is_refused_naming_the_file(tmp_path) -> None:
    (tmp_path / "config.json").write_bytes(b"\xff\xfe{")
    with pytest.raises(ConfigError, match="config.json: cannot be read"):
        read_config(tmp_path)
