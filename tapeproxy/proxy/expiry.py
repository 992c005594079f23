"""Stale recordings: `--max-age 30d` and `--on-expiry warn|fail|rerecord`.

Providers change their answers, deprecate models and retire fields; a cassette recorded months
ago may replay behaviour that no longer exists. An answer older than the limit (from its
`recorded_at`, else the cassette's `created`) is, as configured:

- `warn`: served, counted, and named in the summary (the default);
- `fail`: not served: answered 599 like a miss, with its age (replay exits 3; a pytest test
  fails);
- `rerecord`: in a recording mode, fetched again from the upstream and recorded in its place;
  in replay, a failure as with `fail` (nothing can be recorded), saying which mode to use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from tapeproxy.cassettes.age import age_days, parse_age
from tapeproxy.cassettes.model import Interaction
from tapeproxy.errors import ConfigError

__all__ = ["ON_EXPIRY", "Expiry", "OnExpiry", "age_days", "parse_age"]

OnExpiry = Literal["warn", "fail", "rerecord"]
ON_EXPIRY: tuple[OnExpiry, ...] = ("warn", "fail", "rerecord")


@dataclass(frozen=True)
class Expiry:
    """The limit and what to do past it."""

    max_age_s: float
    on_expiry: OnExpiry = "warn"

    @classmethod
    def parse(cls, max_age: object, on_expiry: object) -> Expiry | None:
        """The `max_age` and `on_expiry` settings (None when no max_age is set).

        Raises:
            ConfigError: a bad duration or an unknown on_expiry.
        """
        if max_age is None or str(max_age).strip() == "":
            if on_expiry not in (None, "", "warn"):
                raise ConfigError("on_expiry needs max_age (e.g. --max-age 30d)")
            return None
        action = on_expiry or "warn"
        if action not in ON_EXPIRY:
            raise ConfigError(f"on_expiry {action!r}: expected one of {', '.join(ON_EXPIRY)}")
        return cls(parse_age(str(max_age)), action)

    def expired(self, it: Interaction, created: str) -> float | None:
        """The answer's age in days when it is past the limit, else None."""
        days = age_days(it.recorded_at, created)
        if days is None or days * 86400.0 <= self.max_age_s:
            return None
        return days

    def describe(self) -> str:
        """The limit as written back to the user (e.g. `30d`)."""
        days = self.max_age_s / 86400.0
        return f"{days:g}d" if days >= 1 else f"{self.max_age_s / 3600.0:g}h"
