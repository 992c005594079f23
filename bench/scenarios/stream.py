"""Streaming fidelity: a recorded SSE answer of 20 events 50 ms apart, replayed and timed.

Errors are measured against the recording: time to first byte against the recorded TTFB,
and each gap between events against the recorded gap, with kernel receive timestamps.
"""

from __future__ import annotations

from bench import corpus, stream
from bench.env import MITMDUMP, TAPEPROXY, Env, wait_listening
from bench.load import percentile
from bench.procs import Proc
from bench.report import Figure, Report, Target

__all__ = ["run"]


def _errors(arrival: stream.Arrival) -> tuple[float, list[float]]:
    """|TTFB error| and |gap error| of each gap, in ms, against the recorded schedule."""
    _, events, offsets = corpus.stream_exchange(0)
    expected = b"".join(events)
    if arrival.body != expected:
        raise RuntimeError(f"streamed body differs from the recording ({len(arrival.body)} bytes)")
    ttfb_error = abs((arrival.first_byte - arrival.sent) * 1000 - corpus.STREAM_TTFB_MS)
    starts, pos = [], 0
    for event in events:
        starts.append(arrival.time_of(pos))
        pos += len(event)
    gaps = [
        abs((starts[k] - starts[k - 1]) * 1000 - (offsets[k] - offsets[k - 1]))
        for k in range(1, len(events))
    ]
    return ttfb_error, gaps


def run(env: Env, report: Report) -> None:
    """Replay the stream `max(rounds, 5)` times with each proxy, alternating."""
    targets = [TAPEPROXY, MITMDUMP] if env.tapeproxy_ready() else [MITMDUMP]
    ttfb = report.add(
        Figure(
            "stream",
            "SSE TTFB error",
            "ms",
            peer_name="mitmdump",
            target=Target("<=", 5.0, of="value"),
        )
    )
    gaps: dict[str, list[float]] = {t: [] for t in targets}
    procs: dict[str, tuple[Proc, int]] = {}
    try:
        for t in targets:
            port = env.new_port()
            procs[t] = (env.start(env.replay_cmd(t, 0, port, stream=True), f"stream-{t}"), port)
        for proc, port in procs.values():
            wait_listening(port, proc)
            stream.fetch(port)  # warm-up, not counted: the first answer pays for imports
        for r in range(max(env.rounds, 5)):
            for t in targets if r % 2 == 0 else targets[::-1]:
                t_err, g_errs = _errors(stream.fetch(procs[t][1]))
                (ttfb.subject if t == TAPEPROXY else ttfb.peer).append(t_err)
                gaps[t] += g_errs
    finally:
        for proc, _ in procs.values():
            proc.stop()
    for q in (50, 99):
        fig = report.add(
            Figure(
                "stream",
                f"SSE per-gap error p{q}",
                "ms",
                peer_name="mitmdump",
                target=Target("<=", 5.0, of="value") if q == 99 else None,
                note=f"pooled over {len(gaps[targets[0]])} gaps (19 per run)",
            )
        )
        for t, values in gaps.items():
            (fig.subject if t == TAPEPROXY else fig.peer).append(percentile(values, q))
    ttfb.note = f"recorded TTFB {corpus.STREAM_TTFB_MS:.0f} ms, then 20 events 50 ms apart"
