"""Added latency at one client: p50 through the replaying proxy minus p50 going direct."""

from __future__ import annotations

from bench.env import MITMDUMP, TAPEPROXY, Env
from bench.procs import Proc, first_response_after
from bench.report import Figure, Report, Target

__all__ = ["run"]


def run(env: Env, report: Report) -> None:
    """One sequential client, 10 interactions: direct, tapeproxy and mitmdump, alternating."""
    n = 10
    targets = [TAPEPROXY, MITMDUMP] if env.tapeproxy_ready() else [MITMDUMP]
    fig = report.add(
        Figure(
            "latency",
            "added latency p50, one client",
            "ms",
            peer_name="mitmdump",
            target=Target("<=", 1.0, of="value"),
        )
    )
    fig99 = report.add(
        Figure("latency", "added latency p99, one client", "ms", peer_name="mitmdump")
    )
    direct: list[float] = []
    procs: dict[str, tuple[Proc, int]] = {}
    opts = {"interactions": n, "concurrency": 1, "count": 1000, "warmup": 50, "check": False}
    with env.upstream() as up:
        try:
            for t in targets:
                port = env.new_port()
                procs[t] = (env.start(env.replay_cmd(t, n, port), f"latency-{t}"), port)
                first_response_after(procs[t][0], port, 60.0)
            for r in range(env.rounds):
                base = env.load(f"http://127.0.0.1:{up.http}", **opts)
                direct.append(base["p50_ms"])
                for t in targets if r % 2 == 0 else targets[::-1]:
                    res = env.load("http://api.bench.test", proxy_port=procs[t][1], **opts)
                    for f, key in ((fig, "p50_ms"), (fig99, "p99_ms")):
                        (f.subject if t == TAPEPROXY else f.peer).append(res[key] - base[key])
        finally:
            for proc, _ in procs.values():
                proc.stop()
    fig.note = f"direct p50 {sorted(direct)[len(direct) // 2]:.3f} ms; 1000 sequential requests"
