"""A second labelled lint corpus, by class, in the file shapes other tools write.

`tests.redaction.corpus` places secrets in tapeproxy cassettes. This one places them the way
real cassettes and logs from other tools hold them (vcrpy YAML, HAR and Polly's HAR with
base64 content, WireMock mappings, JSON logs that keep a stream as a list of raw SSE event
strings under a key of their own, NDJSON logs, tapeproxy cassettes), in four secret classes,
each with a clean look-alike class beside it:

- ``split``: a credential (any prefixed format, or a PEM key) split across the text deltas of
  successive stream events, in five providers' event shapes;
- ``context``: a key with no vendor prefix (hex, alphanumeric) that only its context names:
  ``NAME=value``, an echoed ``"Authorization": "Bearer ..."``, ``api-key: ...``, a request header;
- ``url-path``: a token glued to a path word (``/bot<id>:<secret>/sendMessage``);
- ``nested``: a credential assignment inside a JSON string, or base64-wrapped JSON or headers;
- ``long``: a credential of a format with no fixed length (AWS session tokens, Google OAuth
  tokens, project keys, PyPI macaroons, Basic credentials, URL passwords, named values) drawn
  longer than the few hundred characters such tokens usually have: found whole, not cut short;
- ``markup``: a credential as the text of an XML or HTML element named for it
  (``<SessionToken>``, ``<wsse:Password>``, ``<apiKey>``) or as the value of a name/value
  attribute pair (``<add key="OpenAIKey" value="..."/>``, ``<input name="api_key" value=...>``).

The clean classes hold what the same places hold when nothing leaks: ids, digests,
certificates and public keys split across events; credential-named metadata whose value is a
name, an id, a type or a path; placeholders in every common form, URL userinfo included;
path words next to ids; base64-wrapped metadata; long base64 blobs under names that are not
credentials (reasoning ``encrypted_content``, thinking ``signature``, images); elements and
attribute pairs named like credentials whose text is a type, a count, a placeholder or an id,
and class names next to element text. Everything is generated from a seed at test
time; nothing here is tuned to a value.

Run ``python -m tests.redaction.foreign OUT_DIR [SEED]`` to write it out with its labels.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import string
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from tapeproxy.cassettes.model import Body, Interaction, Request, Response, new_cassette
from tapeproxy.cassettes.store import dumps
from tests.redaction.corpus import FORMATS

__all__ = [
    "CLASSES",
    "SECRETS",
    "SHAPES",
    "Doc",
    "Exchange",
    "answer_bytes",
    "generate",
    "interaction",
    "write",
]

ALNUM = string.ascii_letters + string.digits
HEX = "0123456789abcdef"
CLASSES = ("split", "context", "url-path", "nested", "long", "markup", "encoded")
SHAPES = ("vcr-yaml", "har", "polly-b64", "wiremock", "events-json", "ndjson", "tapeproxy")


@dataclass(frozen=True)
class Exchange:
    """One HTTP exchange, before a shape writes it: `events` set for a streamed answer."""

    url: str
    headers: tuple[tuple[str, str], ...]
    body: str
    status: int = 200
    answer: str = ""
    events: tuple[str, ...] = ()  # each a whole SSE event ("event: ...\ndata: ...\n\n")
    answer_type: str = "application/json"
    answer_codec: str = ""  # set: the answer is sent as these bytes of it ("utf-16"...)


@dataclass(frozen=True)
class Doc:
    """One file of the corpus: its class, its secret (None when clean), shape and bytes."""

    name: str
    cls: str
    secret: str | None
    shape: str
    suffix: str
    data: bytes


def _r(g: random.Random, n: int, alphabet: str = ALNUM) -> str:
    return "".join(g.choice(alphabet) for _ in range(n))


_CHAT = "https://api.{host}/v1/chat/completions"
_HOSTS = ("openai.com", "example-llm.net", "gateway.acme.dev", "llm.internal.example.org")
_PROMPTS = ("Summarise the log for me.", "What went wrong in this deploy?", "Continue.")


def _request(g: random.Random, extra_headers: tuple[tuple[str, str], ...] = ()) -> Exchange:
    body = {"model": g.choice(["gpt-4o-mini", "claude-3-5-haiku", "m"]), "stream": True}
    body["messages"] = [{"role": "user", "content": g.choice(_PROMPTS)}]
    headers = (("content-type", "application/json"), *extra_headers)
    return Exchange(_CHAT.format(host=g.choice(_HOSTS)), headers, json.dumps(body))


# ---- stream events: five providers' shapes of a text delta ------------------------------------


def _openai_chat(g: random.Random, piece: str) -> str:
    ev = {"id": "chatcmpl-" + _r(g, 12), "object": "chat.completion.chunk"}
    ev["choices"] = [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]
    return f"data: {json.dumps(ev)}\n\n"


def _anthropic(g: random.Random, piece: str) -> str:
    ev = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}}
    return f"event: content_block_delta\ndata: {json.dumps(ev)}\n\n"


def _responses(g: random.Random, piece: str) -> str:
    ev = {"type": "response.output_text.delta", "item_id": "msg_" + _r(g, 16)}
    ev.update(output_index=0, content_index=0, delta=piece)
    return f"event: response.output_text.delta\ndata: {json.dumps(ev)}\n\n"


def _delta_text(g: random.Random, piece: str) -> str:
    ev = {"type": "content-delta", "index": 0, "delta": {"text": piece}}
    return f"data: {json.dumps(ev)}\n\n"


def _gemini(g: random.Random, piece: str) -> str:
    ev = {"candidates": [{"content": {"parts": [{"text": piece}], "role": "model"}, "index": 0}]}
    return f"data: {json.dumps(ev)}\n\n"


_STYLES: tuple[Callable[[random.Random, str], str], ...] = (
    _openai_chat,
    _anthropic,
    _responses,
    _delta_text,
    _gemini,
)


def _split(g: random.Random, text: str, secret_at: int, secret_len: int) -> list[str]:
    """`text` in 4-7 pieces, with 1-3 cuts inside the secret."""
    inside = sorted(
        g.sample(range(secret_at + 1, secret_at + secret_len), min(secret_len - 1, g.randint(1, 3)))
    )
    outside = [c for c in (g.randint(1, max(1, secret_at)),) if 0 < c < secret_at]
    cuts = sorted({*outside, *inside})
    return [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]


def _stream(g: random.Random, pieces: list[str]) -> Exchange:
    style = g.choice(_STYLES)
    events = (*(style(g, p) for p in pieces), "data: [DONE]\n\n")
    ex = _request(g)
    return Exchange(ex.url, ex.headers, ex.body, events=events)


# ---- the classes --------------------------------------------------------------------------


def _pem(g: random.Random, label: str) -> str:
    lines = [_r(g, 64, ALNUM + "+/") for _ in range(g.randint(4, 8))]
    return f"-----BEGIN {label}-----\n" + "\n".join(lines) + f"\n-----END {label}-----"


def _split_secret(g: random.Random) -> tuple[str, Exchange]:
    if g.random() < 0.15:
        secret = _pem(g, g.choice(["RSA PRIVATE KEY", "PRIVATE KEY", "EC PRIVATE KEY"]))
    else:
        fmt = g.choice([f for f in FORMATS if not f.keyword and not f.name.startswith("pem")])
        secret = fmt.make(g)
    lead = g.choice(["Here is what I found in the file: ", "The config holds ", "Sure. "])
    text = f"{lead}{secret} and that is all."
    return secret, _stream(g, _split(g, text, len(lead), len(secret)))


def _split_clean(g: random.Random) -> Exchange:
    digest = hashlib.sha256(_r(g, 16).encode()).hexdigest()
    look = g.choice(
        [
            f"commit {digest[:40]} fixed the desk-{_r(g, 6)} task-list bug",
            f"use the model gpt-4o-mini-{g.randint(2024, 2026)}-{g.randint(1, 12):02d}",
            _pem(g, g.choice(["CERTIFICATE", "PUBLIC KEY"])),
            f"request id req_{_r(g, 24)} and trace {uuid.UUID(int=g.getrandbits(128))}",
            f"set OPENAI_API_KEY=<your key> then run task-{_r(g, 8).lower()}",
            f"the sk-{'x' * 20} placeholder, and sk-...{_r(g, 4)} elided",
        ]
    )
    text = f"Here you go: {look}. Done."
    return _stream(g, _split(g, text, 13, len(look)))


def _prefixless(g: random.Random) -> str:
    return g.choice([lambda: _r(g, 32, HEX), lambda: _r(g, 40), lambda: _r(g, 32)])()


_ENV_NAMES = ("AZURE_OPENAI_API_KEY", "COHERE_API_KEY", "CO_API_KEY", "MISTRAL_API_KEY", "API_KEY")


def _answer(g: random.Random, content: str, status: int = 200) -> Exchange:
    ex = _request(g)
    if status != 200:
        doc: dict[str, object] = {"error": {"message": content, "type": "invalid_request_error"}}
    else:
        msg = {"role": "assistant", "content": content}
        doc = {"id": "chatcmpl-" + _r(g, 20), "choices": [{"index": 0, "message": msg}]}
    return Exchange(ex.url, ex.headers, ex.body, status, json.dumps(doc))


def _context_secret(g: random.Random) -> tuple[str, Exchange]:
    key = _prefixless(g)
    env = g.choice(_ENV_NAMES)
    said = g.choice(
        [
            f"Your .env has {env}={key} on line 3.",
            f'export {env}="{key}" before you start the worker',
            f'The client sent {{"Authorization": "Bearer {key}"}} and got 401.',
            f"curl -H 'api-key: {key}' https://x.openai.azure.com/openai/deployments",
            f"settings:\n  {env.lower()}: {key}\n  timeout: 30",
        ]
    )
    where = g.randrange(3)
    if where == 0:
        return key, _answer(g, said)
    if where == 1:
        return key, _answer(g, f"Incorrect API key provided. {said}", 401)
    name = g.choice(["api-key", "Authorization", "X-Api-Key", "Ocp-Apim-Subscription-Key"])
    value = f"Bearer {key}" if name == "Authorization" else key
    ex = _request(g, ((name, value),))
    return key, Exchange(ex.url, ex.headers, ex.body, 200, json.dumps({"ok": True}))


def _context_clean(g: random.Random) -> Exchange:
    name = g.choice(["secret", "key", "token", "password", "api_key", "client_secret"])
    meta = g.choice(
        [
            f'"{name}_name": "prod-{_r(g, 6).lower()}-{name.replace("_", "-")}"',
            f'"key_id": "kid-{_r(g, 12, HEX)}"',
            f'"token_type": "{g.choice(["Bearer", "access_token", "urn:ietf:params:oauth"])}"',
            f'"password_policy": "min-{g.randint(8, 16)}-chars-{_r(g, 4).lower()}"',
            f'"{name}_path": "/etc/{_r(g, 6).lower()}/{name}.pem"',
            f'"{name}_arn": "arn:aws:secretsmanager:eu-west-1:{_r(g, 12, string.digits)}:secret"',
            f'"{name}_env": "{g.choice(_ENV_NAMES)}"',
            f'"{name}_version": "v{g.randint(1, 9)}-{_r(g, 8, HEX)}"',
            f'"{name}_expires_at": "2026-{g.randint(1, 12):02d}-01T00:00:00Z"',
        ]
    )
    placeholder = g.choice(
        [
            "{password}",
            "${TOKEN}",
            "<api-key>",
            "%(secret)s",
            "$SECRET",
            "x" * g.randint(8, 40),
            "*" * g.randint(3, 12),
            "{{ api_key }}",
        ]
    )
    said = g.choice(
        [
            f"The payload was {{{meta}}}.",
            f"Set {g.choice(_ENV_NAMES)}={placeholder} in your shell.",
            f"Connect with https://{{user}}:{placeholder}@db.example.com:5432/app",
            f"Use tokens:{g.choice(['gpt-4o-mini', 'claude-3-haiku', 'text-embedding-3'])} here",
            f'Send {{"Authorization": "Bearer {placeholder}"}} with each call.',
            f"max_tokens={g.randint(64, 4096)}, token_count={g.randint(1, 900)}",
        ]
    )
    if g.random() < 0.5:
        return _answer(g, said)
    ex = _request(g, (("api-key", placeholder),) if g.random() < 0.5 else ())
    return Exchange(ex.url, ex.headers, json.dumps({"note": said}), 200, json.dumps({"ok": 1}))


def _telegram(g: random.Random) -> str:
    return f"{_r(g, g.randint(8, 10), string.digits)}:AA{_r(g, 33, ALNUM + '_-')}"


def _url_secret(g: random.Random) -> tuple[str, Exchange]:
    word = g.choice(["bot", "bot", "key", "token", "u"])
    fmt = g.choice([f for f in FORMATS if not f.keyword and f.name in _URL_SAFE])
    token = _telegram(g) if word == "bot" else fmt.make(g)
    method = g.choice(["sendMessage", "getUpdates", "status", "v1/run"])
    url = f"https://api.{g.choice(_HOSTS)}/{word}{token}/{method}"
    if g.random() < 0.5:
        return token, Exchange(url, (("accept", "application/json"),), "", 200, '{"ok":true}')
    return token, _answer(g, f"I called {url} and it answered 200.")


_URL_SAFE = ("github-pat", "gitlab-pat", "groq", "replicate", "npm", "huggingface", "perplexity")


def _url_clean(g: random.Random) -> Exchange:
    host = g.choice(_HOSTS)
    path = g.choice(
        [
            f"/bot/{g.choice(['sendMessage', 'getMe'])}",
            f"/bot{_r(g, 9, string.digits)}/getMe",
            f"/botinfo/{_r(g, 8).lower()}",
            f"/v1/models/gpt-4o-mini-{g.randint(2024, 2026)}-07-18",
            f"/users/{_r(g, 6, string.digits)}:profile/keys",
            f"/token{uuid.UUID(int=g.getrandbits(128))}/status",
            f"/files/file-{_r(g, 24)}/content",
            "/v1beta/models/gemini-1.5-pro:streamGenerateContent",
        ]
    )
    url = f"https://api.{host}{path}"
    if g.random() < 0.5:
        return Exchange(url, (("accept", "application/json"),), "", 200, '{"ok":true}')
    return _answer(g, f"I called {url} and it answered 200.")


def _assignment_secret(g: random.Random) -> tuple[str, str]:
    name = g.choice(["password", "client_secret", "db_password", "secret_key", "apiKey", "token"])
    value = _r(g, g.randint(14, 28), ALNUM + "!#%+-_") if g.random() < 0.5 else _prefixless(g)
    return name, value


def _nested_secret(g: random.Random) -> tuple[str, Exchange]:
    name, value = _assignment_secret(g)
    inner = json.dumps({"host": "db.internal", name: value, "port": 5432})
    how = g.randrange(4)
    if how == 0:  # tool-call arguments: JSON in a string
        call = {"id": "call_" + _r(g, 24), "type": "function"}
        call["function"] = {"name": "connect", "arguments": inner}
        body = {"messages": [{"role": "assistant", "tool_calls": [call]}]}
    elif how == 1:  # JSON in a string in a string
        body = {"input": json.dumps({"event": "config", "payload": inner})}
    elif how == 2:  # base64-wrapped JSON
        body = {"document": base64.b64encode(inner.encode()).decode(), "encoding": "base64"}
    else:  # base64-wrapped header block
        block = f"Host: api.example.com\r\nAuthorization: Bearer {value}\r\nAccept: */*\r\n"
        body = {"raw_request": base64.b64encode(block.encode()).decode()}
    ex = _request(g)
    return value, Exchange(ex.url, ex.headers, json.dumps(body), 200, '{"ok":true}')


def _nested_clean(g: random.Random) -> Exchange:
    meta = {
        "token_type": "Bearer",
        "expires_in": g.randint(600, 7200),
        "key_id": f"k-{g.randint(2020, 2026)}-{_r(g, 6, HEX)}",
        "password_policy": f"min-{g.randint(8, 16)}",
        "secret_name": f"projects/{_r(g, 8).lower()}/secrets/db-password",
        "scope": "openid profile",
    }
    inner = json.dumps(dict(g.sample(sorted(meta.items()), 3)))
    how = g.randrange(3)
    if how == 0:
        call = {"id": "call_" + _r(g, 24), "type": "function"}
        call["function"] = {"name": "describe", "arguments": inner}
        body: dict[str, object] = {"messages": [{"role": "assistant", "tool_calls": [call]}]}
    elif how == 1:
        body = {"document": base64.b64encode(inner.encode()).decode(), "encoding": "base64"}
    else:
        request_id = uuid.UUID(int=g.getrandbits(128))
        block = f"Authorization: Bearer <token>\r\nX-Request-Id: {request_id}\r\n"
        body = {"raw_request": base64.b64encode(block.encode()).decode()}
    ex = _request(g)
    return Exchange(ex.url, ex.headers, json.dumps(body), 200, '{"ok":true}')


B64 = ALNUM + "+/"
URLSAFE = ALNUM + "_-"


def _long_credential(g: random.Random) -> tuple[str, str]:
    """``(how its context names it, a credential)`` of a format without a fixed length, drawn
    longer than such tokens usually are (301 to 2,400 characters): a match that stops at a
    cap leaves the rest of the token in the cassette."""
    n = g.randint(301, 2400)
    kind = g.randrange(8)
    if kind == 0:
        return g.choice(["AWS_SESSION_TOKEN", "aws_session_token", "SessionToken"]), _r(g, n, B64)
    if kind == 1:
        return "", "ya29." + _r(g, n, URLSAFE)
    if kind == 2:
        return "", g.choice(["sk-proj-", "sk-svcacct-", "sk-ant-oat01-"]) + _r(g, n, URLSAFE)
    if kind == 3:
        return "", g.choice(["pypi-AgEIcHlwaS5vcmc", "glpat-", "ABSK"]) + _r(g, n, ALNUM)
    if kind == 4:
        return "Basic", base64.b64encode(f"svc-{_r(g, 6)}:{_r(g, n)}".encode()).decode()
    if kind == 5:
        return "url", _r(g, n, ALNUM + "~!$*")
    name = g.choice(["client_secret", "refresh_token", "password", "api_key", "id_token"])
    return name, _r(g, n, ALNUM + "._-")


def _long_secret(g: random.Random) -> tuple[str, Exchange]:
    name, secret = _long_credential(g)
    if name == "url":
        said = f"Connect with postgres://svc:{secret}@db.internal.example.org:5432/app today."
    elif name == "Basic":
        said = f"The proxy sent Authorization: Basic {secret} and was let in."
    elif name:
        said = g.choice(
            [f"export {name}={secret}", f'{{"{name}": "{secret}"}}', f"{name}: {secret}"]
        )
    else:
        said = f"The key in the log was {secret}, so rotate it."
    where = g.randrange(3)
    if where == 0:
        return secret, _answer(g, f"Found in the config: {said} (line 12).")
    ex = _request(g)
    if where == 1 or name == "url":
        body = json.dumps({"messages": [{"role": "user", "content": f"Why? {said}"}]})
        return secret, Exchange(ex.url, ex.headers, body, 200, json.dumps({"ok": True}))
    if name == "Basic":
        header = ("Authorization", f"Basic {secret}")
    elif name.lower().endswith("token"):
        header = ("X-Amz-Security-Token", secret)
    else:
        header = ("Authorization", f"Bearer {secret}")
    return secret, Exchange(ex.url, (*ex.headers, header), ex.body, 200, json.dumps({"ok": True}))


def _long_clean(g: random.Random) -> Exchange:
    n = g.randint(301, 2400)
    blob = _r(g, n - n % 4, B64)
    item = g.choice(
        [
            {"type": "reasoning", "id": "rs_" + _r(g, 24), "encrypted_content": blob},
            {"type": "thinking", "thinking": "Let me see.", "signature": blob},
            {"thoughtSignature": blob, "text": "The answer is 4."},
            {"b64_json": blob, "revised_prompt": "a desk with a lamp"},
            {"token_type": "Bearer", "expires_in": 3599, "scope": " ".join(["openid"] * (n // 7))},
            {"note": "set OPENAI_API_KEY=" + "x" * n, "model": "gpt-4o-mini"},
        ]
    )
    ex = _request(g)
    return Exchange(ex.url, ex.headers, ex.body, 200, json.dumps({"output": [item]}))


def _markup_secret(g: random.Random) -> tuple[str, Exchange]:
    key = _prefixless(g)
    password = _r(g, g.randint(12, 24), ALNUM + "!#%+-_")
    kind = g.randrange(5)
    if kind == 0:  # an AWS STS answer
        secret = g.choice([_r(g, 40, B64), _r(g, g.randint(300, 900), B64)])
        token = secret if len(secret) > 40 else _r(g, 500, B64)
        access = secret if len(secret) == 40 else _r(g, 40, B64)
        text = (
            '<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
            "<AssumeRoleResult><Credentials>"
            f"<AccessKeyId>ASIA{_r(g, 16, string.ascii_uppercase + '234567')}</AccessKeyId>"
            f"<SecretAccessKey>{access}</SecretAccessKey>"
            f"<SessionToken>{token}</SessionToken>"
            "<Expiration>2026-12-06T13:00:00Z</Expiration>"
            "</Credentials></AssumeRoleResult></AssumeRoleResponse>"
        )
        ex = _request(g)
        return secret, Exchange(ex.url, ex.headers, ex.body, 200, text, answer_type="text/xml")
    if kind == 1:  # a SOAP request with a WS-Security password
        ns = g.choice(["wsse", "sec", ""])
        tag = f"{ns}:Password" if ns else "Password"
        body = (
            '<soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope"><soap:Header>'
            f"<{ns or 'wsse'}:UsernameToken><{ns or 'wsse'}:Username>svc</{ns or 'wsse'}:Username>"
            f'<{tag} Type="#PasswordText">{password}</{tag}>'
            f"</{ns or 'wsse'}:UsernameToken></soap:Header><soap:Body/></soap:Envelope>"
        )
        return password, Exchange(_CHAT.format(host=g.choice(_HOSTS)), (), body, 200, "{}")
    if kind == 2:  # a config file echoed in an answer
        name = g.choice(["apiKey", "api_key", "AzureOpenAIKey", "clientSecret", "accessToken"])
        text = (
            f"<configuration>\n  <{name}>{key}</{name}>\n  <timeout>30</timeout>\n</configuration>"
        )
        return key, _answer(g, f"Your settings file reads:\n{text}")
    if kind == 3:  # .NET appSettings, Spring or Ant properties: a name/value attribute pair
        name = g.choice(["OpenAIApiKey", "AzureOpenAIKey", "cohere.api.key", "ClientSecret"])
        attr = g.choice(["key", "name"])
        el = g.choice(["add", "property", "param"])
        text = f'<appSettings>\n  <{el} {attr}="{name}" value="{key}" />\n</appSettings>'
        return key, _answer(g, f"Here is the web.config section:\n{text}")
    form = (  # an HTML form with a prefilled credential, as a page was recorded
        f'<form method="post"><input type="hidden" name="{g.choice(["api_key", "client_secret"])}"'
        f' value="{key}"><input type="submit" value="Go"></form>'
    )
    ex = _request(g)
    return key, Exchange(ex.url, ex.headers, ex.body, 200, form, answer_type="text/html")


def _prefixed(g: random.Random) -> str:
    return g.choice([f for f in FORMATS if not f.keyword and not f.name.startswith("pem")]).make(g)


def _entities(g: random.Random, text: str) -> str:
    """`text` with most characters as HTML character references, decimal or hex."""
    out = []
    for c in text:
        kind = g.randrange(5)
        out.append(
            c if kind == 0 else f"&#{ord(c)};" if kind < 3 else f"&#{g.choice('xX')}{ord(c):x};"
        )
    return "".join(out)


def _percent(g: random.Random, text: str, share: float) -> str:
    """`text` with a `share` of its characters percent-encoded, in either case of hex."""
    return "".join(
        (f"%{ord(c):02x}" if g.random() < 0.5 else f"%{ord(c):02X}") if g.random() < share else c
        for c in text
    )


_CODECS = ("utf-16", "utf-16-le", "utf-16-be", "utf-32-le")
"""How a wide answer is sent: ``utf-16`` writes a byte order mark, the others none."""


def _html_page(g: random.Random, inner: str) -> Exchange:
    ex = _request(g)
    page = f"<!doctype html><html><body><main>{inner}</main></body></html>"
    return Exchange(ex.url, ex.headers, ex.body, 200, page, answer_type="text/html")


def _encoded_secret(g: random.Random) -> tuple[str, Exchange]:
    kind = g.randrange(5)
    if kind == 0:  # a token written as character references, in an attribute or as text
        secret = _prefixed(g)
        spelled = _entities(g, secret)
        inner = g.choice([f'<div data-key="{spelled}"></div>', f"<p>Your key: {spelled}</p>"])
        return secret, _html_page(g, inner)
    if kind == 1:  # JSON config in an attribute: its quotes escaped, a prefix-less key
        key = _prefixless(g)
        name = g.choice(["apiKey", "api_key", "clientSecret", "accessToken"])
        config = json.dumps({"endpoint": "https://x.openai.azure.com", name: key})
        attr = config.replace("&", "&amp;").replace('"', g.choice(["&quot;", "&#34;", "&#x22;"]))
        return key, _html_page(g, f'<div id="app" data-config="{attr}"></div>')
    if kind == 2:  # a token percent-encoded, whole or in part, in a URL or in prose
        secret = _prefixed(g)
        spelled = _percent(g, secret, g.choice([1.0, 0.5]))
        said = g.choice(
            [f"Open https://dash.example.com/keys?show={spelled} to check it.", f"key={spelled}"]
        )
        return secret, _answer(g, said)
    if kind == 3:  # a text answer in UTF-16 or UTF-32
        secret = _prefixed(g)
        text = f"Exported settings\r\nOPENAI key: {secret}\r\nregion: eu-west-1\r\n"
        ex = _request(g)
        codec = g.choice(_CODECS)
        return secret, Exchange(
            ex.url, ex.headers, ex.body, 200, text, answer_type="text/plain", answer_codec=codec
        )
    secret = _prefixed(g)  # a text answer that is one base64 run, with its padding
    while True:
        text = f"token: {secret}" + " " * g.randrange(3)
        if len(text) % 3:  # (so that its base64 ends in `=` or `==`)
            break
        secret = _prefixed(g)
    ex = _request(g)
    b64 = base64.b64encode(text.encode()).decode()
    return secret, Exchange(ex.url, ex.headers, ex.body, 200, b64, answer_type="text/plain")


def _encoded_clean(g: random.Random) -> Exchange:
    kind = g.randrange(4)
    hexid = _r(g, 12, HEX)
    if kind == 0:  # markup as pages escape it: quotes, apostrophes, addresses hidden from bots
        config = json.dumps(
            {"theme": "dark", "apiVersion": "2024-10-21", "apiKey": "<YOUR_API_KEY>", "id": hexid}
        )
        attr = config.replace("&", "&amp;").replace('"', "&quot;")
        mail = _entities(g, f"support-{hexid[:4]}@example.com")
        inner = g.choice(
            [
                f'<div data-config="{attr}"></div>',
                f'<a href="mailto:{mail}">{mail}</a>',
                f"<p>It&#8217;s &quot;token&quot; &amp; &#x27;key&#x27; in the docs ({hexid})</p>",
            ]
        )
        return _html_page(g, inner)
    if kind == 1:  # percent-encoded URLs and queries with ids, words and placeholders
        q = _percent(g, g.choice(["sk-model comparison", "api key rotation", "<your key>"]), 1.0)
        path = _percent(g, "tokens & keys", 0.6)
        said = f"See https://example.com/search?q={q}&id={hexid} and /docs/{path}"
        return _answer(g, said)
    if kind == 2:  # UTF-16 or UTF-32 text with ids, digests and placeholders
        digest = hashlib.sha256(hexid.encode()).hexdigest()
        text = (
            f"build {digest}\r\nrequest id req_{_r(g, 24)}\r\n"
            f"OPENAI_API_KEY=<set me>\r\nsk-...{_r(g, 4)} (elided)\r\n"
        )
        ex = _request(g)
        codec = g.choice(_CODECS)
        return Exchange(
            ex.url, ex.headers, ex.body, 200, text, answer_type="text/plain", answer_codec=codec
        )
    meta = json.dumps({"trace": hexid, "tokens": g.randint(10, 900), "key_id": f"kid-{hexid}"})
    b64 = base64.b64encode(meta.encode()).decode()  # base64 of metadata, padded or not
    ex = _request(g)
    return Exchange(ex.url, ex.headers, ex.body, 200, b64, answer_type="text/plain")


_PLACEHOLDERS = ("${DB_PASSWORD}", "{{ password }}", "********", "%(pw)s", "<YOUR_API_KEY>")
_WORDS = ("Hidden", "Keyword", "Operator", "Punctuation", "Revealed", "SignIn")


def _markup_clean(g: random.Random) -> Exchange:
    n, word, hexid = g.randint(16, 8192), g.choice(_WORDS), _r(g, 12, HEX)
    look = g.choice(
        [
            f"<token_type>{g.choice(['bearer', 'Bearer', 'mac'])}</token_type>",
            f"<max_tokens>{n}</max_tokens><total_tokens>{n // 3}</total_tokens>",
            f"<password>{g.choice(_PLACEHOLDERS)}</password>",
            f"<apiKey>{g.choice(['your-api-key-here', 'x' * 32, 'REPLACE_ME'])}</apiKey>",
            f"<KeyId>kid-{hexid}</KeyId><SecretName>prod-{hexid[:6]}-db</SecretName>",
            f'<span class="token">{word}</span><p class="auth">{word}</p>',
            f'<div class="secret-{hexid[:4]}">{word}</div>',
            f"<SessionTokenExpiry>2026-{g.randint(1, 12):02d}-01T00:00:00Z</SessionTokenExpiry>",
            f'<add key="ApiKeyHeader" value="{g.choice(["x-api-key", "api-key"])}" />',
            '<input type="password" name="password" value="">',
            '<input name="token_type" value="bearer"><input name="auth" value="oauth2">',
            f"<auth_method>oauth2</auth_method><secret_ref>vault:kv/{hexid[:6]}</secret_ref>",
        ]
    )
    text = f"<response><status>ok</status>{look}</response>"
    if g.random() < 0.5:
        return _answer(g, f"The service answered:\n{text}")
    ex = _request(g)
    return Exchange(ex.url, ex.headers, ex.body, 200, text, answer_type="application/xml")


SECRETS: dict[str, Callable[[random.Random], tuple[str, Exchange]]] = {
    "split": _split_secret,
    "context": _context_secret,
    "url-path": _url_secret,
    "nested": _nested_secret,
    "long": _long_secret,
    "markup": _markup_secret,
    "encoded": _encoded_secret,
}
_CLEAN: dict[str, Callable[[random.Random], Exchange]] = {
    "split": _split_clean,
    "context": _context_clean,
    "url-path": _url_clean,
    "nested": _nested_clean,
    "long": _long_clean,
    "markup": _markup_clean,
    "encoded": _encoded_clean,
}


# ---- the shapes ---------------------------------------------------------------------------


def _answer_text(ex: Exchange) -> str:
    return "".join(ex.events) if ex.events else ex.answer


def _answer_type(ex: Exchange) -> str:
    return "text/event-stream" if ex.events else ex.answer_type


def answer_bytes(ex: Exchange) -> bytes | None:
    """The answer's bytes when it is sent in a wide codec (else None: UTF-8 text)."""
    return ex.answer.encode(ex.answer_codec) if ex.answer_codec else None


