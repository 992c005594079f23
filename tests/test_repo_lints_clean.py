"""The repository's own files pass the secret linter (issue: the gate stays honest).

The few fake credentials tests must spell out are allow-listed by fingerprint in
pyproject.toml; anything else that looks like a secret fails this test.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_tracked_file_lints_clean() -> None:
    files = (
        subprocess.run(
            ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=30
        )
        .stdout.decode()
        .split("\0")
    )
    paths = [f for f in files if f and (ROOT / f).is_file()]
    assert len(paths) > 50
    result = subprocess.run(
        [sys.executable, "-m", "tapeproxy", "lint", *paths],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
