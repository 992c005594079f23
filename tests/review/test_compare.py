"""Acceptance 3: streamed and plain versions of the same answer compare as equal."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from tapeproxy.cli import cli
from tapeproxy.providers.read import extract
from tapeproxy.review.compare import compare, similarity
from tests.review.builders import (
    anthropic_body,
    cassette,
    chat_body,
    gemini_body,
    interaction,
    responses_body,
)

TEXT = "Paris is the capital of France.\nIt sits on the Seine, and it is lovely in spring."
CALLS = [("get_weather", {"city": "Paris", "days": [1, 2], "detail": {"wind": True}})]

BUILDERS: dict[str, Callable[..., bytes]] = {
    "openai-chat": chat_body,
    "anthropic": anthropic_body,
    "openai-responses": responses_body,
    "gemini": gemini_body,
}


@pytest.mark.parametrize("api", sorted(BUILDERS))
def test_stream_and_plain_extract_the_same_answer(api: str) -> None:
    build = BUILDERS[api]
    plain, streamed = extract(build(TEXT, CALLS)), extract(build(TEXT, CALLS, stream=True))
    assert plain is not None and streamed is not None
    assert (plain.api, plain.streamed, streamed.streamed) == (api, False, True)
    assert plain.text == streamed.text == TEXT
    assert plain.tool_calls == streamed.tool_calls
    assert [(c.name, c.arguments) for c in streamed.tool_calls] == CALLS
    assert plain.stop_reason == streamed.stop_reason and plain.model == streamed.model
    assert plain.usage == streamed.usage


@pytest.mark.parametrize("api", sorted(BUILDERS))
def test_stream_versus_plain_is_no_change(api: str, tmp_path: Path) -> None:
    build = BUILDERS[api]
    url = f"https://example.test/{api}"
    old = interaction(url, build(TEXT, CALLS))
    new = interaction(url, build(TEXT, CALLS, stream=True), stream=True)
    assert compare(old, new, 0.85) == ()
    a = cassette(tmp_path / "a.json.zst", [old])
    b = cassette(tmp_path / "b.json.zst", [new])
    result = CliRunner().invoke(cli, ["diff", str(a), str(b), "--text-threshold", "1.0"])
    assert result.exit_code == 0, result.output
    assert "1 timing-only" in result.output


def test_similarity_is_difflib_ratio() -> None:
    assert similarity("", "") == 1.0
    assert similarity("abcd", "abce") == 0.75
    assert similarity("abc", "xyz") == 0.0


def test_non_llm_bodies_compare_as_json_then_by_ratio() -> None:
    url = "https://example.test/api"
    old = interaction(url, b'{"a": 1, "b": [1, 2]}')
    same = interaction(url, b'{"b":[1,2],"a":1}')
    other = interaction(url, b'{"completely": "different thing here"}')
    assert compare(old, same, 0.85) == ()
    [change] = compare(old, other, 0.85)
    assert change.field == "body" and change.drift and change.ratio is not None


def test_status_change_is_drift() -> None:
    url = "https://example.test/api"
    [change] = compare(interaction(url, b"{}"), interaction(url, b"{}", status=500), 0.85)
    assert (change.field, change.old, change.new, change.drift) == ("status", 200, 500, True)
