"""Record-time redaction: zero bytes of any secret in any placement survive, chunk sizes still
cover the body, and a request's key does not depend on the secrets it carried."""

from __future__ import annotations

import base64
import binascii
import contextlib
import html
import json
import random
from urllib.parse import quote, quote_plus, unquote_plus

import pytest

from tapeproxy.cassettes.key import request_key
from tapeproxy.cassettes.model import Body, MatchRules, Request, Response
from tapeproxy.errors import ConfigError
from tapeproxy.redaction import Redactor
from tapeproxy.redaction.redactor import rechunk
from tests.redaction.corpus import FORMATS, generate
from tests.redaction.foreign import _CLEAN, SECRETS, interaction
from tests.redaction.texts import json_texts


def _variants(secret: str) -> set[str]:
    out = {secret, quote(secret, safe=""), quote_plus(secret), json.dumps(secret)[1:-1]}
    out.add(base64.b64encode(secret.encode()).decode()[:-4])
    return {v for v in out if len(v) >= 8}


def test_no_byte_of_any_secret_survives_in_any_placement() -> None:
    redactor = Redactor()
    leaks = []
    for doc in generate(seed=5, per_format=11, clean=0):
        assert doc.secret is not None
        safe = redactor.redact_interaction(doc.interaction)
        stored = safe.model_dump_json()
        for part in (safe.response.body if safe.response else None, safe.request.body):
            if part is not None and part.base64 is not None:
                stored += part.to_bytes().decode("latin-1")
        for variant in _variants(doc.secret):
            if variant in stored or variant[: len(variant) // 2 + 4] in stored:
                leaks.append((doc.name, doc.placement))
    assert leaks == [], leaks


def test_split_secret_is_redacted_in_both_chunks_and_sizes_still_add_up() -> None:
    for doc in generate(seed=11, per_format=1, clean=0):
        if doc.placement != "sse-split":
            continue  # a password: not a secret in what a model wrote
        assert doc.interaction.response is not None
        resp = Redactor().redact_response(doc.interaction.response)
        body = resp.body.to_bytes() if resp.body else b""
        assert resp.chunks is not None and sum(n for _, n in resp.chunks) == len(body)
        assert len(resp.chunks) == len(doc.interaction.response.chunks or ())
        assert b"<redacted:" in body
        assert doc.secret is not None and doc.secret[:6].encode() not in body[-200:] + body[:0]


def _ndjson(pieces: list[str], rng: random.Random) -> str:
    """An NDJSON answer stream (Ollama's shape, or an event's own): an object on each line
    carrying one piece of the answer, then the summary line."""
    model = rng.choice(["llama3.2", "qwen2.5:7b", "mistral"])
    ollama = rng.random() < 0.5
    lines = [
        {"model": model, "message": {"role": "assistant", "content": p}, "done": False}
        if ollama
        else {"type": "content_block_delta", "delta": {"type": "text_delta", "text": p}}
        for p in pieces
    ]
    lines.append({"model": model, "done": True, "eval_count": len(pieces)})
    return "".join(json.dumps(line) + "\n" for line in lines)


def test_a_secret_split_across_ndjson_lines_is_redacted_and_clean_streams_are_kept() -> None:
    """Streams that are NDJSON, not SSE (Ollama's chat answers): the values of each field are
    joined across lines as for SSE, with or without an NDJSON content type, and the chunk
    sizes still add up; a clean stream of the same shape is stored byte for byte."""
    rng = random.Random(43)
    redactor = Redactor()
    leaks, changed = [], []
    for fmt in (f for f in FORMATS if not f.keyword):
        secret = fmt.make(rng)
        cut = sorted(rng.sample(range(3, len(secret) - 3), 3))
        bounds = zip([0, *cut], [*cut, None], strict=True)
        pieces = ["The key is ", *(secret[a:b] for a, b in bounds), "."]
        words = ["river", "stone", "amber", "lantern", "tokens", "keys", "session", "auth"]
        clean = ["Sure: ", *(w + " " for w in rng.choices(words, k=6)), "done."]
        for ct in ("application/x-ndjson", "application/json", ""):
            for words, is_secret in ((pieces, True), (clean, False)):
                text = _ndjson(words, rng)
                sizes = [len(line.encode()) for line in text.splitlines(keepends=True)]
                response = Response(
                    status=200,
                    headers=(("content-type", ct),) if ct else (),
                    body=Body(text=text),
                    chunks=tuple((10.0 * i, n) for i, n in enumerate(sizes)),
                )
                out = redactor.redact_response(response)
                body = out.body.to_bytes() if out.body else b""
                assert out.chunks is not None and sum(n for _, n in out.chunks) == len(body)
                lines = [json.loads(line) for line in body.decode().splitlines()]
                kept = "".join(
                    (d.get("message") or {}).get("content")
                    or (d.get("delta") or {}).get("text", "")
                    for d in lines
                )
                if is_secret and secret in kept:
                    leaks.append((fmt.name, ct))
                if not is_secret and body != text.encode():
                    changed.append((fmt.name, ct))
    assert leaks == [] and changed == [], (leaks, changed)


def test_key_is_the_same_with_or_without_the_secret() -> None:
    rules = MatchRules()
    r = Redactor()

    def key(secret: str) -> str:
        req = Request(
            method="POST",
            url=f"https://api.example.com/v1/chat?key={secret}&v=1",
            headers=(("content-type", "application/json"), ("authorization", f"Bearer {secret}")),
            body=Body(text=json.dumps({"api_key": secret, "messages": []})),
        )
        red = r.redact_request(req)
        body = red.body.to_bytes() if red.body else b""
        return request_key(red.method, red.url, red.headers, body, rules)

    real = "sk-proj-" + "Ab3dEf9hIj" * 8
    assert key(real) == key("sk-proj-" + "Zy8xWv7uTs" * 8) == key("dummy")


def test_redaction_is_idempotent_and_deterministic() -> None:
    r = Redactor()
    for doc in generate(seed=3, per_format=2, clean=20):
        once = r.redact_interaction(doc.interaction)
        assert r.redact_interaction(once) == once == r.redact_interaction(doc.interaction)


def test_the_quick_check_agrees_with_the_full_scan_of_every_request() -> None:
    r = Redactor()
    docs = generate(seed=11, per_format=6, clean=300)
    kept = 0
    for doc in docs:
        request = doc.interaction.request
        full = r.scan_request(request, "request")[0]
        assert r.redact_request(request) == full, doc.name
        kept += r.redact_request(request) is request
    # Most clean requests take the quick path; no request that carries a secret does.
    assert kept > 150
    in_request = ("header", "url-query", "url-path", "userinfo", "json-nested", "json-in-string")
    carrying = [d for d in docs if d.secret is not None and d.placement in (*in_request, "form")]
    assert len(carrying) > 100
    for doc in carrying:
        assert r.redact_request(doc.interaction.request) is not doc.interaction.request, doc.name


def test_clean_interactions_are_left_untouched() -> None:
    r = Redactor()
    for doc in generate(seed=3, per_format=0, clean=44):
        safe = r.redact_interaction(doc.interaction)
        assert safe.response == doc.interaction.response, doc.name
        if doc.fmt != "placeholder":  # credential-named fields are always replaced (stable keys)
            assert safe.request.body == doc.interaction.request.body, doc.name


def test_rechunk_moves_boundaries_after_an_edit() -> None:
    chunks = ((0.0, 10), (5.0, 10), (9.0, 10))
    assert rechunk(chunks, [(12, 18, 2)]) == ((0.0, 10), (5.0, 6), (9.0, 10))
    assert rechunk(chunks, [(8, 14, 1)]) == ((0.0, 9), (5.0, 6), (9.0, 10))


def test_from_config_extra_names_patterns_and_allowlist() -> None:
    secret = "acme-" + "9f8e7d6c5b4a" * 2
    allowed = "sk-proj-" + "Qw3eRt5yUi" * 8
    import hashlib

    r = Redactor.from_config(
        {
            "redact_headers": ["X-Acme-Auth"],
            "redact_fields": ["acme_credential"],
            "redact_patterns": [{"name": "acme", "pattern": r"acme-[0-9a-f]{24}"}],
            "allowlist": [hashlib.sha256(allowed.encode()).hexdigest()],
        }
    )
    req = Request(
        method="POST",
        url="https://acme.example/v1",
        headers=(("x-acme-auth", "hello-world-1"), ("content-type", "application/json")),
        body=Body(text=json.dumps({"acme_credential": "abc", "note": f"{secret} {allowed}"})),
    )
    red = r.redact_request(req)
    text = red.model_dump_json()
    assert "hello-world-1" not in text and secret not in text and allowed in text
    assert "<redacted:acme>" in text


@pytest.mark.parametrize(
    "table",
    [{"redact_headers": "x"}, {"redact_patterns": ["("]}, {"allowlist": [1]}],
)
def test_from_config_rejects_bad_values(table: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        Redactor.from_config(table)


def test_set_cookie_and_binary_bodies() -> None:
    secret = "AKIA" + "QWERTYUIOPASDFGH"
    resp = Response(
        status=200,
        headers=(("set-cookie", "session=Zx8Yw7Vu6Ts5Rq4P; Path=/; HttpOnly"),),
        body=Body.from_bytes(b"\xff\x00binary " + secret.encode() + b" \xfe"),
    )
    red = Redactor().redact_response(resp)
    assert red.headers[0][1].startswith("session=<redacted:cookie>; Path=/")
    assert red.body is not None and secret.encode() not in red.body.to_bytes()


@pytest.mark.parametrize(
    "name", ["X-Acme-Api-Key", "x-vendor-apikey", "X-Service-Access-Token", "x-client-secret"]
)
def test_a_custom_credential_header_is_redacted_whatever_the_shape_of_its_value(name: str) -> None:
    import uuid

    for value in (str(uuid.uuid4()), uuid.uuid4().hex, "ab12" * 8):
        request = Request(method="GET", url="https://api.example/v1", headers=((name, value),))
        redacted = Redactor().redact_request(request)
        assert value not in str(redacted.headers), (name, value)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("x-request-id", "6f1c2a7e-3b4d-4e5f-8a9b-0c1d2e3f4a5b"),
        ("x-ratelimit-reset-tokens", "6m0s"),
        ("x-ratelimit-remaining-tokens", "149984"),
        ("openai-processing-ms", "412"),
    ],
)
def test_ordinary_headers_that_mention_tokens_are_kept(name: str, value: str) -> None:
    request = Request(method="GET", url="https://api.example/v1", headers=((name, value),))
    assert Redactor().redact_request(request).headers == ((name, value),)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("x-ratelimit-key", "org-7Hq2vX9kLmP4-requests-per-minute"),
        ("azureml-model-session", "d20241101-2-170958471"),
        ("x-session-affinity", "b7e4c1a9f03d2e6a"),
    ],
)
def test_answers_keep_headers_whose_names_only_hint_at_credentials(name: str, value: str) -> None:
    response = Response(status=200, headers=((name, value),))
    assert Redactor().redact_response(response).headers == ((name, value),)