def _vcr_yaml(g: random.Random, ex: Exchange) -> tuple[str, bytes]:
    doc = {
        "interactions": [
            {
                "request": {
                    "body": ex.body or None,
                    "headers": {k: [v] for k, v in ex.headers},
                    "method": "POST" if ex.body else "GET",
                    "uri": ex.url,
                },
                "response": {
                    "body": {"string": answer_bytes(ex) or _answer_text(ex)},
                    "headers": {"Content-Type": [_answer_type(ex)]},
                    "status": {"code": ex.status, "message": "OK"},
                },
            }
        ],
        "version": 1,
    }
    return ".yaml", yaml.safe_dump(doc, allow_unicode=True).encode()


def _har_entry(ex: Exchange, b64: bool) -> dict[str, object]:
    text = _answer_text(ex)
    content: dict[str, object] = {"mimeType": _answer_type(ex), "size": len(text), "text": text}
    if b64 or ex.answer_codec:
        data = answer_bytes(ex) or text.encode()
        content.update(text=base64.b64encode(data).decode(), encoding="base64")
    request: dict[str, object] = {
        "method": "POST" if ex.body else "GET",
        "url": ex.url,
        "headers": [{"name": k, "value": v} for k, v in ex.headers],
    }
    if ex.body:
        request["postData"] = {"mimeType": "application/json", "text": ex.body}
    response = {"status": ex.status, "headers": [], "content": content}
    return {"startedDateTime": "2026-01-01T00:00:00.000Z", "request": request, "response": response}


