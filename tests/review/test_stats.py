"""Acceptance 4: stats gives the token totals the recordings report (summed here independently
of the extractor) and prices every model genai-prices knows; over owned samples of every wire
shape and, where the project's machines have it, over the shared corpus."""

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
from tests.review.corpus import corpus_files, needs_corpus
from tests.review.wire_samples import error_samples, samples

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


def _owned(out: Path) -> tuple[list[str], dict[str, dict[str, int]]]:
    """One cassette per owned sample (answers and errors), totals read independently."""
    paths, expected = [], {}
    for i, sample in enumerate(samples()):
        item = interaction(sample.url, sample.body, request=sample.request or {"n": i})
        path = cassette(out / f"{i:03d}-{sample.name}.json.zst", [item])
        paths.append(str(path))
        expected[str(path)] = _expected_totals([sample.body])
    for i, error in enumerate(error_samples()):
        item = interaction(error.url, error.body, request={"e": i}, status=error.status)
        paths.append(str(cassette(out / f"error-{error.name}.json.zst", [item])))
        expected[paths[-1]] = dict.fromkeys(FIELDS, 0)
    return paths, expected


def _corpus(out: Path) -> tuple[list[str], dict[str, dict[str, int]]]:
    paths, expected = [], {}
    for i, source in enumerate(corpus_files()):
        path, responses = corpus_cassette(source, out / f"{i:03d}.json.zst")
        paths.append(str(path))
        expected[str(path)] = _expected_totals([r.body for r in responses if r.status < 400])
    return paths, expected


# (source, models genai-prices must know at least, a model whose cost is checked exactly)
SOURCES = [
    pytest.param(("owned", 4, "gpt-4o-mini-2024-07-18"), id="owned"),
    pytest.param(("corpus", 20, "gpt-4o-mini-2024-07-18"), id="corpus", marks=needs_corpus),
]


@pytest.fixture(scope="module", params=SOURCES)
def corpus_stats(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, Any], dict[str, dict[str, int]], int, str]:
    source, known_at_least, priced_model = request.param
    out = tmp_path_factory.mktemp(source)
    paths, expected = (_owned if source == "owned" else _corpus)(out)
    result = CliRunner().invoke(cli, ["stats", "--format", "json", *paths])
    assert result.exit_code == 0, result.output
    return json.loads(result.output), expected, known_at_least, priced_model


def test_token_totals_equal_the_recorded_usage_fields(
    corpus_stats: tuple[dict[str, Any], Any, int, str],
) -> None:
    stats, expected, _, _ = corpus_stats
    want = {name: sum(e[name] for e in expected.values()) for name in FIELDS}
    got = {name: stats["tokens"][name] for name in FIELDS}
    assert got == want
    assert all(want[name] > 0 for name in ("input", "output", "reasoning"))


def test_token_totals_per_cassette(
    corpus_stats: tuple[dict[str, Any], dict[str, dict[str, int]], int, str],
) -> None:
    _, expected, _, _ = corpus_stats
    assert expected
    for path, want in expected.items():
        result = CliRunner().invoke(cli, ["stats", "--format", "json", path])
        got = json.loads(result.output)["tokens"]
        assert {k: got[k] for k in FIELDS} == want, path


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
    corpus_stats: tuple[dict[str, Any], Any, int, str],
) -> None:
    stats, _, known_at_least, _ = corpus_stats
    cost = stats["cost"]
    models = set(stats["tokens_by_model"])
    known = {m for m in models if _known(m)}
    assert len(known) >= known_at_least
    assert known <= set(cost["by_model"])
    assert all(cost["by_model"][m] > 0 for m in known if sum(stats["tokens_by_model"][m].values()))
    assert set(cost["unpriced_models"]) <= models - known
    assert cost["label"] == "cost a live run would have had"
    assert cost["total"] == pytest.approx(sum(cost["by_model"].values()))


def test_cost_matches_genai_prices_for_summed_usage(
    corpus_stats: tuple[dict[str, Any], Any, int, str],
) -> None:
    stats, _, _, model = corpus_stats
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


def test_a_stream_cut_short_is_a_transport_error_not_a_success(tmp_path: Path) -> None:
    from tapeproxy.cassettes.model import RecordedError

    url = "https://api.openai.com/v1/chat/completions"
    whole = interaction(url, chat_body("complete", stream=True), stream=True)
    cut = interaction(url, chat_body("cut", stream=True)[:40], request={"x": 1}, stream=True)
    cut = cut.model_copy(update={"error": RecordedError(message="ReadError", after_ms=5.0)})
    path = cassette(tmp_path / "c.json.zst", [whole, cut])
    stats = json.loads(CliRunner().invoke(cli, ["stats", "--format", "json", str(path)]).output)
    assert stats["by_status"] == {"200": 2}
    assert stats["errors"]["count"] == 1
    assert stats["errors"]["by_type"] == {"transport": 1}