def test_answers_still_lose_credential_headers_and_proven_tokens() -> None:
    import secrets

    token = "ghp_" + secrets.token_hex(18)
    cookie = f"session={secrets.token_urlsafe(24)}; Path=/"
    response = Response(
        status=200, headers=(("set-cookie", cookie), ("x-ratelimit-key", f"bucket {token}"))
    )
    headers = dict(Redactor().redact_response(response).headers)
    assert cookie.split(";")[0].split("=")[1] not in headers["set-cookie"]
    assert token not in headers["x-ratelimit-key"]


@pytest.mark.parametrize("number", ["3.14159e+21", "1.5e-06", "6.0000000000000002e-07", "-2E+10"])
def test_numbers_under_credential_like_names_keep_the_json_valid(number: str) -> None:
    text = '{"pricing": {"secret_sauce": NUM, "token_price": NUM}, "n": 1}'.replace("NUM", number)
    response = Response(
        status=200, headers=(("content-type", "application/json"),), body=Body(text=text)
    )
    out = Redactor().redact_response(response).body
    assert out is not None and out.text == text
    json.loads(out.text)


def test_the_raw_pass_still_finds_secrets_inside_json_strings() -> None:
    import secrets as _secrets

    value = _secrets.token_urlsafe(24)
    text = json.dumps({"note": f"export API_KEY={value}", "n": 2.5e-07})
    response = Response(
        status=200, headers=(("content-type", "application/json"),), body=Body(text=text)
    )
    out = Redactor().redact_response(response).body
    assert out is not None and out.text is not None
    assert value not in out.text
    assert json.loads(out.text)["n"] == 2.5e-07


