"""How old a recorded answer is, and durations as users write them (`30d`, `12h`, `2w`):
shared by `--max-age` in the proxy and by `stats`."""

from __future__ import annotations

import datetime as dt
import re

from tapeproxy.errors import ConfigError

__all__ = ["age_days", "parse_age"]

_UNITS = {"m": 60.0, "h": 3600.0, "d": 86400.0, "w": 7 * 86400.0}
_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([mhdw])\s*$")


def parse_age(text: str) -> float:
    """`90m`, `12h`, `30d` or `2w` in seconds.

    Raises:
        ConfigError: anything else.
    """
    found = _AGE.match(str(text).lower())
    if not found or float(found.group(1)) <= 0:
        raise ConfigError(f"max_age {text!r}: expected a duration such as 30d, 12h, 2w or 90m")
    return float(found.group(1)) * _UNITS[found.group(2)]


def _parse_time(text: str) -> dt.datetime | None:
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)


def age_days(recorded_at: str | None, created: str, now: dt.datetime | None = None) -> float | None:
    """How old an answer is, in days (None when neither time can be read)."""
    when = _parse_time(recorded_at or "") or _parse_time(created)
    if when is None:
        return None
    return ((now or dt.datetime.now(dt.UTC)) - when).total_seconds() / 86400.0
