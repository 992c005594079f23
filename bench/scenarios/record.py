"""Recording throughput: tapeproxy (redaction on) against `mitmdump -w`, through the fake upstream.

Each measurement starts a fresh recorder, sends distinct requests carrying a fake credential
at concurrency 16, stops it (tapeproxy saves on exit; that time is reported apart) and checks
what was written: every request recorded, the credential nowhere in the cassette.
"""

from __future__ import annotations

import time
from pathlib import Path

from bench.env import MITMDUMP, TAPEPROXY, Env, wait_listening
from bench.load import fake_secret
from bench.report import Figure, Report, Target

__all__ = ["run"]


def run(env: Env, report: Report) -> None:
    """Record over HTTP and HTTPS, `rounds` times each, tapeproxy and mitmdump alternating."""
    targets = [TAPEPROXY, MITMDUMP] if env.tapeproxy_ready() else [MITMDUMP]
    saves: list[float] = []
    with env.upstream() as up:
        for scheme, port in (("http", up.http), ("https", up.https)):
            fig = report.add(
                Figure(
                    "record",
                    f"record {scheme.upper()} req/s",
                    "req/s",
                    peer_name="mitmdump -w",
                    target=Target(">=", 1.0),
                )
            )
            for r in range(env.rounds):
                for t in targets if r % 2 == 0 else targets[::-1]:
                    rps, saved = _once(env, t, f"{scheme}://127.0.0.1:{port}", r)
                    (fig.subject if t == TAPEPROXY else fig.peer).append(rps)
                    if t == TAPEPROXY:
                        saves.append(saved)
            fig.note = "distinct requests with a fake credential header, 16 clients"
    if saves:
        report.add(
            Figure(
                "record",
                "tapeproxy save on exit",
                "s",
                sorted(saves),
                note="SIGINT to exit, cassette of all recorded requests",
            )
        )


def _once(env: Env, target: str, url: str, round_no: int) -> tuple[float, float]:
    path = env.record_path(target, f"record-{target}-{round_no}-{url.split(':')[0]}")
    port = env.new_port()
    with env.start(env.record_cmd(target, path, port), f"record-{target}") as proc:
        wait_listening(port, proc)
        res = env.load(url, proxy_port=port, unique=True, auth=True, warmup=32)
        began = time.perf_counter()
        code = proc.stop(timeout=120)
        saved = time.perf_counter() - began
    if code not in (0, None) and target == MITMDUMP:
        env.notes.append(f"mitmdump -w exited with {code}")
    _check(env, target, path, res["requests"] + 32)
    return res["rps"], saved


def _check(env: Env, target: str, path: Path, sent: int) -> None:
    if not path.exists():
        env.notes.append(f"record: {target} wrote nothing to {path.name}")
        return
    if target != TAPEPROXY:
        return
    from tapeproxy.cassettes import store

    raw = store.decompress(path.read_bytes(), source=str(path))
    cassette = store.load(path)
    if len(cassette.interactions) != sent:
        env.notes.append(
            f"record: tapeproxy kept {len(cassette.interactions)} of {sent} requests ({path.name})"
        )
    if fake_secret().encode() in raw:
        env.notes.append(f"record: the fake credential is in {path.name} (redaction failed)")
