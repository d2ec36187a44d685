"""The package layering of docs/explanation/architecture: imports only point down, so there are no cycles.

protocol <- client <- launch <- discovery <- providers <- _serving <- nanny <- start <- gateway <- daemon <- execution <- compat <- jupyter <- cli
(shared leaves: _exceptions, _tasks, _lifetime, _loop, _logging, paths, config, defaults, _ratelimit; _serving is the request server both nanny and daemon use)
"""

from __future__ import annotations

import ast
import re
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
    "start",
    "gateway",
    "daemon",
    "runs",
    "execution",
    "compat",
    "jupyter",
    "cli",
]
LEAVES = {
    "_exceptions",
    "_tasks",
    "_lifetime",
    "_loop",
    "_logging",
    "paths",
    "config",
    "defaults",
    "_version",
    "_ratelimit",
    "_progress",
    "ipykernel_launcher",
}


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


def test_paths_reads_no_configuration():
    # config.py finds its files through paths.py; the other way round would be a cycle.
    assert "config" not in _imported_packages(PACKAGE / "paths.py")


def test_defaults_import_nothing():
    # A nanny reads kernel_nanny.defaults before it starts its kernel: it must cost nothing to import.
    tree = ast.parse((PACKAGE / "defaults.py").read_text())
    imports = [
        node
        for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom))
        and not (isinstance(node, ast.ImportFrom) and node.module == "__future__")
    ]
    assert imports == []


def test_timing_defaults_are_defined_only_in_defaults():
    timing = re.compile(r"(TIMEOUT|INTERVAL|DELAY|BACKOFF|_WAIT|LINGER_MS|IVL(_MAX)?_MS)$")
    elsewhere = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "defaults.py":
            continue
        for node in ast.parse(path.read_text()).body:  # module level: constants, not local variables
            if isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names = [n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]
                elsewhere += [f"{path.relative_to(PACKAGE)}: {name}" for name in names if timing.search(name)]
    assert elsewhere == []
