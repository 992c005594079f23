"""Reading a profile file (`tapeproxy profile --format toml|json`): the whole document for
`parity`, or one of its tables (`[faults]`, `[latency]`, `[usage]`) for the proxy options
that sample from it (`--faults @FILE`, `--latency @FILE`, `--profile FILE`).

A leaf module (no tapeproxy package imported), so the proxy and review layers share it.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tapeproxy.errors import ConfigError

__all__ = ["FORMAT", "has_table", "load_profile", "percentile", "read_table"]

FORMAT = "tapeproxy-profile/1"


def percentile(ordered: Sequence[float], q: float) -> float:
    """The q-quantile (0..1) of ascending values, linear between ranks: how statistics and
    profiles read their quantiles, and how a draw reads a profile's (inverse CDF)."""
    rank = q * (len(ordered) - 1)
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _document(path: Path, where: str) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else e
        raise ConfigError(f"{where}: cannot read it ({reason})") from None
    if text.lstrip().startswith("{"):
        try:
            doc = json.loads(text)
        except ValueError as e:
            raise ConfigError(f"{where}: not valid JSON ({e})") from None
    else:
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{where}: not valid TOML ({e})") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{where}: not a table of settings")
    return doc


def read_table(path: Path, name: str, where: str) -> dict[str, Any]:
    """The `[name]` table of a TOML or JSON file (a profile, or a file holding that table).

    Raises:
        ConfigError: the file cannot be read or parsed, or has no such table.
    """
    table = _document(path, where).get(name)
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: no [{name}] table (make one: tapeproxy profile --format toml)")
    return table


def load_profile(path: Path) -> dict[str, Any]:
    """A whole profile written by `tapeproxy profile` (JSON or TOML).

    Raises:
        ConfigError: it cannot be read or is not a tapeproxy profile.
    """
    where = f"profile {path}"
    doc = _document(path, where)
    if doc.get("format") != FORMAT:
        raise ConfigError(
            f"{where}: not a tapeproxy profile (no format = {FORMAT!r}); make one with "
            "tapeproxy profile CASSETTE --format toml -o FILE"
        )
    return doc


def has_table(path: Path, name: str) -> bool:
    """Whether a profile has the `[name]` table (`--profile` applies those it has)."""
    return isinstance(load_profile(path).get(name), dict)
