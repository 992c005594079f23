"""OpenAI wire formats, both ways. Reading: chat completions (plain and streamed, also Groq,
Mistral, Azure and OpenRouter), legacy completions, embeddings and the Responses API. Writing:
chat completions, Responses, embeddings and errors, as OpenAI and Azure OpenAI send them."""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from tapeproxy.providers.answer import (
    SLOT,
    SLOT2,
    Answer,
    Failure,
    Ids,
    RequestFacts,
    Template,
    Written,
    arguments_json,
    estimate_tokens,
    input_tokens,
    json_bytes,
    json_pieces,
    output_tokens,
    reasoning_tokens,
)
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


# Writing answers: chat completions, Responses, embeddings and errors, as OpenAI's servers
# (and Azure OpenAI's) send them.

_SSE_TYPE = "text/event-stream; charset=utf-8"
_FINISH = {"stop": "stop", "tool_calls": "tool_calls", "length": "length"}


def headers(facts: RequestFacts, ids: Ids, content_type: str) -> tuple[tuple[str, str], ...]:
    """The headers OpenAI (or Azure OpenAI) sends with an answer."""
    request_id = ids.hex(32)
    out = [("content-type", content_type)]
    if facts.provider == "azure":
        out += [
            (
                "apim-request-id",
                f"{ids.hex(8)}-{ids.hex(4)}-{ids.hex(4)}-{ids.hex(4)}-{ids.hex(12)}",
            ),
            ("x-request-id", request_id),
            ("x-ms-region", "East US"),
        ]
    else:
        out += [
            ("x-request-id", f"req_{request_id}"),
            ("openai-version", "2020-10-01"),
            ("openai-processing-ms", ids.digits(3)),
        ]
    return tuple(out)


