"""Sample cassettes for the tests (built in code; no real traffic, no real secrets)."""

from __future__ import annotations

from tapeproxy.cassettes.key import request_key
from tapeproxy.cassettes.model import (
    Body,
    Cassette,
    Interaction,
    MatchRules,
    RecordedError,
    Request,
    Response,
    Timing,
    body_bytes,
    new_cassette,
)

SSE = (
    b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1"}}   \n\n'
    b'event: ping\ndata: {"type": "ping"}\n\n'
    b"event: content_block_delta\n"
    b'data: {"type":"content_block_delta","delta":{"text":"h\xc3\xa9"}}\n\n'
    b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
)


def keyed(request: Request, rules: MatchRules | None = None) -> str:
    """The key of a request under the given (default) rules."""
    return request_key(
        request.method,
        request.url,
        request.headers,
        body_bytes(request.body),
        rules or MatchRules(),
    )


def chat_request(content: str = "Hello") -> Request:
    """An OpenAI-style chat request with a JSON body."""
    body = f'{{"model":"gpt-4o","messages":[{{"role":"user","content":"{content}"}}]}}'
    return Request(
        method="POST",
        url="https://api.openai.com/v1/chat/completions",
        headers=(
            ("content-type", "application/json"),
            ("authorization", "<redacted:credential-header>"),
            ("openai-beta", "assistants=v2"),
            ("x-odd", "caf\udcc3"),  # an undecodable byte, as mitmproxy hands it over
        ),
        body=Body.from_bytes(body.encode()),
    )


def sample_cassette(created: str = "2025-01-02T03:04:05Z") -> Cassette:
    """A cassette with JSON, SSE, binary and error interactions and a repeated request."""
    chat = chat_request()
    stream = Request(
        method="POST",
        url="https://api.anthropic.com/v1/messages",
        headers=(("content-type", "application/json"), ("anthropic-version", "2023-06-01")),
        body=Body.from_bytes(b'{"model":"claude","stream":true,"max_tokens":5}'),
    )
    binary = Request(method="GET", url="https://files.example.com/blob?b=2&a=1")
    pieces = [len(p) + 2 for p in SSE.split(b"\n\n")[:-1]]
    interactions = (
        Interaction(
            key=keyed(chat),
            request=chat,
            response=Response(
                status=200,
                reason="OK",
                headers=(("Content-Type", "application/json"), ("x-request-id", "req_1")),
                body=Body.from_bytes(
                    b'{\n  "id": "chatcmpl-1",\n  "embedding": [0.5, -1, 2e-05]\n}\n'
                ),
            ),
            timing=Timing(ttfb_ms=412.4567, total_ms=430.0),
        ),
        Interaction(
            key=keyed(chat),
            request=chat,
            response=Response(status=429, reason="Too Many Requests", body=Body.from_bytes(b"{}")),
        ),
        Interaction(
            key=keyed(stream),
            request=stream,
            response=Response(
                status=200,
                headers=(("content-type", "text/event-stream; charset=utf-8"),),
                body=Body.from_bytes(SSE),
                chunks=tuple((10.0 * i, n) for i, n in enumerate(pieces)),
            ),
            timing=Timing(ttfb_ms=99.5, total_ms=1830.25),
        ),
        Interaction(
            key=keyed(binary),
            request=binary,
            response=Response(
                status=200,
                headers=(("content-type", "application/octet-stream"),),
                body=Body.from_bytes(bytes(range(256))),
            ),
        ),
        Interaction(
            key=keyed(binary),
            request=binary,
            error=RecordedError(message="connection reset by peer", after_ms=12.0),
        ),
    )
    return new_cassette("0.1.0", created).model_copy(update={"interactions": interactions})
