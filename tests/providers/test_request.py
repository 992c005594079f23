"""`read_request`: what the URL says (provider, API, Gemini's model and `alt=sse`, an Azure
deployment) and what the body says, for each wire format; a body already parsed by the
caller gives the same facts as the bytes."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tapeproxy.providers.request import read_request

_GEMINI = "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash"
_AZURE = "https://res.openai.azure.com/openai/deployments/dep-1/chat/completions?api-version=1"
_CHAT = {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "hi"}]}

CASES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    (
        "https://api.openai.com/v1/chat/completions",
        {"model": "gpt-4o", "stream": True, "stream_options": {"include_usage": True}, **_CHAT},
        {
            "provider": "openai",
            "endpoint": "chat",
            "model": "gpt-4o",
            "stream": True,
            "include_usage": True,
            "last_user": "hi",
        },
    ),
    (
        _AZURE,
        _CHAT,
        {"provider": "azure", "endpoint": "chat", "model": "dep-1", "stream": False},
    ),
    (_AZURE, {"model": "named", **_CHAT}, {"provider": "azure", "model": "named"}),
    (
        f"{_GEMINI}:streamGenerateContent?alt=sse",
        {"model": "ignored", "contents": [{"role": "user", "parts": [{"text": "q"}]}]},
        {
            "provider": "gemini",
            "endpoint": "generate",
            "model": "gemini-2.5-flash",
            "stream": True,
            "sse": True,
            "last_user": "q",
        },
    ),
    (
        f"{_GEMINI}:generateContent",
        {"stream": True, "contents": {"parts": [{"text": "one"}, {"text": "two"}]}},
        {"endpoint": "generate", "stream": False, "sse": False, "last_user": "onetwo"},
    ),
    (
        "https://api.anthropic.com/v1/messages",
        {"model": "claude-x", "messages": [{"role": "user", "content": [{"text": "a"}]}]},
        {"provider": "anthropic", "endpoint": "messages", "model": "claude-x", "last_user": "a"},
    ),
    (
        "http://127.0.0.1:8000/v1/embeddings",
        {"model": "e", "input": "words"},
        {
            "provider": "127.0.0.1",
            "endpoint": "embeddings",
            "host": "127.0.0.1",
            "last_user": "words",
        },
    ),
    (
        "https://OpenRouter.AI/api/v1/responses",
        {"model": "r", "input": "plain"},
        {
            "provider": "openrouter.ai",
            "endpoint": "responses",
            "host": "openrouter.ai",
            "last_user": "plain",
        },
    ),
]


@pytest.mark.parametrize(("url", "doc", "expected"), CASES)
def test_facts_from_url_and_body(url: str, doc: dict[str, Any], expected: dict[str, Any]) -> None:
    body = json.dumps(doc).encode()
    for facts in (read_request("POST", url, body), read_request("post", url, b"", doc)):
        assert facts is not None
        assert {k: getattr(facts, k) for k in expected} == expected
        assert facts.body == doc


def test_one_url_with_other_bodies_gives_each_body_its_facts() -> None:
    url = "https://api.openai.com/v1/chat/completions"
    for model in ("a", "b", "a"):
        facts = read_request("POST", url, json.dumps({"model": model, **_CHAT}).encode())
        assert facts is not None and facts.model == model
    assert read_request("POST", url, b"not json") is not None
    assert read_request("POST", url, b"[1, 2]").body == {}  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("GET", "https://api.openai.com/v1/chat/completions"),
        ("POST", "https://api.openai.com/v1/models"),
        ("POST", f"{_GEMINI}:countTokens"),
    ],
)
def test_no_known_api_is_none(method: str, url: str) -> None:
    assert read_request(method, url, b"{}") is None
