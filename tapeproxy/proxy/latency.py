"""How recorded timing is reproduced in replay: `recorded`, `none`, a factor like `x0.5`, or
`@FILE`: drawn from a profile's `[latency]` table (`proxy.sampled`)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

from tapeproxy.errors import ConfigError
from tapeproxy.proxy.sampled import ProfileLatency

__all__ = ["Latency"]


@dataclass(frozen=True, slots=True)
class Latency:
    """A scale applied to recorded offsets; 0 means answer at once. With `sampled`, each
    answer's timing is drawn from a profile instead (`for_answer`)."""

    factor: float = 1.0
    sampled: ProfileLatency | None = field(default=None, compare=False)

    @classmethod
    def parse(cls, text: str, seed: int = 0) -> Latency:
        """Parse `recorded`, `none`, `xFACTOR` (e.g. `x0.5`, `x2`) or `@FILE`.

        Raises:
            ConfigError: anything else, or a FILE without a usable [latency] table.
        """
        if text.strip().startswith("@"):
            return cls(1.0, ProfileLatency.from_file(Path(text.strip()[1:]), seed))
        value = text.strip().lower()
        if value == "recorded":
            return cls(1.0)
        if value == "none":
            return cls(0.0)
        if value.startswith("x"):
            try:
                factor = float(value[1:])
            except ValueError:
                factor = -1.0
            if factor >= 0:
                return cls(factor)
        raise ConfigError(
            f"--latency {text!r}: expected 'recorded', 'none', a factor like 'x0.5', or @FILE "
            "(a profile's [latency] table)"
        )

    @property
    def is_none(self) -> bool:
        """True when answers are sent at once."""
        return self.factor == 0.0

    def for_answer(self, key: str, recorded_total_ms: float) -> Latency:
        """The latency of one recorded answer: with `sampled`, its recorded offsets scaled
        so that it ends at a total drawn for this request; else this latency."""
        if self.sampled is None:
            return self
        drawn = self.sampled.draw(key).total_ms
        if recorded_total_ms <= 0:
            return Latency(0.0)
        return Latency(drawn / recorded_total_ms)

    def delay(self, offset_ms: float) -> float:
        """Seconds to wait for a recorded offset in milliseconds."""
        return max(0.0, offset_ms) * self.factor / 1000.0

    async def until(self, started: float, offset_ms: float, added_s: float = 0.0) -> None:
        """Sleep until `offset_ms` (scaled) plus `added_s` seconds after `started` (a loop
        time); no sleep at all when that moment has passed."""
        loop = asyncio.get_running_loop()
        wait = started + self.delay(offset_ms) + added_s - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
