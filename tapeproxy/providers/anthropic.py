"""Reading Anthropic Messages responses, plain and streamed (``text_delta``,
``input_json_delta``), and the legacy ``/v1/complete`` shape."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tapeproxy.providers.llm import LLMResponse, ToolCall, Usage, count, dig, last_usage
from tapeproxy.providers.llm import nonempty as _str
from tapeproxy.providers.llm import parse_arguments as _args
from tapeproxy.providers.messages import Message

__all__ = ["anthropic_usage", "read"]

_STREAM_TYPES = frozenset(
    {"message_start", "content_block_start", "content_block_delta", "message_delta"}
)


def anthropic_usage(usage: Any) -> Usage | None:
    """Anthropic usage: input (without cache), output, cache reads and cache writes."""
    if not isinstance(usage, dict):
        return None
    return Usage(
        input_tokens=count(usage.get("input_tokens")),
        output_tokens=count(usage.get("output_tokens")),
        cached_input_tokens=count(usage.get("cache_read_input_tokens")),
        reasoning_tokens=count(dig(usage, "output_tokens_details", "thinking_tokens")),
        cache_write_tokens=count(usage.get("cache_creation_input_tokens")),
        input_includes_cached=False,
    )


def read(found: Sequence[Message], streamed: bool) -> LLMResponse | None:
    """An Anthropic message (plain or streamed), or None when the body is not one."""
    if not streamed:
        data = found[0].data
        if data.get("type") == "completion" and "completion" in data:
            return LLMResponse(
                api="anthropic",
                model=_str(data.get("model")),
                text=str(data.get("completion") or ""),
                stop_reason=_str(data.get("stop_reason")),
            )
        if data.get("type") != "message" or not isinstance(data.get("content"), list):
            return None
        return _plain(data)
    if not any(m.data.get("type") in _STREAM_TYPES for m in found):
        return None
    return _stream(found)


def _plain(data: dict[str, Any]) -> LLMResponse:
    text: list[str] = []
    calls: list[ToolCall] = []
    for block in data["content"]:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text":
            text.append(str(block.get("text") or ""))
        elif block.get("type") == "tool_use":
            calls.append(ToolCall(str(block.get("name") or ""), _args(block.get("input"))))
    return LLMResponse(
        api="anthropic",
        model=_str(data.get("model")),
        text="".join(text),
        tool_calls=tuple(calls),
        stop_reason=_str(data.get("stop_reason")),
        usage=anthropic_usage(data.get("usage")),
    )


def _stream(found: Sequence[Message]) -> LLMResponse:
    blocks: dict[int, dict[str, Any]] = {}
    model = stop = None
    usages: list[Usage | None] = []
    for message in found:
        data = message.data
        kind = data.get("type")
        if kind == "message_start":
            model = _str(dig(data, "message", "model")) or model
            usages.append(anthropic_usage(dig(data, "message", "usage")))
        elif kind == "content_block_start":
            block = data.get("content_block") or {}
            blocks[count(data.get("index")) or 0] = {
                "type": block.get("type"),
                "name": str(block.get("name") or ""),
                "parts": [str(block.get("text") or "")],
            }
        elif kind == "content_block_delta":
            _add_delta(blocks, data)
        elif kind == "message_delta":
            stop = _str(dig(data, "delta", "stop_reason")) or stop
            usages.append(anthropic_usage(data.get("usage")))
    ordered = [b for _, b in sorted(blocks.items())]
    return LLMResponse(
        api="anthropic",
        model=model,
        text="".join("".join(b["parts"]) for b in ordered if b["type"] == "text"),
        tool_calls=tuple(
            ToolCall(b["name"], _args("".join(b["parts"])))
            for b in ordered
            if b["type"] == "tool_use"
        ),
        stop_reason=stop,
        usage=last_usage(usages),
        streamed=True,
    )


def _add_delta(blocks: dict[int, dict[str, Any]], data: dict[str, Any]) -> None:
    index = count(data.get("index")) or 0
    block = blocks.setdefault(index, {"type": None, "name": "", "parts": []})
    delta = data.get("delta") or {}
    if delta.get("type") == "text_delta":
        block["type"] = block["type"] or "text"
        block["parts"].append(str(delta.get("text") or ""))
    elif delta.get("type") == "input_json_delta":
        block["parts"].append(str(delta.get("partial_json") or ""))
