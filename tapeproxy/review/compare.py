"""Comparing two recorded interactions by meaning: assistant text by similarity ratio, tool
calls exactly, model, stop reason, usage and status; timing apart."""

from __future__ import annotations

import difflib
import json
from dataclasses import asdict, dataclass
from typing import Any

from tapeproxy.cassettes.model import Interaction, body_bytes
from tapeproxy.providers.llm import LLMResponse
from tapeproxy.providers.read import extract
from tapeproxy.providers.realtime import read_session

__all__ = ["Change", "compare", "describe", "similarity"]

_EXCERPT = 500


@dataclass(frozen=True)
class Change:
    """One field that differs between the old and the new recording of an interaction.

    `field` is one of ``status``, ``error``, ``text``, ``tool_calls``, ``model``,
    ``stop_reason``, ``usage`` or ``body`` (a response that is not an LLM answer). `ratio` is
    the text similarity (0..1) for ``text`` and ``body``; `drift` tells whether this change
    alone counts as drift beyond the threshold.
    """

    field: str
    old: Any
    new: Any
    ratio: float | None = None
    drift: bool = False


def similarity(old: str, new: str) -> float:
    """``difflib.SequenceMatcher(None, old, new).ratio()``; 1.0 for two empty strings."""
    if old == new:
        return 1.0
    return difflib.SequenceMatcher(None, old, new).ratio()


def compare(old: Interaction, new: Interaction, threshold: float) -> tuple[Change, ...]:
    """What changed in the answer to the same request, timing left out.

    Text (or a non-LLM body) drifts when its similarity ratio is below `threshold`; tool calls
    drift on any difference; a status change drifts; model, stop reason and usage changes
    are shown but do not drift.
    """
    changes: list[Change] = []
    old_status = old.response.status if old.response else None
    new_status = new.response.status if new.response else None
    if old_status != new_status:
        changes.append(Change("status", old_status, new_status, drift=True))
    old_error = old.error.message if old.error else None
    new_error = new.error.message if new.error else None
    if old_error != new_error:
        changes.append(Change("error", old_error, new_error, drift=True))
    old_session, new_session = _session(old), _session(new)
    if old_session is not None and new_session is not None:  # WebSocket sessions
        changes.extend(_llm_changes(old_session, new_session, threshold))
        return tuple(changes)
    old_body = body_bytes(old.response.body) if old.response else b""
    new_body = body_bytes(new.response.body) if new.response else b""
    if old_body == new_body:
        return tuple(changes)
    old_llm, new_llm = extract(old_body), extract(new_body)
    if old_llm is not None and new_llm is not None:
        changes.extend(_llm_changes(old_llm, new_llm, threshold))
    elif not _same_json(old_body, new_body):
        changes.append(_body_change(old_body, new_body, threshold))
    return tuple(changes)


def _llm_changes(old: LLMResponse, new: LLMResponse, threshold: float) -> list[Change]:
    changes: list[Change] = []
    if old.text != new.text:
        ratio = similarity(old.text, new.text)
        changes.append(Change("text", old.text, new.text, round(ratio, 4), ratio < threshold))
    old_calls, new_calls = _calls(old), _calls(new)
    if old_calls != new_calls:
        changes.append(Change("tool_calls", old_calls, new_calls, drift=True))
    for name in ("model", "stop_reason"):
        if getattr(old, name) != getattr(new, name):
            changes.append(Change(name, getattr(old, name), getattr(new, name)))
    old_usage, new_usage = _usage(old), _usage(new)
    if old_usage != new_usage:
        changes.append(Change("usage", old_usage, new_usage))
    return changes


def _calls(response: LLMResponse) -> list[dict[str, Any]]:
    return [{"name": c.name, "arguments": c.arguments} for c in response.tool_calls]


def _usage(response: LLMResponse) -> dict[str, int] | None:
    if response.usage is None:
        return None
    counts = asdict(response.usage)
    counts.pop("input_includes_cached")
    counts.pop("output_includes_reasoning")
    return {k: v for k, v in counts.items() if v is not None}


def _same_json(old: bytes, new: bytes) -> bool:
    try:
        return bool(json.loads(old) == json.loads(new))
    except ValueError:
        return False


def _body_change(old: bytes, new: bytes, threshold: float) -> Change:
    old_text = old.decode("utf-8", "replace")
    new_text = new.decode("utf-8", "replace")
    ratio = similarity(old_text, new_text)
    return Change(
        "body", _excerpt(old_text), _excerpt(new_text), round(ratio, 4), ratio < threshold
    )


def _session(item: Interaction) -> LLMResponse | None:
    """A WebSocket session's server messages read as one answer (None: not a session, or
    no known events)."""
    if item.response is None or item.response.messages is None:
        return None
    events = []
    for _, who, kind, body in item.response.messages:
        if who != "server" or kind != "text":
            continue
        try:
            event = json.loads(body.text or "")
        except ValueError:
            continue
        if isinstance(event, dict):
            events.append(event)
    return read_session(events)


def describe(interaction: Interaction) -> str:
    """One line about an interaction's outcome, for added and removed ones."""
    if interaction.response is None:
        return f"error: {interaction.error.message if interaction.error else '?'}"
    parts = [str(interaction.response.status)]
    llm = _session(interaction) or extract(body_bytes(interaction.response.body))
    if llm is not None:
        parts.append(llm.model or llm.api)
        if llm.text:
            parts.append(json.dumps(_excerpt(llm.text, 80), ensure_ascii=False))
        parts.extend(f"{c.name}({json.dumps(c.arguments)})" for c in llm.tool_calls)
    return " ".join(parts)


def _excerpt(text: str, limit: int = _EXCERPT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
