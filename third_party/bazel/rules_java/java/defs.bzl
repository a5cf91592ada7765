# SPDX-License-Identifier: Apache-2.0
"""Offline stand-in for @rules_java//java:defs.bzl: the built-in Java rules, unchanged.

Bazel 4.2's own @bazel_tools BUILD files load these names from @rules_java even
for a C++-only build; the real rules_java would be downloaded. See docs/bazel.md."""

def java_binary(**kwargs):
    native.java_binary(**kwargs)

def java_import(**kwargs):
    native.java_import(**kwargs)

def java_library(**kwargs):
    native.java_library(**kwargs)

def java_proto_library(**kwargs):
    native.java_proto_library(**kwargs)

def java_runtime(**kwargs):
    native.java_runtime(**kwargs)

def java_test(**kwargs):
    native.java_test(**kwargs)

def java_toolchain(**kwargs):
    native.java_toolchain(**kwargs)
