"""A labelled corpus of fake secrets and hard-negative clean documents, generated with a
fixed seed at test time (never committed): about 55 credential formats in every placement a
cassette has, and about 300 clean cassettes full of things that look like secrets but are not.

Run ``python -m tests.redaction.corpus OUT_DIR [SEED]`` to write it out and print the labels.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import string
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tapeproxy.cassettes.model import Body, Interaction, Request, Response, new_cassette
from tapeproxy.cassettes.store import save

__all__ = ["FORMATS", "PLACEMENTS", "Doc", "generate", "write"]

ALNUM = string.ascii_letters + string.digits
URLSAFE = ALNUM + "_-"
HEX = "0123456789abcdef"
UPNUM = string.ascii_uppercase + string.digits
B62 = string.digits + string.ascii_uppercase + string.ascii_lowercase


@dataclass(frozen=True)
class Doc:
    """One cassette of the corpus: its secret (None for a clean one), format and placement."""

    name: str
    secret: str | None
    fmt: str
    placement: str
    interaction: Interaction


@dataclass(frozen=True)
class Fmt:
    """A credential format: how to make one, and the keyword that gives it context if any."""

    name: str
    make: Callable[[random.Random], str]
    keyword: str = ""  # prefix-less formats are only meaningful next to a name


def _r(rng: random.Random, n: int, alphabet: str = ALNUM) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _d(rng: random.Random, n: int) -> str:
    return _r(rng, n, string.digits)


def _gh(prefix: str, n: int = 30) -> Callable[[random.Random], str]:
    def make(rng: random.Random) -> str:
        body = _r(rng, n)
        c, digits = zlib.crc32(body.encode()), ""
        while c:
            c, rem = divmod(c, 62)
            digits = B62[rem] + digits
        return f"{prefix}_{body}{digits.rjust(6, '0')}"

    return make


def _fine_grained(rng: random.Random) -> str:
    head = f"github_pat_{rng.choice(string.digits)}{_r(rng, 21)}_{_r(rng, 43)}"
    check = base64.b32encode(hashlib.sha256(head.encode()).digest()).decode()[:8]
    return head + check + _r(rng, 8)


def _jwt(rng: random.Random) -> str:
    def seg(obj: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    head = seg({"alg": "HS256", "typ": "JWT"})
    payload = seg({"sub": _r(rng, 12), "iat": rng.randint(10**9, 2 * 10**9)})
    return f"{head}.{payload}.{_r(rng, 43, URLSAFE)}"


def _pem(kind: str) -> Callable[[random.Random], str]:
    def make(rng: random.Random) -> str:
        lines = [_r(rng, 64, ALNUM + "+/") for _ in range(6)]
        label = f"{kind} PRIVATE KEY".strip()
        return f"-----BEGIN {label}-----\n" + "\n".join(lines) + f"\n-----END {label}-----"

    return make


def _basic(rng: random.Random) -> str:
    return base64.b64encode(f"{_r(rng, 8).lower()}:{_r(rng, 16)}".encode()).decode()


FORMATS: tuple[Fmt, ...] = (
    Fmt("openai-legacy", lambda g: f"sk-{_r(g, 20)}T3BlbkFJ{_r(g, 20)}"),
    Fmt("openai-project", lambda g: f"sk-proj-{_r(g, 74, URLSAFE)}T3BlbkFJ{_r(g, 73, URLSAFE)}A"),
    Fmt("openai-project-short", lambda g: f"sk-proj-{_r(g, 58, URLSAFE)}T3BlbkFJ{_r(g, 57)}A"),
    Fmt("openai-svcacct", lambda g: f"sk-svcacct-{_r(g, 74, URLSAFE)}T3BlbkFJ{_r(g, 74)}"),
    Fmt("openai-admin", lambda g: f"sk-admin-{_r(g, 58, URLSAFE)}T3BlbkFJ{_r(g, 58)}"),
    Fmt("anthropic-api", lambda g: f"sk-ant-api03-{_r(g, 93, URLSAFE)}AA"),
    Fmt("anthropic-admin", lambda g: f"sk-ant-admin01-{_r(g, 93, URLSAFE)}AA"),
    Fmt("anthropic-oauth", lambda g: f"sk-ant-oat01-{_r(g, 80, URLSAFE)}"),
    Fmt("anthropic-refresh", lambda g: f"sk-ant-ort01-{_r(g, 80, URLSAFE)}"),
    Fmt("google-api", lambda g: f"AIzaSy{_r(g, 33, URLSAFE)}"),
    Fmt("gemini-new", lambda g: f"AQ.Ab8RN6{_r(g, 44, URLSAFE)}"),
    Fmt("google-oauth", lambda g: f"ya29.{_r(g, 180, URLSAFE)}"),
    Fmt("azure-openai", lambda g: _r(g, 32, HEX), "AZURE_OPENAI_API_KEY"),
    Fmt("aws-key-id", lambda g: "AKIA" + _r(g, 16, string.ascii_uppercase + "234567")),
    Fmt("aws-sts-key-id", lambda g: "ASIA" + _r(g, 16, string.ascii_uppercase + "234567")),
    Fmt("aws-secret", lambda g: _r(g, 40, ALNUM + "/+"), "aws_secret_access_key"),
    Fmt("aws-bedrock", lambda g: "ABSK" + _r(g, 100, ALNUM + "+/")),
    Fmt("github-pat", _gh("ghp")),
    Fmt("github-oauth", _gh("gho")),
    Fmt("github-user", _gh("ghu")),
    Fmt("github-server", _gh("ghs")),
    Fmt("github-refresh", _gh("ghr", 70)),
    Fmt("github-fine-grained", _fine_grained),
    Fmt("gitlab-pat", lambda g: f"glpat-{_r(g, 20, URLSAFE)}"),
    Fmt("gitlab-routable", lambda g: f"glpat-{_r(g, 36, URLSAFE)}.01.{_r(g, 9, HEX)}"),
    Fmt(
        "slack-bot",
        lambda g: f"xoxb-{_r(g, 12, string.digits)}-{_r(g, 13, string.digits)}-{_r(g, 24)}",
    ),
    Fmt("slack-user", lambda g: f"xoxp-{_d(g, 12)}-{_d(g, 12)}-{_d(g, 13)}-{_r(g, 32, HEX)}"),
    Fmt("slack-app", lambda g: f"xapp-1-A{_r(g, 10, UPNUM)}-{_d(g, 13)}-{_r(g, 64, HEX)}"),
    Fmt(
        "slack-webhook",
        lambda g: (
            f"https://hooks.slack.com/services/T{_r(g, 10, UPNUM)}/B{_r(g, 10, UPNUM)}/{_r(g, 24)}"
        ),
    ),
    Fmt("stripe-live", lambda g: f"sk_live_51{_r(g, 97)}"),
    Fmt("stripe-restricted", lambda g: f"rk_live_{_r(g, 24)}"),
    Fmt("huggingface", lambda g: f"hf_{_r(g, 34, string.ascii_letters)}"),
    Fmt("huggingface-org", lambda g: f"api_org_{_r(g, 34, string.ascii_letters)}"),
    Fmt("groq", lambda g: f"gsk_{_r(g, 52)}"),
    Fmt("mistral", lambda g: _r(g, 32), "MISTRAL_API_KEY"),
    Fmt("cohere", lambda g: _r(g, 40), "CO_API_KEY"),
    Fmt("replicate", lambda g: f"r8_{_r(g, 37)}"),
    Fmt("openrouter", lambda g: f"sk-or-v1-{_r(g, 64, HEX)}"),
    Fmt("xai", lambda g: f"xai-{_r(g, 80)}"),
    Fmt("perplexity", lambda g: f"pplx-{_r(g, 48)}"),
    Fmt("deepseek", lambda g: f"sk-{_r(g, 32, HEX)}"),
    Fmt("together", lambda g: f"tgp_v1_{_r(g, 43, URLSAFE)}"),
    Fmt("together-legacy", lambda g: _r(g, 64, HEX), "TOGETHER_API_KEY"),
    Fmt("fireworks", lambda g: f"fw_{_r(g, 24)}"),
    Fmt("langsmith", lambda g: f"lsv2_pt_{_r(g, 32, HEX)}_{_r(g, 10, HEX)}"),
    Fmt("langsmith-service", lambda g: f"lsv2_sk_{_r(g, 32, HEX)}_{_r(g, 10, HEX)}"),
    Fmt("nvidia", lambda g: f"nvapi-{_r(g, 64, URLSAFE)}"),
    Fmt("cerebras", lambda g: f"csk-{_r(g, 48, string.ascii_lowercase + string.digits)}"),
    Fmt("telegram", lambda g: f"{_r(g, 10, string.digits)}:A{_r(g, 34, URLSAFE)}"),
    Fmt("sendgrid", lambda g: f"SG.{_r(g, 22, URLSAFE)}.{_r(g, 43, URLSAFE)}"),
    Fmt("jwt", _jwt),
    Fmt("pem-rsa", _pem("RSA")),
    Fmt("pem-openssh", _pem("OPENSSH")),
    Fmt("url-password", lambda g: _r(g, 18), "password"),
    Fmt("basic-auth", _basic),
    Fmt("npm", lambda g: f"npm_{_r(g, 36)}"),
    Fmt("elevenlabs", lambda g: f"sk_{_r(g, 48, HEX)}"),
)

PLACEMENTS = (
    "header",
    "url-query",
    "url-path",
    "userinfo",
    "json-nested",
    "json-in-string",
    "form",
    "base64",
    "response-echo",
    "sse-whole",
    "sse-split",
)
_NO_URL = ("pem-rsa", "pem-openssh")
_CHAT = "https://api.example.com/v1/chat/completions"
_JSON = ("content-type", "application/json")


def _ix(request: Request, response: Response | None = None) -> Interaction:
    response = response or Response(status=200, headers=(_JSON,), body=Body(text='{"ok":true}'))
    return Interaction(key="0" * 64, request=request, response=response)


def _post(body: str, headers: tuple[tuple[str, str], ...] = (_JSON,), url: str = _CHAT) -> Request:
    return Request(method="POST", url=url, headers=headers, body=Body(text=body))


def _mention(fmt: Fmt, secret: str) -> str:
    return f"{fmt.keyword}={secret}" if fmt.keyword else f"Here is the key {secret} for the job."


def _field(fmt: Fmt) -> str:
    return fmt.keyword.lower() if fmt.keyword and fmt.keyword != "password" else "api_key"


def _sse(pieces: list[str]) -> Response:
    events = [
        {"id": "chatcmpl-abc", "choices": [{"index": 0, "delta": {"content": p}}]} for p in pieces
    ]
    chunks = [f"data: {json.dumps(e)}\n\n".encode() for e in events] + [b"data: [DONE]\n\n"]
    body = b"".join(chunks).decode()
    sizes = tuple((float(i * 20), len(c)) for i, c in enumerate(chunks))
    headers = (("content-type", "text/event-stream"),)
    return Response(status=200, headers=headers, body=Body(text=body), chunks=sizes)


def _place(fmt: Fmt, secret: str, placement: str, rng: random.Random) -> Interaction:
    from urllib.parse import quote, quote_plus

    text = _mention(fmt, secret)
    chat = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
    if placement == "header":
        scheme = "Basic" if fmt.name == "basic-auth" else "Bearer"
        name = "api-key" if fmt.name == "azure-openai" else "Authorization"
        value = secret if name == "api-key" else f"{scheme} {secret}"
        return _ix(_post(chat, (_JSON, (name, value))))
    if placement == "url-query":
        return _ix(_post(chat, url=f"{_CHAT}?{_field(fmt)}={quote(secret, safe='')}&v=2"))
    if placement == "url-path":
        return _ix(_post(chat, url=f"https://api.example.com/v1/keys/{secret}/usage"))
    if placement == "userinfo":
        return _ix(_post(chat, url=f"https://svc:{quote(secret, safe='')}@db.example.com/v1/q"))
    if placement == "json-nested":
        inner = {_field(fmt): secret} if fmt.keyword else {"content": text}
        doc = {"model": "m", "config": {"providers": [{"name": "p", "settings": inner}]}}
        return _ix(_post(json.dumps(doc)))
    if placement == "json-in-string":
        args = json.dumps({_field(fmt): secret} if fmt.keyword else {"note": text})
        call = {"id": "call_1", "function": {"name": "store", "arguments": args}}
        doc = {"messages": [{"role": "assistant", "tool_calls": [call]}]}
        return _ix(_post(json.dumps(doc)))
    if placement == "form":
        form = (
            f"grant_type=client_credentials&{_field(fmt)}={quote_plus(secret)}"
            if fmt.keyword
            else f"text={quote_plus(text)}&lang=en"
        )
        headers = (("content-type", "application/x-www-form-urlencoded"),)
        return _ix(_post(form, headers))
    if placement == "base64":
        blob = base64.b64encode(json.dumps({"text": text}).encode()).decode()
        return _ix(_post(json.dumps({"document": blob, "encoding": "base64"})))
    if placement == "response-echo":
        doc = (
            {"settings": {_field(fmt): secret}}
            if fmt.keyword
            else {"error": {"message": f"Incorrect API key provided: {secret}.", "code": 401}}
        )
        resp = Response(status=401, headers=(_JSON,), body=Body(text=json.dumps(doc)))
        return _ix(_post(chat), resp)
    if placement == "sse-whole":
        return _ix(_post(chat), _sse(["Sure. ", text, " Anything else?"]))
    start = text.index(secret)
    cut = start + rng.randint(4, max(5, len(secret) - 4))
    return _ix(_post(chat), _sse(["Sure. ", text[:cut], text[cut:], " Done."]))


def _allowed(fmt: Fmt) -> tuple[str, ...]:
    out = PLACEMENTS
    if fmt.name in _NO_URL:
        out = tuple(p for p in out if p not in ("header", "url-query", "url-path", "userinfo"))
    if fmt.keyword or fmt.name == "slack-webhook":
        out = tuple(p for p in out if p != "url-path")
    if fmt.keyword == "password":
        # A password in what a model wrote is test data, kept as sent (see
        # tapeproxy.providers.generated); only tokens a detector proves are secrets there.
        out = tuple(p for p in out if not p.startswith("sse-"))
    return out


def generate(seed: int = 1234, per_format: int = 6, clean: int = 300) -> list[Doc]:
    """The corpus: `per_format` placements of each format (cycled) and `clean` clean docs."""
    from tests.redaction.negatives import clean_interaction

    rng = random.Random(seed)
    docs: list[Doc] = []
    for i, fmt in enumerate(FORMATS):
        allowed = _allowed(fmt)
        for j in range(per_format):
            placement = allowed[(i + j * 2) % len(allowed)]
            if j == per_format - 1 and "sse-split" in allowed:
                placement = "sse-split"  # every format is also split across chunks
            secret = fmt.make(rng)
            ix = _place(fmt, secret, placement, rng)
            docs.append(Doc(f"pos-{fmt.name}-{j}", secret, fmt.name, placement, ix))
    for k in range(clean):
        kind, ix = clean_interaction(rng, k)
        docs.append(Doc(f"neg-{k:03d}-{kind}", None, kind, "clean", ix))
    return docs


def write(docs: list[Doc], out: Path) -> None:
    """Write each doc as a one-interaction cassette ``<name>.json.zst`` under `out`."""
    out.mkdir(parents=True, exist_ok=True)
    for doc in docs:
        cassette = new_cassette("0.1.0", "2026-01-01T00:00:00Z")
        save(
            out / f"{doc.name}.json.zst",
            cassette.model_copy(update={"interactions": (doc.interaction,)}),
        )


if __name__ == "__main__":
    target = Path(sys.argv[1])
    corpus = generate(int(sys.argv[2]) if len(sys.argv) > 2 else 1234)
    write(corpus, target)
    labels = [{"name": d.name, "format": d.fmt, "placement": d.placement} for d in corpus]
    print(json.dumps(labels, indent=1))
