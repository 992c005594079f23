"""`tapeproxy demo`: record and replay against a built-in fake provider, no keys, no network.

It starts a fake OpenAI-compatible provider on 127.0.0.1 (HTTPS with a throwaway CA), records a
plain and a streamed chat completion through the proxy, stops the provider, replays both from
the cassette, and prints recorded and replayed timing side by side.
"""

from __future__ import annotations

import ssl
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from tapeproxy.fakeprovider import FakeProvider
from tapeproxy.modes import Mode
from tapeproxy.proxy.latency import Latency
from tapeproxy.proxy.runner import ProxyConfig, ProxyRunner
from tapeproxy.testing_ca import ThrowawayCA

__all__ = ["Observed", "run_demo"]

_PROMPT = {"role": "user", "content": "Say hello to the tape"}


@dataclass(frozen=True)
class Observed:
    """What a client saw of one response."""

    status: int
    ttfb_ms: float
    total_ms: float
    pieces: int
    body: bytes


def _call(client: httpx.Client, url: str, stream: bool) -> Observed:
    payload = {"model": "fake-gpt", "messages": [_PROMPT], "stream": stream}
    start = time.perf_counter()
    first = None
    pieces = []
    with client.stream("POST", url, json=payload, headers={"authorization": "Bearer sk-demo"}) as r:
        for piece in r.iter_bytes():
            first = first if first is not None else time.perf_counter()
            pieces.append(piece)
        status = r.status_code
    end = time.perf_counter()
    ttfb = ((first or end) - start) * 1000
    return Observed(status, ttfb, (end - start) * 1000, len(pieces), b"".join(pieces))


def _trusting(ca: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca))


def _session(cassette: Path, mode: Mode, conf: Path, ca: ThrowawayCA, url: str) -> list[Observed]:
    config = ProxyConfig(
        cassette=cassette, mode=mode, confdir=conf, upstream_ca=ca.ca_cert, latency=Latency(1.0)
    )
    with (
        ProxyRunner(config) as runner,
        httpx.Client(proxy=runner.url, verify=_trusting(config.ca_cert()), timeout=30) as client,
    ):
        return [_call(client, url, stream) for stream in (False, True)]


def run_demo(cassette: Path | None = None) -> str:
    """Run the demo; returns the report to print."""
    work = Path(tempfile.mkdtemp(prefix="tapeproxy-demo-"))
    cassette = cassette or work / "demo.json.zst"
    ca = ThrowawayCA.create(work / "upstream-ca")
    provider = FakeProvider(ca.server_context()).start()
    url = provider.url + "/v1/chat/completions"
    try:
        recorded = _session(cassette, "all", work / "conf", ca, url)
    finally:
        provider.stop()
    seen = provider.connections
    replayed = _session(cassette, "none", work / "conf", ca, url)
    lines = [
        f"tapeproxy demo: fake provider at {provider.url}, cassette {cassette}",
        "",
        f"{'request':<18}{'':>3}{'recorded ttfb/total':>22}{'replayed ttfb/total':>22}"
        f"{'pieces':>10}  same bytes",
    ]
    for name, rec, rep in zip(("chat (plain)", "chat (stream)"), recorded, replayed, strict=True):
        lines.append(
            f"{name:<18}{rec.status:>3}{rec.ttfb_ms:>11.0f} /{rec.total_ms:>6.0f} ms"
            f"{rep.ttfb_ms:>11.0f} /{rep.total_ms:>6.0f} ms{rec.pieces:>5}/{rep.pieces:<4}"
            f"  {'yes' if rec.body == rep.body else 'NO'}"
        )
    lines += [
        "",
        f"provider connections during replay: {provider.connections - seen} (it was stopped)",
        f"read the cassette: tapeproxy show {cassette}",
    ]
    return "\n".join(lines)
