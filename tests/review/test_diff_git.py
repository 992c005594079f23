"""`diff --git REF`: every cassette changed since REF, in a throwaway git repository."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from tapeproxy.cli import cli
from tapeproxy.errors import BadInputError
from tapeproxy.review.diff import Thresholds
from tapeproxy.review.diff_git import changed_cassettes, diff_git
from tests.review.builders import cassette, chat_body, interaction

URL = "https://api.openai.com/v1/chat/completions"


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.test", *args],
        cwd=repo,
        check=True,
        capture_output=True,
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    _git(tmp_path, "init", "-q", "-b", "main")
    cassette(tmp_path / "cassettes" / "kept.json.zst", [interaction(URL, chat_body("Same answer"))])
    cassette(
        tmp_path / "cassettes" / "edited.json.zst", [interaction(URL, chat_body("Hello world"))]
    )
    cassette(tmp_path / "cassettes" / "deleted.json.zst", [interaction(URL, chat_body("Bye"))])
    (tmp_path / "notes.txt").write_text("x")
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "commit", "-q", "-m", "base")
    cassette(
        tmp_path / "cassettes" / "edited.json.zst", [interaction(URL, chat_body("Goodbye moon"))]
    )
    (tmp_path / "cassettes" / "deleted.json.zst").unlink()
    cassette(
        tmp_path / "cassettes" / "sub" / "new.json.zst", [interaction(URL, chat_body("Fresh"))]
    )
    (tmp_path / "notes.txt").write_text("y")
    return tmp_path


def test_lists_changed_cassettes_only(repo: Path) -> None:
    assert changed_cassettes("HEAD", repo) == [
        "cassettes/deleted.json.zst",
        "cassettes/edited.json.zst",
        "cassettes/sub/new.json.zst",
    ]


def test_reports_each_changed_cassette(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(repo / "cassettes")  # works from a subfolder too
    result = CliRunner().invoke(cli, ["diff", "--git", "HEAD", "--format", "json"])
    assert result.exit_code == 1, result.output
    report = json.loads(result.output)
    status = {c["path"]: (c["status"], c["summary"]) for c in report["cassettes"]}
    assert status["cassettes/deleted.json.zst"][0] == "removed"
    assert status["cassettes/deleted.json.zst"][1]["removed"] == 1
    assert status["cassettes/sub/new.json.zst"][0] == "added"
    assert status["cassettes/edited.json.zst"][1]["drifted"] == 1
    assert "cassettes/kept.json.zst" not in status


def test_unknown_ref_and_no_repo_are_bad_input(
    repo: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    with pytest.raises(BadInputError, match="not a commit"):
        diff_git("origin/nope", Thresholds(), repo)
    with pytest.raises(BadInputError, match="git rev-parse"):
        diff_git("HEAD", Thresholds(), tmp_path_factory.mktemp("plain"))


def test_argument_misuse_is_bad_input(repo: Path) -> None:
    result = CliRunner().invoke(cli, ["diff", "--git", "HEAD", "a", "b"])
    assert isinstance(result.exception, BadInputError)
    assert isinstance(CliRunner().invoke(cli, ["diff", "only-one"]).exception, BadInputError)
