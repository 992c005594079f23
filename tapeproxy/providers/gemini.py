"""Gemini wire formats, both ways: reading and writing Gemini and Vertex AI
``generateContent`` / ``streamGenerateContent`` answers (one object, an SSE stream, or a
streamed JSON array; all the same chunk shape), and writing their errors."""

from __future__ import annotations

import json
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
    output_tokens,
    reasoning_tokens,
)
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


# Writing answers as generateContent / streamGenerateContent send them.

_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}
_JSON_TYPE = "application/json; charset=UTF-8"


def headers(content_type: str) -> tuple[tuple[str, str], ...]:
    """The headers Google's API front end sends with an answer."""
    return (
        ("content-type", content_type),
        ("vary", "Origin, X-Origin, Referer"),
        ("server", "scaffolding on HTTPServer2"),
        ("x-xss-protection", "0"),
        ("x-frame-options", "SAMEORIGIN"),
        ("x-content-type-options", "nosniff"),
    )


def _usage(facts: RequestFacts, answer: Answer, final: bool) -> dict[str, Any]:
    prompt = input_tokens(answer, facts)
    doc: dict[str, Any] = {"promptTokenCount": prompt}
    total = prompt
    if final:
        thoughts = reasoning_tokens(answer)
        out = (
            output_tokens(answer) - thoughts
            if answer.output_tokens is None
            else (answer.output_tokens)
        )
        out = max(out, 1)
        doc["candidatesTokenCount"] = out
        total += out
        if not thoughts and _reports_output_details(facts):
            doc["candidatesTokensDetails"] = [{"modality": "TEXT", "tokenCount": out}]
        if thoughts:
            doc["thoughtsTokenCount"] = thoughts
            total += thoughts
    doc["totalTokenCount"] = total
    doc["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": prompt}]
    doc["serviceTier"] = "standard"
    return doc


def _reports_output_details(facts: RequestFacts) -> bool:
    """Whether usage has `candidatesTokensDetails`: Vertex AI always sends it, the Gemini API
    only for models before 2.5."""
    if facts.host.endswith("aiplatform.googleapis.com"):
        return True
    return (facts.model or "").startswith(("gemini-1", "gemini-2.0"))


def _finish(answer: Answer) -> str:
    if answer.finish_reason:
        return {"stop": "STOP", "length": "MAX_TOKENS"}.get(
            answer.finish_reason, answer.finish_reason
        )
    return "STOP"


def _parts(answer: Answer) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    if answer.reasoning:
        parts.append({"text": answer.reasoning, "thought": True})
    text = answer.message_text
    if text is not None or not answer.tool_calls:
        parts.append({"text": text or ""})
    for call in answer.tool_calls:
        parts.append({"functionCall": {"name": call.name, "args": call.arguments}})
    return parts


def write_generate(facts: RequestFacts, answer: Answer, ids: Ids) -> Written:
    """A generateContent answer; streamed, one chunk per piece of text, as SSE (CRLF, no
    `[DONE]`) under `alt=sse`, else as one JSON array written element by element."""
    model = facts.model or "gemini-2.5-flash"
    response_id = ids.alnum(23)

    partial = _usage(facts, answer, False)

    def chunk(parts: list[dict[str, Any]], final: bool) -> dict[str, Any]:
        candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}}
        if final:
            candidate["finishReason"] = _finish(answer)
        candidate["index"] = 0
        return {
            "candidates": [candidate],
            "usageMetadata": _usage(facts, answer, True) if final else partial,
            "modelVersion": model,
            "responseId": response_id,
        }

    if not facts.stream:
        doc = chunk(_parts(answer), True)
        return Written(200, "OK", headers(_JSON_TYPE), (json_bytes(doc),))
    lead = [chunk([{"text": answer.reasoning, "thought": True}], False)] if answer.reasoning else []
    words = answer.text_pieces()
    calls = [p for p in _parts(answer) if "functionCall" in p]
    middle = words if calls or not words else words[:-1]
    last = chunk(calls, True) if calls else chunk([{"text": words[-1] if words else ""}], True)
    if facts.sse:
        start, end = b"data: ", b"\r\n\r\n"
        text = Template(chunk([{"text": SLOT}], False), SLOT, frame=(start, end))
        events = [start + json_bytes(d) + end for d in lead]
        events += [text.fill(word) for word in middle]
        events.append(start + json_bytes(last) + end)
        return Written(200, "OK", headers("text/event-stream"), tuple(events), streamed=True)
    docs = [*lead, *(chunk([{"text": word}], False) for word in middle), last]
    parts = [json.dumps(d, indent=2, ensure_ascii=False).encode() for d in docs]
    array = tuple(
        (b"[" if i == 0 else b",\r\n") + p + (b"\n]" if i == len(parts) - 1 else b"\n")
        for i, p in enumerate(parts)
    )
    return Written(200, "OK", headers(_JSON_TYPE), array, streamed=True)


def write_error(facts: RequestFacts, failure: Failure, ids: Ids) -> Written:
    """An error in Google's envelope (`{"error": {code, message, status}}`)."""
    status = failure.type or _STATUS.get(
        failure.status, "INTERNAL" if failure.status >= 500 else "INVALID_ARGUMENT"
    )
    doc = {
        "error": {"code": failure.status, "message": failure.message or status, "status": status}
    }
    out = list(headers(_JSON_TYPE))
    if failure.retry_after is not None:
        out.append(("retry-after", f"{failure.retry_after:g}"))
    body = json.dumps(doc, indent=2).encode() + b"\n"
    return Written(failure.status, _REASONS.get(failure.status, "Error"), tuple(out), (body,))
