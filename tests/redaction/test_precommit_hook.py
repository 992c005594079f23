"""Acceptance 4: `pre-commit try-repo` of this repository's `.pre-commit-hooks.yaml` installs
the `tapeproxy-lint` hook from the local checkout (packages from the registry only) and runs it
on a sample repository: a leaked key fails the hook, masked; a clean file passes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

_REPO = Path(__file__).resolve().parents[2]


def _try_repo(sample: Path, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pre_commit",
            "try-repo",
            str(_REPO),
            "tapeproxy-lint",
            "--all-files",
        ],
        cwd=sample,
        # (each try-repo installs the checkout afresh: plain Python, not compiled for 45 s
        # each time; the compiled lint is what the rest of the suite runs)
        env={**os.environ, "PRE_COMMIT_HOME": str(home), "TAPEPROXY_COMPILE": "0"},
        capture_output=True,
        text=True,
        timeout=500,
        check=False,
    )


def test_pre_commit_try_repo_runs_the_lint_hook(tmp_path: Path) -> None:
    sample = tmp_path / "sample"
    sample.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=sample, check=True, timeout=60)
    secret = "sk-proj-" + "Ab3dEf9hIj" * 8
    (sample / "leak.json").write_text(json.dumps({"api_key": secret}))
    subprocess.run(["git", "add", "."], cwd=sample, check=True, timeout=60)
    done = _try_repo(sample, tmp_path / "home")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "leak.json: api_key: openai" in done.stdout
    assert secret not in done.stdout

    (sample / "leak.json").write_text(json.dumps({"api_key": "<redacted:openai>"}))
    subprocess.run(["git", "add", "."], cwd=sample, check=True, timeout=60)
    done = _try_repo(sample, tmp_path / "home")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Passed" in done.stdout
