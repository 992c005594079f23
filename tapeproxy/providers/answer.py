"""What the writers of every wire format share: the neutral answer to write, the facts of
the request it answers, the seeded source of ids and timestamps, and what a writer returns.

Token estimate (used when an answer gives no usage): one token per 4 characters of text,
rounded up, at least 1 for any non-empty text. Input counts the text of every message,
instruction and tool definition in the request; output counts the answer's text, reasoning
and tool-call arguments (as compact JSON). Reasoning tokens are reported only when the
answer has reasoning.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
import string
from dataclasses import dataclass, field
from typing import Any, Literal

from tapeproxy.providers.llm import ToolCall

__all__ = [
    "Answer",
    "Endpoint",
    "Failure",
    "Ids",
    "RequestFacts",
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

    `json` is structured output: it is sent as the message text (compact JSON).
    """

    text: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    json: Any = None
    reasoning: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    finish_reason: str | None = None
    error: Failure | None = None

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
        prompt_chars: characters of text in the request (for the token estimate).
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
    prompt_chars: int = 0
    host: str = ""


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


class Ids:
    """Ids and timestamps drawn from a seed: the same seed gives the same values in order.

    Args:
        seed: any bytes; callers pass (seed, request key, occurrence) so that two runs give
            byte-identical answers and a repeated request gets fresh ids.
    """

    EPOCH = 1_767_225_600  # 2026-01-01T00:00:00Z: timestamps fall in the year after it

    def __init__(self, seed: bytes) -> None:
        self._rng = random.Random(hashlib.sha256(seed).digest())

    def alnum(self, n: int) -> str:
        return "".join(self._rng.choices(string.ascii_letters + string.digits, k=n))

    def hex(self, n: int) -> str:
        return "".join(self._rng.choices("0123456789abcdef", k=n))

    def b64(self, n: int) -> str:
        return "".join(self._rng.choices(string.ascii_letters + string.digits + "+/", k=n))

    def created(self) -> int:
        """A Unix timestamp (seconds) within a year of `EPOCH`."""
        return self.EPOCH + self._rng.randrange(365 * 86_400)

    def unit(self) -> float:
        """A float in [0, 1) (for seeded jitter and vectors)."""
        return self._rng.random()


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


def json_bytes(doc: Any) -> bytes:
    """Compact JSON, as the providers' servers write it."""
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


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
