# SPDX-License-Identifier: Apache-2.0
"""``tf_graphpipe/_native.pyi`` describes the module the build makes: every
function and class of the pybind11 module is in the stub and nothing else,
and each function takes the parameters its binding declares, in order. mypy
checks the package's callers against the stub, so a stale stub would let a
wrong call through."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tf_graphpipe import _native

STUB = Path(_native.__file__).with_name("_native.pyi")


def _stub_definitions() -> tuple[dict[str, list[str]], set[str]]:
    tree = ast.parse(STUB.read_text())
    functions = {node.name: [a.arg for a in node.args.posonlyargs + node.args.args + node.args.kwonlyargs]
                 for node in tree.body if isinstance(node, ast.FunctionDef)}
    classes = {node.name for node in tree.body if isinstance(node, ast.ClassDef)}
    return functions, classes


def _binding_parameters(function: object) -> list[str]:
    # pybind11 writes the signature as the docstring's first line: name(a: T, b: T = ...) -> R
    signature = (getattr(function, "__doc__", None) or "").splitlines()[0]
    inside = signature[signature.index("(") + 1:signature.rindex(") ->")]
    parameters, depth, current = [], 0, ""
    for char in inside + ",":
        if char == "," and depth == 0:
            if current.strip():
                parameters.append(re.match(r"\s*(\w+)", current).group(1))
            current = ""
            continue
        depth += (char in "[(") - (char in "])")
        current += char
    return parameters


def _runtime_names() -> tuple[set[str], set[str]]:
    public = {name: getattr(_native, name) for name in dir(_native) if not name.startswith("_")}
    classes = {name for name, value in public.items() if isinstance(value, type)}
    return set(public) - classes, classes


def test_the_stub_ships_beside_the_module() -> None:
    assert STUB.is_file()


def test_stub_and_module_define_the_same_names() -> None:
    stub_functions, stub_classes = _stub_definitions()
    functions, classes = _runtime_names()
    assert sorted(set(stub_functions) ^ functions) == []
    assert sorted(stub_classes ^ classes) == []


@pytest.mark.parametrize("name", sorted(_runtime_names()[0]))
def test_stub_parameters_match_the_binding(name: str) -> None:
    stub_functions, _ = _stub_definitions()
    assert stub_functions.get(name) == _binding_parameters(getattr(_native, name))
