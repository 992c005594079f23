"""Reading Cohere chat (v2 SSE events and plain, v1 NDJSON stream and plain) and Ollama
(NDJSON ``/api/chat`` and ``/api/generate``) responses."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tapeproxy.providers.llm import LLMResponse, ToolCall, Usage, count, dig, last_usage
from tapeproxy.providers.llm import nonempty as _str
from tapeproxy.providers.llm import parse_arguments as _args
from tapeproxy.providers.messages import Message

__all__ = ["cohere_usage", "read_cohere", "read_ollama"]

_COHERE_V2 = frozenset({"message-start", "content-delta", "tool-call-start", "message-end"})


def cohere_usage(usage: Any) -> Usage | None:
    """Cohere usage: the ``tokens`` counts, else the ``billed_units``."""
    if not isinstance(usage, dict):
        return None
    counts = usage.get("tokens") or usage.get("billed_units")
    if not isinstance(counts, dict):
        return None
    return Usage(
        input_tokens=count(counts.get("input_tokens")),
        output_tokens=count(counts.get("output_tokens")),
    )


def read_cohere(found: Sequence[Message], streamed: bool) -> LLMResponse | None:
    """A Cohere chat response (v1 or v2, plain or streamed), or None."""
    if any(m.data.get("type") in _COHERE_V2 for m in found):
        return _cohere_v2_stream(found)
    if any("event_type" in m.data for m in found):
        end = next((m.data for m in found if m.data.get("event_type") == "stream-end"), {})
        text = "".join(
            str(m.data.get("text") or "")
            for m in found
            if m.data.get("event_type") == "text-generation"
        )
        return LLMResponse(
            api="cohere",
            text=text,
            stop_reason=_str(end.get("finish_reason")),
            usage=cohere_usage(dig(end, "response", "meta")),
            streamed=True,
        )
    data = found[0].data
    if not streamed and isinstance(data.get("message"), dict) and "finish_reason" in data:
        message = data["message"]
        return LLMResponse(
            api="cohere",
            text="".join(str(p.get("text") or "") for p in message.get("content") or ()),
            tool_calls=tuple(_cohere_call(c) for c in message.get("tool_calls") or ()),
            stop_reason=_str(data.get("finish_reason")),
            usage=cohere_usage(data.get("usage")),
        )
    return None


def _cohere_call(call: Any) -> ToolCall:
    return ToolCall(
        str(dig(call, "function", "name") or ""), _args(dig(call, "function", "arguments"))
    )


def _cohere_v2_stream(found: Sequence[Message]) -> LLMResponse:
    text: list[str] = []
    calls: dict[int, dict[str, Any]] = {}
    stop = None
    usages: list[Usage | None] = []
    for message in found:
        data = message.data
        kind = data.get("type")
        delta = dig(data, "delta", "message")
        if kind == "content-delta":
            text.append(str(dig(delta, "content", "text") or ""))
        elif kind in ("tool-call-start", "tool-call-delta"):
            entry = calls.setdefault(count(data.get("index")) or 0, {"name": "", "args": []})
            name = dig(delta, "tool_calls", "function", "name")
            entry["name"] = name if isinstance(name, str) and name else entry["name"]
            entry["args"].append(str(dig(delta, "tool_calls", "function", "arguments") or ""))
        elif kind == "message-end":
            stop = _str(dig(data, "delta", "finish_reason")) or stop
            usages.append(cohere_usage(dig(data, "delta", "usage")))
    return LLMResponse(
        api="cohere",
        text="".join(text),
        tool_calls=tuple(
            ToolCall(c["name"], _args("".join(c["args"]))) for _, c in sorted(calls.items())
        ),
        stop_reason=stop,
        usage=last_usage(usages),
        streamed=True,
    )


def read_ollama(found: Sequence[Message], streamed: bool) -> LLMResponse | None:
    """An Ollama chat or generate response (NDJSON stream or one object), or None."""
    if not all("done" in m.data and "model" in m.data for m in found):
        return None
    text: list[str] = []
    calls: list[ToolCall] = []
    model = stop = None
    usages: list[Usage | None] = []
    for message in found:
        data = message.data
        model = _str(data.get("model")) or model
        stop = _str(data.get("done_reason")) or stop
        piece = dig(data, "message", "content")
        text.append(str(piece if piece is not None else data.get("response") or ""))
        for call in dig(data, "message", "tool_calls") or ():
            calls.append(
                ToolCall(
                    str(dig(call, "function", "name") or ""),
                    _args(dig(call, "function", "arguments")),
                )
            )
        if data.get("done") is True:
            usages.append(
                Usage(
                    input_tokens=count(data.get("prompt_eval_count")),
                    output_tokens=count(data.get("eval_count")),
                )
            )
    return LLMResponse(
        api="ollama",
        model=model,
        text="".join(text),
        tool_calls=tuple(calls),
        stop_reason=stop,
        usage=last_usage(usages),
        streamed=streamed,
    )
