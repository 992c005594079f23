"""Where the two sides of a diff come from: two cassette files, or every cassette that
changed between a git ref and the work tree (the old side read with ``git show REF:path``)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tapeproxy.cassettes.model import Cassette
from tapeproxy.cassettes.store import load, loads
from tapeproxy.errors import BadInputError
from tapeproxy.review.diff import DiffReport, Thresholds, diff_cassettes

__all__ = ["CASSETTE_PATHSPEC", "changed_cassettes", "diff_files", "diff_git"]

CASSETTE_PATHSPEC = "*.json.zst"
"""The git pathspec of cassette files (``*`` also matches ``/`` in git pathspecs)."""


def diff_files(old: str | Path, new: str | Path, thresholds: Thresholds) -> DiffReport:
    """Compare two cassette files.

    Raises:
        CassetteError: either file is missing or not a valid cassette.
    """
    from tapeproxy.review.stubview import load_any  # stubs files compare like cassettes

    result = diff_cassettes(str(new), load_any(old), load_any(new), thresholds.for_path(str(new)))
    return DiffReport((result,))


def diff_git(ref: str, thresholds: Thresholds, cwd: Path | None = None) -> DiffReport:
    """Compare every cassette changed between `ref` and the work tree (untracked ones too).

    Raises:
        BadInputError: not inside a git repository, or `ref` is not a known revision.
        CassetteError: one side of a changed cassette is not a valid cassette.
    """
    top = Path(_git(["rev-parse", "--show-toplevel"], cwd).decode().strip())
    results = []
    for path in changed_cassettes(ref, top):
        old = _old_side(ref, path, top)
        new_file = top / path
        new = load(new_file) if new_file.exists() else None
        if old is None and new is None:
            continue
        results.append(diff_cassettes(path, old, new, thresholds.for_path(path)))
    return DiffReport(tuple(r for r in results if r.interactions or r.timing_only))


def changed_cassettes(ref: str, top: Path) -> list[str]:
    """Repository-relative paths of cassettes that differ between `ref` and the work tree."""
    try:
        _git(["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], top)
    except BadInputError as e:
        raise BadInputError(
            f"{ref!r} is not a commit in {top}; fetch it first (e.g. `git fetch origin main`)"
        ) from e
    tracked = _git(["diff", "--name-only", "--no-renames", "-z", ref, "--", CASSETTE_PATHSPEC], top)
    untracked = _git(
        ["ls-files", "--others", "--exclude-standard", "-z", "--", CASSETTE_PATHSPEC], top
    )
    names = {n.decode() for n in (tracked + untracked).split(b"\0") if n}
    return sorted(names)


def _old_side(ref: str, path: str, top: Path) -> Cassette | None:
    listed = _git(["ls-tree", "-z", "--name-only", ref, "--", path], top)
    if not listed:
        return None
    return loads(_git(["show", f"{ref}:{path}"], top), source=f"{ref}:{path}")


def _git(args: list[str], cwd: Path | None) -> bytes:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, check=False)
    except OSError as e:
        raise BadInputError(f"cannot run git ({e}); `diff --git` needs git on PATH") from e
    if done.returncode != 0:
        reason = done.stderr.decode(errors="replace").strip() or f"exit {done.returncode}"
        raise BadInputError(f"git {args[0]} failed in {cwd or Path.cwd()}: {reason}")
    return done.stdout
