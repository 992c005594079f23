"""Figures, their medians and ratios to the peer of the same run, and `RESULTS.md`.

A `Figure` holds one value per interleaved round for tapeproxy and for its peer; its ratio is
the median of the per-round ratios (each round measured both at nearly the same moment), and
it is checked against the issue's target when it has one.
"""

from __future__ import annotations

import datetime
import os
import platform
import statistics
import subprocess
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

__all__ = ["Figure", "Report", "Target"]


@dataclass(frozen=True, slots=True)
class Target:
    """A goal: `value` compared with `op` ('>=' or '<='); `of` is 'ratio' or 'value'."""

    op: str
    value: float
    of: str = "ratio"

    def met(self, figure: Figure) -> bool | None:
        got = figure.ratio() if self.of == "ratio" else figure.median()
        if got is None:
            return None
        return got >= self.value if self.op == ">=" else got <= self.value

    def text(self) -> str:
        return f"{'ratio' if self.of == 'ratio' else 'value'} {self.op} {self.value:g}"


@dataclass
class Figure:
    """One measured quantity: per-round values of tapeproxy and of the peer."""

    scenario: str
    name: str
    unit: str
    subject: list[float] = field(default_factory=list)
    peer: list[float] = field(default_factory=list)
    peer_name: str = ""
    subject_name: str = "tapeproxy"
    target: Target | None = None
    note: str = ""

    def median(self) -> float | None:
        return statistics.median(self.subject) if self.subject else None

    def peer_median(self) -> float | None:
        return statistics.median(self.peer) if self.peer else None

    def ratio(self) -> float | None:
        pairs = [(s, p) for s, p in zip(self.subject, self.peer, strict=False) if p]
        if not pairs:
            return None
        return statistics.median(s / p for s, p in pairs)


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "–"
    if abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {unit}".rstrip()


def _fmt_ratio(value: float | None) -> str:
    # Three decimals: a target such as 1/8 = 0.125 must be told from 0.12.
    return "–" if value is None else f"{value:.3f}"


class Report:
    """Collects figures and notes of a run and writes them as Markdown."""

    def __init__(self, argv: list[str]) -> None:
        self.argv = argv
        self.started = datetime.datetime.now(datetime.UTC)
        self.figures: list[Figure] = []
        self.notes: list[str] = []
        self.sections: list[list[str]] = []  # Markdown of a scenario's own tables
        self.scenario_seconds: dict[str, float] = {}

    def add(self, figure: Figure) -> Figure:
        self.figures.append(figure)
        return figure

    def markdown(self) -> str:
        lines = ["# tapeproxy benchmarks", "", *self._header(), ""]
        lines += [
            "## Targets of issue 7",
            "",
            "| scenario | figure | tapeproxy | peer | ratio | target | met |",
            "|---|---|---|---|---|---|---|",
        ]
        for f in self.figures:
            if f.target is None:
                continue
            met = f.target.met(f)
            mark = "–" if met is None else ("yes" if met else "**no**")
            lines.append(
                f"| {f.scenario} | {f.name} | {_fmt(f.median(), f.unit)} | "
                f"{_fmt(f.peer_median(), f.unit)} {f.peer_name} | {_fmt_ratio(f.ratio())} | "
                f"{f.target.text()} | {mark} |"
            )
        lines += ["", "## All figures", ""]
        for scenario in dict.fromkeys(f.scenario for f in self.figures):
            took = self.scenario_seconds.get(scenario)
            lines += [f"### {scenario}" + (f" ({took:.0f} s)" if took else ""), ""]
            lines += [
                "| figure | measured (runs) | peer (runs) | ratio | note |",
                "|---|---|---|---|---|",
            ]
            for f in (f for f in self.figures if f.scenario == scenario):
                runs = ", ".join(_fmt(v) for v in f.subject)
                peer_runs = ", ".join(_fmt(v) for v in f.peer)
                lines.append(
                    f"| {f.name} | {f.subject_name} **{_fmt(f.median(), f.unit)}** ({runs}) | "
                    f"{f.peer_name} **{_fmt(f.peer_median(), f.unit)}** ({peer_runs}) | "
                    f"{_fmt_ratio(f.ratio())} | {f.note} |"
                )
            lines.append("")
        for section in self.sections:
            lines += section
        if self.notes:
            lines += ["## Notes", "", *(f"- {n}" for n in self.notes), ""]
        return "\n".join(lines)

    def _header(self) -> list[str]:
        took = (datetime.datetime.now(datetime.UTC) - self.started).total_seconds()
        return [
            f"Run `python -m bench {' '.join(self.argv)}` on "
            f"{self.started:%Y-%m-%d %H:%M} UTC, {took:.0f} s in all.",
            "",
            f"- machine: {_cpu()}, {os.cpu_count()} cores, {_mem_gib():.0f} GiB, "
            f"{platform.system()} {platform.release()}; load average at the end "
            f"{', '.join(f'{x:.2f}' for x in os.getloadavg())} (the machine is shared)",
            f"- Python {platform.python_version()}; " + ", ".join(_versions()),
            "- each figure is the median of the interleaved runs shown (tapeproxy and its "
            "peer alternate, order swapped every round); a ratio is the median of the "
            "per-run ratios tapeproxy / peer; every answer is checked byte for byte.",
        ]


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _mem_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return 0.0


def _versions() -> list[str]:
    out = []
    for name in ("tapeproxy", "mitmproxy", "vcrpy", "aiohttp", "zstandard"):
        try:
            version = metadata.version(name)
        except metadata.PackageNotFoundError:
            version = "absent"
        out.append(f"{name} {version}")
    rev = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    if rev:
        out[0] += f" (commit {rev})"
    out[0] += f", scanning core {_core()}"
    return out


def _core() -> str:
    """How the measured tapeproxy runs its scanner (`tapeproxy.native`): compiled, or plain
    Python (no compiler when it was installed, or sources edited since)."""
    probe = "import tapeproxy.redaction, tapeproxy.native as n; print(n.compiled())"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=False, timeout=60
    )
    return {"True": "compiled (mypyc)", "False": "plain Python"}.get(done.stdout.strip(), "?")
