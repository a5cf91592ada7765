#!/usr/bin/env bash
# Installs Bazel for the offline op-library build (docs/bazel.md): Debian's
# `bazel-bootstrap` package (Bazel 4.2.3, no downloads at build time). Does
# nothing when a `bazel` is already on PATH. Safe to run again.
set -euo pipefail

if command -v bazel >/dev/null 2>&1; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install_bazel: no apt-get here; install Bazel 4.2 by hand (Debian/Ubuntu: bazel-bootstrap)" >&2
  exit 1
fi
echo "install_bazel: installing bazel-bootstrap (Debian's Bazel 4.2.3)"
sudo_cmd=""
[ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
$sudo_cmd apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq bazel-bootstrap >/dev/null
command -v bazel >/dev/null 2>&1 \
  || { echo "install_bazel: bazel-bootstrap installed but no bazel on PATH" >&2; exit 1; }
