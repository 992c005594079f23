"""Lint throughput: `tapeproxy lint DIR` over 1,000 cassettes of 10 interactions each."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from bench.env import Env
from bench.procs import venv_bin
from bench.report import Figure, Report

__all__ = ["run"]

_CASSETTES = 1000
_PER = 10


def run(env: Env, report: Report) -> None:
    """Time `tapeproxy lint` over the folder `rounds` times (no peer: figures stand alone)."""
    lint = [venv_bin("tapeproxy"), "lint"]
    if subprocess.run([*lint, "--help"], capture_output=True, check=False).returncode != 0:
        env.notes.append("lint: `tapeproxy lint` is not in this checkout yet; not measured")
        return
    folder = _cassettes(env)
    size = sum(p.stat().st_size for p in folder.iterdir()) / 1024 / 1024
    fig = report.add(Figure("lint", f"lint {_CASSETTES:,} cassettes", "cassettes/s"))
    codes = set()
    for _ in range(env.rounds):
        began = time.perf_counter()
        done = subprocess.run([*lint, str(folder)], capture_output=True, timeout=300, check=False)
        fig.subject.append(_CASSETTES / (time.perf_counter() - began))
        codes.add(done.returncode)
    fig.note = (
        f"{_CASSETTES * _PER:,} interactions, {size:.1f} MiB compressed; exit codes "
        f"{sorted(codes)} (0 = no findings; the traffic holds no secrets)"
    )
    if codes - {0}:
        tail = done.stdout.decode(errors="replace").splitlines()[:5]
        env.notes.append("lint reported findings on clean traffic: " + " | ".join(tail))


def _cassettes(env: Env) -> Path:
    folder = env.corpus.folder / f"lint-{_CASSETTES}"
    if folder.exists() and len(list(folder.iterdir())) == _CASSETTES:
        return folder
    from bench.corpus import build_tapeproxy

    folder.mkdir(parents=True, exist_ok=True)
    for c in range(_CASSETTES):
        build_tapeproxy(folder / f"c{c:04d}.json.zst", range(c * _PER, (c + 1) * _PER))
    return folder
