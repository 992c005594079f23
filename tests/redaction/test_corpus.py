"""Acceptance 1 and 5 on the generated corpus, scored through `tapeproxy lint --format json
--reveal` exactly as a held-out corpus is: recall overall and per placement, clean documents
flagged, and no full secret in the text output."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from urllib.parse import unquote

from tests.redaction.corpus import generate, write


def _lint(out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tapeproxy", "lint", *args, str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _found(secret: str, findings: list[dict[str, object]]) -> bool:
    for f in findings:
        got = str(f["secret"])
        if secret in (got, unquote(got)) or (len(got) >= 8 and (got in secret or secret in got)):
            return True
    return False


def test_corpus_recall_and_false_positives(tmp_path: Path) -> None:
    docs = generate(seed=20260101)
    write(docs, tmp_path)
    done = _lint(tmp_path, "--format", "json", "--reveal")
    assert done.returncode == 1, done.stderr
    by_file: dict[str, list[dict[str, object]]] = defaultdict(list)
    for line in done.stdout.splitlines():
        finding = json.loads(line)
        by_file[Path(str(finding["file"])).name.removesuffix(".json.zst")].append(finding)
    per_placement: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    flagged_clean = [d.name for d in docs if d.secret is None and by_file.get(d.name)]
    for d in docs:
        if d.secret is not None:
            per_placement[d.placement][0] += _found(d.secret, by_file.get(d.name, []))
            per_placement[d.placement][1] += 1
    found = sum(v[0] for v in per_placement.values())
    total = sum(v[1] for v in per_placement.values())
    report = {k: f"{v[0]}/{v[1]}" for k, v in sorted(per_placement.items())}
    assert total >= 300 and sum(d.secret is None for d in docs) == 300
    assert found / total >= 0.99, report
    split = per_placement["sse-split"]
    assert split[0] / split[1] >= 0.95, report
    assert len(flagged_clean) <= 1, flagged_clean


def test_text_output_never_holds_a_full_secret(tmp_path: Path) -> None:
    docs = [d for d in generate(seed=7, per_format=2, clean=0)]
    write(docs, tmp_path)
    done = _lint(tmp_path)
    assert done.returncode == 1
    assert "interaction 0" in done.stdout
    for d in docs:
        assert d.secret is not None
        assert d.secret not in done.stdout
        assert unquote(d.secret) not in done.stdout
