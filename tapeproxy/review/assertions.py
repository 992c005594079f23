"""Assertions on LLM answers that tolerate rewording: text by similarity ratio against a
threshold, tool calls exactly (the pytest plugin's ``llm_drift`` helper)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["DEFAULT_THRESHOLD", "DriftCheck"]

DEFAULT_THRESHOLD = 0.85


@dataclass(frozen=True)
class DriftCheck:
    """Assertions that tolerate rewording: the ``llm_drift`` fixture's helper.

    Args:
        threshold: the lowest acceptable SequenceMatcher ratio (the test's
            ``llm_drift_threshold`` marker, else ``text_threshold``, else 0.85).
    """

    threshold: float = DEFAULT_THRESHOLD

    def ratio(self, expected: str, actual: str) -> float:
        """``difflib.SequenceMatcher(None, expected, actual).ratio()``."""
        from tapeproxy.review.compare import similarity

        return similarity(expected, actual)

    def assert_similar(self, expected: str, actual: str) -> float:
        """Fail unless the texts are at least `threshold` similar; returns the ratio."""
        __tracebackhide__ = True
        ratio = self.ratio(expected, actual)
        if ratio < self.threshold:
            raise AssertionError(
                f"text drifted: similarity {ratio:.3f} is below the threshold "
                f"{self.threshold:.3f}\n  expected: {expected!r}\n  actual:   {actual!r}"
            )
        return ratio

    def assert_tool_calls(self, expected: Sequence[Any], actual: Sequence[Any]) -> None:
        """Fail unless the tool calls are the same, name and arguments exactly.

        Calls may be mappings or objects with ``name`` and ``arguments`` (or a ``function``
        holding them, as in the OpenAI SDK); arguments given as JSON text are parsed first.
        """
        __tracebackhide__ = True
        want, got = [_call(c) for c in expected], [_call(c) for c in actual]
        if want != got:
            raise AssertionError(f"tool calls differ:\n  expected: {want}\n  actual:   {got}")


def _call(call: Any) -> dict[str, Any]:
    def get(obj: Any, name: str) -> Any:
        return obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name, None)

    inner = get(call, "function") or call
    arguments = get(inner, "arguments")
    if isinstance(arguments, str):
        with contextlib.suppress(ValueError):
            arguments = json.loads(arguments)
    return {"name": get(inner, "name"), "arguments": arguments}
