"""The lint gate on the foreign-shapes corpus (`tests.redaction.foreign`), scored by class
through `tapeproxy lint --format json --reveal`, as a held-out corpus is scored: recall of
each secret class and clean look-alike files flagged, in every container shape."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from tests.redaction.foreign import CLASSES, SHAPES, Doc, generate, write
from tests.redaction.test_corpus import _found

__all__ = ["score"]


def score(docs: list[Doc], findings: list[dict[str, object]]) -> dict[str, dict[str, object]]:
    """Per class: secrets found / total, clean files flagged / total, and what was missed."""
    by_file: dict[str, list[dict[str, object]]] = defaultdict(list)
    for f in findings:
        by_file[Path(str(f["file"])).name].append(f)
    out: dict[str, dict[str, object]] = {}
    for cls in CLASSES:
        pos = [d for d in docs if d.cls == cls and d.secret is not None]
        neg = [d for d in docs if d.cls == cls and d.secret is None]
        found = _whole if cls == "long" else _found
        missed = [
            d.name for d in pos if not found(str(d.secret), by_file.get(d.name + d.suffix, []))
        ]
        flagged = [d.name for d in neg if by_file.get(d.name + d.suffix)]
        out[cls] = {
            "found": len(pos) - len(missed),
            "secrets": len(pos),
            "flagged": len(flagged),
            "clean": len(neg),
            "missed": missed,
            "flagged_files": flagged,
        }
    return out


def _whole(secret: str, findings: list[dict[str, object]]) -> bool:
    """Whether a finding holds all of `secret`: part of a long token is not enough, the
    rest of it would stay in the cassette."""
    return any(secret in str(f["secret"]) for f in findings)


def _lint(folder: Path) -> list[dict[str, object]]:
    done = subprocess.run(
        [sys.executable, "-m", "tapeproxy", "lint", "--format", "json", "--reveal", str(folder)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode in (0, 1), done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, object]]:
    folder = tmp_path_factory.mktemp("foreign")
    docs = generate(seed=20261204)
    assert {d.shape for d in docs} == set(SHAPES)
    write(docs, folder)
    return score(docs, _lint(folder))


@pytest.mark.parametrize("cls", CLASSES)
def test_every_secret_of_the_class_is_found(scored: dict[str, dict[str, object]], cls: str) -> None:
    s = scored[cls]
    assert s["found"] == s["secrets"], s["missed"]


@pytest.mark.parametrize("cls", CLASSES)
def test_no_clean_look_alike_is_flagged(scored: dict[str, dict[str, object]], cls: str) -> None:
    s = scored[cls]
    assert s["flagged"] == 0, s["flagged_files"]
