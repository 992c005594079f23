"""The `lint` and `install-hooks` commands as library functions (the CLI only parses and prints)."""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any, Protocol

from tapeproxy.config import load_config, setting
from tapeproxy.errors import BadInputError, ConfigError
from tapeproxy.redaction.gitblobs import Blob, BlobReader, push_range_blobs, staged_blobs
from tapeproxy.redaction.hooks import install_hooks
from tapeproxy.redaction.lint import LINT_MAX_BYTES, Damaged, Finding, Linter, collect_files
from tapeproxy.redaction.redactor import Redactor
from tapeproxy.redaction.report import render

__all__ = ["ProgressBar", "run_install_hooks", "run_lint"]

_PROGRESS_FROM = 20


class ProgressBar(Protocol):
    """What `run_lint` needs of a progress bar (click's has it)."""

    def update(self, n_steps: int) -> None: ...


ProgressFactory = Callable[[int], AbstractContextManager[Any]]


def run_lint(
    paths: Sequence[Path],
    fmt: str,
    reveal: bool = False,
    staged: bool = False,
    push_range: str | None = None,
    config_file: Path | None = None,
    progress: ProgressFactory | None = None,
    max_bytes: int | None = None,
) -> tuple[str, list[Finding], list[Damaged]]:
    """Lint files (or the git index, or a push range) and render the findings.

    Returns:
        The rendered findings, the findings, and the files that could not be read as what
        their names say (scanned as far as they could be all the same).

    Args:
        progress: makes a progress bar for a number of files; used from 20 files on.

    Raises:
        BadInputError: conflicting options, missing paths, git failures, bad cassettes.
    """
    if staged and push_range is not None:
        raise BadInputError("--staged and --push-range cannot be used together")
    if (staged or push_range is not None) and paths:
        raise BadInputError("give PATHS, or --staged, or --push-range, not several")
    config = load_config(config_file)
    limit = setting("lint_max_bytes", max_bytes, config, LINT_MAX_BYTES)
    try:
        limit = int(limit)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"lint_max_bytes {limit!r}: expected a number of bytes") from e
    linter = Linter(Redactor.from_config(config, report_only=True), max_bytes=limit)
    findings: list[Finding] = []
    items: Sequence[Path | Blob]
    if staged or push_range is not None:
        items = staged_blobs() if staged else push_range_blobs(push_range or "")
    else:
        items = collect_files(list(paths) or [Path(".")])
    make: Any = progress if progress and len(items) >= _PROGRESS_FROM else None
    reader = BlobReader()
    try:
        with make(len(items)) if make else nullcontext() as bar:
            for found, damaged in _lint_all(linter, reader, items):
                findings += found
                linter.damaged += damaged
                if bar is not None:
                    bar.update(1)
    finally:
        reader.close()
    return render(findings, fmt, reveal), findings, linter.damaged


_PARALLEL_FROM = 16
_forked: tuple[Linter, BlobReader] | None = None  # the workers' (set before the pool forks)


def _lint_all(
    linter: Linter, reader: BlobReader, items: Sequence[Path | Blob]
) -> Iterator[tuple[list[Finding], list[Damaged]]]:
    """Each file's (or blob's) findings and damage, in order; on every core when there are
    many.

    Workers are forked (they inherit the linter and its compiled detectors, so they start in
    milliseconds; each reads blobs through a git process of its own); where fork is not
    available, or threads run in this process, one core.
    """
    workers = min(os.cpu_count() or 1, 8, len(items) // _PARALLEL_FROM)
    forkable = "fork" in multiprocessing.get_all_start_methods()
    if workers < 2 or not forkable or threading.active_count() > 1:
        for item in items:
            yield _lint_one(linter, reader, item)
        return
    global _forked
    _forked = (linter, reader)
    try:
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            yield from pool.map(_lint_forked, items, chunksize=8)
    finally:
        _forked = None


def _lint_forked(item: Path | Blob) -> tuple[list[Finding], list[Damaged]]:
    assert _forked is not None, "set before the pool forks"
    return _lint_one(*_forked, item)


def _lint_one(
    linter: Linter, reader: BlobReader, item: Path | Blob
) -> tuple[list[Finding], list[Damaged]]:
    before = len(linter.damaged)
    if isinstance(item, Path):
        found = linter.lint_paths([item])
    else:
        size, data = reader.size_and_data(item.sha, linter.max_bytes)
        if data is None:
            found = []
            linter.over_limit(item.name, size)
        else:
            found = linter.lint_bytes(item.name, data)
    damaged = linter.damaged[before:]
    del linter.damaged[before:]
    return found, damaged


def run_install_hooks(config_file: Path | None = None, repo: Path | None = None) -> str:
    """Install the hooks in the repository of the current directory; a summary to print."""
    config = load_config(config_file)
    cassette_dir = config.get("cassette_dir")
    dirs = (cassette_dir,) if isinstance(cassette_dir, str) and cassette_dir else ()
    report = install_hooks(repo, dirs)
    lines = [f"installed pre-push secret gate: {report.hook}"]
    if report.chained is not None:
        lines.append(f"the existing pre-push hook still runs first: {report.chained}")
    if report.patterns_added:
        lines.append(f"{report.gitattributes}: added {', '.join(report.patterns_added)}")
    lines.append('git config: diff.tapeproxy.textconv = "tapeproxy show" (cached)')
    return "\n".join(lines)
