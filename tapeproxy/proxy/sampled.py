"""Timing and token usage drawn from a profile (`--latency @FILE`, `--profile FILE`): each
distribution is kept as its 21 quantiles and drawn from by inverse CDF, with the unit draw a
pure function of (seed, what, request key, occurrence of that key), like the fault draw: the
same seed gives the same timing to the same requests in any order.
"""

from __future__ import annotations

import hashlib
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tapeproxy.errors import ConfigError
from tapeproxy.profilefile import percentile, read_table

__all__ = ["Drawn", "Occurrences", "ProfileLatency", "ProfileUsage", "Quantiles", "unit"]


def unit(data: bytes) -> float:
    """A number in [0, 1) that is a pure function of `data` (blake2b): every seeded draw of
    the proxy (faults, timing, usage) is one, over (seed, what, key, occurrence)."""
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest()) / (1 << 64)


def _unit(seed: int, what: str, key: str, occurrence: int, index: int = 0) -> float:
    return unit(f"{seed}\0{what}\0{key}\0{occurrence}\0{index}".encode())


class Quantiles:
    """A distribution given by equally spaced quantiles (0 % to 100 %), drawn by inverse CDF
    with linear interpolation between them.

    Raises:
        ConfigError: fewer than 2 values, or values that are not ascending numbers >= 0.
    """

    def __init__(self, values: Sequence[Any], where: str) -> None:
        ok = len(values) >= 2 and all(
            isinstance(v, int | float) and not isinstance(v, bool) and v >= 0 for v in values
        )
        if not ok or list(values) != sorted(values):
            raise ConfigError(f"{where}: expected ascending quantiles (numbers >= 0), 0 % to 100 %")
        self.values = tuple(float(v) for v in values)

    def at(self, unit: float) -> float:
        """The value at this cumulative share (0..1)."""
        return percentile(self.values, unit)


def _quantiles(table: dict[str, Any], name: str, where: str) -> Quantiles | None:
    values = table.get(name)
    if values is None or values == []:
        return None
    if not isinstance(values, list):
        raise ConfigError(f"{where}: {name} is not a list of quantiles")
    return Quantiles(values, f"{where}: {name}")


class Occurrences:
    """How many times each request key was seen (thread-safe): the occurrence every seeded
    draw and every scripted stub answer goes by."""

    def __init__(self) -> None:
        self._seen: Counter[str] = Counter()
        self._lock = threading.Lock()

    def next(self, key: str) -> int:
        """This key's occurrence (0 the first time), counted."""
        with self._lock:
            n = self._seen[key]
            self._seen[key] = n + 1
        return n

    def take_if(self, key: str, test: Callable[[int], bool]) -> bool:
        """Count this key's occurrence only when `test` (given it) holds; whether it did."""
        with self._lock:
            n = self._seen[key]
            if not test(n):
                return False
            self._seen[key] = n + 1
        return True

    def clear(self) -> None:
        """Start counting again (a new test's stub rules)."""
        with self._lock:
            self._seen.clear()


@dataclass(frozen=True)
class Drawn:
    """One answer's timing: first byte, the end, and a gap drawer for streamed pieces."""

    ttfb_ms: float
    total_ms: float
    gaps_ms: tuple[float, ...]


class ProfileLatency:
    """The `[latency]` table of a profile: `ttfb_ms`, `total_ms` and `gap_ms` quantiles.

    Args:
        table: the table as read.
        seed: mixed into every draw.
        where: names the source in error messages.
    """

    def __init__(self, table: dict[str, Any], seed: int, where: str) -> None:
        self.total = _quantiles(table, "total_ms", where)
        if self.total is None:
            raise ConfigError(f"{where}: the [latency] table has no total_ms quantiles")
        self.ttfb = _quantiles(table, "ttfb_ms", where)
        self.gap = _quantiles(table, "gap_ms", where)
        self.seed = seed
        self._occurrences = Occurrences()

    @classmethod
    def from_file(cls, path: Path, seed: int) -> ProfileLatency:
        where = f"latency @{path}"
        return cls(read_table(path, "latency", where), seed, where)

    def draw(self, key: str, pieces: int = 1) -> Drawn:
        """The timing of this request's next occurrence; `pieces` streamed pieces get a gap
        each after the first (drawn from `gap_ms`, else the time after the first byte split
        evenly)."""
        n = self._occurrences.next(key)
        assert self.total is not None
        unit = _unit(self.seed, "latency", key, n)
        total = self.total.at(unit)  # one unit for both: a slow first byte, a slow end
        ttfb = min(self.ttfb.at(unit), total) if self.ttfb is not None else total
        if pieces <= 1:
            return Drawn(ttfb, total, ())
        if self.gap is not None:
            gaps = tuple(self.gap.at(_unit(self.seed, "gap", key, n, i)) for i in range(1, pieces))
        else:
            gaps = ((total - ttfb) / (pieces - 1),) * (pieces - 1)
        return Drawn(ttfb, total, gaps)


class ProfileUsage:
    """The `[usage]` table of a profile: `input` and `output` token quantiles, drawn for a
    stub answer that does not set its own usage."""

    def __init__(self, table: dict[str, Any], seed: int, where: str) -> None:
        self.input = _quantiles(table, "input", where)
        self.output = _quantiles(table, "output", where)
        self.seed = seed

    @classmethod
    def from_file(cls, path: Path, seed: int) -> ProfileUsage:
        where = f"profile {path}"
        return cls(read_table(path, "usage", where), seed, where)

    def draw(self, key: str, occurrence: int) -> tuple[int | None, int | None]:
        """Input and output tokens for this request's occurrence (None: not in the table)."""
        inp, out = self.input, self.output
        return (
            round(inp.at(_unit(self.seed, "input", key, occurrence))) if inp else None,
            round(out.at(_unit(self.seed, "output", key, occurrence))) if out else None,
        )
