"""Cassette size: the same interactions as a tapeproxy cassette, vcrpy YAML, mitmdump flows."""

from __future__ import annotations

from bench.env import Env
from bench.report import Figure, Report, Target

__all__ = ["run"]


def run(env: Env, report: Report) -> None:
    """Compare file sizes at 10 and 1,000 interactions (deterministic: one measurement)."""
    for n, goal in ((10, 1 / 5), (1000, 1 / 8)):
        tp = env.corpus.tapeproxy(n).stat().st_size / 1024
        vcr = env.corpus.vcr(n).stat().st_size / 1024
        flows = env.corpus.mitm(n).stat().st_size / 1024
        report.add(
            Figure(
                "size",
                f"cassette at {n:,} interactions",
                "KiB",
                [tp],
                [vcr],
                peer_name="vcrpy YAML",
                target=Target("<=", goal),
                note=f"mitmdump flow file {flows:,.0f} KiB; files are deterministic, so "
                "one measurement",
            )
        )
