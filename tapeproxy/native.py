"""Which modules are compiled with mypyc (setup.py), and loading them only while they are
what their source says.

The scanning core is compiled when the package is installed (a quarter less CPU for `lint`
and for every recorded exchange); the compiled modules sit beside their sources. A compiled
module is the source as it was when it was built: after an edit (or a checkout) of any one
of them, all of them are loaded from source instead (the compiled ones call each other
directly, so a mix would run old code), which is slower but never stale. ``TAPEPROXY_PURE=1``
loads the sources whatever was built.

This module imports nothing of tapeproxy: setup.py reads `COMPILED` from it before the
package exists.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import json
import os
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType

__all__ = ["COMPILED", "MANIFEST", "compiled", "fresh", "load_fresh"]

COMPILED = {
    f"tapeproxy.redaction.{name}": Path("tapeproxy", "redaction", f"{name}.py")
    for name in (
        "bodies",
        "context",
        "detectors",
        "jsonscan",
        "largebinary",
        "layers",
        "lint",
        "placeholders",
        "quickscan",
        "redactor",
        "scanner",
        "streams",
    )
}
"""Module name to source path (relative to the project) of each module setup.py compiles."""

MANIFEST = Path("tapeproxy", "native.json")
"""Written by setup.py beside the compiled modules: the sha256 of each source compiled."""

_ROOT = Path(__file__).resolve().parent.parent


def compiled() -> bool:
    """Whether the scanning core runs as native code in this process."""
    module = sys.modules.get("tapeproxy.redaction.scanner")
    return module is not None and not str(getattr(module, "__file__", "")).endswith(".py")


def fresh() -> bool:
    """Whether the compiled modules are built and are their sources as they are now."""
    return _built() and _matches_sources()


class _SourceFinder:
    """Finds the listed modules as their sources (ahead of the compiled files)."""

    def find_spec(
        self, name: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if name not in COMPILED:
            return None
        return importlib.util.spec_from_file_location(name, _ROOT / COMPILED[name])


def load_fresh() -> None:
    """Have the compiled modules load from source when any of them is stale (or when
    ``TAPEPROXY_PURE`` asks); a no-op where nothing was compiled. Called by
    `tapeproxy.redaction` before any of them is imported."""
    if any(isinstance(f, _SourceFinder) for f in sys.meta_path) or not _built():
        return
    if os.environ.get("TAPEPROXY_PURE") or not _matches_sources():
        sys.meta_path.insert(0, _SourceFinder())


def _built() -> bool:
    suffixes = importlib.machinery.EXTENSION_SUFFIXES
    return any(
        (_ROOT / path).with_suffix(s).exists() for path in COMPILED.values() for s in suffixes
    )


def _matches_sources() -> bool:
    try:
        recorded = json.loads((_ROOT / MANIFEST).read_text())
        return all(
            recorded.get(name) == hashlib.sha256((_ROOT / path).read_bytes()).hexdigest()
            for name, path in COMPILED.items()
        )
    except (OSError, ValueError, AttributeError):
        return False
