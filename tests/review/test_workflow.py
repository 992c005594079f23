"""The example pull-request workflow parses and runs the commands the README promises."""

from __future__ import annotations

from pathlib import Path

import yaml

WORKFLOW = Path(__file__).resolve().parents[2] / "tools" / "github" / "cassette-review.yml"


def test_workflow_runs_lint_and_markdown_diff_on_pull_requests() -> None:
    doc = yaml.safe_load(WORKFLOW.read_text())
    assert "pull_request" in doc[True]  # YAML 1.1 reads the key `on` as True
    assert doc["permissions"]["pull-requests"] == "write"
    steps = doc["jobs"]["review"]["steps"]
    scripts = "\n".join(str(s.get("run", "")) for s in steps)
    assert "tapeproxy lint" in scripts
    assert 'tapeproxy diff --git "origin/${{ github.base_ref }}" --format markdown' in scripts
    assert any("github-script" in str(s.get("uses", "")) for s in steps)
    assert steps[0]["with"]["fetch-depth"] == 0
