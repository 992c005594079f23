"""Routed (base-URL) replay vs proxied replay, one `tapeproxy serve`, the same cassette.

One process replays the 1,000-interaction corpus with timing off and a route `bench` to the
corpus host. Three ways in, measured alternately, order swapped every round, every answer
checked: through the proxy (HTTP_PROXY, as `replay` figures are measured), by base URL on the
routes' own listener (the address `serve` prints for the SDK variables), and by base URL on the
proxy's listener (as a container reaching `http://tapeproxy:8080/bench` does). Target (issue
18): routed >= 3x proxied, set when proxied replay went through mitmproxy's engine; since the
proxy's front (2026-12-06) answers proxied hits too, all three run at about the same rate.
"""

from __future__ import annotations

import re

from bench.env import TAPEPROXY, Env
from bench.procs import first_response_after
from bench.report import Figure, Report, Target

__all__ = ["run"]

_START_TIMEOUT = 120.0
_N = 1000
_HOST = "http://api.bench.test"
_ROUTE = "bench"
_FAST = re.compile(rb"OPENAI_BASE_URL=http://127\.0\.0\.1:(\d+)/openai")


def run(env: Env, report: Report) -> None:
    """Measure routed vs proxied replay req/s."""
    if not env.tapeproxy_ready():
        report.notes.append("routes: tapeproxy is not in this checkout; nothing to measure")
        return
    env.corpus.prepare(_N)
    port = env.new_port()
    cmd = [*env.replay_cmd(TAPEPROXY, _N, port), "--route", f"{_ROUTE}={_HOST}"]
    proc = env.start(cmd, "routes-serve")
    try:
        first_response_after(proc, port, _START_TIMEOUT)
        this_run = proc.log.read_bytes().rpartition(b"\n$ ")[2]  # the log is appended to
        found = _FAST.search(this_run)
        if found is None:
            raise RuntimeError(f"serve printed no routes address:\n{proc.tail()}")
        fast_port = int(found.group(1))
        fast = report.add(
            Figure(
                "routes",
                f"routed req/s at {_N:,} vs proxied, same process",
                "req/s",
                subject_name="routed (routes' listener)",
                peer_name="proxied (HTTP_PROXY)",
                target=Target(">=", 3.0),
                note="HTTP; timing off; concurrency 16; every answer checked",
            )
        )
        engine = report.add(
            Figure(
                "routes",
                f"routed on the proxy's own listener req/s at {_N:,} vs proxied",
                "req/s",
                subject_name="routed (proxy's listener)",
                peer_name="proxied (HTTP_PROXY)",
                note="the path of a fixed-port setup: the proxy's front, no CONNECT",
            )
        )
        ways = ["proxied", "fast", "engine"]
        for r in range(env.rounds):
            got: dict[str, float] = {}
            for way in ways if r % 2 == 0 else ways[::-1]:
                if way == "proxied":
                    res = env.load(_HOST, proxy_port=port, interactions=_N)
                else:
                    at = fast_port if way == "fast" else port
                    res = env.load(f"http://127.0.0.1:{at}/{_ROUTE}", interactions=_N)
                got[way] = res["rps"]
            fast.subject.append(got["fast"])
            fast.peer.append(got["proxied"])
            engine.subject.append(got["engine"])
            engine.peer.append(got["proxied"])
    finally:
        proc.stop()
