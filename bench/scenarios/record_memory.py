"""Memory while recording one large binary answer: tapeproxy against `mitmdump -w`.

A server in this process (`tests.blobserver`) sends 64 MiB of random bytes. Each recorder
(`tapeproxy serve --mode all`, which saves as it goes; `mitmdump -w`, which writes each flow
as it ends) fetches it once for a client (httpx through the proxy) and writes it to disk. The
figure is the peak RSS of the recorder above its own peak at rest, in bodies (64 MiB = 1.0),
and its ratio to mitmdump's. The client's bytes are checked, and so is what the recorder
wrote.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx

from bench.env import MITMDUMP, TAPEPROXY, Env, wait_listening
from bench.report import Figure, Report, Target
from tests.blobserver import serving

__all__ = ["run"]

_SIZE = 64 << 20


def run(env: Env, report: Report) -> None:
    """`rounds` recordings each, tapeproxy and mitmdump alternating."""
    targets = [TAPEPROXY, MITMDUMP] if env.tapeproxy_ready() else [MITMDUMP]
    blob = os.urandom(_SIZE)
    fig = report.add(
        Figure(
            "record_memory",
            "peak RSS recording a 64 MiB binary answer, above the recorder at rest, in bodies",
            "x",
            peer_name="mitmdump -w",
            target=Target("<=", 3.0, of="value"),
        )
    )
    at_rest: dict[str, list[float]] = {t: [] for t in targets}
    with serving(blob) as base:
        url = base + "/blob"
        for r in range(env.rounds):
            for t in targets if r % 2 == 0 else targets[::-1]:
                rest, peak = _once(env, t, url, blob, r)
                at_rest[t].append(rest)
                (fig.subject if t == TAPEPROXY else fig.peer).append((peak - rest) / (_SIZE >> 20))
    rest_note = ", ".join(f"{t} {min(v):.0f} MiB" for t, v in at_rest.items() if v)
    fig.note = f"peak RSS at rest: {rest_note}; the client's bytes and the file checked"


def _once(env: Env, target: str, url: str, blob: bytes, round_no: int) -> tuple[float, float]:
    """(peak RSS at rest, peak RSS once the answer is on disk), in MiB."""
    path = env.record_path(target, f"record-memory-{target}-{round_no}")
    port = env.new_port()
    with env.start(env.record_cmd(target, path, port), f"record-memory-{target}") as proc:
        wait_listening(port, proc)
        time.sleep(0.5)  # (the recorder settles after it starts listening)
        rest = proc.peak_rss_mb()
        with httpx.Client(proxy=f"http://127.0.0.1:{port}", timeout=120) as client:
            got = client.get(url).content
        if got != blob:
            raise RuntimeError(f"record_memory: {target} gave the client other bytes")
        _wait_written(path, proc.alive)
        peak = proc.peak_rss_mb()
    _check(target, path, blob)
    return rest, peak


def _wait_written(path: Path, alive: object, timeout: float = 60.0) -> None:
    """Until the recorder has written the answer (bounded)."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if path.exists() and path.stat().st_size > _SIZE // 2:
            time.sleep(1.0)  # (a save in progress finishes)
            return
        time.sleep(0.1)
    raise RuntimeError(f"record_memory: nothing written to {path.name} in {timeout:.0f} s")


def _check(target: str, path: Path, blob: bytes) -> None:
    if target != TAPEPROXY:
        return
    from tapeproxy.cassettes import store

    (ix,) = store.load(path).interactions
    if ix.response is None or ix.response.body is None or ix.response.body.to_bytes() != blob:
        raise RuntimeError("record_memory: the cassette does not hold the answer's bytes")
