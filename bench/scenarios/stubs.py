"""Stub answers per second through `serve`, beside replayed answers in the same rounds.

Two `tapeproxy serve` processes run at once: one replays the benchmark cassette, one answers
every request from a stubs file (no cassette); they are measured alternately, order swapped
every round. Plain answers (1,000 distinct requests) and streamed ones (one streamed request
repeated), both with timing off. The stubs answer with the recorded answers' text.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from bench import payloads
from bench.corpus import stream_exchange
from bench.env import TAPEPROXY, Env, wait_listening
from bench.procs import Proc, first_response_after
from bench.report import Figure, Report, Target
from tapeproxy.providers.read import extract

__all__ = ["run"]

_START_TIMEOUT = 120.0
_STUB = "stub"


def _stubs_file(folder: Path) -> Path:
    """Stub rules whose answers have the recorded answers' text: the plain one of request 0
    and the streamed one (so both sides send answers of the same size)."""
    plain = extract(payloads.exchange(0, 1500).body)
    streamed = extract(b"".join(stream_exchange(0)[1]))
    assert plain is not None and streamed is not None
    rules = [
        {
            "match": {"endpoint": "chat", "body": {"stream": True}},
            "answer": {"text": streamed.text},
        },
        {"match": {"endpoint": "chat"}, "answer": {"text": plain.text}},
    ]
    path = folder / "bench-stubs.yaml"
    path.write_text(yaml.safe_dump(rules), encoding="utf-8")
    return path


def run(env: Env, report: Report) -> None:
    """Measure stubbed vs replayed answers per second, plain and streamed."""
    if not env.tapeproxy_ready():
        report.notes.append("stubs: tapeproxy is not in this checkout; nothing to measure")
        return
    stubs = _stubs_file(env.out)
    for streamed in (False, True):
        n = 1 if streamed else 1000
        env.corpus.prepare(n)
        procs: dict[str, tuple[Proc, int]] = {}
        try:
            for name in (TAPEPROXY, _STUB):
                port = env.new_port()
                cmd = env.replay_cmd(TAPEPROXY, n, port, stream=streamed)
                if name == _STUB:
                    at = cmd.index("--cassette")
                    cmd[at + 1] = str(env.out / "no-cassette.json.zst")
                    cmd += ["--stubs", str(stubs)]
                at = cmd.index("--latency")
                cmd[at + 1] = "none"
                proc = env.start(cmd, f"stubs-{name}-{'stream' if streamed else 'plain'}")
                procs[name] = (proc, port)
                if name == _STUB or streamed:  # not the plain recorded answer: wait for the port
                    wait_listening(port, proc, _START_TIMEOUT)
                else:
                    first_response_after(proc, port, _START_TIMEOUT)
            fig = report.add(
                Figure(
                    "stubs",
                    f"{'streamed' if streamed else 'plain'} answers/s, stubbed vs replayed",
                    "req/s",
                    subject_name="stubbed",
                    peer_name="replayed (same build)",
                    target=Target(">=", 0.9),
                    note="timing off; HTTP; concurrency 16",
                )
            )
            order = [_STUB, TAPEPROXY]
            for r in range(env.rounds):
                for name in order if r % 2 == 0 else order[::-1]:
                    res = env.load(
                        "http://api.bench.test",
                        proxy_port=procs[name][1],
                        interactions=n,
                        no_check=True,
                        stream=streamed,
                    )
                    if res["errors"]:
                        raise RuntimeError(f"{name}: {res['errors']} errors: {res['first_error']}")
                    (fig.subject if name == _STUB else fig.peer).append(res["rps"])
        finally:
            for proc, _ in procs.values():
                proc.stop()