def _har(g: random.Random, ex: Exchange) -> tuple[str, bytes]:
    doc = {"log": {"version": "1.2", "creator": {"name": "x"}, "entries": [_har_entry(ex, False)]}}
    return ".har", json.dumps(doc, indent=2).encode()


def _polly(g: random.Random, ex: Exchange) -> tuple[str, bytes]:
    entry = {"_id": _r(g, 32, HEX), "_order": 0, **_har_entry(ex, True)}
    doc = {"log": {"_recordingName": "llm/chat", "version": "1.2", "entries": [entry]}}
    return ".har", json.dumps(doc, indent=2).encode()


def _wiremock(g: random.Random, ex: Exchange) -> tuple[str, bytes]:
    request: dict[str, object] = {"method": "POST" if ex.body else "GET", "url": ex.url}
    request["headers"] = {k: {"equalTo": v} for k, v in ex.headers}
    if ex.body:
        request["bodyPatterns"] = [{"equalToJson": ex.body}]
    response: dict[str, object] = {"status": ex.status, "body": _answer_text(ex)}
    if (data := answer_bytes(ex)) is not None:
        response = {"status": ex.status, "base64Body": base64.b64encode(data).decode()}
    response["headers"] = {"Content-Type": _answer_type(ex)}
    doc = {"id": str(uuid.UUID(int=g.getrandbits(128))), "request": request, "response": response}
    return ".json", json.dumps(doc, indent=2).encode()


