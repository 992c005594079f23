"""Replay throughput with `--faults` of 0 % beside replay without the option, in the same rounds.

Two `tapeproxy replay`-style servers run at once on the benchmark cassette (1,000 plain
interactions, timing off): one with `--faults 429=0%,reset=0%` (every request goes through the
fault draw, none fails), one without. They are measured alternately, order swapped every round,
and every answer is checked byte for byte: the fault decision must add no measurable cost.
"""

from __future__ import annotations

from bench.env import TAPEPROXY, Env
from bench.procs import Proc, first_response_after
from bench.report import Figure, Report, Target

__all__ = ["run"]

_START_TIMEOUT = 120.0
_FAULTED = "faults-0%"
_N = 1000


def run(env: Env, report: Report) -> None:
    """Measure replayed answers per second with a 0 % fault draw and without one."""
    if not env.tapeproxy_ready():
        report.notes.append("faults: tapeproxy is not in this checkout; nothing to measure")
        return
    env.corpus.prepare(_N)
    procs: dict[str, tuple[Proc, int]] = {}
    try:
        for name in (TAPEPROXY, _FAULTED):
            port = env.new_port()
            cmd = env.replay_cmd(TAPEPROXY, _N, port)
            cmd[cmd.index("--latency") + 1] = "none"
            if name == _FAULTED:
                cmd += ["--faults", "429=0%,reset=0%"]
            proc = env.start(cmd, f"faults-{name}")
            procs[name] = (proc, port)
            first_response_after(proc, port, _START_TIMEOUT)
        fig = report.add(
            Figure(
                "faults",
                "replayed answers/s, --faults 0% vs no --faults",
                "req/s",
                subject_name="with --faults 0%",
                peer_name="without (same build)",
                target=Target(">=", 0.95),
                note="timing off; HTTP; concurrency 16; every body checked",
            )
        )
        order = [_FAULTED, TAPEPROXY]
        for r in range(env.rounds):
            for name in order if r % 2 == 0 else order[::-1]:
                res = env.load("http://api.bench.test", proxy_port=procs[name][1], interactions=_N)
                if res["errors"] or res["wrong"]:
                    raise RuntimeError(f"{name}: {res['errors']} errors: {res['first_error']}")
                (fig.subject if name == _FAULTED else fig.peer).append(res["rps"])
    finally:
        for proc, _ in procs.values():
            proc.stop()
