"""What an LLM answered, read from a recorded response body: assistant text, tool calls,
model, stop reason and token usage, for plain and streamed responses of the major APIs.

Supported shapes: OpenAI chat completions (and the OpenAI-compatible Groq, Mistral, Azure,
OpenRouter), OpenAI legacy completions and embeddings, the OpenAI Responses API, Anthropic
messages, Gemini / Vertex ``generateContent`` and ``streamGenerateContent`` (SSE or JSON
array), Cohere chat (v1 and v2) and Ollama. Streams are reassembled into their final text and
tool calls; their usage is the last reported value of each field (PROVIDER_WIRE.md §3).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

from tapeproxy.review.framing import Message, messages

__all__ = [
    "LLMResponse",
    "ToolCall",
    "Usage",
    "count",
    "dig",
    "error_type",
    "extract",
    "has_counts",
    "last_usage",
    "nonempty",
    "parse_arguments",
]


@dataclass(frozen=True)
class Usage:
    """Token counts as the provider reported them (None: not reported).

    `input_tokens` is the provider's own input figure. OpenAI and Gemini count cached tokens
    inside it; Anthropic does not (`input_includes_cached` is False there), reporting cache
    reads and cache writes beside it.
    """

    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_input_tokens: int | None = None
    reasoning_tokens: int | None = None
    cache_write_tokens: int | None = None
    input_includes_cached: bool = True
    output_includes_reasoning: bool = True


_COUNT_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "reasoning_tokens",
    "cache_write_tokens",
)


@dataclass(frozen=True)
class ToolCall:
    """A tool the model asked to call: its name and its arguments, parsed from JSON."""

    name: str
    arguments: Any


@dataclass(frozen=True)
class LLMResponse:
    """The meaning of one LLM response, whatever its wire shape."""

    api: str
    model: str | None = None
    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    stop_reason: str | None = None
    usage: Usage | None = None
    streamed: bool = False


Reader = Callable[[Sequence[Message], bool], LLMResponse | None]


def extract(body: bytes) -> LLMResponse | None:
    """Read an LLM response body (decoded, whole), or None when it is not one we know.

    Error bodies (``{"error": ...}``) are not answers and give None; see `error_type`.
    """
    from tapeproxy.review import llm_anthropic, llm_google, llm_openai, llm_other

    found, streamed = messages(body)
    if not found or (not streamed and found[0].data.get("error") not in (None, "", {})):
        return None
    readers: tuple[Reader, ...] = (
        llm_openai.read_responses,
        llm_anthropic.read,
        llm_google.read,
        llm_other.read_cohere,
        llm_other.read_ollama,
        llm_openai.read_chat,
    )
    for reader in readers:
        result = reader(found, streamed)
        if result is not None:
            return result
    return None


def error_type(body: bytes) -> str | None:
    """The provider's error type in an error body (``error.type``, Gemini ``error.status``,
    else ``error.code``), or None when the body carries no error."""
    found, _ = messages(body)
    for message in found:
        error = message.data.get("error")
        if isinstance(error, dict):
            for name in ("type", "status", "code"):
                value = error.get(name)
                if isinstance(value, str | int) and not isinstance(value, bool) and value != "":
                    return str(value)
            return "error"
        if isinstance(error, str) and error:
            return "error"
    return None


def last_usage(reports: Iterable[Usage | None]) -> Usage | None:
    """Merge usage reports in arrival order: each field takes its last reported value."""
    merged: Usage | None = None
    for report in reports:
        if report is None:
            continue
        if merged is None:
            merged = report
            continue
        changes = {f: getattr(report, f) for f in _COUNT_FIELDS if getattr(report, f) is not None}
        merged = replace(
            merged,
            **changes,
            input_includes_cached=report.input_includes_cached,
            output_includes_reasoning=report.output_includes_reasoning,
        )
    return merged


def parse_arguments(raw: Any) -> Any:
    """Tool-call arguments as JSON values: strings are parsed; an empty string is ``{}``;
    a string that is not JSON is kept as it is."""
    if not isinstance(raw, str):
        return raw if raw is not None else {}
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def count(value: Any) -> int | None:
    """A token count from a JSON value: ints (and integral floats) only."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def dig(data: Any, *path: str | int) -> Any:
    """Follow keys and indexes into nested JSON, None as soon as one is missing."""
    for step in path:
        if isinstance(step, int):
            if not isinstance(data, list) or not -len(data) <= step < len(data):
                return None
            data = data[step]
        else:
            if not isinstance(data, dict):
                return None
            data = data.get(step)
    return data


def has_counts(usage: Usage) -> bool:
    """Whether any token count is present."""
    return any(getattr(usage, f.name) is not None for f in fields(usage) if f.name in _COUNT_FIELDS)


def nonempty(value: Any) -> str | None:
    """A JSON value when it is a non-empty string, else None."""
    return value if isinstance(value, str) and value else None