def _events_json(g: random.Random, ex: Exchange) -> tuple[str, bytes]:
    key = g.choice(["events", "chunks", "raw_events", "stream", "sse_lines", "body_parts"])
    response: dict[str, object] = {"status": ex.status}
    if ex.events:
        response[key] = list(ex.events)
    elif (data := answer_bytes(ex)) is not None:
        response["body_base64"] = base64.b64encode(data).decode()
    else:
        response["body"] = ex.answer
    request = {"url": ex.url, "headers": dict(ex.headers), "body": ex.body}
    return ".json", json.dumps({"request": request, "response": response}, indent=1).encode()


def _ndjson(g: random.Random, ex: Exchange) -> tuple[str, bytes]:
    lines = [{"kind": "request", "url": ex.url, "headers": dict(ex.headers), "body": ex.body}]
    if ex.events and g.random() < 0.5:  # the raw event text
        lines += [{"kind": "chunk", "raw": e} for e in ex.events]
    elif ex.events:  # the event's data, parsed
        for e in ex.events:
            data = e.split("data: ", 1)[1].strip()
            lines.append({"kind": "chunk", "data": json.loads(data) if data[0] == "{" else data})
    elif (data := answer_bytes(ex)) is not None:
        body = base64.b64encode(data).decode()
        lines.append({"kind": "response", "status": ex.status, "body": body, "encoding": "base64"})
    else:
        lines.append({"kind": "response", "status": ex.status, "body": ex.answer})
    return ".jsonl", "".join(json.dumps(line) + "\n" for line in lines).encode()