@pytest.mark.parametrize("placeholder", ["scrubbed", "<redacted>", "REDACTED", "${TOKEN}"])
def test_an_answer_keeps_the_placeholders_its_server_sent(placeholder: str) -> None:
    # A recording scrubbed by another tool, or a server that masks: the answer is not keyed,
    # so its bytes stay; the same value in a request still becomes a marker (keys stay stable).
    doc = json.dumps(
        {"access_token": placeholder, "expires_in": 3599, "authorization": placeholder}
    )
    r = Redactor()
    answer = r.redact_response(
        Response(status=200, headers=(("content-type", "application/json"),), body=Body(text=doc))
    )
    assert answer.body is not None and answer.body.text == doc
    request = r.redact_request(
        Request(
            method="POST",
            url="https://oauth.example.com/token",
            headers=(("content-type", "application/json"),),
            body=Body(text=doc),
        )
    )
    assert request.body is not None and "<redacted:" in str(request.body.text)


def test_cookies_are_all_redacted_but_only_session_ones_are_reported() -> None:
    rng = random.Random(22)
    alphabet = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789_-"
    session, tracking = ("".join(rng.choices(alphabet, k=32)) for _ in range(2))
    value = f"_ga_tracker={tracking}; app_session={session}"
    request = Request(
        method="GET", url="https://a.example.com/", headers=(("cookie", value),), body=None
    )
    redacted, hits = Redactor().scan_request(request, "request")
    assert session not in str(redacted) and tracking not in str(redacted)
    assert [h.secret for h in hits] == [session]
    lint = Redactor(report_only=True)
    # the same header kept as a JSON field, as vcrpy cassettes hold it
    doc = json.dumps({"headers": {"Cookie": [value]}})
    _, found = lint.scanner.json_edits(doc, "")
    assert [h.secret for h in found] == [session]


def test_a_token_inside_binary_data_is_redacted_and_its_length_kept_track_of() -> None:
    rng = random.Random(21)
    token = (
        "sk-proj-" + "Ab3dEf9hIjKlMnOpQrStUvWx" * 3 + "T3BlbkFJ" + "Zy8Xw7Vu6Ts5Rq4Pp3Oo2Nn1" * 3
    )
    # a byte that is not a letter or digit on each side: a token glued to a letter is part of
    # a longer word, in binary data as in text
    data = rng.randbytes(200_000) + b"\x00" + token.encode() + b"\x00" + rng.randbytes(200_000)
    response = Response(
        status=200,
        headers=(("content-type", "application/octet-stream"),),
        body=Body.from_bytes(data),
    )
    redacted, hits = Redactor().scan_response(response, "response")
    out = redacted.body.to_bytes() if redacted.body is not None else b""
    assert token.encode() not in out and b"<redacted:openai>" in out
    assert [h.secret for h in hits] == [token]
    assert out.startswith(data[:200_001]) and out.endswith(data[-200_001:])


