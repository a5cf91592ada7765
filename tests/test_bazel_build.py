# SPDX-License-Identifier: Apache-2.0
"""The Bazel build of the op library (WORKSPACE, BUILD, third_party/bazel).

Debian's bazel-bootstrap (Bazel 4.2.3) builds ``//:_graphpipe_ops.so`` offline
from the sources setup.py compiles; the library then loads with
``tf.load_op_library`` in a fresh process and calls a real server. A fresh
process because the setup.py-built library, loaded here by ``tf_graphpipe``,
registers the same op names. Bazel runs with ``--batch``: no server lingers.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from support.graphpipe_test_servers import EchoServer

REPO = Path(__file__).resolve().parent.parent
TARGET = "//:_graphpipe_ops.so"
OUTPUT = REPO / "bazel-bin" / "_graphpipe_ops.so"
# Reused between runs so that a warm build takes seconds.
BAZEL_ROOT = Path(os.environ.get("TF_GRAPHPIPE_BAZEL_ROOT", Path.home() / ".cache" / "tf-graphpipe" / "bazel"))

# Runs in a fresh interpreter: argv = library path, server URL. Uses the op
# library only (no tf_graphpipe); prints one JSON line.
CALLER = r"""
import json, sys
import tensorflow as tf
from tensorflow.python.framework import op_def_registry

path, url = sys.argv[1:]
lib = tf.load_op_library(path)
# The ops this library registered: its wrapper module names each one.
ops = {name: str(op_def_registry.get(name)) for name in dir(lib) if op_def_registry.get(name)}

def call(inputs, dtypes):
    return lib.graph_pipe_call(
        endpoint=lib.graph_pipe_endpoint(url), inputs=inputs, Tout=dtypes,
        output_shapes=[], input_names=[], output_names=[], config="",
        timeout_seconds=10.0, retries=0)

x = tf.constant([[1.5, -2.0, 3.25], [0.0, 1e-7, 65504.0]], tf.float32)
(eager,) = call([x], [tf.float32])

@tf.function
def graph(ids, words):
    return call([ids, words], [tf.int64, tf.string])

ids, words = graph(tf.constant([7, -1, 2**40], tf.int64), tf.constant([b"a\x00b", b""]))
print(json.dumps({
    "ops": ops,
    "eager": {"dtype": eager.dtype.name, "shape": eager.shape.as_list(),
              "hex": eager.numpy().tobytes().hex()},
    "ids": ids.numpy().tolist(),
    "words": [w.hex() for w in words.numpy().tolist()],
}))
"""


@pytest.fixture(scope="module")
def bazel_library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Bazel-built op library, copied out of Bazel's read-only tree."""
    bazel = shutil.which("bazel")
    if bazel is None:
        pytest.fail("bazel is not on PATH: run scripts/install_bazel.sh (installs Debian's "
                    "bazel-bootstrap, Bazel 4.2.3), then rerun this test")
    env = {**os.environ, "PYTHON_BIN_PATH": sys.executable}
    command = [bazel, "--batch", f"--output_user_root={BAZEL_ROOT}",
               "build", "--noshow_progress", TARGET]
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)
    if result.returncode != 0:
        pytest.fail(f"`{' '.join(command)}` exited with {result.returncode}:\n{result.stderr[-8000:]}")
    # The output is a read-only symlink into the output base: copy the file.
    library = tmp_path_factory.mktemp("bazel") / OUTPUT.name
    shutil.copyfile(OUTPUT, library)
    return library


@pytest.fixture(scope="module")
def bazel_call(bazel_library: Path) -> tuple[dict, list[list[np.ndarray]]]:
    """What the Bazel-built library returned in a fresh process, and the
    inputs the echo server received from it."""
    with EchoServer() as server:
        result = subprocess.run([sys.executable, "-c", CALLER, str(bazel_library), server.url],
                                capture_output=True, text=True, timeout=300)
        sent = [request.inputs for request in server.seen]
    assert result.returncode == 0, f"the Bazel-built library failed in a fresh process:\n{result.stderr[-8000:]}"
    return json.loads(result.stdout.strip().splitlines()[-1]), sent


def test_bazel_built_library_calls_a_server(bazel_call: tuple[dict, list[list[np.ndarray]]]) -> None:
    answer, sent = bazel_call
    assert "GraphPipeCall" in answer["ops"]
    x = np.array([[1.5, -2.0, 3.25], [0.0, 1e-7, 65504.0]], np.float32)
    assert answer["eager"] == {"dtype": "float32", "shape": [2, 3], "hex": x.tobytes().hex()}
    assert answer["ids"] == [7, -1, 2**40]
    assert answer["words"] == [b"a\x00b".hex(), b"".hex()]
    # The bytes went over the wire: the server saw both calls' inputs.
    assert len(sent) == 2
    np.testing.assert_array_equal(sent[0][0], x)
    np.testing.assert_array_equal(sent[1][0], np.array([7, -1, 2**40], np.int64))


def test_bazel_and_setup_py_libraries_register_the_same_ops(
        bazel_call: tuple[dict, list[list[np.ndarray]]]) -> None:
    from tensorflow.python.framework import op_def_registry

    from tf_graphpipe import _loader

    setup_py_library = _loader.load_ops()
    setup_py_ops = {name: str(op_def_registry.get(name))
                    for name in dir(setup_py_library) if op_def_registry.get(name)}
    assert bazel_call[0]["ops"] == setup_py_ops
