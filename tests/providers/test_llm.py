"""The extractor against owned samples of every wire shape it reads (wire_samples.py) and,
where the project's machines have it, real recordings of the shared corpus (read with PyYAML)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tapeproxy.providers.llm import Usage, last_usage, parse_arguments
from tapeproxy.providers.read import error_type, extract
from tests.review.corpus import corpus_files, needs_corpus, read_vcr
from tests.review.wire_samples import ErrorSample, Sample, error_samples, samples


def _path(name: str) -> Path:
    """The one corpus file called `name`."""
    [found] = [p for p in corpus_files() if p.name == name]
    return found


# (file, interaction index, api, model, stop reason, text prefix, tool calls, usage)
CASES: list[tuple[str, int, str, str | None, str | None, str, list[Any], Usage]] = [
    (
        "test_chat_completion_streaming.yaml",
        0,
        "openai-chat",
        "gpt-4-0613",
        "stop",
        '"This is a test."',
        [],
        Usage(12, 5, 0, 0),
    ),
    (
        "test_chat_completion_multiple_tools_streaming_with_content.yaml",
        0,
        "openai-chat",
        "gpt-4o-mini-2024-07-18",
        "tool_calls",
        "",
        [
            ("get_current_weather", {"location": "Seattle, WA"}),
            ("get_current_weather", {"location": "San Francisco, CA"}),
        ],
        Usage(75, 51, 0, 0),
    ),
    (
        "test_responses_tool_use_streaming.yaml",
        0,
        "openai-responses",
        "gpt-5.5-2026-04-23",
        "completed",
        "",
        [("multiply", {"a": 1231, "b": 2331})],
        Usage(58, 23, 0, 0),
    ),
    (
        "test_responses_basic_non_streaming.yaml",
        0,
        "openai-responses",
        "gpt-5.5-2026-04-23",
        "completed",
        "pong",
        [],
        Usage(11, 5, 0, 0),
    ),
    (
        "test_anthropic_tools_streaming_legacy.yaml",
        0,
        "anthropic",
        "claude-3-5-sonnet-20240620",
        "tool_use",
        "Certainly! I can help",
        [
            ("get_weather", {"location": "San Francisco, CA", "unit": "celsius"}),
            ("get_time", {"timezone": "America/Los_Angeles"}),
        ],
        Usage(506, 153, 0, None, 0, input_includes_cached=False),
    ),
    (
        "test_anthropic_prompt_caching_stream_legacy.yaml",
        1,
        "anthropic",
        "claude-3-5-sonnet-20240620",
        "end_turn",
        "Here are concise summaries",
        [],
        Usage(4, 221, 1165, None, 0, input_includes_cached=False),
    ),
    (
        "test_google_model_stream.yaml",
        0,
        "gemini",
        "gemini-2.0-flash-exp",
        "STOP",
        "The capital of France is Paris.\n",
        [],
        Usage(13, 8, output_includes_reasoning=False),
    ),
    (
        "test_tools_with_gemini_3_thought_signatures.yaml",
        0,
        "gemini",
        "gemini-3-flash-preview",
        "STOP",
        "",
        [("multiply", {"x": 5, "y": 3})],
        Usage(60, 16, None, 32, output_includes_reasoning=False),
    ),
    (
        "test_prompt.yaml",
        0,
        "gemini",
        "gemini-3.6-flash",
        "STOP",
        "Scoop",
        [],
        Usage(11, 2, None, 291, output_includes_reasoning=False),
    ),
    (
        "test_chat_streaming_legacy.yaml",
        0,
        "openai-chat",
        "llama3-8b-8192",
        "stop",
        "A joke about OpenTelemetry!",
        [],
        Usage(18, 73),
    ),
    (
        "test_mistralai_streaming_chat_legacy.yaml",
        0,
        "openai-chat",
        "mistral-tiny",
        "stop",
        "Here's a light-hearted joke",
        [],
        Usage(11, 80),
    ),
    (
        "test_cohere_v2_chat_legacy_with_tool_calls_and_streaming.yaml",
        0,
        "cohere",
        None,
        "TOOL_CALL",
        "",
        [("get_time", {"location": "Tokyo"}), ("get_weather", {"location": "Tokyo"})],
        Usage(968, 83),
    ),
    (
        "test_cohere_chat_legacy_with_streaming.yaml",
        0,
        "cohere",
        None,
        "COMPLETE",
        "Arrrr, matey!",
        [],
        Usage(69, 116),
    ),
    (
        "test_ollama_streaming_chat_legacy.yaml",
        0,
        "ollama",
        "llama3",
        "stop",
        "Why did the OpenTelemetry agent",
        [],
        Usage(17, 50),
    ),
    (
        "test_anthropic_tool_output.yaml",
        1,
        "anthropic",
        "claude-sonnet-4-5-20250929",
        "tool_use",
        "",
        [("final_result", {"city": "Mexico City", "country": "Mexico"})],
        Usage(497, 56, 0, None, 0, input_includes_cached=False),
    ),
]


@needs_corpus
@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}#{c[1]}" for c in CASES])
def test_real_recordings(case: tuple[Any, ...]) -> None:
    path, index, api, model, stop, text, calls, usage = case
    response = read_vcr(_path(path))[index]
    got = extract(response.body)
    assert got is not None
    assert (got.api, got.model, got.stop_reason) == (api, model, stop)
    assert got.text.startswith(text) and (text or not got.text)
    assert [(c.name, c.arguments) for c in got.tool_calls] == calls
    assert got.usage == usage


@needs_corpus
def test_anthropic_thinking_is_not_text() -> None:
    path = "test_anthropic_thinking_streaming_legacy.yaml"
    got = extract(read_vcr(_path(path))[0].body)
    assert got is not None
    assert got.text == "The letter 'r' appears 3 times in the word \"strawberry\"."


@needs_corpus
def test_error_bodies_are_not_answers_but_have_types() -> None:
    cases = {
        "anthropic_completion_invalid_api_key.yaml": "authentication_error",
        "test_generate_content_invalid_role.yaml": "INVALID_ARGUMENT",
        "test_openrouter_errors_raised.yaml": "429",
    }
    for path, kind in cases.items():
        body = read_vcr(_path(path))[0].body
        assert extract(body) is None
        assert error_type(body) == kind
    assert error_type(b'{"choices": []}') is None


SAMPLES = samples()


@pytest.mark.parametrize("sample", SAMPLES, ids=[s.name for s in SAMPLES])
def test_owned_samples(sample: Sample) -> None:
    got = extract(sample.body)
    assert got is not None
    assert (got.api, got.model, got.stop_reason) == (sample.api, sample.model, sample.stop)
    assert got.text == sample.text
    assert [(c.name, c.arguments) for c in got.tool_calls] == [tuple(c) for c in sample.calls]
    assert got.usage == sample.usage


def test_owned_samples_cover_every_reader() -> None:
    assert {s.api for s in SAMPLES} == {
        "openai-chat",
        "openai-responses",
        "openai-embeddings",
        "anthropic",
        "gemini",
        "cohere",
        "ollama",
    }


ERRORS = error_samples()


@pytest.mark.parametrize("sample", ERRORS, ids=[e.name for e in ERRORS])
def test_owned_error_bodies_are_not_answers_but_have_types(sample: ErrorSample) -> None:
    assert extract(sample.body) is None
    assert error_type(sample.body) == sample.kind


def test_unknown_and_binary_bodies_give_none() -> None:
    assert extract(b"") is None
    assert extract(b"\x00\x00\x00\x90binary") is None
    assert extract(b'{"hello": "world"}') is None
    assert extract(b"<html>hi</html>") is None


def test_last_usage_takes_the_last_value_of_each_field() -> None:
    merged = last_usage([Usage(15, None), None, Usage(13, 8), Usage(None, 9, 2)])
    assert merged == Usage(13, 9, 2)
    assert last_usage([None]) is None


def test_parse_arguments() -> None:
    assert parse_arguments('{"a": 1}') == {"a": 1}
    assert parse_arguments("") == {}
    assert parse_arguments(None) == {}
    assert parse_arguments("{not json") == "{not json"
    assert parse_arguments({"b": 2}) == {"b": 2}
