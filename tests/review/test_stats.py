"""Acceptance 4: stats over the corpus gives the token totals the recordings report (summed
here independently of the extractor) and prices every model genai-prices knows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import genai_prices
import pytest
from click.testing import CliRunner

from tapeproxy.cli import cli
from tapeproxy.review.stats import latency_summary
from tests.review.builders import cassette, chat_body, corpus_cassette, interaction
from tests.review.corpus import corpus_files

# Usage key names per reported field, across OpenAI, Responses, Anthropic, Gemini, Cohere, Ollama.
FIELDS = {
    "input": ("prompt_tokens", "input_tokens", "promptTokenCount", "prompt_eval_count"),
    "output": ("completion_tokens", "output_tokens", "candidatesTokenCount", "eval_count"),
    "cached_input": ("cached_tokens", "cache_read_input_tokens", "cachedContentTokenCount"),
    "reasoning": ("reasoning_tokens", "thoughtsTokenCount"),
}


def _json_objects(body: bytes) -> list[Any]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return []
    try:
        return [json.loads(text)]
    except ValueError:
        pass
    found = []
    for line in text.splitlines():
        line = line.strip().removeprefix("data:").strip()
        try:
            found.append(json.loads(line))
        except ValueError:
            continue
    return found


def _last_values(value: Any, into: dict[str, int]) -> None:
    """Every int under a usage-like key, walking in document order: later ones win."""
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, int) and not isinstance(item, bool):
                into[key] = item
            else:
                _last_values(item, into)
    elif isinstance(value, list):
        for item in value:
            _last_values(item, into)


def _expected_totals(bodies: list[bytes]) -> dict[str, int]:
    totals = dict.fromkeys(FIELDS, 0)
    for body in bodies:
        last: dict[str, int] = {}
        for obj in _json_objects(body):
            _last_values(obj, last)
        for name, keys in FIELDS.items():
            totals[name] += sum(last.get(k, 0) for k in keys)
    return totals


@pytest.fixture(scope="module")
def corpus_stats(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[dict[str, Any], dict[str, dict[str, int]]]:
    out = tmp_path_factory.mktemp("corpus")
    paths, expected = [], {}
    for i, source in enumerate(corpus_files()):
        path, responses = corpus_cassette(source, out / f"{i:03d}.json.zst")
        paths.append(str(path))
        expected[str(path)] = _expected_totals([r.body for r in responses if r.status < 400])
    result = CliRunner().invoke(cli, ["stats", "--format", "json", *paths])
    assert result.exit_code == 0, result.output
    return json.loads(result.output), expected


def test_token_totals_equal_the_recorded_usage_fields(
    corpus_stats: tuple[dict[str, Any], Any],
) -> None:
    stats, expected = corpus_stats
    want = {name: sum(e[name] for e in expected.values()) for name in FIELDS}
    got = {name: stats["tokens"][name] for name in FIELDS}
    assert got == want
    assert want["input"] > 10_000 and want["output"] > 3_000 and want["reasoning"] > 4_000


def test_token_totals_per_cassette(tmp_path: Path) -> None:
    for i, source in enumerate(corpus_files()):
        path, responses = corpus_cassette(source, tmp_path / f"{i}.json.zst")
        result = CliRunner().invoke(cli, ["stats", "--format", "json", str(path)])
        got = json.loads(result.output)["tokens"]
        want = _expected_totals([r.body for r in responses if r.status < 400])
        assert {k: got[k] for k in FIELDS} == want, source


def _known(model: str) -> bool:
    usage = genai_prices.Usage(input_tokens=1000, output_tokens=1000)
    for ref in {model, model.split("/", 1)[-1]}:
        try:
            genai_prices.calc_price(usage, ref)
        except LookupError:
            continue
        return True
    return False


def test_every_model_genai_prices_knows_has_a_cost(
    corpus_stats: tuple[dict[str, Any], Any],
) -> None:
    stats, _ = corpus_stats
    cost = stats["cost"]
    models = set(stats["tokens_by_model"])
    known = {m for m in models if _known(m)}
    assert len(known) >= 20
    assert known <= set(cost["by_model"])
    assert all(cost["by_model"][m] > 0 for m in known if sum(stats["tokens_by_model"][m].values()))
    assert set(cost["unpriced_models"]) <= models - known
    assert cost["label"] == "cost a live run would have had"
    assert cost["total"] == pytest.approx(sum(cost["by_model"].values()))


def test_cost_matches_genai_prices_for_summed_usage(
    corpus_stats: tuple[dict[str, Any], Any],
) -> None:
    stats, _ = corpus_stats
    model = "gpt-4o-mini-2024-07-18"
    tokens = stats["tokens_by_model"][model]
    usage = genai_prices.Usage(input_tokens=tokens["input"], output_tokens=tokens["output"])
    want = genai_prices.calc_price(usage, model, provider_id="openai").total_price
    assert stats["cost"]["by_model"][model] == pytest.approx(float(want))


def test_counts_errors_and_latency(tmp_path: Path) -> None:
    url = "https://api.openai.com/v1/chat/completions"
    error = b'{"error": {"message": "no", "type": "invalid_request_error", "code": null}}'
    items = [
        interaction(url, chat_body("hi"), ttfb=100, total=200),
        interaction(url, chat_body("ho"), request={"x": 1}, ttfb=300, total=600),
        interaction(url, error, request={"x": 2}, status=400, ttfb=50, total=60),
    ]
    path = cassette(tmp_path / "c.json.zst", items)
    result = CliRunner().invoke(cli, ["stats", "--format", "json", str(path)])
    stats = json.loads(result.output)
    assert stats["interactions"] == 3
    assert stats["by_host"] == {"api.openai.com": 3}
    assert stats["by_endpoint"] == {"POST api.openai.com/v1/chat/completions": 3}
    assert stats["by_status"] == {"200": 2, "400": 1}
    assert stats["errors"] == {
        "count": 1,
        "rate": 0.3333,
        "by_status": {"400": 1},
        "by_type": {"invalid_request_error": 1},
    }
    assert stats["latency_ms"]["ttfb"] == {
        "count": 3,
        "min": 50.0,
        "mean": 150.0,
        "p50": 100.0,
        "p95": 280.0,
        "max": 300.0,
    }
    text = CliRunner().invoke(cli, ["stats", str(path)]).output
    assert "errors: 1 (33.3%)" in text and "cost a live run would have had" in text


def test_latency_summary_of_nothing() -> None:
    assert latency_summary([])["count"] == 0
