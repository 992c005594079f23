"""Startup: from process start to the first correct replayed answer, at 10,000 interactions."""

from __future__ import annotations

from bench.env import MITMDUMP, TAPEPROXY, Env
from bench.procs import first_response_after
from bench.report import Figure, Report, Target

__all__ = ["run"]


def run(env: Env, report: Report) -> None:
    """Start each proxy `rounds` times, alternating, and time its first replayed answer."""
    n = 1000 if env.quick else 10_000
    targets = [TAPEPROXY, MITMDUMP] if env.tapeproxy_ready() else [MITMDUMP]
    for t in targets:
        # One untimed start each first: it builds the files and, for tapeproxy, fills its
        # bytecode cache as any first run on a machine does; then only warm starts are timed.
        port = env.new_port()
        with env.start(env.replay_cmd(t, n, port), f"startup-{t}-warmup") as proc:
            first_response_after(proc, port, 400.0)
    fig = report.add(
        Figure(
            "startup",
            f"start to first replayed answer at {n:,}",
            "s",
            peer_name="mitmdump",
            target=Target("<=", 0.2),
        )
    )
    for r in range(env.rounds):
        for t in targets if r % 2 == 0 else targets[::-1]:
            port = env.new_port()
            with env.start(env.replay_cmd(t, n, port), f"startup-{t}") as proc:
                took = first_response_after(proc, port, 400.0)
            (fig.subject if t == TAPEPROXY else fig.peer).append(took)
