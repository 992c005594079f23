"""Acceptance 3: the pre-push gate in a throwaway repository with a local bare remote, and the
textconv driver set up by `tapeproxy install-hooks`."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

from tapeproxy.cassettes.model import Body, Interaction, Request, Response, new_cassette
from tapeproxy.cassettes.store import save

_SECRET = "sk-ant-api03-" + "Xq7Lm2Np9Rt4Vw6Yz8Bc1Df3Gh5Jk0" * 3 + "abAA"


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
    }
    return subprocess.run(
        ["git", *args], cwd=repo, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def _cassette(path: Path, key_value: str) -> None:
    req = Request(
        method="POST",
        url="https://api.anthropic.com/v1/messages",
        headers=(("x-api-key", key_value), ("content-type", "application/json")),
        body=Body(text=json.dumps({"model": "claude", "max_tokens": 5})),
    )
    ix = Interaction(key="a" * 64, request=req, response=Response(status=200))
    cassette = new_cassette("0.1.0", "2026-01-01T00:00:00Z")
    save(path, cassette.model_copy(update={"interactions": (ix,)}))


def _repo(tmp_path: Path) -> Path:
    remote, repo = tmp_path / "remote.git", tmp_path / "work"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True, timeout=60)
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "remote", "add", "origin", str(remote))
    (repo / "README").write_text("hi\n")
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "init")
    assert _git(repo, "push", "-q", "origin", "main").returncode == 0
    return repo


def _install(repo: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tapeproxy", "install-hooks"],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_pre_push_gate_blocks_a_secret_then_passes_after_redaction(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    old_hook = repo / ".git" / "hooks" / "pre-push"
    old_hook.write_text("#!/bin/sh\necho existing hook ran >&2\ncat > /dev/null\nexit 0\n")
    old_hook.chmod(0o755)
    done = _install(repo)
    assert done.returncode == 0, done.stderr
    assert "still runs first" in done.stdout

    cassette = repo / "tests" / "cassettes" / "chat.json.zst"
    _cassette(cassette, _SECRET)
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "record")
    push = _git(repo, "push", "origin", "main")
    assert push.returncode != 0
    assert "existing hook ran" in push.stderr
    assert "tests/cassettes/chat.json.zst" in push.stdout + push.stderr
    assert "interactions[0].request.headers.x-api-key" in push.stdout + push.stderr
    assert "anthropic" in push.stdout + push.stderr
    assert _SECRET not in push.stdout + push.stderr

    # A later commit does not hide the secret in an earlier one: rewrite it away.
    _cassette(cassette, "<redacted:anthropic>")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "--amend", "-m", "record (redacted)")
    push = _git(repo, "push", "origin", "main")
    assert push.returncode == 0, push.stderr
    assert "existing hook ran" in push.stderr


def test_install_hooks_sets_up_textconv_and_is_idempotent(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    (repo / "pyproject.toml").write_text('[tool.tapeproxy]\ncassette_dir = "recordings"\n')
    assert _install(repo).returncode == 0
    assert _install(repo).returncode == 0
    attrs = (repo / ".gitattributes").read_text().splitlines()
    assert attrs == [
        "**/cassettes/**/*.json.zst diff=tapeproxy",
        "recordings/**/*.json.zst diff=tapeproxy",
    ]
    textconv = _git(repo, "config", "diff.tapeproxy.textconv").stdout.strip()
    assert textconv == f"{shlex.quote(sys.executable)} -m tapeproxy show"
    assert _git(repo, "config", "diff.tapeproxy.cachetextconv").stdout.strip() == "true"
    hook = (repo / ".git" / "hooks" / "pre-push").read_text()
    assert sys.executable in hook
    assert not (repo / ".git" / "hooks" / "pre-push.tapeproxy-chained").exists()


def test_staged_lint_and_bad_input(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    _cassette(repo / "cassettes" / "a.json.zst", _SECRET)
    _git(repo, "add", ".")
    lint = [sys.executable, "-m", "tapeproxy", "lint"]
    staged = subprocess.run(
        [*lint, "--staged"], cwd=repo, capture_output=True, text=True, timeout=60, check=False
    )
    assert staged.returncode == 1 and "cassettes/a.json.zst" in staged.stdout
    (repo / "broken.json.zst").write_bytes(b"\x28\xb5\x2f\xfdjunk")
    bad = subprocess.run(
        [*lint, "broken.json.zst"],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 2 and "broken.json.zst" in bad.stderr
    assert "Traceback" not in bad.stderr
    missing = subprocess.run(
        [*lint, "nope"], cwd=repo, capture_output=True, text=True, timeout=60, check=False
    )
    assert missing.returncode == 2


def test_push_range_gate_reads_every_commit_once_and_keeps_the_size_limit(
    tmp_path: Path,
) -> None:
    """A push of many cassettes over several commits and a merge: every blob is linted once,
    named by the first commit (newest first) that brought it, on every core (40 blobs); a blob
    over `--max-bytes` fails the gate unread, as a file over it does."""
    repo = _repo(tmp_path)
    for i in range(40):
        _cassette(repo / "cassettes" / f"c{i:02d}.json.zst", "<redacted:anthropic>")
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "forty")
    _cassette(repo / "cassettes" / "c07.json.zst", _SECRET)
    _git(repo, "commit", "-qam", "leak")
    leak = _git(repo, "rev-parse", "HEAD").stdout.strip()
    _cassette(repo / "cassettes" / "c07.json.zst", "<redacted:anthropic>")
    _git(repo, "commit", "-qam", "redacted, but the leak is in the history")
    _git(repo, "checkout", "-qb", "side", "HEAD~2")
    _cassette(repo / "side" / "s.json.zst", _SECRET.replace("Xq7", "Pq8"))
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "side")
    _git(repo, "checkout", "-q", "main")
    assert _git(repo, "merge", "-q", "--no-ff", "-m", "merge", "side").returncode == 0
    merge = _git(repo, "rev-parse", "HEAD").stdout.strip()  # (newest: it names the side's blob)

    lint = [sys.executable, "-m", "tapeproxy", "lint", "--format", "json"]
    rng = ["--push-range", "HEAD --not --remotes"]
    done = subprocess.run(
        [*lint, *rng], cwd=repo, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 1, done.stderr
    files = {json.loads(line)["file"] for line in done.stdout.splitlines()}
    assert files == {f"cassettes/c07.json.zst@{leak[:12]}", f"side/s.json.zst@{merge[:12]}"}

    (repo / "notes.txt").write_text("nothing secret here\n" * 500)  # 10,000 bytes
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "notes")
    over = subprocess.run(
        [*lint, *rng, "--max-bytes", "5000"],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert over.returncode == 2, over.stderr
    assert "notes.txt@" in over.stderr and "over the lint limit of 5000" in over.stderr
    assert "Traceback" not in over.stderr
