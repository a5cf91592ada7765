# SPDX-License-Identifier: Apache-2.0
"""``tf-graphpipe`` prints its own lines only: TensorFlow's start-up lines
(oneDNN, cpu_feature_guard, absl's pre-init banner) stay hidden unless
``--log-level debug``. Checked on the real command's stderr, run both as the
installed script and as ``python -m tf_graphpipe``, serving a SavedModel."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from tf_graphpipe import Client, _quiet_start

from support import servers

# What the command itself writes to stderr: logging's lines, as cli.py formats them.
OURS = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR) \S+: ")
LAUNCHERS = {"script": servers.SCRIPT, "module": servers.MODULE}


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    class Doubler(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x")])
        def double(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"y": x * 2.0}

    module = Doubler()
    path = tmp_path_factory.mktemp("quiet") / "doubler"
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.double})
    return path


def _foreign_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip() and not OURS.match(line)]


@pytest.mark.parametrize("launcher", sorted(LAUNCHERS))
def test_serve_prints_only_its_own_lines(saved_model: Path, launcher: str) -> None:
    env = servers.cli_env(TF_CPP_MIN_LOG_LEVEL=None)
    cli = servers.CliServer(str(saved_model), "--port", "0", launcher=LAUNCHERS[launcher], env=env)
    try:
        url = cli.wait_url()
        with Client(url, timeout=30) as client:
            np.testing.assert_array_equal(client.infer(np.ones((2, 3), np.float32)), np.full((2, 3), 2.0))
        info = subprocess.run([*LAUNCHERS[launcher], "info", url], capture_output=True, text=True, env=env,
                              timeout=300)
        assert info.returncode == 0, info.stderr
        assert "x: float32 [?, 3]" in info.stdout
        assert info.stderr == ""
    finally:
        assert cli.stop() == 0
    stderr = cli.stderr_text()
    assert "serving model" in stderr
    assert _foreign_lines(stderr) == []


def test_log_level_debug_shows_tensorflow_lines(saved_model: Path) -> None:
    env = servers.cli_env(TF_CPP_MIN_LOG_LEVEL=None)
    cli = servers.CliServer(str(saved_model), "--port", "0", "--log-level", "debug", launcher=servers.SCRIPT, env=env)
    try:
        cli.wait_url()
    finally:
        assert cli.stop() == 0
    # TensorFlow announces itself at import (oneDNN on x86, the absl banner):
    # the same run with the filter off shows what the quiet run hides.
    assert _foreign_lines(cli.stderr_text()), cli.stderr_text()


def test_help_is_quiet() -> None:
    result = subprocess.run([*servers.SCRIPT, "--help"], capture_output=True, text=True,
                            env=servers.cli_env(TF_CPP_MIN_LOG_LEVEL=None), timeout=300)
    assert result.returncode == 0 and "serve" in result.stdout
    assert result.stderr == ""


def test_start_up_lines_are_taken_out_and_everything_else_kept() -> None:
    text = (b"a line of the program's own\n"
            b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
            b"I0000 00:00:1796119561.743384   30291 port.cc:153] oneDNN custom operations are on.\n"
            b"I0000 00:00:1796119562.240285   30291 cpu_feature_guard.cc:227] This TensorFlow binary is optimized\n"
            b"To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow.\n"
            b"/usr/lib/python3/x.py:3: UserWarning: a Python warning\n"
            b"  warnings.warn('a Python warning')\n"
            b"2026-01-01 10:00:00.123456: W tensorflow/core/platform/x.cc:12] old-style warning\n"
            b"E0000 00:00:1796119562.240285   30291 cuda_dnn.cc:8579] Unable to register cuDNN factory\n"
            b"W1201 10:00:00.123456   30291 loader.cc:1] a warning after InitializeLog\n"
            b"Traceback (most recent call last):\n")
    assert _quiet_start.without_start_up_lines(text) == (
        b"a line of the program's own\n"
        b"/usr/lib/python3/x.py:3: UserWarning: a Python warning\n"
        b"  warnings.warn('a Python warning')\n"
        b"E0000 00:00:1796119562.240285   30291 cuda_dnn.cc:8579] Unable to register cuDNN factory\n"
        b"Traceback (most recent call last):\n")


@pytest.mark.parametrize(("orig_argv", "argv", "expected"), [
    (["python", "-m", "tf_graphpipe", "serve", "demo"], ["-m"], ["serve", "demo"]),
    (["python", "-P", "-X", "dev", "-mtf_graphpipe", "info", "u"], ["-m"], ["info", "u"]),
    (["python", "/venv/bin/tf-graphpipe", "serve", "demo"], ["/venv/bin/tf-graphpipe", "serve", "demo"],
     ["serve", "demo"]),
    (["python", "-m", "pytest", "-m", "tf_graphpipe"], ["-m"], None),
    (["python", "-c", "import tf_graphpipe"], ["-c"], None),
    (["python", "train.py", "-m", "tf_graphpipe"], ["train.py", "-m", "tf_graphpipe"], None),
])
def test_only_the_command_is_recognised(monkeypatch: pytest.MonkeyPatch, orig_argv: list[str], argv: list[str],
                                        expected: list[str] | None) -> None:
    monkeypatch.setattr("sys.argv", argv)
    assert _quiet_start.command_arguments(orig_argv) == expected


def test_only_log_level_debug_shows_tensorflow_lines() -> None:
    assert _quiet_start.wants_tensorflow_lines(["serve", "demo", "--log-level", "debug"])
    assert _quiet_start.wants_tensorflow_lines(["serve", "demo", "--log-level=debug"])
    assert not _quiet_start.wants_tensorflow_lines(["serve", "demo", "--log-level", "info"])
    assert not _quiet_start.wants_tensorflow_lines(["serve", "debug", "--log-level"])
