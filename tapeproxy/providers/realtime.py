"""Reading a WebSocket session's server events as one answer: OpenAI Realtime (and the
Responses WebSocket mode) and Gemini Live. `diff` compares sessions with it like any answer:
text by similarity, tool calls exactly.

- text: the `delta` of every `*text.delta` and `*transcript.delta` event, joined; Gemini
  Live's `serverContent.modelTurn.parts[].text`;
- tool calls: `response.function_call_arguments.done` (name, arguments); Gemini Live's
  `toolCall.functionCalls[]` (name, args);
- usage: summed over `response.done` events (`response.usage`), Gemini's `usageMetadata`;
- model: `session.created` / `session.updated`'s `session.model`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tapeproxy.providers.llm import LLMResponse, ToolCall, Usage, dig, parse_arguments

__all__ = ["read_session"]


def read_session(events: Iterable[dict[str, Any]]) -> LLMResponse | None:
    """The answer a session's server events add up to (None when none is a known event)."""
    text: list[str] = []
    calls: list[ToolCall] = []
    usage_in = usage_out = 0
    counted = known = False
    model: str | None = None
    for event in events:
        kind = str(event.get("type", ""))
        if kind.endswith(("text.delta", "transcript.delta")) and isinstance(
            event.get("delta"), str
        ):
            text.append(event["delta"])
            known = True
        elif kind == "response.function_call_arguments.done":
            calls.append(
                ToolCall(str(event.get("name", "")), parse_arguments(event.get("arguments")))
            )
            known = True
        elif kind == "response.done":
            usage = dig(event, "response", "usage")
            if isinstance(usage, dict):
                usage_in += int(usage.get("input_tokens") or 0)
                usage_out += int(usage.get("output_tokens") or 0)
                counted = True
            known = True
        elif kind in ("session.created", "session.updated"):
            found = dig(event, "session", "model")
            model = found if isinstance(found, str) and found else model
            known = True
        known |= _gemini(event, text, calls)
        meta = event.get("usageMetadata")
        if isinstance(meta, dict):
            usage_in += int(meta.get("promptTokenCount") or 0)
            usage_out += int(
                meta.get("responseTokenCount") or meta.get("candidatesTokenCount") or 0
            )
            counted = known = True
    if not known:
        return None
    usage = Usage(input_tokens=usage_in, output_tokens=usage_out) if counted else None
    return LLMResponse(
        api="realtime", model=model, text="".join(text), tool_calls=tuple(calls),
        usage=usage, streamed=True,
    )  # fmt: skip


def _gemini(event: dict[str, Any], text: list[str], calls: list[ToolCall]) -> bool:
    parts = dig(event, "serverContent", "modelTurn", "parts")
    found = False
    if isinstance(parts, list):
        for part in parts:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                text.append(part["text"])
                found = True
    functions = dig(event, "toolCall", "functionCalls")
    if isinstance(functions, list):
        for call in functions:
            if isinstance(call, dict):
                calls.append(ToolCall(str(call.get("name", "")), parse_arguments(call.get("args"))))
                found = True
    return found
