"""Replay throughput over HTTP and HTTPS at 10 to 100,000 interactions, peak RSS, vcrpy.

At each size tapeproxy and `mitmdump --server-replay` replay the same traffic; both run at
once (idle while the other is measured) and are measured alternately, order swapped every
round. vcrpy replays in-process at the sizes where a measurement stays near a minute.
"""

from __future__ import annotations

import time
from typing import Any

from bench.env import MITMDUMP, TAPEPROXY, Env
from bench.procs import Proc, first_response_after
from bench.report import Figure, Report, Target

__all__ = ["run"]

_START_TIMEOUT = 400.0
_VCR_MINUTE = 60.0


_AT_10 = "tapeproxy at 10"
"""At the largest size, a tapeproxy replaying 10 interactions runs beside the other two and
is measured in the same HTTP rounds: the O(1)-lookup figure compares runs made minutes apart
otherwise, and this machine's load drifts more than the effect measured."""

_O1_EXTRA_ROUNDS = 8
"""More HTTP pairs (largest size, then at 10, order swapped each time) after the rounds, for
the O(1)-lookup figure alone: its per-round ratios span 0.75 to 1.05 within one run of the
same build, so it gets the median of 11 pairs rather than 3 (about 30 s more)."""


def run(env: Env, report: Report) -> None:
    """Measure replay at every size; at the largest, tapeproxy also against itself at 10."""
    sizes = [10, 1000] if env.quick else [10, 1000, 10_000, 100_000]
    vcr = _VcrBudget()
    for n in sizes:
        own, (paired, at_10) = _size(
            env, report, n, with_10=n == sizes[-1] and env.tapeproxy_ready()
        )
        vcr.measure(env, report, n, own)
        if at_10:
            report.add(
                Figure(
                    "replay",
                    f"HTTP req/s at {n:,} vs at 10 (O(1) lookup)",
                    "req/s",
                    paired,
                    at_10,
                    peer_name="tapeproxy at 10, same rounds",
                    target=Target(">=", 0.9),
                )
            )


def _targets(env: Env) -> list[str]:
    return [TAPEPROXY, MITMDUMP] if env.tapeproxy_ready() else [MITMDUMP]


def _size(
    env: Env, report: Report, n: int, with_10: bool
) -> tuple[list[float], tuple[list[float], list[float]]]:
    targets = _targets(env)
    env.corpus.prepare(n)  # build the files before anything is timed
    for t in targets:
        env.replay_cmd(t, n, 0)
    start = report.add(
        Figure(
            "replay",
            f"start to first answer at {n:,}",
            "s",
            peer_name="mitmdump",
            note="one start each",
        )
    )
    procs: dict[str, tuple[Proc, int]] = {}
    try:
        for t in targets:
            port = env.new_port()
            proc = env.start(env.replay_cmd(t, n, port), f"replay-{t}-{n}")
            procs[t] = (proc, port)
            _put(start, t, first_response_after(proc, port, _START_TIMEOUT))
        if with_10:
            port = env.new_port()
            proc = env.start(env.replay_cmd(TAPEPROXY, 10, port), "replay-tapeproxy-10-beside")
            procs[_AT_10] = (proc, port)
            first_response_after(proc, port, _START_TIMEOUT)
        return _measure(env, report, n, procs)
    finally:
        for proc, _ in procs.values():
            proc.stop()


def _measure(
    env: Env, report: Report, n: int, procs: dict[str, tuple[Proc, int]]
) -> tuple[list[float], tuple[list[float], list[float]]]:
    """HTTP and HTTPS rounds over the proxies in `procs`; returns tapeproxy's HTTP figures,
    and the HTTP pairs of it and the tapeproxy at 10 beside it (if any)."""
    at_10: list[float] = []
    figs: dict[str, Figure] = {}
    lat: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for scheme, goal in (("http", 2.0), ("https", 1.8)):
        figs[scheme] = report.add(
            Figure(
                "replay",
                f"{scheme.upper()} req/s at {n:,}",
                "req/s",
                peer_name="mitmdump",
                target=Target(">=", goal),
            )
        )
    order = list(procs)
    for r in range(env.rounds):
        for scheme in ("http", "https"):
            for t in order if r % 2 == 0 else order[::-1]:
                if t == _AT_10:
                    if scheme == "http":
                        port = procs[t][1]
                        res = env.load("http://api.bench.test", proxy_port=port, interactions=10)
                        at_10.append(res["rps"])
                    continue
                res = env.load(f"{scheme}://api.bench.test", proxy_port=procs[t][1], interactions=n)
                _put(figs[scheme], t, res["rps"])
                lat.setdefault((t, scheme), []).append((res["p50_ms"], res["p99_ms"]))
    for scheme, fig in figs.items():
        fig.note = "; ".join(
            f"{t} p50/p99 {_med([a for a, _ in v]):.1f}/{_med([b for _, b in v]):.1f} ms"
            for (t, s), v in lat.items()
            if s == scheme
        )
    rss = report.add(
        Figure(
            "replay",
            f"peak RSS at {n:,}",
            "MiB",
            peer_name="mitmdump",
            target=Target("<=", 1.0) if n == 10_000 else None,
        )
    )
    for t, (proc, _) in procs.items():
        if t != _AT_10:
            _put(rss, t, proc.peak_rss_mb())
    own = list(figs["http"].subject)
    paired = list(own)
    if at_10:
        pair = [TAPEPROXY, _AT_10]
        for r in range(_O1_EXTRA_ROUNDS):
            for t in pair if r % 2 else pair[::-1]:
                size = n if t == TAPEPROXY else 10
                res = env.load("http://api.bench.test", proxy_port=procs[t][1], interactions=size)
                (paired if t == TAPEPROXY else at_10).append(res["rps"])
    return own, (paired, at_10)


def _put(fig: Figure, target: str, value: float) -> None:
    (fig.subject if target == TAPEPROXY else fig.peer).append(value)


def _med(values: list[float]) -> float:
    return sorted(values)[len(values) // 2] if values else 0.0


class _VcrBudget:
    """Runs vcrpy while one measurement takes about a minute or less; then stops for good."""

    def __init__(self) -> None:
        self.last_seconds = 0.0
        self.stopped = ""

    def measure(self, env: Env, report: Report, n: int, own: list[float]) -> None:
        fig = report.add(
            Figure(
                "replay",
                f"HTTP req/s at {n:,} vs vcrpy in-process",
                "req/s",
                own,
                peer_name="vcrpy",
            )
        )
        projected = self.last_seconds * 10
        if self.stopped or projected > 2 * _VCR_MINUTE:
            self.stopped = self.stopped or f"projected {projected:.0f} s for one run at {n:,}"
            fig.note = f"vcrpy not run: {self.stopped}"
            return
        rounds = env.rounds if projected <= _VCR_MINUTE else 1
        cassette = env.corpus.vcr(n)
        began = time.perf_counter()
        res: dict[str, Any] = env.load(
            "http://api.bench.test", vcr=str(cassette), interactions=n, warmup=16, repeat=rounds
        )
        loaded = res.get("load_s", 0.0)
        # What one run with its own load would take: the next size is projected from it.
        self.last_seconds = loaded + (time.perf_counter() - began - loaded) / rounds
        fig.peer.extend(res["rps_runs"])
        fig.note = (
            f"{rounds} run(s) after one cassette load of {loaded:.1f} s; one run with its load "
            f"{self.last_seconds:.0f} s; match_on includes body, allow_playback_repeats"
        )
        if self.last_seconds > _VCR_MINUTE:
            self.stopped = f"one run took {self.last_seconds:.0f} s at {n:,}"
