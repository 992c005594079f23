"""Imports point down (one table of layers): a module may import its own package and the
packages below it, never one above; a dependency that would point up comes in as a callable.
"""

from __future__ import annotations

import ast
from pathlib import Path

import tapeproxy

PACKAGE = Path(tapeproxy.__file__).parent

ALLOWED: dict[str, frozenset[str]] = {
    "providers": frozenset(),
    "cassettes": frozenset({"providers"}),
    "redaction": frozenset({"providers", "cassettes"}),
    "review": frozenset({"providers", "cassettes"}),
    "proxy": frozenset({"providers", "cassettes", "redaction"}),
}
"""Package -> the tapeproxy packages it may import (besides itself and the top-level leaf
modules in `LEAVES`). Top-level modules such as cli.py and pytest_plugin.py sit above all."""

LEAVES = frozenset({"errors", "modes", "config", "profilefile", "native", "__init__"})
"""Top-level modules that import no tapeproxy package (only each other), usable from any layer."""


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "tapeproxy" and len(parts) > 1:
                found.add(parts[1])
    return found


def test_every_import_points_down() -> None:
    wrong = []
    for package, allowed in ALLOWED.items():
        for path in sorted((PACKAGE / package).rglob("*.py")):
            for target in _imports(path) - {package} - allowed - LEAVES:
                if target == "__version__":
                    continue
                wrong.append(f"{path.relative_to(PACKAGE)} imports tapeproxy.{target}")
    assert wrong == []


def test_leaves_import_nothing_of_tapeproxy() -> None:
    for leaf in LEAVES - {"__init__"}:
        assert _imports(PACKAGE / f"{leaf}.py") <= LEAVES, leaf


def test_the_table_names_every_package() -> None:
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert packages == set(ALLOWED)