def _usage_chat(facts: RequestFacts, answer: Answer) -> dict[str, Any]:
    inp, out = input_tokens(answer, facts), output_tokens(answer)
    return {
        "prompt_tokens": inp,
        "completion_tokens": out,
        "total_tokens": inp + out,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": reasoning_tokens(answer),
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _finish(answer: Answer) -> str:
    if answer.finish_reason:
        return answer.finish_reason
    return "tool_calls" if answer.tool_calls else "stop"


def _sse_data(doc: Any) -> bytes:
    return b"data: " + json_bytes(doc) + b"\n\n"


_SSE_FRAME = (b"data: ", b"\n\n")


def write_chat(facts: RequestFacts, answer: Answer, ids: Ids) -> Written:
    """A chat completion: one `chat.completion` object, or `chat.completion.chunk` events
    ending in `data: [DONE]` (with a final usage chunk when `include_usage` was asked)."""
    head = {
        "id": f"chatcmpl-{ids.alnum(29)}",
        "object": "chat.completion.chunk" if facts.stream else "chat.completion",
        "created": ids.created(),
        "model": facts.model or "gpt-4o-mini",
    }
    calls = [
        {"id": f"call_{ids.alnum(24)}", "name": c.name, "arguments": arguments_json(c.arguments)}
        for c in answer.tool_calls
    ]
    text = answer.message_text
    if not facts.stream:
        message: dict[str, Any] = {
            "role": "assistant",
            "content": text if text is not None or not calls else None,
            "refusal": None,
            "annotations": [],
        }
        if message["content"] is None and not calls:
            message["content"] = ""
        if calls:
            message["tool_calls"] = [
                {
                    "id": c["id"],
                    "type": "function",
                    "function": {"name": c["name"], "arguments": c["arguments"]},
                }
                for c in calls
            ]
        doc = {
            **head,
            "choices": [
                {"index": 0, "message": message, "logprobs": None, "finish_reason": _finish(answer)}
            ],
            "usage": _usage_chat(facts, answer),
            "service_tier": "default",
            "system_fingerprint": f"fp_{ids.hex(10)}",
        }
        return Written(200, "OK", headers(facts, ids, "application/json"), (json_bytes(doc),))
    fingerprint = f"fp_{ids.hex(10)}"
    usage_null = {"usage": None} if facts.include_usage else {}

    def chunk_doc(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            **head,
            "service_tier": "default",
            "system_fingerprint": fingerprint,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
            **usage_null,
        }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        return _sse_data(chunk_doc(delta, finish))

    first: dict[str, Any] = {"role": "assistant", "content": "" if text else None, "refusal": None}
    events = [chunk(first)]
    content = Template(chunk_doc({"content": SLOT}), SLOT, frame=_SSE_FRAME)
    events += [content.fill(piece) for piece in answer.text_pieces()]
    for index, call in enumerate(calls):
        opening = {
            "index": index,
            "id": call["id"],
            "type": "function",
            "function": {"name": call["name"], "arguments": ""},
        }
        events.append(chunk({"tool_calls": [opening]}))
        delta = {"tool_calls": [{"index": index, "function": {"arguments": SLOT}}]}
        part = Template(chunk_doc(delta), SLOT, frame=_SSE_FRAME)
        events += [part.fill(piece) for piece in json_pieces(call["arguments"])]
    events.append(chunk({}, _finish(answer)))
    if facts.include_usage:
        events.append(
            _sse_data(
                {
                    **head,
                    "service_tier": "default",
                    "system_fingerprint": fingerprint,
                    "choices": [],
                    "usage": _usage_chat(facts, answer),
                }
            )
        )
    events.append(b"data: [DONE]\n\n")
    return Written(200, "OK", headers(facts, ids, _SSE_TYPE), tuple(events), streamed=True)


def _response_doc(
    facts: RequestFacts, answer: Answer, rid: str, created: int, output: list[Any], done: bool
) -> dict[str, Any]:
    body = facts.body
    usage = None
    if done:
        inp, out = input_tokens(answer, facts), output_tokens(answer)
        usage = {
            "input_tokens": inp,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": out,
            "output_tokens_details": {"reasoning_tokens": reasoning_tokens(answer)},
            "total_tokens": inp + out,
        }
    asked = body.get("reasoning")
    reasoning: dict[str, Any] = asked if isinstance(asked, dict) else {}
    return {
        "id": rid,
        "object": "response",
        "created_at": created,
        "status": "completed" if done else "in_progress",
        "background": False,
        "billing": {"payer": "developer"},
        "completed_at": created + 1 if done else None,
        "error": None,
        "frequency_penalty": 0.0,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "max_tool_calls": None,
        "model": facts.model or "gpt-4o-mini",
        "output": output,
        "parallel_tool_calls": True,
        "presence_penalty": 0.0,
        "previous_response_id": body.get("previous_response_id"),
        "prompt_cache_key": None,
        "prompt_cache_retention": "in_memory",
        "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
        "safety_identifier": None,
        "service_tier": "default",
        "store": body.get("store", True),
        "temperature": 1.0,
        "text": {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": _tools(body.get("tools")),
        "top_logprobs": 0,
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": usage,
        "user": None,
        "metadata": body.get("metadata") or {},
    }


def _tools(asked: Any) -> list[Any]:
    """The request's tools as the Responses API echoes them: function tools are strict by
    default, and a strict tool's parameters get `additionalProperties: false`."""
    out = []
    for tool in asked if isinstance(asked, list) else []:
        if isinstance(tool, dict) and tool.get("type") == "function":
            tool = {"description": None, **tool, "strict": tool.get("strict", True)}
            params = tool.get("parameters")
            if tool["strict"] and isinstance(params, dict):
                tool["parameters"] = {**params, "additionalProperties": False}
        out.append(tool)
    return out


def write_responses(facts: RequestFacts, answer: Answer, ids: Ids) -> Written:
    """A Responses API answer: one `response` object, or its named event sequence from
    `response.created` to `response.completed` (numbered, no `[DONE]`)."""
    stem = ids.hex(50)
    rid, created = f"resp_{stem}", ids.created()
    items: list[tuple[str, dict[str, Any]]] = []  # (kind, finished item)
    if answer.reasoning is not None:
        summary = [{"type": "summary_text", "text": answer.reasoning}] if answer.reasoning else []
        items.append(
            ("reasoning", {"id": f"rs_{ids.hex(50)}", "type": "reasoning", "summary": summary})
        )
    text = answer.message_text
    if text is not None or not answer.tool_calls:
        items.append(
            (
                "message",
                {
                    "id": f"msg_{ids.hex(50)}",
                    "type": "message",
                    "status": "completed",
                    "content": [
                        {
                            "type": "output_text",
                            "annotations": [],
                            "logprobs": [],
                            "text": text or "",
                        }
                    ],
                    "role": "assistant",
                },
            )
        )
    for call in answer.tool_calls:
        items.append(
            (
                "function_call",
                {
                    "id": f"fc_{ids.hex(50)}",
                    "type": "function_call",
                    "status": "completed",
                    "arguments": arguments_json(call.arguments),
                    "call_id": f"call_{ids.alnum(24)}",
                    "name": call.name,
                },
            )
        )
    finished = [item for _, item in items]
    if not facts.stream:
        doc = _response_doc(facts, answer, rid, created, finished, True)
        return Written(200, "OK", headers(facts, ids, "application/json"), (json_bytes(doc),))
    events: list[bytes] = []

    def event(kind: str, fields: dict[str, Any]) -> None:
        doc = {"type": kind, **fields, "sequence_number": len(events)}
        events.append(f"event: {kind}\ndata: ".encode() + json_bytes(doc) + b"\n\n")

    event("response.created", {"response": _response_doc(facts, answer, rid, created, [], False)})
    event(
        "response.in_progress",
        {"response": _response_doc(facts, answer, rid, created, [], False)},
    )
    for index, (kind, item) in enumerate(items):
        if kind == "message":
            part = item["content"][0]
            event(
                "response.output_item.added",
                {"item": {**item, "status": "in_progress", "content": []}, "output_index": index},
            )
            event(
                "response.content_part.added",
                {
                    "content_index": 0,
                    "item_id": item["id"],
                    "output_index": index,
                    "part": {**part, "text": ""},
                },
            )
            kind = "response.output_text.delta"
            delta = Template(
                {
                    "type": kind,
                    "content_index": 0,
                    "delta": SLOT,
                    "item_id": item["id"],
                    "logprobs": [],
                    "output_index": index,
                    "sequence_number": SLOT2,
                },
                SLOT,
                SLOT2,
                frame=(f"event: {kind}\ndata: ".encode(), b"\n\n"),
            )
            events += [
                delta.fill(piece, len(events) + n) for n, piece in enumerate(answer.text_pieces())
            ]
            event(
                "response.output_text.done",
                {
                    "content_index": 0,
                    "item_id": item["id"],
                    "logprobs": [],
                    "output_index": index,
                    "text": part["text"],
                },
            )
            event(
                "response.content_part.done",
                {"content_index": 0, "item_id": item["id"], "output_index": index, "part": part},
            )
        elif kind == "function_call":
            event(
                "response.output_item.added",
                {"item": {**item, "status": "in_progress", "arguments": ""}, "output_index": index},
            )
            for piece in json_pieces(item["arguments"]):
                event(
                    "response.function_call_arguments.delta",
                    {"delta": piece, "item_id": item["id"], "output_index": index},
                )
            event(
                "response.function_call_arguments.done",
                {"arguments": item["arguments"], "item_id": item["id"], "output_index": index},
            )
        else:
            event(
                "response.output_item.added",
                {"item": {**item, "summary": []}, "output_index": index},
            )
        event("response.output_item.done", {"item": item, "output_index": index})
    event(
        "response.completed",
        {"response": _response_doc(facts, answer, rid, created, finished, True)},
    )
    return Written(200, "OK", headers(facts, ids, _SSE_TYPE), tuple(events), streamed=True)


_DIMENSIONS = {"text-embedding-3-large": 3072, "text-embedding-ada-002": 1536}


def embedding_vector(text: str, dimensions: int) -> list[float]:
    """A deterministic unit vector for a text (the same text always gets the same one)."""
    ids = Ids(b"embedding\0" + text.encode("utf-8"))
    raw = [ids.unit() * 2.0 - 1.0 for _ in range(dimensions)]
    norm = sum(x * x for x in raw) ** 0.5 or 1.0
    return [round(x / norm, 8) for x in raw]


def write_embeddings(facts: RequestFacts, answer: Answer, ids: Ids) -> Written:
    """An embeddings list: one vector per input, derived from the input text; as floats,
    or as base64 of little-endian float32 when `encoding_format` is `base64` (what the
    `openai` SDK asks for by default)."""
    raw_input = facts.body.get("input")
    inputs = raw_input if isinstance(raw_input, list) else [raw_input]
    model = facts.model or "text-embedding-3-small"
    dims = facts.body.get("dimensions")
    size = dims if isinstance(dims, int) and dims > 0 else _DIMENSIONS.get(model, 1536)
    as_base64 = facts.body.get("encoding_format") == "base64"
    data = []
    for index, item in enumerate(inputs):
        text = item if isinstance(item, str) else json.dumps(item)
        vector = embedding_vector(text, size)
        encoded: Any = vector
        if as_base64:
            encoded = base64.b64encode(struct.pack(f"<{size}f", *vector)).decode("ascii")
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    tokens = (
        answer.input_tokens
        if answer.input_tokens is not None
        else max(1, estimate_tokens(facts.prompt_chars))
    )
    doc = {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
    return Written(200, "OK", headers(facts, ids, "application/json"), (json_bytes(doc),))


_ERROR_TYPES = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "model_not_found"),
    409: ("invalid_request_error", None),
    422: ("invalid_request_error", None),
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", None),
    503: ("server_error", None),
}
_REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


_ERROR_MESSAGES = {
    500: "The server had an error while processing your request. Sorry about that!",
    502: "Bad gateway.",
    503: "The server is overloaded or not ready yet.",
    504: "Gateway timeout.",
}


def reason(status: int) -> str:
    """The usual reason phrase of a status."""
    return _REASONS.get(status, "Error")


def write_error(facts: RequestFacts, failure: Failure, ids: Ids) -> Written:
    """An error in OpenAI's envelope (`{"error": {message, type, param, code}}`); a given
    type that names a code (`rate_limit_exceeded`, `insufficient_quota`) goes in `code`."""
    usual_type, usual_code = _ERROR_TYPES.get(
        failure.status, ("server_error" if failure.status >= 500 else "invalid_request_error", None)
    )
    kind, code = usual_type, usual_code
    if failure.type in ("rate_limit_exceeded", "insufficient_quota"):
        kind, code = (
            "insufficient_quota" if failure.type == "insufficient_quota" else "requests",
            failure.type,
        )
    elif failure.type:
        kind = failure.type
    wait = failure.retry_after
    message = failure.message or _ERROR_MESSAGES.get(failure.status, f"tapeproxy stub: {kind}")
    if failure.status == 429 and not failure.message:
        message = (
            f"Rate limit reached for {facts.model or 'gpt-4o-mini'} in organization "
            f"org-{ids.alnum(24)} on requests per min (RPM): Limit 500, Used 500, Requested 1. "
            f"Please try again in {wait if wait is not None else 1:g}s. Visit "
            "https://platform.openai.com/account/rate-limits to learn more."
        )
    doc = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    out = list(headers(facts, ids, "application/json"))
    if wait is not None:
        out += [("retry-after", f"{wait:g}"), ("retry-after-ms", str(int(wait * 1000)))]
    if failure.status == 429:  # the limits OpenAI reports with every answer, one exhausted
        out += [
            ("x-ratelimit-limit-requests", "500"),
            ("x-ratelimit-limit-tokens", "200000"),
            ("x-ratelimit-remaining-requests", "0"),
            ("x-ratelimit-remaining-tokens", str(150000 + int(ids.unit() * 50000))),
            ("x-ratelimit-reset-requests", f"{wait if wait is not None else 1:g}s"),
            ("x-ratelimit-reset-tokens", f"{int(ids.unit() * 900) + 100}ms"),
        ]
    body = json.dumps(doc, indent=2).encode() + b"\n"
    return Written(failure.status, reason(failure.status), tuple(out), (body,))
