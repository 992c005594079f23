"""show, diff, stats and lint read stubs files as well as cassettes (through the CLI)."""

from __future__ import annotations

import json
import random
import string
import subprocess
import sys
from pathlib import Path

import yaml


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tapeproxy", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


def _write(path: Path, rules: list[dict[str, object]]) -> Path:
    path.write_text(yaml.safe_dump(rules), encoding="utf-8")
    return path


def test_show_diff_and_stats_read_stubs_files(tmp_path: Path) -> None:
    rng = random.Random("stubview")
    words = ["orbit", "maple", "quartz", "harbor", "cinder", "falcon"]
    said = " ".join(rng.choice(words) for _ in range(8))
    tool = f"get_{rng.choice(words)}"
    old = _write(
        tmp_path / "old.yaml",
        [
            {"match": {"endpoint": "chat", "last_user": "hello"}, "answer": {"text": said}},
            {
                "match": {"endpoint": "messages"},
                "answer": {"tool_calls": [{"name": tool, "arguments": {"n": 1}}]},
            },
        ],
    )
    shown = _run("show", str(old), cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert said in shown.stdout and tool in shown.stdout
    assert "POST https://api.anthropic.com/v1/messages" in shown.stdout

    same = _run("diff", str(old), str(old), cwd=tmp_path)
    assert same.returncode == 0, same.stdout + same.stderr
    changed = _write(
        tmp_path / "new.yaml",
        [
            {"match": {"endpoint": "chat", "last_user": "hello"}, "answer": {"text": said}},
            {
                "match": {"endpoint": "messages"},
                "answer": {"tool_calls": [{"name": tool, "arguments": {"n": 2}}]},
            },
        ],
    )
    drift = _run("diff", str(old), str(changed), "--format", "json", cwd=tmp_path)
    assert drift.returncode == 1, drift.stdout + drift.stderr

    stats = _run("stats", str(old), "--format", "json", cwd=tmp_path)
    assert stats.returncode == 0, stats.stderr
    data = json.loads(stats.stdout)
    assert data["by_source"] == {"stubbed": 2}
    assert data["tokens"]["output"] > 0


def test_lint_finds_a_secret_in_a_stubs_file_and_show_names_a_bad_one(tmp_path: Path) -> None:
    rng = random.Random("stubview-lint")
    key = "sk-proj-" + "".join(rng.choices(string.ascii_letters + string.digits, k=48))
    for suffix, text in (
        (".yaml", yaml.safe_dump([{"answer": {"text": f"use {key} for it"}}])),
        (".json", json.dumps([{"answer": {"text": f"use {key} for it"}}])),
        (".toml", f'[[rules]]\nanswer = {{ text = "use {key} for it" }}\n'),
    ):
        path = tmp_path / f"stubs{suffix}"
        path.write_text(text, encoding="utf-8")
        found = _run("lint", str(path), cwd=tmp_path)
        assert found.returncode == 1, (suffix, found.stdout, found.stderr)
        assert key not in found.stdout  # masked
    bad = _write(tmp_path / "bad.yaml", [{"answer": {"txt": "x"}}])
    shown = _run("show", str(bad), cwd=tmp_path)
    assert shown.returncode == 2 and "bad.yaml: rule 0, field answer.txt" in shown.stderr