def test_a_token_right_after_a_letter_byte_in_binary_data_is_found() -> None:
    # A protobuf string field: tag byte, length byte, the string. A 100-character token has
    # length byte 'd': in text that would glue it to a word; binary data has no words.
    rng = random.Random(23)
    body = "".join(rng.choices("abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789", k=92))
    token = "sk-proj-" + body
    frame = b"\x0a" + bytes([len(token)]) + token.encode()
    data = rng.randbytes(4096) + frame + rng.randbytes(4096)
    assert bytes([len(token)]).isalpha()
    response = Response(
        status=200,
        headers=(("content-type", "application/grpc"),),
        body=Body.from_bytes(data),
    )
    redacted, hits = Redactor().scan_response(response, "response")
    assert [h.secret for h in hits] == [token]
    assert redacted.body is not None and token.encode() not in redacted.body.to_bytes()


def _password(rng: random.Random) -> str:
    import string

    return "".join(rng.choice(string.ascii_letters + string.digits + "!#%&*") for _ in range(14))


def _answers(pw: str, token: str) -> dict[str, tuple[str, str]]:
    """Provider answers (content type, body) whose model-written parts hold password `pw`
    and token `token`."""
    args = json.dumps({"username": "ada", "password": pw, "note": f"key {token}"})
    chat = {
        "id": "chatcmpl-9xYz",
        "object": "chat.completion",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": f"Your new password: {pw} (token {token})",
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "create_user", "arguments": args},
                        }
                    ],
                },
                "finish_reason": "tool_calls",
            }
        ],
    }
    messages = {
        "id": "msg_01",
        "type": "message",
        "content": [
            {"type": "text", "text": f"Password: {pw}. Token: {token}"},
            {
                "type": "tool_use",
                "id": "toolu_1",
                "name": "create_user",
                "input": {"password": pw, "token_note": token},
            },
        ],
    }
    gemini = {
        "candidates": [
            {
                "content": {
                    "role": "model",
                    "parts": [
                        {"text": f"password={pw} {token}"},
                        {
                            "functionCall": {
                                "name": "create_user",
                                "args": {"password": pw, "t": token},
                            }
                        },
                    ],
                }
            }
        ]
    }
    cut = len(args) // 2
    events = [
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": piece},
        }
        for piece in (args[:cut], args[cut:])
    ]
    stream = "".join(f"event: content_block_delta\ndata: {json.dumps(e)}\n\n" for e in events)
    return {
        "openai chat": ("application/json", json.dumps(chat)),
        "anthropic messages": ("application/json", json.dumps(messages)),
        "gemini": ("application/json", json.dumps(gemini)),
        "anthropic stream": ("text/event-stream", stream),
    }


@pytest.mark.parametrize("seed", range(4))
def test_what_a_model_wrote_keeps_its_passwords_but_loses_proven_tokens(seed: int) -> None:
    # A password the model made up for a tool call is test data: replaced, the test's tool
    # gets a placeholder and the next request misses. A token a detector proves still goes.
    rng = random.Random(seed)
    fmt = rng.choice(
        [
            f
            for f in FORMATS
            if not f.keyword
            and f.name not in ("pem-rsa", "pem-openssh", "basic-auth", "slack-webhook")
        ]
    )
    token = fmt.make(rng)
    pw = _password(rng)
    for name, (ctype, body) in _answers(pw, token).items():
        response = Response(status=200, headers=(("content-type", ctype),), body=Body(text=body))
        out = Redactor().redact_response(response).body
        assert out is not None and out.text is not None
        assert token not in out.text, name
        assert out.text.count(pw) == body.count(pw), name
        assert out.text.replace("<redacted:", "").count(pw) >= 1, name
        if ctype == "application/json":
            json.loads(out.text)


def test_a_password_outside_what_the_model_wrote_is_still_redacted() -> None:
    rng = random.Random(5)
    pw = _password(rng)
    echo = json.dumps({"settings": {"password": pw}, "choices": []})
    response = Response(
        status=200, headers=(("content-type", "application/json"),), body=Body(text=echo)
    )
    out = Redactor().redact_response(response).body
    assert out is not None and pw not in str(out.text)
    # and the same tool call sent back in a request is redacted: requests are keyed
    args = json.dumps({"password": pw})
    call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": args}}
    doc = json.dumps({"messages": [{"role": "assistant", "tool_calls": [call]}]})
    request = Request(
        method="POST",
        url="https://api.example.com/v1/chat/completions",
        headers=(("content-type", "application/json"),),
        body=Body(text=doc),
    )
    assert pw not in str(Redactor().redact_request(request).body)


@pytest.mark.parametrize("answers", [False, True])
def test_the_json_quick_check_never_hides_what_the_full_scan_finds(answers: bool) -> None:
    from tapeproxy.redaction.jsonscan import parses_as_json

    r = Redactor()
    scanner = r.answers if answers else r.scanner
    texts = [t for t in json_texts() if parses_as_json(t)]
    quick = 0
    for text in texts:
        if scanner.json_suspicious(text):
            continue
        quick += 1
        assert scanner.json_edits(text, "") == ([], []), text
        assert scanner.matches(text) == [], text
    assert len(texts) > 1000 and quick > 300  # the quick path is taken, and checked


