"""The neutral meaning of an LLM answer, whatever its wire format: assistant text, tool calls,
model, stop reason and token usage; and the small JSON helpers the provider modules share.

Supported shapes (`tapeproxy.providers.read`): OpenAI chat completions (and the
OpenAI-compatible Groq, Mistral, Azure, OpenRouter), OpenAI legacy completions and embeddings,
the OpenAI Responses API, Anthropic messages, Gemini / Vertex ``generateContent`` and
``streamGenerateContent`` (SSE or JSON array), Cohere chat (v1 and v2) and Ollama. Streams are
reassembled into their final text and tool calls; their usage is the last reported value of
each field (a stream repeats or grows its counts as it goes).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, fields, replace
from typing import Any

__all__ = [
    "LLMResponse",
    "ToolCall",
    "Usage",
    "count",
    "dig",
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
