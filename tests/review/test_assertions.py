"""The drift assertion helper: text by similarity ratio against its threshold, tool calls
exactly whatever their shape."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tapeproxy.review.assertions import DriftCheck

OLD = "The capital of Norway is Oslo."
REWORDED = "The capital of Norway is Oslo, of course."  # ratio 0.845
DIFFERENT = "I cannot help with that request."


def test_text_within_the_threshold_passes_and_returns_the_ratio() -> None:
    assert DriftCheck().assert_similar(OLD, OLD) == 1.0
    assert DriftCheck(0.8).assert_similar(OLD, REWORDED) == pytest.approx(0.8451, abs=1e-4)


def test_text_below_the_threshold_fails_naming_ratio_and_threshold() -> None:
    with pytest.raises(AssertionError, match=r"similarity 0\.845 is below the threshold 0\.900"):
        DriftCheck(0.9).assert_similar(OLD, REWORDED)
    with pytest.raises(AssertionError, match=r"threshold 0\.850"):
        DriftCheck().assert_similar(OLD, DIFFERENT)


@dataclass
class _Function:
    name: str
    arguments: str


@dataclass
class _SdkCall:
    function: _Function


def test_tool_calls_compare_name_and_parsed_arguments_exactly() -> None:
    check = DriftCheck()
    plain = [{"name": "weather", "arguments": {"city": "Oslo", "days": 2}}]
    check.assert_tool_calls(plain, [_SdkCall(_Function("weather", '{"days":2, "city":"Oslo"}'))])
    with pytest.raises(AssertionError, match="tool calls differ"):
        check.assert_tool_calls(plain, [{"name": "weather", "arguments": {"city": "Oslo"}}])
    with pytest.raises(AssertionError, match="tool calls differ"):
        check.assert_tool_calls(plain, [*plain, *plain])
