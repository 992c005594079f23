"""The files a git gate lints: staged blobs (``--staged``) or blobs added or changed by the
commits of a push (``--push-range``), read straight from git's object store.
"""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path

from tapeproxy.errors import BadInputError
from tapeproxy.redaction.lint import LINTED_SUFFIXES

__all__ = ["git", "push_range_blobs", "staged_blobs"]


def git(args: list[str], cwd: Path | None = None) -> bytes:
    """Run git and return its stdout.

    Raises:
        BadInputError: git is missing or the command failed (its message is included).
    """
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, check=False)
    except OSError as e:
        raise BadInputError(f"cannot run git ({e})") from e
    if done.returncode != 0:
        msg = done.stderr.decode(errors="replace").strip()
        raise BadInputError(f"git {' '.join(args)} failed: {msg}")
    return done.stdout


def staged_blobs(cwd: Path | None = None) -> Iterator[tuple[str, bytes]]:
    """(path, content) of every staged file with a linted suffix."""
    raw = git(["diff", "--cached", "--raw", "-z", "--no-renames", "--diff-filter=ACMR"], cwd)
    for path, sha in _raw_entries(raw):
        yield path, git(["cat-file", "blob", sha], cwd)


def push_range_blobs(rev_range: str, cwd: Path | None = None) -> Iterator[tuple[str, bytes]]:
    """(``path@commit``, content) of each linted blob added or changed by commits in the range.

    Args:
        rev_range: what `git rev-list` accepts, e.g. ``OLD..NEW`` or ``NEW --not --remotes``.
    """
    args = shlex.split(rev_range)
    if not args or any(
        a.startswith("-") and a not in ("--not",) and not a.startswith("--remotes") for a in args
    ):
        raise BadInputError(f"--push-range {rev_range!r}: expected OLD..NEW or NEW --not --remotes")
    commits = git(["rev-list", *args], cwd).decode().split()
    seen: set[str] = set()
    for commit in commits:
        raw = git(
            [
                "diff-tree",
                "-r",
                "-z",
                "--root",
                "--no-commit-id",
                "--no-renames",
                "-m",
                "--diff-filter=ACMR",
                commit,
            ],
            cwd,
        )
        for path, sha in _raw_entries(raw):
            if sha not in seen:
                seen.add(sha)
                yield f"{path}@{commit[:12]}", git(["cat-file", "blob", sha], cwd)


def _raw_entries(raw: bytes) -> Iterator[tuple[str, str]]:
    """(path, new blob sha) from ``--raw -z`` output, linted suffixes only."""
    fields = raw.split(b"\0")
    i = 0
    while i + 1 < len(fields):
        meta, path = fields[i].decode(), fields[i + 1].decode("utf-8", "replace")
        i += 2
        parts = meta.split()
        if len(parts) >= 4 and parts[1] != "160000" and path.endswith(LINTED_SUFFIXES):
            yield path, parts[3]