def _named_ways(v: str, n: int) -> dict[str, dict[str, object]]:
    """A value `v` (or number `n`) named a credential in each way JSON can name one."""
    pair = base64.b64encode(f"user:{v}".encode()).decode()
    return {
        "pair": {"headers": [{"name": "Authorization", "value": f"Bearer {v}"}]},
        "hyphenated key": {"db": {"x-auth-token-value": v}},
        "number": {"api_key": n},
        "json in a string": {"note": json.dumps({"password": v})},
        "escaped slashes": {"url": f"https://u:{v}@db.example.com/x"},
        "base64 pair": {"blob": pair},
        "matcher": {"mock": {"x-api-key": {"equalTo": v}}},
        "pair in a string": {"har": json.dumps({"headers": [{"name": "api-key", "value": v}]})},
    }


@pytest.mark.parametrize("way", sorted(_named_ways("x", 0)))
def test_each_way_a_json_value_is_named_a_credential_passes_the_quick_check(way: str) -> None:
    rng = random.Random(way)
    value = "".join(rng.choice("abcdefghijKLMNOPQR0123456789") for _ in range(18))
    doc = _named_ways(value, rng.randrange(10**9, 10**10))[way]
    text = json.dumps(doc).replace("/", "\\/") if way == "escaped slashes" else json.dumps(doc)
    scanner = Redactor().scanner
    assert scanner.json_edits(text, "")[1] or scanner.matches(text), text  # a real finding
    assert scanner.json_suspicious(text), text


def test_a_configured_field_name_passes_the_json_quick_check() -> None:
    rng = random.Random(41)
    value = "".join(rng.choice("abcdefghijKLMNOPQR0123456789") for _ in range(18))
    text = json.dumps({"customer_ref": value, "n": 1})
    scanner = Redactor(extra_fields=["customer_ref"]).scanner
    assert scanner.json_edits(text, "")[1] and scanner.json_suspicious(text)
    assert not Redactor().scanner.json_suspicious(text)


@pytest.mark.parametrize("name", ["anthropic-api", "google-api"])
def test_a_large_binary_answer_is_scanned_without_a_lower_cased_copy(name: str) -> None:
    """An 8 MiB binary answer: a key glued into it is found (token detectors with no word
    boundary), and a clean one is scanned without a copy of the body (the cheap text
    prefilter, which lower-cases a copy when no trigger comes first, is for text)."""
    import tracemalloc

    from tapeproxy.redaction.bodies import body_edits

    rng = random.Random(name)
    secret = next(f for f in FORMATS if f.name == name).make(rng)
    # no ASCII at all in the clean one, so no trigger ends the text prefilter early
    clean = rng.randbytes(8 << 20).translate(bytes(b | 0x80 for b in range(256)))
    data = bytearray(clean)
    data[1 << 21 : (1 << 21) + len(secret)] = secret.encode()
    scanner = Redactor.from_config({}).answers
    edits, hits = body_edits(scanner, data.decode("latin-1"), "application/octet-stream", "x")
    assert [h.secret for h in hits] == [secret]
    assert [(e.start, e.end) for e in edits] == [(1 << 21, (1 << 21) + len(secret))]
    text = clean.decode("latin-1")
    tracemalloc.start()
    try:
        assert body_edits(scanner, text, "application/octet-stream", "x") == ([], [])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < len(text) // 4, peak


def _ordinary_headers(rng: random.Random) -> list[tuple[str, str]]:
    """Some of the headers an answer carries, with this answer's ids and date."""
    every = [
        ("date", f"Thu, {rng.randrange(1, 29)} Nov 2024 08:{rng.randrange(60):02}:38 GMT"),
        ("content-type", "application/json"),
        ("x-request-id", f"req_{rng.randbytes(16).hex()}"),
        ("cf-ray", f"{rng.randbytes(8).hex()}-AMS"),
        ("openai-organization", "user-" + base64.b32encode(rng.randbytes(15)).decode().lower()),
        ("x-ratelimit-remaining-tokens", str(rng.randrange(10**6))),
        ("openai-processing-ms", str(rng.randrange(5000))),
        ("etag", f'W/"{base64.b64encode(rng.randbytes(24)).decode()}"'),
        ("link", f"<https://api.example.com/v1/models?page={rng.randrange(9)}>; rel=next"),
    ]
    return rng.sample(every, rng.randrange(3, len(every)))


def _header_sets(seed: int) -> list[tuple[tuple[str, str], ...]]:
    """Header lists as requests and answers carry them: every generated cassette's, and each
    format's secret in a header value under a name that says nothing, in the shapes a value
    can hide one (bearer, percent-encoded, base64 of a pair, a cookie-like list, JSON, a URL,
    `_hiding_values`), among ordinary headers with ids, dates and long runs."""
    rng = random.Random(seed)
    out = []
    for doc in generate(seed=seed, per_format=2, clean=60):
        ix = doc.interaction
        out.append(ix.request.headers)
        if ix.response is not None:
            out.append(ix.response.headers)
    for fmt in FORMATS:
        secret = fmt.make(rng)
        pair = base64.b64encode(f"svc-user:{secret}".encode()).decode()
        for value in (
            secret,
            f"Bearer {secret}",
            quote(secret, safe=""),
            "".join(f"%{b:02X}" for b in secret.encode()),  # every byte, the prefix too
            pair,
            f"theme=dark; {fmt.keyword or 'token'}={secret}",
            json.dumps({"auth": {"value": secret}}),
            f"https://svc.example.com/v1?{fmt.keyword or 'api_key'}={quote_plus(secret)}",
            *_hiding_values(rng, secret),
        ):
            headers = _ordinary_headers(rng)
            headers.insert(rng.randrange(len(headers) + 1), ("x-trace-context", value))
            out.append(tuple(headers))
    return out


