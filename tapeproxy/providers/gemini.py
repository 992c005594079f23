"""Reading Gemini and Vertex AI ``generateContent`` / ``streamGenerateContent`` responses
(one object, an SSE stream, or a streamed JSON array; all the same chunk shape)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tapeproxy.providers.llm import LLMResponse, ToolCall, Usage, count, dig, last_usage
from tapeproxy.providers.llm import nonempty as _str
from tapeproxy.providers.llm import parse_arguments as _args
from tapeproxy.providers.messages import Message

__all__ = ["gemini_usage", "read"]


def gemini_usage(usage: Any) -> Usage | None:
    """Gemini ``usageMetadata``: prompt, candidates, cached content and thoughts counts."""
    if not isinstance(usage, dict):
        return None
    return Usage(
        input_tokens=count(usage.get("promptTokenCount")),
        output_tokens=count(usage.get("candidatesTokenCount")),
        cached_input_tokens=count(usage.get("cachedContentTokenCount")),
        reasoning_tokens=count(usage.get("thoughtsTokenCount")),
        output_includes_reasoning=False,
    )


def read(found: Sequence[Message], streamed: bool) -> LLMResponse | None:
    """A Gemini response, or None when no chunk has ``candidates`` or ``usageMetadata``."""
    if not any("candidates" in m.data or "usageMetadata" in m.data for m in found):
        return None
    text: list[str] = []
    calls: list[ToolCall] = []
    model = stop = None
    usages: list[Usage | None] = []
    for message in found:
        data = message.data
        model = _str(data.get("modelVersion")) or model
        usages.append(gemini_usage(data.get("usageMetadata")))
        candidate = dig(data, "candidates", 0)
        if not isinstance(candidate, dict):
            continue
        stop = _str(candidate.get("finishReason")) or stop
        for part in dig(candidate, "content", "parts") or ():
            if not isinstance(part, dict) or part.get("thought") is True:
                continue
            if isinstance(part.get("text"), str):
                text.append(part["text"])
            call = part.get("functionCall")
            if isinstance(call, dict):
                calls.append(ToolCall(str(call.get("name") or ""), _args(call.get("args"))))
    return LLMResponse(
        api="gemini",
        model=model,
        text="".join(text),
        tool_calls=tuple(calls),
        stop_reason=stop,
        usage=last_usage(usages),
        streamed=streamed,
    )
