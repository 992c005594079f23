"""The compiled scanning core (`tapeproxy.native`, setup.py): it finds what the sources find,
and it runs only while it is what its sources say (an edited source loads every compiled
module from source, never a stale mix)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tapeproxy import native
from tests.redaction.foreign import generate, write

_ROOT = Path(native.__file__).resolve().parent.parent
_NOT_BUILT = (
    "this install has no compiled modules (no C compiler or mypyc when it was installed, "
    "or TAPEPROXY_COMPILE=0), or a source changed since they were built"
    f" [built {native._built()}, matching {native._matches_sources()}]"
)
_PROBE = """
import tapeproxy.redaction, tapeproxy.native as n, importlib
files = {importlib.import_module(m).__file__.rsplit(".", 1)[-1] for m in n.COMPILED}
print(n.compiled(), sorted(files))
"""


def _probe(tree: Path, **env: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE],
        cwd=tree,
        env={**os.environ, "PYTHONPATH": str(tree), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip()


@pytest.mark.skipif(not native.fresh(), reason=_NOT_BUILT)
def test_compiled_modules_run_only_while_their_sources_are_unchanged(tmp_path: Path) -> None:
    tree = tmp_path / "site"
    shutil.copytree(_ROOT / "tapeproxy", tree / "tapeproxy")
    for runtime in _ROOT.glob("*__mypyc*"):  # mypyc's shared module, beside the package
        shutil.copy2(runtime, tree)
    assert _probe(tree) == "True ['so']"
    assert _probe(tree, TAPEPROXY_PURE="1") == "False ['py']"

    edited = tree / native.COMPILED["tapeproxy.redaction.streams"]
    edited.write_text(edited.read_text() + "\n# edited after the build\n")
    assert _probe(tree) == "False ['py']"  # all from source, not only the edited one


def _lint(folder: Path, **env: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "tapeproxy", "lint", "--format", "json", "--reveal", str(folder)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    return done.stdout


@pytest.mark.skipif(not native.fresh(), reason=_NOT_BUILT)
def test_the_compiled_lint_finds_what_the_sources_find(tmp_path: Path) -> None:
    write(generate(seed=20261206), tmp_path)
    compiled = _lint(tmp_path)
    assert compiled.count("\n") > 400
    assert compiled == _lint(tmp_path, TAPEPROXY_PURE="1")