@pytest.mark.parametrize("answers", [False, True])
def test_headers_checked_together_come_out_as_each_one_checked_alone(answers: bool) -> None:
    """`Scanner.headers` checks the ordinary headers of a list in one pass; what it gives
    must be what `Scanner.header` gives for each header on its own."""
    batched, alone = Redactor(), Redactor()
    together = batched.answers if answers else batched.scanner
    one = alone.answers if answers else alone.scanner
    sets = _header_sets(seed=29)
    found = 0
    for headers in sets:
        got = together.headers(headers, "h")
        each = [one.header(n, v, "h") for n, v in headers]
        want = tuple((n, new) for (n, _), (new, _) in zip(headers, each, strict=True))
        assert got == (want, [h for _, hits in each for h in hits]), headers
        found += bool(got[1])
        one._clean_headers.clear()  # the reference weighs every header every time
    assert len(sets) > 500 and found > 300  # secrets among them, found both ways


def _hiding_values(rng: random.Random, secret: str) -> list[str]:
    """Header values with a long run and no trigger, credential name nor percent-encoding in
    sight, some of which hide `secret` in a layer `string` decodes: base64 of text, a JSON
    string whose escapes hide its first characters; and ids beside them."""
    escaped = "".join(f"\\u{ord(c):04x}" for c in secret[:3]) + secret[3:]
    return [
        f"req_{rng.randbytes(16).hex()}",
        base64.urlsafe_b64encode(rng.randbytes(24)).decode(),
        base64.b64encode(f"note {secret}".encode()).decode(),
        base64.b64encode(rng.choice(["plain words", "été"]).encode() * 4).decode(),
        '{"v": "' + escaped + '"}',
        '["' + escaped + '", 1]',
        f"{rng.randbytes(20).hex()}; v={rng.randrange(9)}",
    ]


@pytest.mark.parametrize("answers", [False, True])
def test_the_header_quick_path_finds_what_the_named_value_path_finds(answers: bool) -> None:
    """`Scanner.header` passes an unmarked value with long runs (an id) as clean when no run
    decodes to text and it is not JSON; `_named`, which it would otherwise call, must then
    find nothing either: the same value and hits for every header, both ways."""
    rng = random.Random(31)
    redactor = Redactor()
    scanner = redactor.answers if answers else redactor.scanner
    values = [v for fmt in FORMATS for v in _hiding_values(rng, fmt.make(rng))]
    values += [v for headers in _header_sets(seed=31) for _, v in headers]
    names = ("x-trace-context", "x-request-id", "etag", "link")
    found = 0
    for value in values:
        name = rng.choice(names)
        assert scanner._header_kind(name) is None
        full = scanner._named(value, None, name, f"h.{name}", 0, "", "credential-header")
        assert scanner.header(name, value, "h") == full, value
        found += bool(full[1])
        scanner._clean_headers.clear()
    assert len(values) > 1000 and found > 400


def _assert_kept(redactor: Redactor, urls: list[str]) -> None:
    """Each URL comes out of redaction as it went in, with nothing reported."""
    for url in urls:
        new, hits = redactor.scan_request(Request(method="GET", url=url), "r")
        assert (new.url, hits) == (url, []), url


@pytest.mark.parametrize("with_query", [False, True])
def test_a_secret_in_a_url_fragment_is_redacted_with_or_without_a_query(with_query: bool) -> None:
    """OAuth's implicit flow returns its token in the fragment (``#access_token=...``); a
    URL kept with one (an import, a redirect's Location) loses it whether a query comes first
    or not. Fragments that hold none are kept as they are."""
    rng = random.Random(41)
    redactor = Redactor()
    query = "?state=xyz&page=2" if with_query else ""
    missed = []
    for fmt in FORMATS:
        secret = fmt.make(rng)
        if "\n" in secret or " " in secret:
            continue  # (not a URL's characters)
        name = fmt.keyword.lower() if fmt.keyword else "access_token"
        for fragment in (f"{name}={quote(secret, safe='')}&token_type=bearer", quote(secret)):
            if fmt.keyword and "=" not in fragment:
                continue  # a bare value without its name says nothing about what it is
            url = f"https://app.example.com/callback{query}#{fragment}"
            request = Request(method="GET", url=url)
            new, hits = redactor.scan_request(request, "r")
            if not hits or secret in new.url or quote(secret, safe="") in new.url:
                missed.append(url)
    assert missed == [], "\n".join(missed)
    clean = ("section-2", "/settings/profile?tab=keys", "L10-L24", "token_type=bearer")
    _assert_kept(redactor, [f"https://docs.example.com/guide{query}#{f}" for f in clean])


