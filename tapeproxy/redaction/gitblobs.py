"""The files a git gate lints: staged blobs (``--staged``) or blobs added or changed by the
commits of a push (``--push-range``), read straight from git's object store.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tapeproxy.errors import BadInputError
from tapeproxy.redaction.lint import LINTED_SUFFIXES

__all__ = ["Blob", "BlobReader", "git", "push_range_blobs", "staged_blobs"]


def git(args: list[str], cwd: Path | None = None, stdin: bytes | None = None) -> bytes:
    """Run git (with `stdin` for its input) and return its stdout.

    Raises:
        BadInputError: git is missing or the command failed (its message is included).
    """
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, input=stdin, capture_output=True, check=False
        )
    except OSError as e:
        raise BadInputError(f"cannot run git ({e})") from e
    if done.returncode != 0:
        msg = done.stderr.decode(errors="replace").strip()
        raise BadInputError(f"git {' '.join(args)} failed: {msg}")
    return done.stdout


@dataclass(frozen=True)
class Blob:
    """A blob to lint: the name it is reported under and its object id."""

    name: str
    sha: str


def staged_blobs(cwd: Path | None = None) -> list[Blob]:
    """Every staged file with a linted suffix, named by its path."""
    raw = git(["diff", "--cached", "--raw", "-z", "--no-renames", "--diff-filter=ACMR"], cwd)
    return [Blob(path, sha) for path, sha in _raw_entries(raw.split(b"\0"))]


def push_range_blobs(rev_range: str, cwd: Path | None = None) -> list[Blob]:
    """Each linted blob added or changed by the commits in the range, once, named
    ``path@commit`` (its first commit in `git rev-list` order). One `git diff-tree --stdin`
    reads every commit: a process per commit cost 2-3 ms each.

    Args:
        rev_range: what `git rev-list` accepts, e.g. ``OLD..NEW`` or ``NEW --not --remotes``.
    """
    args = shlex.split(rev_range)
    if not args or any(
        a.startswith("-") and a not in ("--not",) and not a.startswith("--remotes") for a in args
    ):
        raise BadInputError(f"--push-range {rev_range!r}: expected OLD..NEW or NEW --not --remotes")
    commits = git(["rev-list", *args], cwd)
    if not commits.strip():
        return []
    raw = git(
        ["diff-tree", "--stdin", "-r", "-z", "--root", "-m", "--no-renames", "--diff-filter=ACMR"],
        cwd,
        stdin=commits,
    )
    seen: set[str] = set()
    out: list[Blob] = []
    commit = ""
    fields = raw.split(b"\0")
    i = 0
    while i < len(fields):
        if not fields[i].startswith(b":"):  # a commit's id (" (from PARENT)" in a merge's)
            commit = fields[i].decode()[:12]
            i += 1
            continue
        for path, sha in _raw_entries(fields[i : i + 2]):  # an entry, then its path
            if sha not in seen:
                seen.add(sha)
                out.append(Blob(f"{path}@{commit}", sha))
        i += 2
    return out


class BlobReader:
    """Blobs read through one ``git cat-file --batch`` process, started on the first read
    (a process per blob cost 2-3 ms each). Each process that reads starts its own: a forked
    lint worker does not use a pipe its parent holds (its git process ends with the worker,
    whose end closes its input).

    Raises (from `size_and_data`):
        BadInputError: git cannot be run or does not have the blob.
    """

    def __init__(self, cwd: Path | None = None) -> None:
        self.cwd = cwd
        self._proc: subprocess.Popen[bytes] | None = None
        self._pid = 0

    def size_and_data(self, sha: str, limit: int) -> tuple[int, bytes | None]:
        """The blob's size, and its bytes when it is at most `limit` bytes (None: over it;
        what git sends of it is read and dropped, a piece at a time)."""
        proc = self._started()
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(sha.encode("ascii") + b"\n")
        proc.stdin.flush()
        header = proc.stdout.readline().split()
        if len(header) != 3 or header[1] != b"blob":
            got = b" ".join(header[1:]).decode(errors="replace") or "no answer"
            raise BadInputError(f"git cat-file: blob {sha}: {got}")
        size = int(header[2])
        if size > limit:
            left = size + 1  # (and the newline after it)
            while left > 0 and (piece := proc.stdout.read(min(left, 1 << 20))):
                left -= len(piece)
            return size, None
        data = proc.stdout.read(size)
        proc.stdout.read(1)  # the newline after the content
        return size, data

    def close(self) -> None:
        """End the git process (it exits when its input ends)."""
        if self._proc is not None and self._pid == os.getpid():
            assert self._proc.stdin is not None
            self._proc.stdin.close()
            self._proc.wait(timeout=30)
        self._proc = None

    def _started(self) -> subprocess.Popen[bytes]:
        if self._proc is None or self._pid != os.getpid():
            try:
                self._proc = subprocess.Popen(
                    ["git", "cat-file", "--batch"],
                    cwd=self.cwd,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                )
            except OSError as e:
                raise BadInputError(f"cannot run git ({e})") from e
            self._pid = os.getpid()
        return self._proc


def _raw_entries(fields: list[bytes]) -> Iterator[tuple[str, str]]:
    """(path, new blob sha) from the fields of ``--raw -z`` output, linted suffixes only."""
    i = 0
    while i + 1 < len(fields):
        meta, path = fields[i].decode(), fields[i + 1].decode("utf-8", "replace")
        i += 2
        parts = meta.split()
        if len(parts) >= 4 and parts[1] != "160000" and path.endswith(LINTED_SUFFIXES):
            yield path, parts[3]
