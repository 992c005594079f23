"""Reading OpenAI-shaped responses: chat completions (plain and streamed, also Groq, Mistral,
Azure and OpenRouter), legacy completions, embeddings, and the Responses API."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from tapeproxy.providers.llm import LLMResponse, ToolCall, Usage, count, dig, last_usage
from tapeproxy.providers.llm import nonempty as _str
from tapeproxy.providers.llm import parse_arguments as _args
from tapeproxy.providers.messages import Message

__all__ = ["chat_usage", "read_chat", "read_responses", "responses_usage"]

_TERMINAL = ("response.completed", "response.incomplete", "response.failed")


def chat_usage(usage: Any) -> Usage | None:
    """OpenAI chat usage (``prompt_tokens``, ``completion_tokens`` and their details)."""
    if not isinstance(usage, dict):
        return None
    return Usage(
        input_tokens=count(usage.get("prompt_tokens")),
        output_tokens=count(usage.get("completion_tokens")),
        cached_input_tokens=count(dig(usage, "prompt_tokens_details", "cached_tokens")),
        reasoning_tokens=count(dig(usage, "completion_tokens_details", "reasoning_tokens")),
    )


def responses_usage(usage: Any) -> Usage | None:
    """Responses API usage (``input_tokens``, ``output_tokens`` and their details)."""
    if not isinstance(usage, dict):
        return None
    return Usage(
        input_tokens=count(usage.get("input_tokens")),
        output_tokens=count(usage.get("output_tokens")),
        cached_input_tokens=count(dig(usage, "input_tokens_details", "cached_tokens")),
        reasoning_tokens=count(dig(usage, "output_tokens_details", "reasoning_tokens")),
    )


def read_chat(found: Sequence[Message], streamed: bool) -> LLMResponse | None:
    """A chat completion, legacy completion or embeddings response, or None."""
    first = found[0].data
    if not streamed:
        if first.get("object") == "list" and "data" in first:
            usage = chat_usage(first.get("usage"))
            return LLMResponse(api="openai-embeddings", model=_str(first.get("model")), usage=usage)
        if not isinstance(first.get("choices"), list):
            return None
        return _chat_plain(first)
    if not any(isinstance(m.data.get("choices"), list) for m in found):
        return None
    return _chat_stream(found)


def _chat_plain(data: dict[str, Any]) -> LLMResponse:
    choice = dig(data, "choices", 0) or {}
    message = choice.get("message") or {}
    text = message.get("content") if message else choice.get("text")
    calls = [
        ToolCall(
            str(dig(call, "function", "name") or ""), _args(dig(call, "function", "arguments"))
        )
        for call in message.get("tool_calls") or ()
        if isinstance(call, dict)
    ]
    legacy = message.get("function_call")
    if isinstance(legacy, dict):
        calls.append(ToolCall(str(legacy.get("name") or ""), _args(legacy.get("arguments"))))
    return LLMResponse(
        api="openai-chat",
        model=_str(data.get("model")),
        text=_content_text(text),
        tool_calls=tuple(calls),
        stop_reason=_str(choice.get("finish_reason")),
        usage=chat_usage(data.get("usage")),
    )


def _chat_stream(found: Sequence[Message]) -> LLMResponse:
    text: list[str] = []
    calls: dict[int, dict[str, Any]] = {}
    model = stop = None
    usages: list[Usage | None] = []
    for message in found:
        data = message.data
        model = _str(data.get("model")) or model
        usages.append(chat_usage(data.get("usage")))
        usages.append(chat_usage(dig(data, "x_groq", "usage")))
        for choice in data.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            stop = _str(choice.get("finish_reason")) or stop
            delta = choice.get("delta") or {}
            piece = delta.get("content") if isinstance(delta, dict) else None
            piece = piece if piece is not None else choice.get("text")
            text.append(_content_text(piece))
            for call in (delta.get("tool_calls") if isinstance(delta, dict) else None) or ():
                _add_call_delta(calls, call)
    tool_calls = tuple(
        ToolCall(c["name"], _args("".join(c["arguments"]))) for _, c in sorted(calls.items())
    )
    return LLMResponse(
        api="openai-chat",
        model=model,
        text="".join(text),
        tool_calls=tool_calls,
        stop_reason=stop,
        usage=last_usage(usages),
        streamed=True,
    )


def _add_call_delta(calls: dict[int, dict[str, Any]], call: Any) -> None:
    if not isinstance(call, dict):
        return
    index = count(call.get("index")) or 0
    entry = calls.setdefault(index, {"name": "", "arguments": []})
    name = dig(call, "function", "name")
    if isinstance(name, str) and name:
        entry["name"] = name
    arguments = dig(call, "function", "arguments")
    if isinstance(arguments, str):
        entry["arguments"].append(arguments)


def read_responses(found: Sequence[Message], streamed: bool) -> LLMResponse | None:
    """A Responses API response (plain object or event stream), or None."""
    if not streamed:
        data = found[0].data
        if data.get("object") != "response":
            return None
        return _response_object(data, streamed=False)
    events = [m for m in found if str(m.data.get("type", "")).startswith("response.")]
    if not events:
        return None
    final = next(
        (e.data["response"] for e in reversed(events) if e.data.get("type") in _TERMINAL), None
    )
    usages = [responses_usage(dig(e.data, "response", "usage")) for e in events]
    if isinstance(final, dict) and final.get("output"):
        result = _response_object(final, streamed=True)
        return replace(result, usage=last_usage(usages))
    return _responses_from_deltas(events, usages)


def _response_object(data: dict[str, Any], *, streamed: bool) -> LLMResponse:
    text: list[str] = []
    calls: list[ToolCall] = []
    for item in data.get("output") or ():
        if not isinstance(item, dict):
            continue
        if item.get("type") == "message":
            for part in item.get("content") or ():
                if isinstance(part, dict) and part.get("type") == "output_text":
                    text.append(str(part.get("text") or ""))
        elif item.get("type") == "function_call":
            calls.append(ToolCall(str(item.get("name") or ""), _args(item.get("arguments"))))
    reason = dig(data, "incomplete_details", "reason")
    return LLMResponse(
        api="openai-responses",
        model=_str(data.get("model")),
        text="".join(text),
        tool_calls=tuple(calls),
        stop_reason=_str(reason) or _str(data.get("status")),
        usage=responses_usage(data.get("usage")),
        streamed=streamed,
    )


def _responses_from_deltas(events: Sequence[Message], usages: list[Usage | None]) -> LLMResponse:
    text: list[str] = []
    calls: list[ToolCall] = []
    model = status = None
    for event in events:
        data = event.data
        kind = data.get("type")
        model = _str(dig(data, "response", "model")) or model
        status = _str(dig(data, "response", "status")) or status
        if kind == "response.output_text.delta":
            text.append(str(data.get("delta") or ""))
        elif kind == "response.output_item.done" and dig(data, "item", "type") == "function_call":
            item = data["item"]
            calls.append(ToolCall(str(item.get("name") or ""), _args(item.get("arguments"))))
    return LLMResponse(
        api="openai-responses",
        model=model,
        text="".join(text),
        tool_calls=tuple(calls),
        stop_reason=status,
        usage=last_usage(usages),
        streamed=True,
    )


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(p.get("text") or "") for p in content if isinstance(p, dict) and "text" in p
        )
    return ""