def _wrap(data: bytes, width: int, sep: str) -> str:
    encoded = base64.b64encode(data).decode()
    return sep.join(encoded[i : i + width] for i in range(0, len(encoded), width))


@pytest.mark.parametrize("sep", ["\n", "\r\n"])
def test_a_secret_in_base64_wrapped_over_lines_is_found_whole(sep: str) -> None:
    """MIME and PEM wrap base64 at 76 or 64 characters, so a secret in the text it encodes
    is cut at line ends: the lines are decoded as one text (in a JSON answer's string and in
    a text body), the secret reported and the block re-encoded without it. Wrapped base64
    of clean text, and runs of unequal lines, are left as they are."""
    rng = random.Random(43)
    redactor = Redactor()
    filler = "line of a config file that says nothing much\n"
    missed = []
    for fmt in FORMATS:
        secret = fmt.make(rng)
        # (in half of them, two-byte letters: every line then ends inside one, and no line
        # decodes to text alone; json_suspicious must still send the answer to the full scan)
        before = rng.choice([filler * rng.randrange(1, 5), "é" * rng.randrange(60, 90)])
        before += "x" * rng.randrange(40)
        text = f"{before}\n{fmt.keyword or 'key'}={secret}\n{before}"
        for width in (64, 76):
            blob = _wrap(text.encode(), width, sep)
            for body, ct in (
                (json.dumps({"file": blob}), "application/json"),
                (blob, "text/plain"),
            ):
                response = Response(
                    status=200, headers=(("content-type", ct),), body=Body(text=body)
                )
                new, hits = redactor.scan_response(response, "r")
                assert new.body is not None and new.body.text is not None
                kept = new.body.text if ct == "text/plain" else json.loads(new.body.text)["file"]
                decoded = base64.b64decode("".join(kept.split())).decode()
                found = any(len(h.secret) >= 16 and h.secret in secret for h in hits)
                if not found or secret in decoded:  # (a webhook's secret is its path)
                    missed.append((fmt.name, width, ct))
    assert missed == [], missed
    for blob in (
        _wrap((filler * 9).encode(), 76, sep),
        sep.join(["QUJD" * 19, "QUJD" * 12 + "QQ"]),
    ):
        body = Body(text=json.dumps({"file": blob}))
        response = Response(status=200, headers=(("content-type", "application/json"),), body=body)
        assert redactor.scan_response(response, "r") == (response, [])


@pytest.mark.parametrize("after", ["\nOK12", "\r\nAbCd", "\nQQ=="])
def test_a_basic_pair_before_a_short_line_is_still_found(after: str) -> None:
    """A run of base64 whose length is a multiple of 4 and a short line after it read as one
    wrapped text; when that text holds nothing, each run is still weighed alone (a Basic
    credential without its scheme is found in its own run, not in the text they make)."""
    rng = random.Random(47)
    password = "".join(rng.choice("abcdefghijkLMNOPQ0123456789") for _ in range(21))
    run = base64.b64encode(f"svc-user:{password}".encode()).decode()  # (30 bytes: no padding)
    assert len(run) % 4 == 0 and "=" not in run
    _, hits = Redactor().scanner.string(run + after, "t")
    assert [h.detector for h in hits] == ["basic-auth"], (run + after, hits)


def test_a_token_anywhere_in_a_query_is_redacted() -> None:
    """A query's pairs are weighed by their names; a token that is a parameter's name, the
    whole query (`?<key>`) or a part without `=` is redacted too. Ordinary queries stay."""
    rng = random.Random(49)
    redactor = Redactor()
    missed = []
    for fmt in FORMATS:
        secret = fmt.make(rng)
        if fmt.keyword or "\n" in secret or " " in secret:
            continue  # (a prefix-less key means nothing without its name)
        token = quote(secret, safe="")
        for query in (f"{token}=1", token, f"page=2&{token}", f"{token}&page=2", f"a={token}"):
            url = f"https://api.example.com/v1/items?{query}"
            new, hits = redactor.scan_request(Request(method="GET", url=url), "r")
            if (
                not any(len(h.secret) >= 16 and h.secret in secret for h in hits)
                or token in new.url
            ):
                missed.append(url)
    assert missed == [], "\n".join(missed)
    clean = ("page=2&per_page=50", "q=token+limits&sort=asc", "include=usage&stream", "a")
    _assert_kept(redactor, [f"https://api.example.com/v1/items?{q}" for q in clean])


def _multipart(fields: list[tuple[str, str]], boundary: str, eol: str, file: bytes) -> bytes:
    """A multipart/form-data body: the fields, then a file part holding `file`."""
    out = b""
    for name, value in fields:
        head = f'--{boundary}{eol}Content-Disposition: form-data; name="{name}"{eol}{eol}'
        out += f"{head}{value}{eol}".encode()
    out += (
        f'--{boundary}{eol}Content-Disposition: form-data; name="file"; filename="a.bin"'.encode()
    )
    out += f"{eol}Content-Type: application/octet-stream{eol}{eol}".encode() + file
    return out + f"{eol}--{boundary}--{eol}".encode()


