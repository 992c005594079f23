"""Prices come from the data bundled in genai-prices, with no network access."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from tapeproxy.providers.llm import Usage
from tapeproxy.providers.pricing import billed_usage, price


def test_prices_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("pricing tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    cost = price(Usage(1000, 500), "gpt-4o-mini-2024-07-18", "https://api.openai.com/v1/x")
    assert cost is not None and cost > 0
    gateway = price(Usage(1000, 500), "moonshotai/kimi-k2", "https://api.openai.com/v1/x")
    assert gateway is not None and gateway > 0
    assert price(Usage(1000, 500), "no-such-model-xyz", "http://127.0.0.1:11434/api/chat") is None


def test_billed_usage_adds_what_providers_report_apart() -> None:
    anthropic = Usage(4, 221, 1165, None, 10, input_includes_cached=False)
    assert billed_usage(anthropic) == {
        "input_tokens": 1179,
        "output_tokens": 221,
        "cache_read_tokens": 1165,
        "cache_write_tokens": 10,
    }
    gemini = Usage(11, 2, None, 291, output_includes_reasoning=False)
    assert billed_usage(gemini) == {"input_tokens": 11, "output_tokens": 293}
    openai = Usage(100, 50, 40, 20)
    assert billed_usage(openai) == {
        "input_tokens": 100,
        "output_tokens": 50,
        "cache_read_tokens": 40,
    }