def interaction(ex: Exchange) -> Interaction:
    """`ex` as a tapeproxy interaction."""
    text = _answer_text(ex)
    chunks = tuple((float(i * 15), len(e.encode())) for i, e in enumerate(ex.events)) or None
    request = Request(
        method="POST" if ex.body else "GET",
        url=ex.url,
        headers=ex.headers,
        body=Body(text=ex.body) if ex.body else None,
    )
    headers = (("content-type", _answer_type(ex)),)
    data = answer_bytes(ex)
    body = Body(text=text) if data is None else Body.from_bytes(data)
    response = Response(status=ex.status, headers=headers, body=body, chunks=chunks)
    return Interaction(key="0" * 64, request=request, response=response)


def _tapeproxy(g: random.Random, ex: Exchange) -> tuple[str, bytes]:
    cassette = new_cassette("0.1.0", "2026-01-01T00:00:00Z")
    doc = cassette.model_copy(update={"interactions": (interaction(ex),)})
    return ".json.zst", dumps(doc)


_SHAPE_WRITERS: dict[str, Callable[[random.Random, Exchange], tuple[str, bytes]]] = {
    "vcr-yaml": _vcr_yaml,
    "har": _har,
    "polly-b64": _polly,
    "wiremock": _wiremock,
    "events-json": _events_json,
    "ndjson": _ndjson,
    "tapeproxy": _tapeproxy,
}


