"""What the writers of every wire format share: the neutral answer to write, the facts of
the request it answers, the seeded source of ids and timestamps, and what a writer returns.

Token estimate (used when an answer gives no usage): one token per 4 characters of text,
rounded up, at least 1 for any non-empty text. Input counts the text of every message,
instruction and tool definition in the request; output counts the answer's text, reasoning
and tool-call arguments (as compact JSON). Reasoning tokens are reported only when the
answer has reasoning.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
import string
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from tapeproxy.providers.llm import ToolCall

__all__ = [
    "SLOT",
    "SLOT2",
    "Answer",
    "Endpoint",
    "Failure",
    "Ids",
    "RequestFacts",
    "Template",
    "Written",
    "estimate_tokens",
    "json_bytes",
    "pieces",
]

Endpoint = Literal["chat", "responses", "messages", "generate", "embeddings"]


@dataclass(frozen=True)
class Failure:
    """An error answer: the HTTP status and the provider's error type and message.

    `type` is the provider's own word where it has one (`rate_limit_exceeded`,
    `overloaded_error`, `RESOURCE_EXHAUSTED`); None lets the writer pick the usual one for
    the status.
    """

    status: int
    type: str | None = None
    message: str = ""
    retry_after: float | None = None


@dataclass(frozen=True)
class Answer:
    """A neutral answer, written by each provider module in its own wire format.

    `json` is structured output: it is sent as the message text (compact JSON). `chunks`
    says how a streamed text is cut into events (default: word by word, `pieces`).
    """

    text: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    json: Any = None
    reasoning: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    finish_reason: str | None = None
    error: Failure | None = None
    chunks: tuple[str, ...] | None = None

    def text_pieces(self) -> list[str]:
        """The message text as streamed: `chunks`, else cut word by word."""
        if self.chunks is not None:
            return list(self.chunks)
        return pieces(self.message_text or "")

    @property
    def message_text(self) -> str | None:
        """The text the message carries: `text`, or `json` serialised."""
        if self.json is not None:
            return json.dumps(self.json, separators=(",", ":"), ensure_ascii=False)
        return self.text


@dataclass(frozen=True)
class RequestFacts:
    """What a writer (and a stub rule) needs to know of the request it answers.

    Attributes:
        provider: `openai`, `azure`, `anthropic`, `gemini`, or the host of any other server
            (an OpenAI-compatible one is answered in OpenAI's formats).
        endpoint: which API the path names.
        model: the model asked for (the Azure deployment, Gemini's path segment).
        stream: whether a streamed answer was asked for.
        include_usage: OpenAI chat `stream_options.include_usage`.
        sse: Gemini `alt=sse` (else a streamed answer is one JSON array).
        body: the request body as JSON ({} when it is not a JSON object).
        last_user: the text of the last user message ('' when there is none).
        prompt_chars: characters of prompt text in the request (for the token estimate),
            counted when first asked for.
        host: the host the request was sent to, lower-cased.
    """

    provider: str
    endpoint: Endpoint
    model: str | None = None
    stream: bool = False
    include_usage: bool = False
    sse: bool = False
    body: dict[str, Any] = field(default_factory=dict)
    last_user: str = ""
    host: str = ""

    @functools.cached_property
    def prompt_chars(self) -> int:
        return sum(len(t) for t in prompt_texts(self.body))


@dataclass(frozen=True)
class Written:
    """An answer on the wire: status, reason, headers and the body in its events.

    A plain answer has one event (the whole body); a streamed one has one per event, in
    order, each with its framing, so `b"".join(events)` is the body.
    """

    status: int
    reason: str
    headers: tuple[tuple[str, str], ...]
    events: tuple[bytes, ...]
    streamed: bool = False

    @property
    def body(self) -> bytes:
        return b"".join(self.events)


def _table(alphabet: str) -> bytes:
    """A `bytes.translate` table mapping every byte to a character of `alphabet`."""
    return bytes(ord(alphabet[b % len(alphabet)]) for b in range(256))


_ALNUM = _table(string.ascii_letters + string.digits)
_HEX = _table("0123456789abcdef")
_B64 = _table(string.ascii_letters + string.digits + "+/")
_DIGITS = _table("123456789")
_TABLES = {"alnum": _ALNUM, "hex": _HEX, "b64": _B64, "digits": _DIGITS}
_BLOCK = 256
"""Bytes read from the stream at a time (more when one value needs more)."""
_YEAR = 365 * 86_400


class Ids:
    """Ids and timestamps drawn from a seed: the same seed gives the same values in order.

    The values are read from a SHAKE-256 stream of the seed (cheap enough for every answer,
    and no shared random state).

    Args:
        seed: any bytes; callers pass (seed, request key, occurrence) so that two runs give
            byte-identical answers and a repeated request gets fresh ids.
    """

    EPOCH = 1_767_225_600  # 2026-01-01T00:00:00Z: timestamps fall in the year after it

    def __init__(self, seed: bytes) -> None:
        self._seed = seed
        self._pool = b""
        self._at = 0
        self._blocks = 0

    def _take(self, n: int) -> bytes:
        if self._at + n > len(self._pool):
            self._blocks += 1
            more = hashlib.shake_256(b"%d\0" % self._blocks + self._seed).digest(max(_BLOCK, n))
            self._pool, self._at = self._pool[self._at :] + more, 0
        out = self._pool[self._at : self._at + n]
        self._at += n
        return out

    def alnum(self, n: int) -> str:
        return self._take(n).translate(_ALNUM).decode("ascii")

    def hex(self, n: int) -> str:
        return self._take(n).translate(_HEX).decode("ascii")

    def b64(self, n: int) -> str:
        return self._take(n).translate(_B64).decode("ascii")

    def digits(self, n: int) -> str:
        """n digits from 1 to 9 (a number of n digits, never with a leading 0)."""
        return self._take(n).translate(_DIGITS).decode("ascii")

    def created(self) -> int:
        """A Unix timestamp (seconds) within a year of `EPOCH`."""
        return self.EPOCH + int.from_bytes(self._take(4)) % _YEAR

    def unit(self) -> float:
        """A float in [0, 1) (for seeded jitter and vectors)."""
        return int.from_bytes(self._take(7)) / (1 << 56)

    def values(self, draws: Sequence[tuple[str, int]]) -> list[str]:
        """What calling each (method, length) in turn gives, `created` as its digits; read at
        once when the draws fit one block of the stream (which gives the same bytes)."""
        total, cuts = _plan(tuple(draws))
        if total > _BLOCK:
            return [_render(self._take(b - a), table) for a, b, table in cuts]
        whole = self._take(total)
        return [_render(whole[a:b], table) for a, b, table in cuts]

    def copy(self) -> Ids:
        """An `Ids` that gives the values this one gives from here on."""
        twin = Ids(self._seed)
        twin._pool, twin._at, twin._blocks = self._pool, self._at, self._blocks
        return twin


@functools.lru_cache(maxsize=256)
def _plan(
    draws: tuple[tuple[str, int], ...],
) -> tuple[int, tuple[tuple[int, int, bytes | None], ...]]:
    """The bytes `Ids.values` takes for these draws: their total, and each draw's span of them
    with its table (None: a `created` timestamp)."""
    cuts, at = [], 0
    for method, n in draws:
        size = 4 if method == "created" else n
        cuts.append((at, at + size, None if method == "created" else _TABLES[method]))
        at += size
    return at, tuple(cuts)


def _render(raw: bytes, table: bytes | None) -> str:
    if table is None:
        return str(Ids.EPOCH + int.from_bytes(raw) % _YEAR)
    return raw.translate(table).decode("ascii")


def estimate_tokens(chars: int) -> int:
    """The documented estimate: ceil(chars / 4), at least 1 when there is any text."""
    return max(1, math.ceil(chars / 4)) if chars > 0 else 0


_PIECE = re.compile(r"\s*\S+|\s+")


def pieces(text: str) -> list[str]:
    """Text cut the way models stream it, roughly a token each: a word with the spaces
    before it; '' gives no pieces."""
    return _PIECE.findall(text)


def json_pieces(arguments: str, size: int = 8) -> list[str]:
    """Tool-call arguments (a JSON string) cut into short partial-JSON pieces."""
    return [arguments[i : i + size] for i in range(0, len(arguments), size)] or [""]


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
_json_string = json.encoder.encode_basestring  # a str as JSON, as `_ENCODER` writes it


def json_bytes(doc: Any) -> bytes:
    """Compact JSON, as the providers' servers write it."""
    return _ENCODER.encode(doc).encode("utf-8")


def prompt_texts(value: Any) -> list[str]:
    """Every string in a request body that is prompt text (not a model name, role or flag)."""
    out: list[str] = []

    def walk(v: Any, key: str | None) -> None:
        if isinstance(v, str):
            if key not in ("model", "role", "type", "encoding_format", "tool_choice"):
                out.append(v)
        elif isinstance(v, dict):
            for k, x in v.items():
                walk(x, k)
        elif isinstance(v, list):
            for x in v:
                walk(x, key)

    walk(value, None)
    return out


class Template:
    """A JSON document serialised once with slots left open: `fill(*values)` gives the bytes
    `json_bytes` would give for the document with the slots replaced by `values`, for the
    cost of serialising the values alone (a streamed answer repeats one event shape per
    piece of text).

    Args:
        doc: the document, holding each slot's sentinel string once as a value.
        slots: the sentinels, in the order `fill` takes their values.
        frame: bytes before and after the JSON (an SSE event's `data: ` and blank line).
    """

    def __init__(self, doc: Any, *slots: str, frame: tuple[bytes, bytes] = (b"", b"")) -> None:
        whole = frame[0] + json_bytes(doc) + frame[1]
        found = sorted(
            (whole.index(json_bytes(slot)), n, len(json_bytes(slot)))
            for n, slot in enumerate(slots)
        )
        self._parts: list[bytes] = []
        self._order: list[int] = []
        at = 0
        for start, n, size in found:
            self._parts.append(whole[at:start])
            self._order.append(n)
            at = start + size
        self._parts.append(whole[at:])

    def fill(self, *values: Any) -> bytes:
        if len(values) == 1 and type(values[0]) is str:  # the common case, kept short
            head, tail = self._parts
            return head + _json_string(values[0]).encode("utf-8") + tail
        if self._order == [0, 1] and type(values[0]) is str and type(values[1]) is int:
            a, b, c = self._parts  # a text piece and a sequence number
            return a + _json_string(values[0]).encode("utf-8") + b + b"%d" % values[1] + c
        out = [self._parts[0]]
        for part, n in zip(self._parts[1:], self._order, strict=True):
            value = values[n]
            if type(value) is str:
                out.append(_json_string(value).encode("utf-8"))
            elif type(value) is int:
                out.append(b"%d" % value)
            else:
                out.append(json_bytes(value))
            out.append(part)
        return b"".join(out)


SLOT, SLOT2 = "\x00slot\x00", "\x00slot2\x00"
"""Sentinels for `Template` slots (no real value holds a NUL)."""


def arguments_json(arguments: Any) -> str:
    """Tool-call arguments as the JSON string OpenAI sends."""
    if isinstance(arguments, str):
        return arguments
    return json.dumps(arguments, separators=(",", ":"), ensure_ascii=False)


def output_tokens(answer: Answer) -> int:
    """The answer's output tokens: given, or estimated from its text, reasoning and calls."""
    if answer.output_tokens is not None:
        return answer.output_tokens
    chars = len(answer.message_text or "") + len(answer.reasoning or "")
    chars += sum(len(c.name) + len(arguments_json(c.arguments)) for c in answer.tool_calls)
    return max(1, estimate_tokens(chars))


def reasoning_tokens(answer: Answer) -> int:
    """Tokens of the answer's reasoning (0 when it has none)."""
    return estimate_tokens(len(answer.reasoning or ""))


def input_tokens(answer: Answer, facts: RequestFacts) -> int:
    """The answer's input tokens: given, or estimated from the request's text."""
    if answer.input_tokens is not None:
        return answer.input_tokens
    return max(1, estimate_tokens(facts.prompt_chars))
