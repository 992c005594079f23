"""Anthropic wire formats, both ways: reading Messages responses, plain and streamed
(``text_delta``, ``input_json_delta``), and the legacy ``/v1/complete`` shape; writing
Messages answers and errors."""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Sequence
from typing import Any

from tapeproxy.providers.answer import (
    SLOT,
    Answer,
    Failure,
    Ids,
    RequestFacts,
    Template,
    Written,
    input_tokens,
    json_bytes,
    json_pieces,
    output_tokens,
    pieces,
)
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


# Writing answers as the Messages API sends them.

_SSE_TYPE = "text/event-stream; charset=utf-8"
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
_REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
    529: "Overloaded",
}


def headers(ids: Ids, content_type: str) -> tuple[tuple[str, str], ...]:
    """The headers Anthropic sends with an answer."""
    out = [("content-type", content_type), ("request-id", f"req_011C{ids.alnum(20)}")]
    if content_type.startswith("text/event-stream"):
        out.append(("cache-control", "no-cache"))
    return tuple(out)


def _usage(facts: RequestFacts, answer: Answer, output: int) -> dict[str, Any]:
    return {
        "input_tokens": input_tokens(answer, facts),
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
        "output_tokens": output,
        "service_tier": "standard",
        "inference_geo": "not_available",
    }


def _blocks(answer: Answer, ids: Ids) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if answer.reasoning is not None:
        blocks.append({"type": "thinking", "thinking": answer.reasoning, "signature": ids.b64(96)})
    text = answer.message_text
    if text is not None or not answer.tool_calls:
        blocks.append({"type": "text", "text": text or ""})
    for call in answer.tool_calls:
        arguments = call.arguments if isinstance(call.arguments, dict) else {}
        blocks.append(
            {
                "type": "tool_use",
                "id": f"toolu_01{ids.alnum(22)}",
                "name": call.name,
                "input": arguments,
            }
        )
    return blocks


def _stop(answer: Answer) -> str:
    if answer.finish_reason:
        return {"stop": "end_turn", "length": "max_tokens"}.get(
            answer.finish_reason, answer.finish_reason
        )
    return "tool_use" if answer.tool_calls else "end_turn"


def write_messages(facts: RequestFacts, answer: Answer, ids: Ids) -> Written:
    """A Messages API answer: one `message` object, or its named events from
    `message_start` to `message_stop` (with a `ping`; no `[DONE]`)."""
    message: dict[str, Any] = {
        "id": f"msg_01{ids.alnum(22)}",
        "type": "message",
        "role": "assistant",
        "model": facts.model or "claude-sonnet-4-5",
        "content": _blocks(answer, ids),
        "stop_reason": _stop(answer),
        "stop_sequence": None,
        "usage": _usage(facts, answer, output_tokens(answer)),
    }
    if not facts.stream:
        return Written(200, "OK", headers(ids, "application/json"), (json_bytes(message),))
    events: list[bytes] = []

    def event(kind: str, doc: dict[str, Any]) -> None:
        events.append(
            f"event: {kind}\ndata: ".encode() + json_bytes({"type": kind, **doc}) + b"\n\n"
        )

    event(
        "message_start",
        {
            "message": {
                **message,
                "content": [],
                "stop_reason": None,
                "usage": _usage(facts, answer, 1),
            }
        },
    )
    for index, block in enumerate(message["content"]):
        if block["type"] == "text":
            event(
                "content_block_start",
                {"index": index, "content_block": {"type": "text", "text": ""}},
            )
            if index == 0:
                events.append(b'event: ping\ndata: {"type": "ping"}\n\n')
            delta = {
                "type": "content_block_delta",
                "index": index,
                "delta": {"type": "text_delta", "text": SLOT},
            }
            text = Template(delta, SLOT, frame=(b"event: content_block_delta\ndata: ", b"\n\n"))
            events += [text.fill(piece) for piece in answer.text_pieces()]
        elif block["type"] == "thinking":
            event(
                "content_block_start",
                {
                    "index": index,
                    "content_block": {"type": "thinking", "thinking": "", "signature": ""},
                },
            )
            if index == 0:
                events.append(b'event: ping\ndata: {"type": "ping"}\n\n')
            for piece in pieces(block["thinking"]):
                event(
                    "content_block_delta",
                    {"index": index, "delta": {"type": "thinking_delta", "thinking": piece}},
                )
            event(
                "content_block_delta",
                {
                    "index": index,
                    "delta": {"type": "signature_delta", "signature": block["signature"]},
                },
            )
        else:
            event("content_block_start", {"index": index, "content_block": {**block, "input": {}}})
            arguments = json.dumps(block["input"], separators=(",", ":"), ensure_ascii=False)
            for piece in json_pieces(arguments):
                event(
                    "content_block_delta",
                    {"index": index, "delta": {"type": "input_json_delta", "partial_json": piece}},
                )
        event("content_block_stop", {"index": index})
    usage = message["usage"]
    event(
        "message_delta",
        {
            "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
            "usage": {
                k: usage[k]
                for k in (
                    "input_tokens",
                    "cache_creation_input_tokens",
                    "cache_read_input_tokens",
                    "output_tokens",
                )
            },
        },
    )
    event("message_stop", {})
    return Written(200, "OK", headers(ids, _SSE_TYPE), tuple(events), streamed=True)


def write_error(facts: RequestFacts, failure: Failure, ids: Ids) -> Written:
    """An error in Anthropic's envelope, with `request_id` in the body and `x-should-retry`
    on client errors, as the API sends them."""
    kind = failure.type or _ERROR_TYPES.get(
        failure.status, "api_error" if failure.status >= 500 else "invalid_request_error"
    )
    out = list(headers(ids, "application/json"))
    request_id = dict(out)["request-id"]
    doc = {
        "type": "error",
        "error": {"type": kind, "message": failure.message or kind.replace("_", " ")},
        "request_id": request_id,
    }
    if failure.retry_after is not None:
        out.append(("retry-after", f"{failure.retry_after:g}"))
    if failure.status == 429:  # the limits Anthropic reports, the requests one exhausted
        reset = dt.datetime.fromtimestamp(
            ids.created() + math.ceil(failure.retry_after or 1), dt.UTC
        ).strftime("%Y-%m-%dT%H:%M:%SZ")
        out += [
            ("anthropic-ratelimit-requests-limit", "50"),
            ("anthropic-ratelimit-requests-remaining", "0"),
            ("anthropic-ratelimit-requests-reset", reset),
            ("anthropic-ratelimit-tokens-limit", "40000"),
            ("anthropic-ratelimit-tokens-remaining", str(20000 + int(ids.unit() * 20000))),
            ("anthropic-ratelimit-tokens-reset", reset),
        ]
    if 400 <= failure.status < 500 and failure.status not in (408, 409, 429):
        out.append(("x-should-retry", "false"))
    reason = _REASONS.get(failure.status, "Error")
    return Written(failure.status, reason, tuple(out), (json_bytes(doc),))