@pytest.mark.parametrize("eol", ["\r\n", "\n"])
@pytest.mark.parametrize("binary_file", [False, True])
def test_multipart_fields_are_weighed_by_their_names(eol: str, binary_file: bool) -> None:
    """A multipart upload's fields are a form's pairs: a value under a credential name is
    redacted whatever its format (a prefix-less key too), beside a text or a binary file
    part (the body is then kept as bytes); a placeholder is not reported; other fields and
    the file stay as they were."""
    rng = random.Random(53 + binary_file)
    redactor = Redactor()
    file = rng.randbytes(3000) if binary_file else b'{"prompt": "hello"}\n' * 40
    missed = []
    for fmt in FORMATS:
        secret = fmt.make(rng)
        if "\n" in secret:
            continue  # (a PEM key in a form field is its own multi-line case)
        name = rng.choice(["api_key", "client_secret", "password", "access_token"])
        fields = [("purpose", "fine-tune"), (name, secret), ("token_type", "bearer")]
        fields.append(("api-key", "<api-key>"))  # a placeholder: not reported
        boundary = f"----tapeproxyBoundary{rng.randrange(10**8)}"
        raw = _multipart(fields, boundary, eol, file)
        headers = (("content-type", f"multipart/form-data; boundary={boundary}"),)
        request = Request(
            method="POST",
            url="https://api.example.com/v1/files",
            headers=headers,
            body=Body.from_bytes(raw),
        )
        new, hits = redactor.scan_request(request, "r")
        kept = new.body.to_bytes() if new.body else b""
        if not any(h.secret == secret for h in hits) or secret.encode() in kept:
            missed.append((fmt.name, name))
        assert "<api-key>" not in {h.secret for h in hits}
        for other in (b"fine-tune", b"bearer", file):
            assert other in kept, (fmt.name, other[:20])
    assert missed == [], missed


def test_the_base64_layer_decodes_a_bounded_number_of_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """A text of 10,000 base64 lines of one width (a wrapped text far beyond what is decoded)
    costs the base64 layer its first 64 runs and one wrapped text of at most 64 KiB, not a
    decoding of every line."""
    from tapeproxy.redaction import scanner as scanning

    decoded: list[int] = []
    real = scanning._b64_text

    def counted(run: str) -> str | None:
        decoded.append(len(run))
        return real(run)

    monkeypatch.setattr(scanning, "_b64_text", counted)
    Redactor().scanner.string(("QUJD" * 19 + "\n") * 10_000, "t")
    assert len(decoded) <= 2 * 64 and sum(decoded) <= 65536 + 64 * 76, (len(decoded), sum(decoded))


@pytest.mark.parametrize("cls", ["long", "markup"])
def test_no_part_of_a_long_or_markup_credential_is_recorded(cls: str) -> None:
    # A match that stops at a length cap leaves the token's tail in the cassette; a credential
    # as an element's text or an attribute pair's value was not read at all.
    g = random.Random(f"record-{cls}")
    redactor = Redactor()
    leaks, checked = [], 0
    for _ in range(80):
        secret, ex = SECRETS[cls](g)
        if "password" in ex.answer.lower():
            continue  # a password in what a model wrote is kept (test data, not a leak)
        checked += 1
        safe = redactor.redact_interaction(interaction(ex))
        stored = safe.model_dump_json()
        pieces = {secret[i : i + 16] for i in range(0, max(1, len(secret) - 15), 8)}
        if any(p in stored for p in pieces):
            leaks.append((len(secret), secret[:24]))
    assert checked >= 60 and leaks == [], leaks


def _every_reading(data: bytes) -> str:
    """What a stored answer says read every way a client may read it: as UTF-8 or UTF-16/32
    text, with character references, percent-encoding and base64 decoded."""
    texts = [data.decode("utf-8", "replace")]
    for codec in ("utf-16", "utf-16-le", "utf-16-be", "utf-32-le"):
        texts.append(data.decode(codec, "replace"))
    out = []
    for text in texts:
        out += [text, html.unescape(text), unquote_plus(text), unquote_plus(html.unescape(text))]
        with contextlib.suppress(binascii.Error, ValueError):
            out.append(base64.b64decode(text.strip(), validate=True).decode("utf-8", "replace"))
    return "\n".join(out)


def test_no_encoded_credential_is_recorded_and_clean_look_alikes_are_kept() -> None:
    # A token written as HTML character references, percent-encoded in part or whole, in a
    # UTF-16 or UTF-32 answer, or as one padded base64 run was stored as it came (percent:
    # found, and kept all the same); JSON quoted with &quot; hid a prefix-less key's name.
    g = random.Random("record-encoded")
    redactor = Redactor()
    leaks = []
    for _ in range(80):
        secret, ex = SECRETS["encoded"](g)
        safe = redactor.redact_interaction(interaction(ex))
        assert safe.response is not None and safe.response.body is not None
        if secret in _every_reading(safe.response.body.to_bytes()):
            leaks.append((ex.answer_type, ex.answer_codec, ex.answer[:60]))
    assert leaks == [], leaks
    changed = []
    for _ in range(80):
        ex = _CLEAN["encoded"](g)
        if redactor.redact_interaction(original := interaction(ex)) != original:
            changed.append(ex.answer[:80])
    assert changed == [], changed
