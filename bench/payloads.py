"""The deterministic traffic of the benchmarks: OpenAI-like requests and answers, by index.

Interaction `i` is always the same request and the same answer, so the fake upstream, the
cassette builders (tapeproxy, mitmdump flows, vcrpy YAML) and the load generator agree on
the traffic without sharing files. Text is drawn from a Zipf-weighted pseudo-word vocabulary
with a fixed seed, so it compresses like prose rather than like repeated bytes.
"""

from __future__ import annotations

import array
import bisect
import functools
import itertools
import json
import random
import re
import string
from dataclasses import dataclass

__all__ = [
    "BASE_HTTP",
    "BASE_HTTPS",
    "PATH",
    "Exchange",
    "exchange",
    "index_of",
    "request_body",
    "request_headers",
    "sse_chunks",
    "sse_headers",
]

PATH = "/v1/chat/completions"
BASE_HTTP = "http://api.bench.test"
BASE_HTTPS = "https://api.bench.test"
MODEL = "gpt-4o-mini-2024-07-18"
_CREATED = 1_732_000_000
_INDEX = re.compile(rb"#(\d+)#")
_TARGET_BODY = 1500


@functools.cache
def _vocabulary() -> list[str]:
    """65,536 slots of pseudo-words, each word in proportion to 1/rank (Zipf, like prose)."""
    rng = random.Random(7)
    syllables = [c + v for c in "bcdfghklmnprstvwz" for v in "aeiou"] + ["th", "st", "ch"]
    words = sorted(
        {"".join(rng.choices(syllables, k=rng.choice((1, 2, 2, 3, 3, 4)))) for _ in range(3000)}
    )
    rng.shuffle(words)
    cum = list(itertools.accumulate(1.0 / (rank + 1) for rank in range(len(words))))
    return [words[bisect.bisect(cum, (slot + 0.5) / 65536 * cum[-1])] for slot in range(65536)]


