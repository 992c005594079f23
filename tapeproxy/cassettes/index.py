"""Lookup of recorded answers by key, in recorded order, and explanations for misses.

The n-th identical request gets the n-th recorded answer; after the last one the last repeats
(`repeat="last"`) or the request is a miss (`repeat="error"`). A miss is explained by the
nearest recorded requests with a field-by-field difference of their canonical forms.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from tapeproxy.cassettes.key import CanonicalRequest, canonical_request
from tapeproxy.cassettes.model import Interaction, MatchRules, body_bytes

__all__ = [
    "Difference",
    "Nearest",
    "RepeatPolicy",
    "ReplayIndex",
    "canonical_of",
    "differences",
]

RepeatPolicy = Literal["last", "error"]

_MAX_VALUE_CHARS = 200


@dataclass(frozen=True, slots=True)
class Difference:
    """One field that differs: where, what was recorded, what was asked for."""

    field: str
    recorded: Any
    requested: Any


@dataclass(frozen=True, slots=True)
class Nearest:
    """A recorded request close to a missed one, with what differs."""

    index: int
    method: str
    url: str
    differences: tuple[Difference, ...]


def canonical_of(interaction: Interaction, rules: MatchRules) -> CanonicalRequest:
    """The canonical form of a recorded (redacted) request."""
    r = interaction.request
    return canonical_request(r.method, r.url, r.headers, body_bytes(r.body), rules)


class _Answers:
    """The recorded answers of one key, in recorded order, and how many have been served."""

    __slots__ = ("answers", "served")

    def __init__(self, answers: tuple[Interaction, ...]) -> None:
        self.answers = answers
        self.served = 0


class ReplayIndex:
    """Recorded interactions grouped by key, served in order; safe to use from threads.

    A lookup is one dict access, to everything its key needs (on a large cassette, each
    further object touched is likely a cache miss on a request's path).
    """

    def __init__(self, interactions: Iterable[Interaction], repeat: RepeatPolicy = "last") -> None:
        self._all = tuple(interactions)
        grouped: dict[str, list[Interaction]] = {}
        for it in self._all:
            grouped.setdefault(it.key, []).append(it)
        self._by_key = {key: _Answers(tuple(answers)) for key, answers in grouped.items()}
        self._repeat = repeat
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._all)

    def __contains__(self, key: object) -> bool:
        return key in self._by_key

    def next(self, key: str) -> Interaction | None:
        """The answer for the next request with this key, or None for a miss."""
        entry = self._by_key.get(key)
        if entry is None:
            return None
        with self._lock:
            n = entry.served
            entry.served = n + 1
        answers = entry.answers
        if n < len(answers):
            return answers[n]
        return answers[-1] if self._repeat == "last" else None

    def peek(self, key: str) -> Interaction | None:
        """The answer `next` would give now, without counting it served."""
        entry = self._by_key.get(key)
        if entry is None:
            return None
        answers, n = entry.answers, entry.served
        if n < len(answers):
            return answers[n]
        return answers[-1] if self._repeat == "last" else None

    def unused(self) -> list[int]:
        """Positions of recorded interactions that no request has used."""
        position = {id(it): i for i, it in enumerate(self._all)}
        return sorted(
            position[id(it)] for e in self._by_key.values() for it in e.answers[e.served :]
        )

    def nearest(self, wanted: CanonicalRequest, rules: MatchRules, limit: int = 3) -> list[Nearest]:
        """The recorded requests closest to `wanted`, fewest differences first."""
        scored: list[tuple[int, int, Nearest]] = []
        seen: set[str] = set()
        for i, it in enumerate(self._all):
            if it.key in seen:
                continue
            seen.add(it.key)
            diffs = tuple(differences(canonical_of(it, rules), wanted))
            scored.append((_weight(diffs), i, Nearest(i, it.request.method, it.request.url, diffs)))
        scored.sort(key=lambda t: (t[0], t[1]))
        return [n for _, _, n in scored[:limit]]


def _weight(diffs: tuple[Difference, ...]) -> int:
    heavy = {"method", "scheme", "host", "port", "path"}
    return sum(10 if d.field in heavy else 1 for d in diffs)


def differences(recorded: CanonicalRequest, requested: CanonicalRequest) -> Iterator[Difference]:
    """Field-by-field differences between two canonical requests (JSON bodies path by path)."""
    for name in ("method", "scheme", "host", "port", "path"):
        if recorded.get(name) != requested.get(name):
            yield Difference(name, recorded.get(name), requested.get(name))
    yield from _dict_diff("query", _pairs(recorded["query"]), _pairs(requested["query"]))
    yield from _dict_diff("headers", recorded["headers"], requested["headers"])
    yield from _value_diff("body", recorded["body"], requested["body"])


def _pairs(query: list[list[str]]) -> dict[str, Any]:
    out: dict[str, list[str]] = {}
    for k, v in query:
        out.setdefault(k, []).append(v)
    return {k: v[0] if len(v) == 1 else v for k, v in out.items()}


def _dict_diff(prefix: str, a: dict[str, Any], b: dict[str, Any]) -> Iterator[Difference]:
    for k in sorted(set(a) | set(b)):
        if a.get(k) != b.get(k):
            yield Difference(f"{prefix}.{k}", _short(a.get(k)), _short(b.get(k)))


def _value_diff(path: str, a: Any, b: Any) -> Iterator[Difference]:
    if a == b:
        return
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=str):
            sub = path if k == "json" and path == "body" else f"{path}.{k}"
            if k not in a:
                yield Difference(sub, None, _short(b[k]))
            elif k not in b:
                yield Difference(sub, _short(a[k]), None)
            else:
                yield from _value_diff(sub, a[k], b[k])
        return
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            yield from _value_diff(f"{path}[{i}]", x, y)
        return
    yield Difference(path, _short(a), _short(b))


def _short(value: Any) -> Any:
    if isinstance(value, str) and len(value) > _MAX_VALUE_CHARS:
        return value[:_MAX_VALUE_CHARS] + f"... ({len(value)} chars)"
    if isinstance(value, (dict, list)):
        text = repr(value)
        if len(text) > _MAX_VALUE_CHARS:
            return text[:_MAX_VALUE_CHARS] + f"... ({len(text)} chars)"
    return value
