"""How recorded timing is reproduced in replay: `recorded`, `none`, or a factor like `x0.5`."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from tapeproxy.errors import ConfigError

__all__ = ["Latency"]


@dataclass(frozen=True, slots=True)
class Latency:
    """A scale applied to recorded offsets; 0 means answer at once."""

    factor: float = 1.0

    @classmethod
    def parse(cls, text: str) -> Latency:
        """Parse `recorded`, `none` or `xFACTOR` (e.g. `x0.5`, `x2`).

        Raises:
            ConfigError: anything else.
        """
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
            f"--latency {text!r}: expected 'recorded', 'none' or a factor like 'x0.5'"
        )

    @property
    def is_none(self) -> bool:
        """True when answers are sent at once."""
        return self.factor == 0.0

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
