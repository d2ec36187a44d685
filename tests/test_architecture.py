"""The package layering of docs/explanation/architecture: imports only point down, so there are no cycles.

protocol <- client <- launch <- discovery <- providers <- _serving <- nanny <- daemon <- execution <- compat <- jupyter <- cli
(shared leaves: _exceptions, _tasks, _loop, paths, config, _ratelimit; _serving is the request server both nanny and daemon use)
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "kernel_nanny"
LAYERS = [
    "protocol",
    "client",
    "launch",
    "discovery",
    "providers",
    "_serving",
    "nanny",
    "daemon",
    "execution",
    "compat",
    "jupyter",
    "cli",
]
LEAVES = {"_exceptions", "_tasks", "_loop", "paths", "config", "_version", "_ratelimit"}


def _imported_packages(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            parts = path.relative_to(PACKAGE).parts
            base = list(parts[:-1])[: len(parts) - node.level]  # the package the relative import starts from
            target = [*base, *(node.module.split(".") if node.module else [])]
            if target:
                found.add(target[0])
            else:  # "from .. import x"
                found.update(alias.name for alias in node.names)
    return found


def test_imports_only_point_down_the_layers():
    violations = []
    for path in PACKAGE.rglob("*.py"):
        layer = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
        if layer not in LAYERS:
            continue
        allowed = set(LAYERS[: LAYERS.index(layer) + 1]) | LEAVES
        for imported in _imported_packages(path) - allowed:
            if imported in LAYERS:
                violations.append(f"{path.relative_to(PACKAGE)} imports {imported}")
    assert violations == []


def test_leaves_import_no_layer():
    for leaf in LEAVES:
        path = PACKAGE / f"{leaf}.py"
        assert not (_imported_packages(path) & set(LAYERS)), leaf