def _text(rng: random.Random, chars: int) -> str:
    slots = _vocabulary()
    # One draw of 16-bit slot numbers for all the words: far cheaper than random.choices.
    drawn = [slots[j] for j in array.array("H", rng.randbytes(2 * (chars // 4 + 8)))]
    out: list[str] = []
    size = n = 0
    while size < chars and n < len(drawn):
        length = 6 + (n * 7 + chars) % 11
        s = " ".join(drawn[n : n + length]).capitalize() + ".....?!"[n % 7]
        n += length
        out.append(s)
        size += len(s) + 1
    return " ".join(out)[:chars]


def request_body(i: int, *, stream: bool = False) -> bytes:
    """The JSON body of request `i` (the `#i#` marker lets the upstream find `i`)."""
    rng = random.Random(i * 2 + 1)
    doc: dict[str, object] = {
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": f"#{i}# {_text(rng, rng.randint(60, 240))}"},
        ],
        "model": "gpt-4o-mini",
        "temperature": 0.2,
    }
    if stream:
        doc["stream"] = True
    return json.dumps(doc, separators=(",", ":")).encode()


def request_headers(body_len: int, host: str = "api.bench.test") -> list[tuple[str, str]]:
    """Headers as the openai Python SDK sends them (without its credential)."""
    return [
        ("host", host),
        ("accept-encoding", "gzip, deflate"),
        ("connection", "keep-alive"),
        ("accept", "application/json"),
        ("content-type", "application/json"),
        ("user-agent", "OpenAI/Python 1.54.4"),
        ("x-stainless-lang", "python"),
        ("x-stainless-package-version", "1.54.4"),
        ("x-stainless-os", "Linux"),
        ("x-stainless-arch", "x64"),
        ("x-stainless-runtime", "CPython"),
        ("x-stainless-runtime-version", "3.12.7"),
        ("x-stainless-retry-count", "0"),
        ("content-length", str(body_len)),
    ]


def index_of(body: bytes) -> int:
    """The interaction index a request body carries (0 when it carries none)."""
    m = _INDEX.search(body)
    return int(m.group(1)) if m else 0


@dataclass(frozen=True, slots=True)
class Exchange:
    """One answer: status, headers (wire order) and body, plus its recorded timing."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes
    ttfb_ms: float
    total_ms: float


def _ids(rng: random.Random) -> tuple[str, str, str]:
    alnum = string.ascii_letters + string.digits
    return (
        "chatcmpl-" + "".join(rng.choices(alnum, k=29)),
        "req_" + "".join(rng.choices("0123456789abcdef", k=32)),
        "".join(rng.choices("0123456789abcdef", k=16)) + "-AMS",
    )


def _headers(rng: random.Random, ctype: str, length: int | None) -> list[tuple[str, str]]:
    _, request_id, ray = _ids(rng)
    day = rng.randint(1, 28)
    headers = [
        (
            "date",
            f"Thu, {day:02d} Nov 2024 {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:"
            f"{rng.randint(0, 59):02d} GMT",
        ),
        ("content-type", ctype),
    ]
    headers.append(
        ("content-length", str(length)) if length is not None else ("transfer-encoding", "chunked")
    )
    return [
        *headers,
        ("connection", "keep-alive"),
        ("access-control-expose-headers", "X-Request-ID"),
        ("openai-organization", "user-benchfakeorg0000000000"),
        ("openai-processing-ms", str(rng.randint(250, 2500))),
        ("openai-version", "2020-10-01"),
        ("x-ratelimit-limit-requests", "10000"),
        ("x-ratelimit-remaining-requests", str(rng.randint(9000, 9999))),
        ("x-ratelimit-reset-requests", f"{rng.randint(6, 900)}ms"),
        ("x-request-id", request_id),
        ("strict-transport-security", "max-age=31536000; includeSubDomains; preload"),
        ("cf-cache-status", "DYNAMIC"),
        ("server", "cloudflare"),
        ("cf-ray", ray),
        ("alt-svc", 'h3=":443"; ma=86400'),
    ]


# What json.dumps(doc, indent=2) gives for an OpenAI chat.completion, as a template because
# the pure-Python indenting encoder would dominate building 100,000-interaction cassettes.
_PRETTY = """{{
  "id": {id},
  "object": "chat.completion",
  "created": {created},
  "model": {model},
  "choices": [
    {{
      "index": 0,
      "message": {{
        "role": "assistant",
        "content": {content},
        "refusal": null
      }},
      "logprobs": null,
      "finish_reason": "stop"
    }}
  ],
  "usage": {{
    "prompt_tokens": {prompt},
    "completion_tokens": {completion},
    "total_tokens": {total},
    "prompt_tokens_details": {{
      "cached_tokens": 0,
      "audio_tokens": 0
    }},
    "completion_tokens_details": {{
      "reasoning_tokens": 0,
      "audio_tokens": 0
    }}
  }},
  "system_fingerprint": "fp_0ba0d124f1"
}}"""


@functools.lru_cache(maxsize=8192)
def exchange(i: int, size: int = _TARGET_BODY) -> Exchange:
    """The plain JSON answer to request `i`, about `size` bytes of pretty-printed JSON."""
    rng = random.Random(1_000_003 * (i + 1))
    completion_id, _, _ = _ids(rng)
    content = _text(rng, max(size - 620, 10))
    body = _PRETTY.format(
        id=json.dumps(completion_id),
        created=_CREATED + i,
        model=json.dumps(MODEL),
        content=json.dumps(content),
        prompt=rng.randint(20, 80),
        completion=len(content) // 4,
        total=rng.randint(200, 500),
    ).encode()
    ttfb = rng.uniform(250.0, 1500.0)
    return Exchange(200, _headers(rng, "application/json", len(body)), body, ttfb, ttfb + 2.0)


def sse_chunks(i: int, chunks: int) -> list[bytes]:
    """The SSE events of a streamed answer to request `i`: deltas, then ``data: [DONE]``."""
    rng = random.Random(2_000_003 * (i + 1))
    completion_id, _, _ = _ids(rng)
    words = _vocabulary()
    out = []
    for n in range(chunks - 1):
        delta = {"content": " " + rng.choice(words)} if n else {"role": "assistant", "content": ""}
        event = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": _CREATED + i,
            "model": MODEL,
            "system_fingerprint": "fp_0ba0d124f1",
            "choices": [
                {
                    "index": 0,
                    "delta": delta,
                    "logprobs": None,
                    "finish_reason": "stop" if n == chunks - 2 else None,
                }
            ],
        }
        out.append(b"data: " + json.dumps(event, separators=(",", ":")).encode() + b"\n\n")
    out.append(b"data: [DONE]\n\n")
    return out


def sse_headers(i: int) -> list[tuple[str, str]]:
    """Headers of a streamed answer (chunked, no content-length)."""
    return _headers(random.Random(3_000_003 * (i + 1)), "text/event-stream; charset=utf-8", None)