def generate(seed: int = 4321, per_class: int = 70, clean_per_class: int = 70) -> list[Doc]:
    """`per_class` secret files and `clean_per_class` clean ones of each class, shapes cycled."""
    g = random.Random(seed)
    docs: list[Doc] = []
    for cls in CLASSES:
        for i in range(per_class):
            shape = SHAPES[i % len(SHAPES)]
            secret, ex = SECRETS[cls](g)
            suffix, data = _SHAPE_WRITERS[shape](g, ex)
            docs.append(Doc(f"pos-{cls}-{i:03d}-{shape}", cls, secret, shape, suffix, data))
        for i in range(clean_per_class):
            shape = SHAPES[(i + 3) % len(SHAPES)]
            suffix, data = _SHAPE_WRITERS[shape](g, _CLEAN[cls](g))
            docs.append(Doc(f"neg-{cls}-{i:03d}-{shape}", cls, None, shape, suffix, data))
    return docs


def write(docs: list[Doc], out: Path) -> None:
    """Write each doc as ``<name><suffix>`` under `out`."""
    out.mkdir(parents=True, exist_ok=True)
    for doc in docs:
        (out / f"{doc.name}{doc.suffix}").write_bytes(doc.data)


if __name__ == "__main__":
    target = Path(sys.argv[1])
    corpus = generate(int(sys.argv[2]) if len(sys.argv) > 2 else 4321)
    write(corpus, target)
    labels = [{"file": d.name + d.suffix, "class": d.cls, "shape": d.shape} for d in corpus]
    print(json.dumps(labels, indent=1))
