"""Acceptance 2 and the diff pairing rules, through the real CLI (click's CliRunner)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tapeproxy.cassettes.model import Interaction
from tapeproxy.cli import cli
from tapeproxy.errors import ConfigError
from tapeproxy.review.compare import similarity
from tapeproxy.review.diff import Thresholds
from tests.review.builders import (
    anthropic_body,
    cassette,
    chat_body,
    gemini_body,
    interaction,
    responses_body,
)

OPENAI = "https://api.openai.com/v1/chat/completions"
ANTHROPIC = "https://api.anthropic.com/v1/messages"
RESPONSES = "https://api.openai.com/v1/responses"
GEMINI = "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.0-flash:generateContent"

TEXT_A_OLD = "The capital of France is Paris. It is known for the Eiffel Tower and fine food."
TEXT_A_NEW = "The capital of France is Paris. It is famous for the Eiffel Tower and fine food."
TEXT_B_OLD = "I like cats because they are independent and quiet."
TEXT_B_NEW = "Quantum chromodynamics describes the strong interaction."


def _cases() -> dict[str, tuple[list[Interaction], list[Interaction]]]:
    """Old and new interactions for each case (a)-(e) of acceptance 2."""
    call_old = [("get_weather", {"city": "Paris", "unit": "celsius"})]
    call_new = [("get_weather", {"city": "Paris", "unit": "fahrenheit"})]
    gem = gemini_body("Bonjour!")
    return {
        "a": (
            [interaction(OPENAI, chat_body(TEXT_A_OLD))],
            [interaction(OPENAI, chat_body(TEXT_A_NEW))],
        ),
        "b": (
            [interaction(ANTHROPIC, anthropic_body(TEXT_B_OLD))],
            [interaction(ANTHROPIC, anthropic_body(TEXT_B_NEW))],
        ),
        "c": (
            [interaction(RESPONSES, responses_body("", call_old))],
            [interaction(RESPONSES, responses_body("", call_new))],
        ),
        "d": (
            [interaction(GEMINI, gem, ttfb=100, total=400)],
            [interaction(GEMINI, gem, ttfb=900, total=2500)],
        ),
        "e": (
            [interaction(OPENAI, chat_body("old only"), request={"model": "m", "n": 1})],
            [interaction(OPENAI, chat_body("new only"), request={"model": "m", "n": 2})],
        ),
    }


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["diff", *args])
    return result.exit_code, result.output


def _diff_json(
    tmp_path: Path, old: list[Interaction], new: list[Interaction]
) -> tuple[int, dict[str, Any]]:
    a = cassette(tmp_path / "old.json.zst", old)
    b = cassette(tmp_path / "new.json.zst", new)
    code, out = _run(str(a), str(b), "--format", "json")
    return code, json.loads(out)


def test_case_texts_sit_on_the_expected_sides_of_the_threshold() -> None:
    assert similarity(TEXT_A_OLD, TEXT_A_NEW) > 0.85
    assert similarity(TEXT_B_OLD, TEXT_B_NEW) < 0.85


@pytest.mark.parametrize(("case", "code"), [("a", 0), ("b", 1), ("c", 1), ("d", 0), ("e", 0)])
def test_exit_code_is_1_exactly_for_low_similarity_text_and_tool_call_change(
    tmp_path: Path, case: str, code: int
) -> None:
    old, new = _cases()[case]
    got, report = _diff_json(tmp_path, old, new)
    assert got == code
    assert report["drift"] is (code == 1)


def test_all_cases_together_are_each_reported(tmp_path: Path) -> None:
    cases = _cases()
    old = [i for c in cases.values() for i in c[0]]
    new = [i for c in cases.values() for i in c[1]]
    code, report = _diff_json(tmp_path, old, new)
    assert code == 1
    [entry] = report["cassettes"]
    assert entry["summary"] == {
        "added": 1,
        "removed": 1,
        "changed": 3,
        "drifted": 2,
        "timing_only": 1,
        "unchanged": 0,
    }
    by_url = {(i["kind"], i["url"]): i for i in entry["interactions"]}
    text_a = by_url[("changed", OPENAI)]["changes"]
    assert [(c["field"], c["drift"]) for c in text_a] == [("text", False)]
    assert text_a[0]["ratio"] > 0.85 and text_a[0]["new"] == TEXT_A_NEW
    text_b = by_url[("changed", ANTHROPIC)]["changes"]
    assert [(c["field"], c["drift"]) for c in text_b] == [("text", True)]
    assert text_b[0]["ratio"] < 0.85
    calls = by_url[("changed", RESPONSES)]["changes"]
    assert [(c["field"], c["drift"]) for c in calls] == [("tool_calls", True)]
    assert calls[0]["new"] == [
        {"name": "get_weather", "arguments": {"city": "Paris", "unit": "fahrenheit"}}
    ]
    assert "new only" in by_url[("added", OPENAI)]["summary"]
    assert "old only" in by_url[("removed", OPENAI)]["summary"]
    assert all(
        i["url"] != GEMINI for i in entry["interactions"]
    )  # timing-only: counted, not listed


def test_text_output_names_each_kind(tmp_path: Path) -> None:
    cases = _cases()
    a = cassette(tmp_path / "old.json.zst", [i for c in cases.values() for i in c[0]])
    b = cassette(tmp_path / "new.json.zst", [i for c in cases.values() for i in c[1]])
    code, out = _run(str(a), str(b))
    assert code == 1
    assert "1 timing-only" in out and "2 drifted" in out
    assert f"-{TEXT_B_OLD}" in out and f"+{TEXT_B_NEW}" in out
    assert "tool_calls DRIFT" in out


def test_repeated_requests_pair_by_occurrence(tmp_path: Path) -> None:
    first, second = interaction(OPENAI, chat_body("one")), interaction(OPENAI, chat_body("two"))
    assert first.key == second.key
    code, report = _diff_json(tmp_path, [first, second], [first, second, second])
    assert code == 0
    [entry] = report["cassettes"]
    assert [(i["kind"], i["occurrence"]) for i in entry["interactions"]] == [("added", 2)]
    assert entry["summary"]["unchanged"] == 2


def test_model_stop_reason_and_usage_changes_are_shown_without_drift(tmp_path: Path) -> None:
    old = interaction(OPENAI, chat_body("Same words.", model="gpt-4o-mini"))
    new_body = chat_body("Same words.", model="gpt-4o").replace(
        b'"prompt_tokens": 12', b'"prompt_tokens": 13'
    )
    code, report = _diff_json(tmp_path, [old], [interaction(OPENAI, new_body)])
    assert code == 0
    changes = report["cassettes"][0]["interactions"][0]["changes"]
    assert {c["field"]: (c["old"], c["new"]) for c in changes} == {
        "model": ("gpt-4o-mini", "gpt-4o"),
        "usage": (
            {"input_tokens": 12, "output_tokens": 5},
            {"input_tokens": 13, "output_tokens": 5},
        ),
    }


def test_threshold_flag_and_per_cassette_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old, new = _cases()["a"]
    a = cassette(tmp_path / "old.json.zst", old)
    b = cassette(tmp_path / "strict" / "new.json.zst", new)
    monkeypatch.chdir(tmp_path)
    assert _run(str(a), str(b), "--text-threshold", "0.99")[0] == 1
    (tmp_path / "pyproject.toml").write_text(
        '[tool.tapeproxy.diff_thresholds]\n"strict/*" = 0.999\n'
    )
    code, out = _run(str(a), "strict/new.json.zst", "--format", "json")
    assert code == 1 and json.loads(out)["cassettes"][0]["threshold"] == 0.999
    assert _run(str(a), str(b))[0] == 0  # absolute path: the glob does not match, default 0.85


def test_thresholds_reject_bad_values() -> None:
    with pytest.raises(ConfigError, match="text_threshold"):
        Thresholds.from_config({"text_threshold": 1.5})
    with pytest.raises(ConfigError, match="diff_thresholds"):
        Thresholds.from_config({"diff_thresholds": {"*": "high"}})
    assert (
        Thresholds.from_config({"diff_thresholds": {"*.json.zst": 0.5}}).for_path("a/b.json.zst")
        == 0.5
    )


def test_bad_input_exits_2_naming_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json.zst"
    bad.write_bytes(b"not zstd")
    good = cassette(tmp_path / "good.json.zst", [])
    done = subprocess.run(
        [sys.executable, "-m", "tapeproxy", "diff", str(bad), str(good)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.startswith(f"Error: {bad}: not a zstd file")
    assert "Traceback" not in done.stderr
