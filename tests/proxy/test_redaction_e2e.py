"""Fake secrets of every format, sent through a real proxy in every placement, leave no trace
in the recorded cassette, and replaying the same requests still hits (issue 4, acceptance 2).

Placements: credential-named and other request headers, URL query (credential-named and
plain parameters) and path, ``user:password@`` URLs, nested JSON, JSON inside JSON strings,
form and base64 bodies, and the fake provider echoing the key back: in a JSON answer, in an
SSE stream word by word, and in an SSE stream cut into fixed-size pieces so the key spans
several events. httpx never puts a URL's userinfo on the wire: it turns it into an
``Authorization: Basic`` header, which is what the proxy sees and the cassette would hold.
"""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import httpx

from tapeproxy.cassettes import store
from tapeproxy.fakeprovider import FakeProvider
from tapeproxy.testing_ca import ThrowawayCA
from tests.proxy.conftest import ProxyFactory, client_for, written_bytes
from tests.redaction.corpus import FORMATS, Fmt

SEED = 4242
CHAT = "/v1/chat/completions"
ENDPOINTS = ("/v1/chat/completions", "/v1/responses", "/v1/messages")
MULTILINE = ("pem-rsa", "pem-openssh")  # cannot go in a header or a URL path


@dataclass
class Call:
    """One request to send, the secret it carries and the placement it exercises."""

    fmt: str
    placement: str
    secret: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    query: str = ""
    userinfo: str = ""
    json: Any = None
    content: bytes | None = None
    split: bool = False  # the answer streams the secret across several events
    fragments: list[str] = field(default_factory=list)  # its pieces, one per event, when split

    def url(self, base: str) -> str:
        if self.userinfo:
            base = base.replace("://", f"://{self.userinfo}@", 1)
        return base + self.path + (f"?{self.query}" if self.query else "")

    def send(self, client: httpx.Client, base: str) -> httpx.Response:
        headers = {"x-fake-gap-ms": "0", **self.headers}
        if self.json is not None:
            return client.post(self.url(base), json=self.json, headers=headers)
        return client.post(self.url(base), content=self.content or b"", headers=headers)


def _mention(fmt: Fmt, secret: str) -> str:
    return f"{fmt.keyword}={secret}" if fmt.keyword else f"Here is the key {secret} for the job."


def _field(fmt: Fmt) -> str:
    return fmt.keyword.lower() if fmt.keyword and fmt.keyword != "password" else "api_key"


def _chat(prompt: str, **extra: Any) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": prompt}], **extra}


def _calls_for(fmt: Fmt, rng: random.Random, n: int) -> Iterator[Call]:
    """One call per placement of a format, each with a fresh secret, so a leak is attributed
    to the placement that caused it."""

    def new(placement: str, build: Callable[[str, str], dict[str, Any]]) -> Call:
        secret = fmt.make(rng)
        kw: dict[str, Any] = {
            "path": CHAT,
            "json": _chat("hi"),
            **build(secret, _mention(fmt, secret)),
        }
        return Call(fmt.name, placement, secret, **kw)

    field_name = _field(fmt)
    if fmt.name not in MULTILINE:
        name = "api-key" if fmt.name == "azure-openai" else "authorization"
        scheme = "" if name == "api-key" else "Basic " if fmt.name == "basic-auth" else "Bearer "
        yield new("header-credential", lambda s, t: {"headers": {name: scheme + s}})
        custom = (lambda s, t: t) if fmt.keyword else (lambda s, t: s)
        yield new("header-custom", lambda s, t: {"headers": {"x-custom": custom(s, t)}})
        if not fmt.keyword and fmt.name != "slack-webhook":
            yield new("url-path", lambda s, t: {"path": f"/v1/keys/{s}/chat/completions"})
        yield new("userinfo", lambda s, t: {"userinfo": f"svc:{quote(s, safe='')}"})
    yield new(
        "url-query-credential", lambda s, t: {"query": f"{field_name}={quote(s, safe='')}&v=2"}
    )
    if not fmt.keyword:
        yield new("url-query-plain", lambda s, t: {"query": f"q={quote(s, safe='')}"})
    yield new("json-nested", lambda s, t: {"json": _nested(fmt, s, t)})
    yield new("json-in-string", lambda s, t: {"json": _tool_call(fmt, s, t)})
    yield new("form", lambda s, t: _form(fmt, s, t))
    yield new("base64", lambda s, t: {"json": {"document": _b64_json(t), "encoding": "base64"}})
    endpoint = ENDPOINTS[n % len(ENDPOINTS)]
    yield new("response-echo", lambda s, t: {"path": endpoint, "json": _chat(t)})
    stream = {"path": endpoint, "split": False}
    yield new(
        "sse-whole", lambda s, t: {**stream, "json": _chat(t, stream=True), "split": " " in s}
    )
    yield new("sse-split", lambda s, t: {**stream, "json": _chat(t, stream=True), **_cut(s, rng)})


