"""Owned response samples in the wire shapes the shared corpus holds and builders.py does not:
Cohere v1 (NDJSON) and v2 (SSE), Ollama NDJSON, Anthropic thinking streams and legacy
completions, Gemini JSON-array streams with thought parts, OpenAI legacy function calls, Groq's
`x_groq` usage, embeddings, and each provider's error body.

Each sample carries what a reader must find in it, taken from the values it was built from, so
the extractor and stats are checked without the third-party corpus (a user's clone has none).
Text, names and counts come from a seeded generator, never from the values the code was tuned on.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tapeproxy.providers.llm import Usage
from tests.review.builders import anthropic_body, chat_body, gemini_body, responses_body

__all__ = ["ErrorSample", "Sample", "error_samples", "samples"]

Call = tuple[str, dict[str, Any]]

_WORDS = [
    "river",
    "lantern",
    "orbit",
    "maple",
    "quartz",
    "velvet",
    "harbor",
    "cinder",
    "meadow",
    "falcon",
    "prism",
    "tundra",
    "ember",
    "willow",
    "saffron",
    "glacier",
    "echo",
    "copper",
    "marble",
    "thistle",
]


@dataclass(frozen=True)
class Sample:
    """One response body and what reading it must give."""

    name: str
    url: str
    body: bytes
    api: str
    model: str | None
    stop: str | None
    text: str
    calls: Sequence[Call] = ()
    usage: Usage | None = None
    request: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ErrorSample:
    """An error body and the provider error type it names."""

    name: str
    url: str
    status: int
    body: bytes
    kind: str


def _pieces(rng: random.Random, text: str) -> list[str]:
    """`text` cut at random points, as a stream delivers it."""
    cuts = sorted(rng.sample(range(1, len(text)), k=min(len(text) - 1, max(1, len(text) // 6))))
    return [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]


def _text(rng: random.Random, n: int = 9) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(n)).capitalize() + "."


def _sse(events: list[tuple[str | None, dict[str, Any]]], done: bool = False) -> bytes:
    out = [
        (f"event: {name}\n" if name else "") + f"data: {json.dumps(data)}\n\n"
        for name, data in events
    ]
    return "".join(out + (["data: [DONE]\n\n"] if done else [])).encode()


def _ndjson(objects: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(o, separators=(",", ":")) + "\n" for o in objects).encode()


def _cohere_v1_stream(rng: random.Random) -> Sample:
    text, usage = _text(rng), (rng.randint(20, 90), rng.randint(10, 200))
    events: list[dict[str, Any]] = [{"is_finished": False, "event_type": "stream-start"}]
    events += [
        {"is_finished": False, "event_type": "text-generation", "text": p}
        for p in _pieces(rng, text)
    ]
    meta = {
        "billed_units": {"input_tokens": usage[0] // 3, "output_tokens": usage[1] - 1},
        "tokens": {"input_tokens": usage[0], "output_tokens": usage[1]},
    }
    events.append(
        {
            "is_finished": True,
            "event_type": "stream-end",
            "response": {"text": text, "finish_reason": "COMPLETE", "meta": meta},
            "finish_reason": "COMPLETE",
        }
    )
    return Sample(
        "cohere-v1-ndjson",
        "https://api.cohere.com/v1/chat",
        _ndjson(events),
        "cohere",
        None,
        "COMPLETE",
        text,
        usage=Usage(*usage),
        request={"model": "command-r", "message": "hi", "stream": True},
    )


def _cohere_v2(rng: random.Random, stream: bool) -> Sample:
    calls = [(rng.choice(_WORDS), {"place": rng.choice(_WORDS)}) for _ in range(2)]
    usage = (rng.randint(100, 999), rng.randint(10, 99))
    tokens = {"input_tokens": usage[0], "output_tokens": usage[1]}
    if not stream:
        body = {
            "id": "c2",
            "finish_reason": "TOOL_CALL",
            "message": {
                "role": "assistant",
                "tool_plan": _text(rng, 4),
                "tool_calls": [
                    {"id": f"t{i}", "type": "function", "function": {"name": n, "arguments": a}}
                    for i, (n, a) in enumerate(calls)
                ],
            },
            "usage": {"billed_units": {"input_tokens": 1, "output_tokens": 1}, "tokens": tokens},
        }
        for call in body["message"]["tool_calls"]:  # type: ignore[index]
            call["function"]["arguments"] = json.dumps(call["function"]["arguments"])
        data = json.dumps(body).encode()
    else:
        start = {"role": "assistant", "content": [], "tool_plan": "", "tool_calls": []}
        events: list[tuple[str | None, dict[str, Any]]] = [
            ("message-start", {"type": "message-start", "delta": {"message": start}})
        ]
        events += [
            ("tool-plan-delta", {"type": "tool-plan-delta", "delta": {"message": {"tool_plan": p}}})
            for p in _pieces(rng, _text(rng, 4))
        ]
        for i, (name, args) in enumerate(calls):
            head = {"id": f"t{i}", "type": "function", "function": {"name": name, "arguments": ""}}
            events.append(
                (
                    "tool-call-start",
                    {
                        "type": "tool-call-start",
                        "index": i,
                        "delta": {"message": {"tool_calls": head}},
                    },
                )
            )
            events += [
                (
                    "tool-call-delta",
                    {
                        "type": "tool-call-delta",
                        "index": i,
                        "delta": {"message": {"tool_calls": {"function": {"arguments": p}}}},
                    },
                )
                for p in _pieces(rng, json.dumps(args))
            ]
            events.append(("tool-call-end", {"type": "tool-call-end", "index": i}))
        end = {"finish_reason": "TOOL_CALL", "usage": {"tokens": tokens}}
        events.append(("message-end", {"type": "message-end", "delta": end}))
        data = _sse(events, done=True)
    return Sample(
        f"cohere-v2-{'sse' if stream else 'plain'}",
        "https://api.cohere.com/v2/chat",
        data,
        "cohere",
        None,
        "TOOL_CALL",
        "",
        calls,
        Usage(*usage),
        request={"model": "command-r-plus", "messages": [], "stream": stream},
    )


def _ollama(rng: random.Random, stream: bool) -> Sample:
    text, model = _text(rng), rng.choice(["llama3", "qwen2.5:7b", "mistral"])
    usage = (rng.randint(5, 50), rng.randint(5, 80))
    pieces = _pieces(rng, text) if stream else [text]
    lines: list[dict[str, Any]] = [
        {"model": model, "message": {"role": "assistant", "content": p}, "done": False}
        for p in pieces
    ]
    final = {
        "done_reason": "stop",
        "done": True,
        "prompt_eval_count": usage[0],
        "eval_count": usage[1],
        "total_duration": rng.randint(10**8, 10**9),
    }
    if stream:
        lines.append({"model": model, "message": {"role": "assistant", "content": ""}, **final})
        body = _ndjson(lines)
    else:
        body = json.dumps({**lines[0], **final}).encode()
    return Sample(
        f"ollama-{'ndjson' if stream else 'plain'}",
        "http://127.0.0.1:11434/api/chat",
        body,
        "ollama",
        model,
        "stop",
        text,
        usage=Usage(*usage),
        request={"model": model, "messages": [], "stream": stream},
    )


def _anthropic_thinking(rng: random.Random) -> Sample:
    thinking, text = _text(rng, 14), _text(rng)
    model = "claude-3-7-sonnet-20250219"
    usage = (rng.randint(20, 90), rng.randint(100, 400))
    start = {
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "usage": {"input_tokens": usage[0], "output_tokens": 2},
    }
    events: list[tuple[str | None, dict[str, Any]]] = [
        ("message_start", {"type": "message_start", "message": start}),
        (
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking"}},
        ),
        ("ping", {"type": "ping"}),
    ]
    events += [
        (
            "content_block_delta",
            {"type": "content_block_delta", "index": 0, "delta": d},
        )
        for d in [{"type": "thinking_delta", "thinking": p} for p in _pieces(rng, thinking)]
        + [{"type": "signature_delta", "signature": "c2lnbmF0dXJl"}]
    ]
    events.append(
        (
            "content_block_start",
            {"type": "content_block_start", "index": 1, "content_block": {"type": "text"}},
        )
    )
    events += [
        (
            "content_block_delta",
            {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": p}},
        )
        for p in _pieces(rng, text)
    ]
    events.append(
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn"},
                "usage": {"output_tokens": usage[1]},
            },
        )
    )
    events.append(("message_stop", {"type": "message_stop"}))
    return Sample(
        "anthropic-thinking-sse",
        "https://api.anthropic.com/v1/messages",
        _sse(events),
        "anthropic",
        model,
        "end_turn",
        text,
        usage=Usage(usage[0], usage[1], None, None, None, input_includes_cached=False),
        request={"model": model, "thinking": {"type": "enabled"}, "stream": True},
    )


def _anthropic_completion(rng: random.Random) -> Sample:
    text = _text(rng)
    body = {"type": "completion", "completion": text, "stop_reason": "stop_sequence"}
    return Sample(
        "anthropic-legacy-completion",
        "https://api.anthropic.com/v1/complete",
        json.dumps({**body, "model": "claude-2.1"}).encode(),
        "anthropic",
        "claude-2.1",
        "stop_sequence",
        text,
        request={"model": "claude-2.1", "prompt": "\n\nHuman: hi\n\nAssistant:"},
    )


def _gemini_array_with_thoughts(rng: random.Random) -> Sample:
    """streamGenerateContent without alt=sse: one JSON array, thought parts beside the answer."""
    text, model = _text(rng), "gemini-2.5-flash"
    call = (rng.choice(_WORDS), {"x": rng.randint(1, 9), "y": rng.randint(1, 9)})
    usage = (rng.randint(10, 90), rng.randint(5, 40), rng.randint(10, 300))
    meta = {
        "promptTokenCount": usage[0],
        "candidatesTokenCount": usage[1],
        "thoughtsTokenCount": usage[2],
        "totalTokenCount": sum(usage),
    }
    parts: list[list[dict[str, Any]]] = [
        [{"text": _text(rng, 6), "thought": True}],
        *[[{"text": p}] for p in _pieces(rng, text)],
        [{"functionCall": {"name": call[0], "args": call[1]}, "thoughtSignature": "RXQ="}],
    ]
    chunks = []
    for i, part in enumerate(parts):
        candidate: dict[str, Any] = {"content": {"parts": part, "role": "model"}, "index": 0}
        if i == len(parts) - 1:
            candidate["finishReason"] = "STOP"
        chunks.append({"candidates": [candidate], "usageMetadata": meta, "modelVersion": model})
    return Sample(
        "gemini-json-array-thoughts",
        f"https://generativelanguage.googleapis.com/v1beta/models/{model}:streamGenerateContent",
        json.dumps(chunks, indent=2).encode(),
        "gemini",
        model,
        "STOP",
        text,
        [call],
        Usage(usage[0], usage[1], None, usage[2], output_includes_reasoning=False),
    )


def _openai_function_call(rng: random.Random) -> Sample:
    name, args = rng.choice(_WORDS), {"city": rng.choice(_WORDS)}
    usage = {"prompt_tokens": rng.randint(10, 99), "completion_tokens": rng.randint(5, 30)}
    message = {
        "role": "assistant",
        "content": None,
        "function_call": {"name": name, "arguments": json.dumps(args)},
    }
    body = {
        "object": "chat.completion",
        "model": "gpt-4-0613",
        "choices": [{"index": 0, "message": message, "finish_reason": "function_call"}],
        "usage": usage,
    }
    return Sample(
        "openai-legacy-function-call",
        "https://api.openai.com/v1/chat/completions",
        json.dumps(body).encode(),
        "openai-chat",
        "gpt-4-0613",
        "function_call",
        "",
        [(name, args)],
        Usage(usage["prompt_tokens"], usage["completion_tokens"]),
        request={"model": "gpt-4-0613", "messages": []},
    )


def _groq_stream(rng: random.Random) -> Sample:
    """Groq streams report usage inside `x_groq` on the last chunk, not in `usage`."""
    text, model = _text(rng), "llama3-8b-8192"
    usage = {"prompt_tokens": rng.randint(10, 40), "completion_tokens": rng.randint(20, 90)}
    events: list[tuple[str | None, dict[str, Any]]] = [
        (
            None,
            {
                "object": "chat.completion.chunk",
                "model": model,
                "choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}],
            },
        )
        for p in _pieces(rng, text)
    ]
    events.append(
        (
            None,
            {
                "object": "chat.completion.chunk",
                "model": model,
                "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                "x_groq": {"id": "req_1", "usage": usage},
            },
        )
    )
    return Sample(
        "groq-sse-x-groq-usage",
        "https://api.groq.com/openai/v1/chat/completions",
        _sse(events, done=True),
        "openai-chat",
        model,
        "stop",
        text,
        usage=Usage(usage["prompt_tokens"], usage["completion_tokens"]),
        request={"model": model, "messages": [], "stream": True},
    )


def _embeddings(rng: random.Random) -> Sample:
    tokens = rng.randint(2, 40)
    body = {
        "object": "list",
        "data": [
            {"object": "embedding", "index": 0, "embedding": [rng.random() for _ in range(8)]}
        ],
        "model": "text-embedding-3-small",
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
    return Sample(
        "openai-embeddings",
        "https://api.openai.com/v1/embeddings",
        json.dumps(body).encode(),
        "openai-embeddings",
        "text-embedding-3-small",
        None,
        "",
        usage=Usage(tokens, None),
        request={"model": "text-embedding-3-small", "input": "hi"},
    )


def _builder_samples(rng: random.Random) -> list[Sample]:
    """The shapes builders.py writes, with generated text and calls."""
    out = []
    for stream in (False, True):
        text = _text(rng)
        call = (rng.choice(_WORDS), {"n": rng.randint(1, 99)})
        kind = "sse" if stream else "plain"
        out += [
            Sample(
                f"openai-chat-{kind}",
                "https://api.openai.com/v1/chat/completions",
                chat_body(text, [call], stream=stream, model="gpt-4o-mini-2024-07-18"),
                "openai-chat",
                "gpt-4o-mini-2024-07-18",
                "tool_calls",
                text,
                [call],
                Usage(12, 5),
                request={"model": "gpt-4o-mini", "messages": [], "stream": stream},
            ),
            Sample(
                f"anthropic-{kind}",
                "https://api.anthropic.com/v1/messages",
                anthropic_body(text, [call], stream=stream),
                "anthropic",
                "claude-3-5-sonnet-20240620",
                "tool_use",
                text,
                [call],
                Usage(20, 9, None, None, None, input_includes_cached=False),
                request={"model": "claude-3-5-sonnet-20240620", "stream": stream},
            ),
            Sample(
                f"openai-responses-{kind}",
                "https://api.openai.com/v1/responses",
                responses_body(text, stream=stream),
                "openai-responses",
                "gpt-4.1-nano",
                "completed",
                text,
                usage=Usage(11, 5, 0, 0),
                request={"model": "gpt-4.1-nano", "input": "hi", "stream": stream},
            ),
            Sample(
                f"gemini-{kind}",
                "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.0-flash:"
                + ("streamGenerateContent?alt=sse" if stream else "generateContent"),
                gemini_body(text, [call], stream=stream),
                "gemini",
                "gemini-2.0-flash",
                "STOP",
                text,
                [call],
                Usage(8, 6, output_includes_reasoning=False),
            ),
        ]
    return out


def samples(seed: int = 20261204) -> list[Sample]:
    """Every owned answer sample, generated from `seed`."""
    rng = random.Random(seed)
    return [
        *_builder_samples(rng),
        _cohere_v1_stream(rng),
        _cohere_v2(rng, stream=True),
        _cohere_v2(rng, stream=False),
        _ollama(rng, stream=True),
        _ollama(rng, stream=False),
        _anthropic_thinking(rng),
        _anthropic_completion(rng),
        _gemini_array_with_thoughts(rng),
        _openai_function_call(rng),
        _groq_stream(rng),
        _embeddings(rng),
    ]


def error_samples() -> list[ErrorSample]:
    """One error body per provider shape: the type field, Gemini's status, a bare code."""
    return [
        ErrorSample(
            "anthropic",
            "https://api.anthropic.com/v1/messages",
            401,
            json.dumps(
                {"type": "error", "error": {"type": "authentication_error", "message": "bad"}}
            ).encode(),
            "authentication_error",
        ),
        ErrorSample(
            "openai",
            "https://api.openai.com/v1/chat/completions",
            429,
            json.dumps(
                {"error": {"message": "slow down", "type": "rate_limit_exceeded", "code": None}}
            ).encode(),
            "rate_limit_exceeded",
        ),
        ErrorSample(
            "gemini",
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.0-flash:generateContent",
            400,
            json.dumps(
                {"error": {"code": 400, "message": "bad role", "status": "INVALID_ARGUMENT"}},
                indent=2,
            ).encode(),
            "INVALID_ARGUMENT",
        ),
        ErrorSample(
            "openrouter",
            "https://openrouter.ai/api/v1/chat/completions",
            429,
            json.dumps({"error": {"code": 429, "message": "rate-limited upstream"}}).encode(),
            "429",
        ),
    ]
