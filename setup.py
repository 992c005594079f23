"""Builds the scanning core as native code with mypyc when it can, as plain Python when not.

The modules in `tapeproxy/native.py`'s COMPILED list are the secret scanner that `lint`, the
pre-push gate and every recorded or replayed exchange run through: compiled from the same
typed source (no second implementation), they take about a quarter less CPU. Without a C
compiler or mypyc, or with ``TAPEPROXY_COMPILE=0``, the package installs as plain Python and
behaves the same. Everything else is declared in pyproject.toml.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "tapeproxy"))
from native import COMPILED, MANIFEST  # noqa: E402  (the list, without importing tapeproxy)

sys.path.pop(0)


class _OptionalBuildExt(build_ext):  # type: ignore[misc]
    """Builds the native modules, or leaves the package plain Python when that fails; records
    the hash of each compiled source beside them (`tapeproxy.native` loads a compiled module
    only while its source is unchanged)."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as e:  # no compiler, no headers: plain Python is complete
            self._skip(e)
            return
        manifest = {m: _digest(HERE / path) for m, path in COMPILED.items()}
        for base in {Path(self.build_lib), HERE} if self.inplace else {Path(self.build_lib)}:
            target = base / MANIFEST
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")

    def build_extension(self, ext: object) -> None:
        try:
            super().build_extension(ext)
        except Exception as e:
            raise RuntimeError(f"compiling {getattr(ext, 'name', ext)}: {e}") from e

    def _skip(self, error: Exception) -> None:
        print(f"tapeproxy: not compiled, installed as plain Python ({error})", file=sys.stderr)
        self.extensions = []


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _native_modules() -> list[object]:
    if os.environ.get("TAPEPROXY_COMPILE", "1") == "0":
        return []
    try:
        from mypyc.build import mypycify
    except ImportError as e:
        print(f"tapeproxy: mypyc not available ({e}); plain Python", file=sys.stderr)
        return []
    paths = [str(path) for path in COMPILED.values()]
    # Not pyproject.toml's [tool.mypy] (its plugin needs pydantic): the build environment
    # holds setuptools and mypy only, so the libraries the code imports are untyped there.
    options = ["--config-file=", "--ignore-missing-imports", "--follow-imports=silent"]
    try:
        return list(mypycify([*options, *paths], opt_level="3", debug_level="0"))
    except (Exception, SystemExit) as e:  # a mypy version that cannot compile this source
        print(f"tapeproxy: mypyc failed ({e}); plain Python", file=sys.stderr)
        return []


setup(ext_modules=_native_modules(), cmdclass={"build_ext": _OptionalBuildExt})
