# SPDX-License-Identifier: Apache-2.0
"""The package's layers hold (docs/design.md, "Parts and what may import
what"): a process that only calls remote models never loads the server, the
version has one source, and no module imports its way back to itself.

The import graph is read from the installed package's source (every
``import``, including those inside functions), so a lazy import that closes
a cycle counts as much as one at the top of a file."""
from __future__ import annotations

import ast
import graphlib
import importlib.metadata
import subprocess
import sys
from pathlib import Path

import pytest

import tf_graphpipe

PACKAGE = Path(tf_graphpipe.__file__).resolve().parent

# The client side: what `remote_call`, `GraphPipeLayer` and `Client` are made of.
CLIENT_SIDE = {"tf_graphpipe._loader", "tf_graphpipe._version", "tf_graphpipe.client", "tf_graphpipe.dtypes",
               "tf_graphpipe.errors", "tf_graphpipe.layers", "tf_graphpipe.ops", "tf_graphpipe.protocols",
               "tf_graphpipe.url_variables", "tf_graphpipe.deadlines", "tf_graphpipe.replicas"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The package modules ``name`` imports anywhere in its source. ``from
    PKG import X`` counts as importing ``PKG.X`` when X is a module."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    return {m for m in found if m in known and m != name}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, set(modules)) for name, path in modules.items()}


def _is_facade(name: str) -> bool:
    # A package's __init__ only re-exports; importing a submodule always
    # imports its package first, so edges into a facade are not layering.
    return (PACKAGE.parent / name.replace(".", "/") / "__init__.py").exists()


def test_import_tf_graphpipe_leaves_the_server_unimported() -> None:
    script = ("import sys, tf_graphpipe\n"
              "loaded = sorted(m for m in sys.modules if m.startswith('tf_graphpipe.server') or m in "
              "('httptools', 'uvicorn', 'starlette'))\n"
              "assert not loaded, loaded\n"
              "serve = tf_graphpipe.serve\n"
              "from tf_graphpipe.server.running import serve as running_serve\n"
              "assert serve is running_serve and 'serve' in dir(tf_graphpipe)\n"
              # The server itself needs no ASGI library either.
              "assert not {'uvicorn', 'starlette'} & set(sys.modules), sorted(sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]


def test_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'serves'"):
        tf_graphpipe.serves  # noqa: B018 - the lookup is the test


def test_version_has_one_source() -> None:
    from tf_graphpipe import _version

    assert tf_graphpipe.__version__ == _version.__version__ == importlib.metadata.version("tf-graphpipe")
    holders = [p.name for p in PACKAGE.rglob("*.py") if "__version__ =" in p.read_text()]
    assert holders == ["_version.py"]


def test_no_module_imports_its_way_back_to_itself() -> None:
    graph = {name: {m for m in deps if not _is_facade(m)} for name, deps in _graph().items()
             if not _is_facade(name)}
    try:
        order = list(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as cycle:
        pytest.fail(f"import cycle: {' -> '.join(cycle.args[1])}")
    assert set(order) == set(graph)


def test_the_client_side_imports_no_server_and_no_cli() -> None:
    graph = _graph()
    assert CLIENT_SIDE <= set(graph), sorted(CLIENT_SIDE - set(graph))
    wrong = {(name, dep) for name in CLIENT_SIDE for dep in graph[name]
             if dep.startswith("tf_graphpipe.server") or dep in ("tf_graphpipe.cli", "tf_graphpipe.demo")}
    assert not wrong, sorted(wrong)


def test_the_model_interface_imports_no_adapter_and_no_tensorflow() -> None:
    path = PACKAGE / "server" / "model.py"
    imported = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
    assert not {m for m in imported if m.split(".")[0] in ("tensorflow", "keras")}, imported
    assert imported & {"tf_graphpipe.server.loading", "tf_graphpipe.server.tf_models",
                       "tf_graphpipe.server.demo_model"} == set()


def test_uvicorn_and_starlette_are_not_runtime_dependencies() -> None:
    requires = importlib.metadata.requires("tf-graphpipe") or []
    runtime = [r for r in requires if "extra ==" not in r]
    assert not [r for r in runtime if r.split(">")[0].split("=")[0].split("[")[0].strip().lower()
                in ("uvicorn", "starlette")], runtime
