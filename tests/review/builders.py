"""Building test cassettes: plain and streamed response bodies for each LLM API, and
cassettes made from the shared vcrpy corpus (read directly with PyYAML)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tapeproxy.cassettes.key import request_key
from tapeproxy.cassettes.model import (
    Body,
    Cassette,
    Interaction,
    MatchRules,
    Meta,
    Request,
    Response,
    Timing,
)
from tapeproxy.cassettes.store import save
from tests.review.corpus import VcrResponse, read_vcr

__all__ = [
    "anthropic_body",
    "cassette",
    "chat_body",
    "corpus_cassette",
    "gemini_body",
    "interaction",
    "responses_body",
    "split",
]

Call = tuple[str, dict[str, Any]]


def split(text: str, size: int = 7) -> list[str]:
    """`text` cut into pieces of `size` characters (how a stream delivers it)."""
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def _sse(
    events: list[tuple[str | None, dict[str, Any]]], done: bool = False, eol: str = "\n"
) -> bytes:
    out = []
    for name, data in events:
        head = f"event: {name}{eol}" if name else ""
        out.append(f"{head}data: {json.dumps(data)}{eol}{eol}")
    if done:
        out.append(f"data: [DONE]{eol}{eol}")
    return "".join(out).encode()


def chat_body(
    text: str, calls: Sequence[Call] = (), stream: bool = False, model: str = "gpt-4o-mini"
) -> bytes:
    """An OpenAI chat completion, plain or streamed (with include_usage)."""
    usage = {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}
    tool_calls = [
        {"id": f"call_{i}", "type": "function", "function": {"name": n, "arguments": json.dumps(a)}}
        for i, (n, a) in enumerate(calls)
    ]
    stop = "tool_calls" if calls else "stop"
    if not stream:
        message = {"role": "assistant", "content": text or None, "tool_calls": tool_calls or None}
        doc = {
            "object": "chat.completion",
            "model": model,
            "usage": usage,
            "choices": [{"index": 0, "message": message, "finish_reason": stop}],
        }
        return json.dumps(doc, indent=2).encode()
    chunks: list[dict[str, Any]] = [{"content": piece} for piece in split(text)]
    for i, call in enumerate(tool_calls):
        args = call["function"]["arguments"]
        chunks.append(
            {
                "tool_calls": [
                    {
                        "index": i,
                        "id": call["id"],
                        "type": "function",
                        "function": {"name": call["function"]["name"], "arguments": ""},
                    }
                ]
            }
        )
        chunks += [
            {"tool_calls": [{"index": i, "function": {"arguments": p}}]} for p in split(args, 4)
        ]
    events = [
        (
            None,
            {
                "object": "chat.completion.chunk",
                "model": model,
                "usage": None,
                "choices": [{"index": 0, "delta": d, "finish_reason": None}],
            },
        )
        for d in chunks
    ]
    events.append(
        (
            None,
            {
                "object": "chat.completion.chunk",
                "model": model,
                "usage": None,
                "choices": [{"index": 0, "delta": {}, "finish_reason": stop}],
            },
        )
    )
    events.append(
        (None, {"object": "chat.completion.chunk", "model": model, "choices": [], "usage": usage})
    )
    return _sse(events, done=True)


def anthropic_body(text: str, calls: Sequence[Call] = (), stream: bool = False) -> bytes:
    """An Anthropic message, plain or streamed (text_delta, input_json_delta)."""
    model, stop = "claude-3-5-sonnet-20240620", "tool_use" if calls else "end_turn"
    if not stream:
        content: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
        content += [
            {"type": "tool_use", "id": f"toolu_{i}", "name": n, "input": a}
            for i, (n, a) in enumerate(calls)
        ]
        return json.dumps(
            {
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": content,
                "stop_reason": stop,
                "usage": {"input_tokens": 20, "output_tokens": 9},
            }
        ).encode()
    events: list[tuple[str | None, dict[str, Any]]] = [
        (
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "type": "message",
                    "model": model,
                    "content": [],
                    "usage": {"input_tokens": 20, "output_tokens": 1},
                },
            },
        )
    ]
    index = 0
    if text:
        events.append(
            (
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
            )
        )
        events += [
            (
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": p},
                },
            )
            for p in split(text)
        ]
        index = 1
    for i, (name, args) in enumerate(calls, start=index):
        events.append(
            (
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": i,
                    "content_block": {
                        "type": "tool_use",
                        "id": f"toolu_{i}",
                        "name": name,
                        "input": {},
                    },
                },
            )
        )
        events += [
            (
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": i,
                    "delta": {"type": "input_json_delta", "partial_json": p},
                },
            )
            for p in split(json.dumps(args), 5)
        ]
    events.append(
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop},
                "usage": {"output_tokens": 9},
            },
        )
    )
    events.append(("message_stop", {"type": "message_stop"}))
    return _sse(events)


def responses_body(text: str, calls: Sequence[Call] = (), stream: bool = False) -> bytes:
    """An OpenAI Responses API response, plain or streamed."""
    output: list[dict[str, Any]] = []
    if text:
        output.append(
            {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": text}],
            }
        )
    output += [{"type": "function_call", "name": n, "arguments": json.dumps(a)} for n, a in calls]
    usage = {
        "input_tokens": 11,
        "output_tokens": 5,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 16,
    }
    final = {
        "object": "response",
        "model": "gpt-4.1-nano",
        "status": "completed",
        "output": output,
        "usage": usage,
    }
    if not stream:
        return json.dumps(final, indent=2).encode()
    start = {**final, "status": "in_progress", "output": [], "usage": None}
    events: list[tuple[str | None, dict[str, Any]]] = [
        ("response.created", {"type": "response.created", "response": start})
    ]
    events += [
        ("response.output_text.delta", {"type": "response.output_text.delta", "delta": p})
        for p in split(text)
    ]
    events.append(("response.completed", {"type": "response.completed", "response": final}))
    return _sse(events)


def gemini_body(text: str, calls: Sequence[Call] = (), stream: bool = False) -> bytes:
    """A Gemini generateContent response, or an alt=sse stream with CRLF line ends."""

    def chunk(parts: list[dict[str, Any]], last: bool) -> dict[str, Any]:
        usage = {"promptTokenCount": 8, "totalTokenCount": 8}
        if last:
            usage = {"promptTokenCount": 8, "candidatesTokenCount": 6, "totalTokenCount": 14}
        candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}}
        if last:
            candidate["finishReason"] = "STOP"
        return {
            "candidates": [candidate],
            "usageMetadata": usage,
            "modelVersion": "gemini-2.0-flash",
        }

    call_parts = [{"functionCall": {"name": n, "args": a}} for n, a in calls]
    if not stream:
        return json.dumps(
            chunk(([{"text": text}] if text else []) + call_parts, True), indent=2
        ).encode()
    pieces = split(text)
    events: list[tuple[str | None, dict[str, Any]]] = [
        (None, chunk([{"text": p}], False)) for p in pieces[:-1]
    ]
    events.append((None, chunk([{"text": pieces[-1]}, *call_parts], True)))
    return _sse(events, eol="\r\n")


def interaction(
    url: str,
    body: bytes,
    *,
    request: dict[str, Any] | None = None,
    status: int = 200,
    ttfb: float = 100.0,
    total: float = 400.0,
    stream: bool = False,
) -> Interaction:
    """An interaction POSTing `request` (JSON) to `url` and answered with `body`."""
    raw = json.dumps(request or {"model": "m", "messages": [url]}).encode()
    headers = (("content-type", "application/json"),)
    chunks = ((ttfb, len(body)),) if stream and body else None
    return Interaction(
        key=request_key("POST", url, headers, raw, MatchRules()),
        request=Request(method="POST", url=url, headers=headers, body=Body.from_bytes(raw)),
        response=Response(status=status, body=Body.from_bytes(body), chunks=chunks),
        timing=Timing(ttfb_ms=ttfb, total_ms=total),
    )


def cassette(path: Path, interactions: list[Interaction]) -> Path:
    """Save a cassette holding `interactions` at `path`."""
    save(
        path,
        Cassette(
            meta=Meta(created="2025-01-01T00:00:00Z", tapeproxy="test"),
            interactions=tuple(interactions),
        ),
    )
    return path


def corpus_cassette(yaml_path: Path, out: Path) -> tuple[Path, list[VcrResponse]]:
    """A tapeproxy cassette made from one vcrpy file of the corpus, and the responses read."""
    responses = read_vcr(yaml_path)
    items = []
    for r in responses:
        headers: tuple[tuple[str, str], ...] = ()
        items.append(
            Interaction(
                key=request_key(r.method, r.url, headers, r.request_body, MatchRules()),
                request=Request(method=r.method, url=r.url, body=Body.from_bytes(r.request_body)),
                response=Response(
                    status=r.status,
                    reason=r.reason,
                    headers=r.headers,
                    body=Body.from_bytes(r.body),
                ),
            )
        )
    return cassette(out, items), responses
