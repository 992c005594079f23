"""Drift between two versions of cassettes: interactions paired by request key and
occurrence, reported as added, removed, changed (by meaning) or timing-only."""

from __future__ import annotations

import fnmatch
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any, Literal

from tapeproxy.cassettes.model import Cassette, Interaction
from tapeproxy.errors import ConfigError
from tapeproxy.review.compare import Change, compare, describe

__all__ = [
    "DEFAULT_THRESHOLD",
    "CassetteDiff",
    "DiffReport",
    "InteractionDiff",
    "Thresholds",
    "diff_cassettes",
]

DEFAULT_THRESHOLD = 0.85


@dataclass(frozen=True)
class Thresholds:
    """The text-similarity threshold for each cassette: a per-cassette glob wins over the
    default (``diff_thresholds`` and ``text_threshold`` in ``[tool.tapeproxy]``)."""

    default: float = DEFAULT_THRESHOLD
    per_glob: tuple[tuple[str, float], ...] = ()

    @classmethod
    def from_config(cls, config: Mapping[str, Any], flag: float | None = None) -> Thresholds:
        """Build from the config table; `flag` (``--text-threshold``) replaces the default.

        Raises:
            ConfigError: a threshold is not a number between 0 and 1.
        """
        default = flag if flag is not None else config.get("text_threshold", DEFAULT_THRESHOLD)
        table = config.get("diff_thresholds", {})
        if not isinstance(table, dict):
            raise ConfigError("[tool.tapeproxy] diff_thresholds must be a table of glob = number")
        pairs = tuple(
            (str(glob), _fraction(f"diff_thresholds.{glob!r}", v)) for glob, v in table.items()
        )
        return cls(_fraction("text_threshold", default), pairs)

    def for_path(self, path: str) -> float:
        """The threshold of the cassette at `path`: the first glob that matches its path
        (or its file name), else the default."""
        posix = PurePath(path).as_posix()
        for glob, value in self.per_glob:
            if fnmatch.fnmatchcase(posix, glob) or fnmatch.fnmatchcase(PurePath(path).name, glob):
                return value
        return self.default


def _fraction(name: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{name} must be a number between 0 and 1, got {value!r}") from e
    if not 0.0 <= number <= 1.0:
        raise ConfigError(f"{name} must be between 0 and 1, got {number}")
    return number


Kind = Literal["added", "removed", "changed"]


@dataclass(frozen=True)
class InteractionDiff:
    """An added, removed or changed interaction; `occurrence` counts repeats of its key."""

    kind: Kind
    key: str
    occurrence: int
    method: str
    url: str
    changes: tuple[Change, ...] = ()
    summary: str = ""

    @property
    def drift(self) -> bool:
        """Whether one of its changes drifts beyond the threshold."""
        return any(c.drift for c in self.changes)


@dataclass(frozen=True)
class CassetteDiff:
    """The differences found in one cassette."""

    path: str
    status: Literal["added", "removed", "modified"]
    threshold: float
    interactions: tuple[InteractionDiff, ...] = ()
    timing_only: int = 0
    unchanged: int = 0

    @property
    def drift(self) -> bool:
        """Whether any interaction drifted."""
        return any(i.drift for i in self.interactions)

    def count(self, kind: str) -> int:
        """How many interactions are of `kind` (added, removed, changed, drifted)."""
        if kind == "drifted":
            return sum(1 for i in self.interactions if i.drift)
        return sum(1 for i in self.interactions if i.kind == kind)


@dataclass(frozen=True)
class DiffReport:
    """The whole comparison, one entry per cassette that differs."""

    cassettes: tuple[CassetteDiff, ...] = field(default_factory=tuple)

    @property
    def drift(self) -> bool:
        """Whether any cassette drifted (the CLI then exits 1)."""
        return any(c.drift for c in self.cassettes)


def diff_cassettes(
    path: str, old: Cassette | None, new: Cassette | None, threshold: float
) -> CassetteDiff:
    """Pair the interactions of two versions of a cassette (None: absent) and compare them."""
    status: Literal["added", "removed", "modified"] = (
        "added" if old is None else "removed" if new is None else "modified"
    )
    old_groups = _by_key(old.interactions if old else ())
    found: list[InteractionDiff] = []
    timing_only = unchanged = 0
    seen: dict[str, int] = defaultdict(int)
    for item in new.interactions if new else ():
        n = seen[item.key]
        seen[item.key] += 1
        olds = old_groups.get(item.key, [])
        if n >= len(olds):
            found.append(_entry("added", item, n, summary=describe(item)))
            continue
        changes = compare(olds[n], item, threshold)
        if changes:
            found.append(_entry("changed", item, n, changes=changes))
        elif olds[n].timing != item.timing or _chunks(olds[n]) != _chunks(item):
            timing_only += 1
        else:
            unchanged += 1
    for key, olds in old_groups.items():
        for n in range(seen.get(key, 0), len(olds)):
            found.append(_entry("removed", olds[n], n, summary=describe(olds[n])))
    return CassetteDiff(path, status, threshold, tuple(found), timing_only, unchanged)


def _by_key(interactions: Sequence[Interaction]) -> dict[str, list[Interaction]]:
    groups: dict[str, list[Interaction]] = defaultdict(list)
    for item in interactions:
        groups[item.key].append(item)
    return groups


def _chunks(item: Interaction) -> object:
    return item.response.chunks if item.response else None


def _entry(
    kind: Kind,
    item: Interaction,
    occurrence: int,
    changes: tuple[Change, ...] = (),
    summary: str = "",
) -> InteractionDiff:
    request = item.request
    return InteractionDiff(
        kind, item.key, occurrence, request.method, request.url, changes, summary
    )
