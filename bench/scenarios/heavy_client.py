"""Proxied replay with a heavier client: every answer also parsed into the openai SDK's
`ChatCompletion`, so the client takes a larger share of the two cores (issue 18).

tapeproxy and `mitmdump --server-replay` replay the same 1,000 interactions over HTTP, both
running at once, measured alternately, order swapped every round. Target: >= 2x mitmdump, as
with the lighter client of the `replay` scenario.
"""

from __future__ import annotations

from bench.env import MITMDUMP, TAPEPROXY, Env
from bench.procs import Proc, first_response_after
from bench.report import Figure, Report, Target

__all__ = ["run"]

_N = 1000
_START_TIMEOUT = 400.0


def run(env: Env, report: Report) -> None:
    """Measure HTTP req/s at 1,000 with a parsing client, tapeproxy vs mitmdump."""
    if not env.tapeproxy_ready():
        report.notes.append("heavy_client: tapeproxy is not in this checkout; nothing to measure")
        return
    env.corpus.prepare(_N)
    fig = report.add(
        Figure(
            "heavy_client",
            f"HTTP req/s at {_N:,}, client parses every answer into ChatCompletion",
            "req/s",
            peer_name="mitmdump",
            target=Target(">=", 2.0),
            note="the load client also runs json.loads and ChatCompletion.model_validate",
        )
    )
    procs: dict[str, tuple[Proc, int]] = {}
    try:
        for t in (TAPEPROXY, MITMDUMP):
            port = env.new_port()
            proc = env.start(env.replay_cmd(t, _N, port), f"heavy-{t}")
            procs[t] = (proc, port)
            first_response_after(proc, port, _START_TIMEOUT)
        order = [TAPEPROXY, MITMDUMP]
        for r in range(env.rounds):
            for t in order if r % 2 == 0 else order[::-1]:
                res = env.load(
                    "http://api.bench.test", proxy_port=procs[t][1], interactions=_N, parse=True
                )
                (fig.subject if t == TAPEPROXY else fig.peer).append(res["rps"])
    finally:
        for proc, _ in procs.values():
            proc.stop()
