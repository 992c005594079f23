"""`python -m bench`: run the scenarios, write the results with machine, versions and date.

A full run (every scenario, not --quick) writes bench/RESULTS.md; a partial one writes
bench/out/RESULTS.md so that development runs never overwrite the published figures.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from pathlib import Path

from bench.env import Env
from bench.report import Report
from bench.scenarios import SCENARIOS

__all__ = ["main"]

_HERE = Path(__file__).parent
_BUDGET_S = 570.0


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument(
        "--only", default="", help=f"comma-separated scenarios of: {','.join(SCENARIOS)}"
    )
    p.add_argument("--quick", action="store_true", help="sizes up to 1,000, shorter runs")
    p.add_argument("--rounds", type=int, default=3, help="interleaved runs per figure (>= 3)")
    p.add_argument("--seconds", type=float, help="time bound of one load measurement")
    p.add_argument("--out", type=Path, default=_HERE / "out", help="work folder (git-ignored)")
    p.add_argument("--results", type=Path, help="where to write the Markdown results")
    args = p.parse_args(argv)
    unknown = set(filter(None, args.only.split(","))) - set(SCENARIOS)
    if unknown:
        p.error(f"unknown scenario(s) {', '.join(sorted(unknown))}; known: {', '.join(SCENARIOS)}")
    if args.rounds < 3:
        p.error("--rounds must be at least 3 (each figure is a median of interleaved runs)")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the selected scenarios within the time budget; 0 when every scenario ran."""
    argv = sys.argv[1:] if argv is None else argv
    args = _parse(argv)
    chosen = [s for s in SCENARIOS if not args.only or s in args.only.split(",")]
    seconds = args.seconds or (1.0 if args.quick else 2.0)
    env = Env(args.out, quick=args.quick, rounds=args.rounds, seconds=seconds)
    report = Report(argv)
    if not env.tapeproxy_ready():
        report.notes.append("tapeproxy's proxy is not in this checkout: peers measured alone")
    failed = 0
    began = time.perf_counter()
    for name in chosen:
        if time.perf_counter() - began > _BUDGET_S:
            report.notes.append(f"{name}: skipped, the run's {_BUDGET_S:.0f} s budget is spent")
            continue
        print(f"[bench] {name} ...", flush=True)
        start = time.perf_counter()
        try:
            SCENARIOS[name](env, report)
        except Exception as e:
            failed += 1
            report.notes.append(f"{name}: failed: {type(e).__name__}: {e}")
            traceback.print_exc()
        report.scenario_seconds[name] = time.perf_counter() - start
        print(f"[bench] {name} done in {report.scenario_seconds[name]:.0f} s", flush=True)
    report.notes += env.notes
    full = not args.only and not args.quick
    results = args.results or (_HERE / "RESULTS.md" if full else args.out / "RESULTS.md")
    results.write_text(report.markdown(), encoding="utf-8")
    print(f"[bench] results in {results}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
