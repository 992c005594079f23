"""The public surface of every tapeproxy module: honest `__all__`, pure packages stay pure."""

from __future__ import annotations

import importlib
import pkgutil
import re
import subprocess
import sys

import pytest

import tapeproxy

MODULES = [
    "tapeproxy",
    *sorted(
        m.name
        for m in pkgutil.walk_packages(tapeproxy.__path__, "tapeproxy.")
        if m.name != "tapeproxy.__main__"  # importing it runs the command line
    ),
]


def _isort_key(name: str) -> tuple[int, list[int | str]]:
    # ruff's RUF022 order: CONSTANTS, then Classes, then everything else; natural order within.
    group = 0 if name.isupper() else 1 if name[:1].isupper() else 2
    return group, [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]


@pytest.mark.parametrize("name", MODULES)
def test_all_is_sorted_and_every_name_exists(name: str) -> None:
    module = importlib.import_module(name)
    names = getattr(module, "__all__", None)
    assert isinstance(names, list), f"{name} has no __all__ list"
    assert names == sorted(names, key=_isort_key), f"{name}.__all__ is not sorted"
    assert len(set(names)) == len(names)
    missing = [n for n in names if not hasattr(module, n)]
    assert not missing, f"{name}.__all__ names what it does not define: {missing}"


@pytest.mark.parametrize(
    "package", ["tapeproxy.cassettes", "tapeproxy.redaction", "tapeproxy.review"]
)
def test_pure_packages_import_neither_mitmproxy_nor_click(package: str) -> None:
    path = importlib.import_module(package).__path__
    submodules = [m.name for m in pkgutil.walk_packages(path, f"{package}.")]
    code = (
        "import importlib, sys\n"
        f"importlib.import_module({package!r})\n"
        f"for m in {submodules!r}: importlib.import_module(m)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('mitmproxy', 'click'))\n"
        "print(bad)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"
