"""After `tapeproxy install-hooks`, git shows a changed cassette as readable text lines
(issue 5, acceptance 1): `git diff`, `git log -p` and `git show` go through `tapeproxy show`.

Git runs here with a bare system PATH (no virtualenv on it) and no global or system config,
as from an editor or a GUI: the textconv command must resolve on its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tapeproxy.cassettes.key import request_key
from tapeproxy.cassettes.model import (
    Body,
    Interaction,
    MatchRules,
    Request,
    Response,
    new_cassette,
)
from tapeproxy.cassettes.store import save

URL = "https://api.openai.com/v1/chat/completions"
OLD = "The capital of France is Paris."
NEW = "Paris is the capital of France, and its largest city."
OTHER = "Two plus two is four."


def _env(home: Path) -> dict[str, str]:
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": str(home),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "LANG": "C",
    }


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args],
        cwd=repo,
        env=_env(repo.parent),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, (args, done.stderr)
    return done.stdout


def _interaction(prompt: str, answer: str) -> Interaction:
    body = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": prompt}]})
    headers = (("content-type", "application/json"),)
    doc = {
        "object": "chat.completion",
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}}],
    }
    return Interaction(
        key=request_key("POST", URL, headers, body.encode(), MatchRules()),
        request=Request(method="POST", url=URL, headers=headers, body=Body(text=body)),
        response=Response(status=200, headers=headers, body=Body(text=json.dumps(doc))),
    )


def _write(path: Path, first_answer: str) -> None:
    cassette = new_cassette("0.1.0", "2026-01-01T00:00:00Z")
    interactions = (_interaction("capital?", first_answer), _interaction("2+2?", OTHER))
    save(path, cassette.model_copy(update={"interactions": interactions}))


def _changed_lines(patch: str) -> tuple[list[str], list[str]]:
    lines = [x for x in patch.splitlines() if not x.startswith(("---", "+++"))]
    return [x for x in lines if x.startswith("-")], [x for x in lines if x.startswith("+")]


def test_git_diff_and_log_show_a_changed_answer_as_readable_lines(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "config", "user.name", "Test")
    _git(repo, "config", "user.email", "test@example.com")
    cassette = repo / "tests" / "cassettes" / "chat.json.zst"
    _write(cassette, OLD)
    installed = subprocess.run(
        [sys.executable, "-m", "tapeproxy", "install-hooks"],
        cwd=repo,
        env={**_env(tmp_path), "PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert installed.returncode == 0, installed.stderr
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "record")

    _write(cassette, NEW)
    diff = _git(repo, "diff")
    assert "Binary files" not in diff
    removed, added = _changed_lines(diff)
    assert any(OLD in x for x in removed), diff
    assert any(NEW in x for x in added), diff
    assert not any(OTHER in x for x in removed + added)  # the other answer did not change

    _git(repo, "commit", "-qam", "re-record")
    log = _git(repo, "log", "-p", "--format=commit %s")
    assert "Binary files" not in log
    assert "commit re-record" in log and "commit record" in log
    removed, added = _changed_lines(log)
    assert any(OLD in x for x in removed) and any(NEW in x for x in added), log
    assert any(OTHER in x for x in added)  # the first commit added the whole cassette
    show = _git(repo, "show", "HEAD")
    assert any(NEW in x for x in _changed_lines(show)[1]), show
