"""Shape parity: for each API and mode, a synthesised answer has the JSON paths and types of a
real recorded one (the shared corpus of real provider traffic), given the same request and the
same text and tool calls.

Allowed differences are only the fields real recordings of different dates disagree on
(`DATED`), and the random padding tapeproxy leaves out (`obfuscation`); README lists them.
"""

from __future__ import annotations

from typing import Any

import pytest

from tapeproxy.cassettes.model import body_bytes
from tapeproxy.cassettes.vcr import read_vcr
from tapeproxy.providers.answer import Answer, Ids
from tapeproxy.providers.messages import messages
from tapeproxy.providers.read import extract
from tapeproxy.providers.request import read_request
from tapeproxy.providers.write import write
from tapeproxy.redaction import Redactor
from tests.review.corpus import CORPUS, needs_corpus

_OTEL = "opentelemetry-python-contrib/instrumentation-genai/opentelemetry-instrumentation-openai-v2"
_OLLM = "openllmetry/packages/opentelemetry-instrumentation-openai/tests/traces/cassettes"
_PAI = "pydantic-ai/tests/models/cassettes"

REFERENCES = {
    "chat, plain": f"{_PAI}/test_openai/test_openai_tool_output.yaml",
    "chat, plain, tool calls": (
        f"{_OTEL}/tests/cassettes/test_chat_completion_tool_calls_with_content.yaml"
    ),
    "chat, streamed with include_usage": "llm/tests/cassettes/test_tools/test_tool_use_basic.yaml",
    "chat, streamed": f"{_OLLM}/test_chat/test_chat_streaming_with_events_with_content.yaml",
    "chat, streamed tool calls": f"{_OLLM}/test_chat/test_chat_tools_streaming.yaml",
    "responses, plain": f"{_OTEL}/tests/cassettes/test_responses_create_basic[content_mode0].yaml",
    "responses, plain, tool calls": (
        f"{_OTEL}/tests/cassettes/test_responses_create_captures_tool_call_content[content_mode0].yaml"
    ),
    "responses, streamed": (
        f"{_OTEL}/tests/cassettes/test_responses_create_streaming[content_mode0].yaml"
    ),
    "responses, streamed tool calls": (
        "llm/tests/cassettes/test_openai_responses/test_responses_tool_use_streaming.yaml"
    ),
    "messages, plain": f"{_PAI}/test_anthropic/test_anthropic_tool_output.yaml",
    "messages, streamed": f"{_PAI}/test_anthropic/test_anthropic_model_thinking_part_stream.yaml",
    "messages, streamed tool use": (
        "openllmetry/packages/opentelemetry-instrumentation-anthropic/tests/cassettes/"
        "test_messages/test_anthropic_tools_streaming_legacy.yaml"
    ),
    "generate, plain": f"{_PAI}/test_google/test_google_tool_output.yaml",
    "generate, streamed SSE": f"{_PAI}/test_google/test_google_model_stream.yaml",
    "generate, streamed JSON array": "llm-gemini/tests/cassettes/test_gemini/test_tools.yaml",
    "embeddings": f"{_OTEL}/tests/cassettes/test_embeddings_with_content.yaml",
    "embeddings, Azure": f"{_OLLM}/test_embeddings/test_azure_openai_embeddings.yaml",
}

OMITTED = frozenset({"obfuscation"})
"""Random padding OpenAI adds to streamed events; a stub sends none."""

DATED = frozenset(
    {
        # Responses API fields that come and go between API versions
        "billing", "payer", "moderation", "phase", "prompt_cache_retention", "completed_at",
        "frequency_penalty", "presence_penalty", "generate_summary",
        # chat completion fields added in 2025 (older recordings lack them)
        "service_tier", "annotations", "refusal",
        # Anthropic usage fields added in 2025; 2024 streams lack the cache counts
        "inference_geo", "cache_creation", "ephemeral_5m_input_tokens",
        "ephemeral_1h_input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens",
        "input_tokens",
        # Gemini fields that depend on the model version
        "avgLogprobs", "finishMessage", "index", "serviceTier", "thoughtSignature",
        "thoughtsTokenCount",
    }
)  # fmt: skip


def shape(body: bytes) -> dict[str, set[str]]:
    """JSON path -> the types seen there, over every message of a body (streamed events are
    told apart by their event name or type)."""
    found, streamed = messages(body)
    out: dict[str, set[str]] = {}

    def walk(value: Any, path: str) -> None:
        out.setdefault(path, set()).add("null" if value is None else type(value).__name__)
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, f"{path}.{k}")
        elif isinstance(value, list):
            for v in value:
                walk(v, f"{path}[]")

    for m in found:
        walk(m.data, m.event or str(m.data.get("type") or ("chunk" if streamed else "doc")))
    return out


def _allowed(path: str) -> bool:
    last = path.rsplit(".", 1)[-1].removesuffix("[]")
    return last in OMITTED or last in DATED


@needs_corpus
@pytest.mark.parametrize("case", sorted(REFERENCES))
def test_synthesised_answers_have_the_shape_of_real_ones(case: str) -> None:
    compared = 0
    for it in read_vcr(CORPUS / REFERENCES[case], redactor=Redactor()):
        req, resp = it.request, it.response
        facts = read_request(req.method, req.url, body_bytes(req.body))
        if facts is None or resp is None or resp.status != 200:
            continue
        real = body_bytes(resp.body)
        meaning = extract(real)
        assert meaning is not None, case
        theirs = shape(real)
        # A model that reasoned: the stub reasons too (Anthropic thinking, Gemini thoughts).
        reasoned = any(p.endswith((".thinking", ".thought")) for p in theirs)
        answer = Answer(
            text=meaning.text or None,
            tool_calls=meaning.tool_calls,
            reasoning="Thinking it over." if reasoned else None,
        )
        ours = shape(write(facts, answer, Ids(case.encode())).body)
        missing = sorted(p for p in set(theirs) - set(ours) if not _allowed(p))
        extra = sorted(p for p in set(ours) - set(theirs) if not _allowed(p))
        types = sorted(
            p
            for p in set(theirs) & set(ours)
            if (theirs[p] - {"null"})
            and (ours[p] - {"null"})
            and theirs[p] - {"null"} != ours[p] - {"null"}
        )
        assert (missing, extra, types) == ([], [], []), f"{case}: {REFERENCES[case]}"
        compared += 1
    assert compared, f"{case}: no comparable answer in {REFERENCES[case]}"


def test_the_references_cover_every_api_and_mode() -> None:
    apis = {case.split(",")[0] for case in REFERENCES}
    assert apis == {"chat", "responses", "messages", "generate", "embeddings"}