def _nested(fmt: Fmt, secret: str, text: str) -> dict[str, Any]:
    inner = {_field(fmt): secret} if fmt.keyword else {"content": text}
    return _chat("hi", config={"providers": [{"name": "p", "settings": inner}]})


def _tool_call(fmt: Fmt, secret: str, text: str) -> dict[str, Any]:
    args = json.dumps({_field(fmt): secret} if fmt.keyword else {"note": text})
    call = {"id": "call_1", "type": "function", "function": {"name": "store", "arguments": args}}
    return {"model": "m", "messages": [{"role": "assistant", "tool_calls": [call]}]}


def _form(fmt: Fmt, secret: str, text: str) -> dict[str, Any]:
    pair = f"{_field(fmt)}={quote_plus(secret)}" if fmt.keyword else f"text={quote_plus(text)}"
    return {
        "json": None,
        "content": f"grant_type=x&{pair}&lang=en".encode(),
        "headers": {"content-type": "application/x-www-form-urlencoded"},
    }


def _b64_json(text: str) -> str:
    return base64.b64encode(json.dumps({"text": text}).encode()).decode()


def _cut(secret: str, rng: random.Random) -> dict[str, Any]:
    """Stream the answer in pieces shorter than the secret, so it spans several events."""
    size = rng.randint(max(2, len(secret) // 3), len(secret) - 1)
    return {"headers": {"x-fake-split": str(size)}, "split": True}


def _all_calls() -> list[Call]:
    rng = random.Random(SEED)
    return [c for n, fmt in enumerate(FORMATS) for c in _calls_for(fmt, rng, n)]


def _forms(secret: str) -> dict[str, bytes]:
    """The secret as it could sit in a file: raw, percent- and form-encoded, JSON-escaped, and
    every base64 alignment of it (only the characters no neighbouring byte affects)."""
    raw = secret.encode()
    out = {
        "raw": raw,
        "percent": quote(secret, safe="").encode(),
        "form": quote_plus(secret).encode(),
        "json": json.dumps(secret)[1:-1].encode(),
        "json-ascii": json.dumps(secret, ensure_ascii=True)[1:-1].encode(),
    }
    for k in range(3):
        start = 4 * -(-k // 3)  # first group made of secret bytes only
        full = 4 * ((k + len(raw)) // 3)  # end of the last complete group
        for name, enc in (("b64", base64.b64encode), ("b64url", base64.urlsafe_b64encode)):
            out[f"{name}-{k}"] = enc(b"\0" * k + raw)[start:full]
    return {k: v for k, v in out.items() if len(v) >= 16}


def _sse_texts(body: str) -> list[str]:
    """The text pieces of a stream the client received (any of the three providers)."""
    out = []
    for line in body.splitlines():
        if not line.startswith("data: {"):
            continue
        event = json.loads(line[6:])
        if event.get("choices"):
            out.append(event["choices"][0]["delta"].get("content") or "")
        elif isinstance(event.get("delta"), str):
            out.append(event["delta"])
        elif isinstance(event.get("delta"), dict):
            out.append(event["delta"].get("text") or "")
    return out


def _check_live(call: Call, response: httpx.Response) -> None:
    assert response.status_code == 200, (call.fmt, call.placement, response.text[:300])
    if call.placement == "response-echo":
        escaped = json.dumps(call.secret)[1:-1]
        assert call.secret in response.text or escaped in response.text, call.fmt
    if call.placement.startswith("sse"):
        pieces = _sse_texts(response.text)
        assert call.secret in "".join(pieces), (call.fmt, call.placement)
        alone = any(call.secret in p for p in pieces)
        assert alone != call.split, (call.fmt, call.placement, "split" if alone else "whole")
        if call.split:
            call.fragments = _fragments(pieces, call.secret)


def _fragments(pieces: list[str], secret: str) -> list[str]:
    """The parts of `secret` each piece carries (those of 8 characters or more: shorter ones
    occur by chance)."""
    start = "".join(pieces).index(secret)
    out, pos = [], 0
    for p in pieces:
        lo, hi = max(start, pos), min(start + len(secret), pos + len(p))
        if hi - lo >= 8:
            out.append("".join(pieces)[lo:hi])
        pos += len(p)
    return out


def _counts(calls: list[Call]) -> dict[str, int]:
    out: dict[str, int] = {}
    for c in calls:
        out[c.placement] = out.get(c.placement, 0) + 1
    return out


def test_no_secret_of_any_placement_reaches_the_cassette_and_replay_hits(
    tmp_path: Path, run_proxy: ProxyFactory, throwaway_ca: ThrowawayCA
) -> None:
    calls = _all_calls()
    cassette = tmp_path / "out" / "c.json.zst"
    with FakeProvider(throwaway_ca.server_context()) as provider:
        base = provider.url
        with run_proxy(cassette, "once") as runner, client_for(runner) as client:
            for c in calls:
                _check_live(c, c.send(client, base))
        assert provider.requests == len(calls)
    written = written_bytes(tmp_path / "out")
    leaks: dict[str, list[str]] = {}
    for c in calls:
        found = [name for name, form in _forms(c.secret).items() if form in written]
        found += [f"piece {i}" for i, f in enumerate(c.fragments) if f.encode() in written]
        if found:
            leaks.setdefault(c.placement, []).append(f"{c.fmt}: {', '.join(found)}")
    misses: dict[str, list[str]] = {}
    with run_proxy(cassette, "none") as runner, client_for(runner) as client:
        for c in calls:
            r = c.send(client, base)
            if r.status_code != 200 or "x-tapeproxy-miss" in r.headers:
                misses.setdefault(c.placement, []).append(f"{c.fmt}: {r.status_code}")
    print(json.dumps({p: n for p, n in _counts(calls).items()}))
    assert not leaks, json.dumps(leaks, indent=1)
    assert not misses, json.dumps(misses, indent=1)
    recorded = store.load(cassette).interactions
    assert len(recorded) == len(calls)
    # userinfo never reaches the proxy: httpx sends it as an Authorization: Basic header
    assert not any("@" in ix.request.url for ix in recorded)
    basic = [
        ix
        for ix in recorded
        if ("Authorization", "Basic <redacted:credential-header>") in ix.request.headers
    ]
    assert len(basic) == sum(c.placement == "userinfo" for c in calls)
    per_placement = _counts(calls)
    split = [c for c in calls if c.split]
    assert sum(len(c.fragments) >= 2 for c in split) >= len(split) * 0.8  # 52 of 59
    assert len(per_placement) == 13 and min(per_placement.values()) >= 40, per_placement
    assert {c.fmt for c in calls} == {f.name for f in FORMATS}
