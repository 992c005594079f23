"""Whether an observed run (a journal of a mock run, a recording, a profile) behaves like a
reference one: `tapeproxy parity REFERENCE OBSERVED`.

Both sides are profiles (`review.profile`); groups (host, endpoint, model) are compared one
with the other, measure by measure. Each measure has a reference value, an observed one, a
tolerance and a verdict:

- error rates (every status and provider error type that is not a success, and all failures
  together): a two-sample test of proportions at 99 % (pooled variance, with Yates'
  continuity correction): beyond when the two rates differ by more than 2.576 standard errors
  plus the correction. Small samples have large standard errors: the tolerance widens
  instead of failing at random.
- retry success rate (the share of failed requests whose retries ended in success): the
  same test.
- latency (total, of answers that did not fail) mean: beyond when the means differ by more
  than 20 % of the reference mean and by more than 2.576 standard errors of the difference;
  min and max: beyond when they differ by more than 50 % and 100 % of the reference, widened
  by sqrt(30 / n) below 30 answers.
- token usage (input, output, reasoning) mean: as the latency mean, at 20 %.
- shape: the same JSON paths with the same types, and the same presence rules (`exact`);
  `subset` allows the observed answers fewer paths; `off` skips it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

from tapeproxy.errors import BadInputError
from tapeproxy.review.profile import failed as _failed

__all__ = ["DEFAULT_TOLERANCES", "Measure", "compare", "parse_tolerances", "render"]

DEFAULT_TOLERANCES: dict[str, float | str] = {
    "error_rate": 0.01,
    "retry_success": 0.01,
    "latency_mean": 0.20,
    "latency_min": 0.50,
    "latency_max": 1.00,
    "tokens_mean": 0.20,
    "shape": "exact",
}
"""`error_rate` and `retry_success` are the tests' significance levels (0.01: 99 %); the
latency and token ones are shares of the reference value; `shape` is exact, subset or off."""

_SMALL = 30
_TOKENS = ("input", "output", "reasoning")


@dataclass(frozen=True)
class Measure:
    """One compared measure: its values on both sides, the tolerance and the verdict."""

    group: str
    name: str
    reference: str
    observed: str
    tolerance: str
    within: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "measure": self.name,
            "reference": self.reference,
            "observed": self.observed,
            "tolerance": self.tolerance,
            "verdict": "within" if self.within else "beyond",
        }


def parse_tolerances(pairs: tuple[str, ...]) -> dict[str, float | str]:
    """`NAME=VALUE` overrides of `DEFAULT_TOLERANCES`.

    Raises:
        BadInputError: an unknown name or a value of the wrong kind.
    """
    out = dict(DEFAULT_TOLERANCES)
    names = ", ".join(DEFAULT_TOLERANCES)
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name = name.strip()
        if not sep or name not in DEFAULT_TOLERANCES:
            raise BadInputError(f"--tolerance {pair!r}: expected NAME=VALUE, NAME one of {names}")
        if name == "shape":
            if value not in ("exact", "subset", "off"):
                raise BadInputError(f"--tolerance {pair!r}: shape is exact, subset or off")
            out[name] = value
            continue
        try:
            number = float(value)
        except ValueError:
            number = -1.0
        if number <= 0 or (name in ("error_rate", "retry_success") and number >= 1):
            raise BadInputError(
                f"--tolerance {pair!r}: expected a positive number (a significance level "
                "below 1 for error_rate and retry_success)"
            )
        out[name] = number
    return out


def _label(g: dict[str, Any]) -> str:
    return f"{g['endpoint']} {g['host']} {g['model']}"


def compare(
    reference: dict[str, Any], observed: dict[str, Any], tolerances: dict[str, float | str]
) -> list[Measure]:
    """Every measure of every group, reference against observed."""
    out: list[Measure] = []
    for a, b in _pairs(reference["groups"], observed["groups"]):
        if a is None or b is None:
            there = a or b
            assert there is not None
            n = f"{there['requests']} requests"
            out.append(
                Measure(_label(there), "requests", n if a else "none", n if b else "none",
                        "both sides", False)
            )  # fmt: skip
            continue
        label = _label(a)
        out += _error_rates(label, a, b, float(tolerances["error_rate"]))
        out += _retries(label, a, b, float(tolerances["retry_success"]))
        out += _latency(label, a, b, tolerances)
        out += _tokens(label, a, b, float(tolerances["tokens_mean"]))
        if tolerances["shape"] != "off":
            out += _shape(label, a, b, str(tolerances["shape"]))
    return out


def _pairs(
    reference: list[dict[str, Any]], observed: list[dict[str, Any]]
) -> list[tuple[dict[str, Any] | None, dict[str, Any] | None]]:
    """Groups paired by host, endpoint and model; then, of those left, by endpoint and model
    where each side has one (a mock run against another host than the recording's)."""

    def where(g: dict[str, Any], host: bool = True) -> tuple[str, ...]:
        return (g["host"], g["endpoint"], g["model"]) if host else (g["endpoint"], g["model"])

    obs = {where(g): g for g in observed}
    pairs: list[tuple[dict[str, Any] | None, dict[str, Any] | None]] = []
    left: list[dict[str, Any]] = []
    for g in reference:
        match = obs.pop(where(g), None)
        if match is None:
            left.append(g)
        else:
            pairs.append((g, match))
    by_kind: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for g in obs.values():
        by_kind.setdefault(where(g, host=False), []).append(g)
    kinds = [where(g, host=False) for g in left]
    for g in left:
        others = by_kind.get(where(g, host=False), [])
        if len(others) == 1 and kinds.count(where(g, host=False)) == 1:
            pairs.append((g, by_kind.pop(where(g, host=False))[0]))
        else:
            pairs.append((g, None))
    pairs += [(None, g) for rest in by_kind.values() for g in rest]
    return pairs


def _two_proportions(k1: int, n1: int, k2: int, n2: int, alpha: float) -> tuple[float, bool]:
    """The largest difference of the two rates that the test accepts, and whether the
    observed difference is within it."""
    if n1 == 0 or n2 == 0:
        return math.inf, True
    z = NormalDist().inv_cdf(1 - alpha / 2)
    pooled = (k1 + k2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    allowed = z * se + 0.5 * (1 / n1 + 1 / n2)
    return allowed, abs(k1 / n1 - k2 / n2) <= allowed


def _rate(k: int, n: int) -> str:
    return f"{k / n:.2%} ({k}/{n})" if n else "-"


def _error_rates(label: str, a: dict[str, Any], b: dict[str, Any], alpha: float) -> list[Measure]:
    n1, n2 = a["requests"], b["requests"]
    rows = []
    all1 = sum(n for s, n in a["status"].items() if _failed(s))
    all2 = sum(n for s, n in b["status"].items() if _failed(s))
    pairs = [("error rate", all1, all2)]
    for status in sorted({s for s in (*a["status"], *b["status"]) if _failed(s)}):
        pairs.append(
            (f"error rate {status}", a["status"].get(status, 0), b["status"].get(status, 0))
        )
    for kind in sorted(set(a["error_types"]) | set(b["error_types"])):
        if kind in a["status"] or kind in b["status"]:
            continue  # a type named after its outcome (reset, timeout): counted above
        pairs.append(
            (f"error type {kind}", a["error_types"].get(kind, 0), b["error_types"].get(kind, 0))
        )
    for name, k1, k2 in pairs:
        allowed, ok = _two_proportions(k1, n1, k2, n2, alpha)
        rows.append(
            Measure(label, name, _rate(k1, n1), _rate(k2, n2),
                    f"+/-{allowed:.2%} ({1 - alpha:.0%} two-sample)", ok)
        )  # fmt: skip
    return rows


def _retries(label: str, a: dict[str, Any], b: dict[str, Any], alpha: float) -> list[Measure]:
    r1, r2 = a["retries"], b["retries"]
    if not r1["failed"] or not r2["failed"]:
        return []  # nothing to compare: a side had no failed requests
    allowed, ok = _two_proportions(
        r1["recovered"], r1["failed"], r2["recovered"], r2["failed"], alpha
    )
    return [
        Measure(label, "retry success rate", _rate(r1["recovered"], r1["failed"]),
                _rate(r2["recovered"], r2["failed"]),
                f"+/-{allowed:.2%} ({1 - alpha:.0%} two-sample)", ok)
    ]  # fmt: skip


def _widen(n1: int, n2: int) -> float:
    n = min(n1, n2)
    return math.sqrt(_SMALL / n) if 0 < n < _SMALL else 1.0


def _mean_row(
    label: str, name: str, s1: dict[str, Any], s2: dict[str, Any], share: float, unit: str
) -> Measure:
    n1, n2 = s1["count"], s2["count"]
    m1, m2 = s1["mean"], s2["mean"]
    z = NormalDist().inv_cdf(0.995)
    noise = z * math.sqrt(s1["sd"] ** 2 / n1 + s2["sd"] ** 2 / n2)
    allowed = max(share * abs(m1), noise)
    return Measure(
        label, name, f"{m1:g}{unit} (n={n1})", f"{m2:g}{unit} (n={n2})",
        f"+/-{allowed:.4g}{unit}", abs(m1 - m2) <= allowed,
    )  # fmt: skip


def _latency(
    label: str, a: dict[str, Any], b: dict[str, Any], tolerances: dict[str, float | str]
) -> list[Measure]:
    s1, s2 = a["latency_ms"]["total"], b["latency_ms"]["total"]
    if not s1["count"] or not s2["count"]:
        return []
    rows = [_mean_row(label, "latency mean", s1, s2, float(tolerances["latency_mean"]), " ms")]
    widen = _widen(s1["count"], s2["count"])
    for which in ("min", "max"):
        share = float(tolerances[f"latency_{which}"]) * widen
        allowed = share * abs(s1[which])
        rows.append(
            Measure(label, f"latency {which}", f"{s1[which]:g} ms", f"{s2[which]:g} ms",
                    f"+/-{allowed:.4g} ms", abs(s1[which] - s2[which]) <= allowed)
        )  # fmt: skip
    return rows


def _tokens(label: str, a: dict[str, Any], b: dict[str, Any], share: float) -> list[Measure]:
    rows = []
    for name in _TOKENS:
        s1, s2 = a["tokens"].get(name, {"count": 0}), b["tokens"].get(name, {"count": 0})
        if not s1["count"] and not s2["count"]:
            continue
        if not s1["count"] or not s2["count"]:
            rows.append(
                Measure(label, f"tokens {name} mean", f"n={s1['count']}", f"n={s2['count']}",
                        "reported on both sides", False)
            )  # fmt: skip
            continue
        rows.append(_mean_row(label, f"tokens {name} mean", s1, s2, share, ""))
    return rows


def _shape(label: str, a: dict[str, Any], b: dict[str, Any], mode: str) -> list[Measure]:
    rows = []
    for kind in sorted(set(a["shape"]) | set(b["shape"])):
        s1, s2 = a["shape"].get(kind), b["shape"].get(kind)
        if s1 is None or s2 is None:
            rows.append(
                Measure(label, f"shape {kind}", "answers" if s1 else "none",
                        "answers" if s2 else "none", mode, mode == "subset" and s2 is None)
            )  # fmt: skip
            continue
        f1, f2 = s1["fields"], s2["fields"]
        missing = sorted(set(f1) - set(f2))
        extra = sorted(set(f2) - set(f1))
        retyped = sorted(
            p for p in set(f1) & set(f2) if not set(f2[p]["types"]) <= set(f1[p]["types"])
        )
        rules1 = {(r["path"], r["when"]) for r in s1["presence"]}
        rules2 = {(r["path"], r["when"]) for r in s2["presence"]}
        differences = [
            *(f"missing {p}" for p in (missing if mode == "exact" else [])),
            *(f"extra {p}" for p in extra),
            *(f"type of {p}: {f2[p]['types']} vs {f1[p]['types']}" for p in retyped),
            *(f"presence {p} when {w}" for p, w in sorted(rules1 ^ rules2) if mode == "exact"),
        ]
        rows.append(
            Measure(label, f"shape {kind}", f"{len(f1)} paths, {len(rules1)} presence rules",
                    f"{len(f2)} paths, {len(rules2)} presence rules"
                    + (f"; {'; '.join(differences[:5])}" if differences else ""),
                    mode, not differences)
        )  # fmt: skip
    return rows


def render(measures: list[Measure], fmt: str, reference: str, observed: str) -> str:
    """The comparison as `text`, `markdown` (a pull-request comment) or `json`."""
    beyond = [m for m in measures if not m.within]
    verdict = "at parity" if not beyond else f"NOT at parity: {len(beyond)} measure(s) beyond"
    if fmt == "json":
        doc = {
            "reference": reference,
            "observed": observed,
            "parity": not beyond,
            "beyond": [m.name for m in beyond],
            "measures": [m.to_json() for m in measures],
        }
        return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    head = ("measure", "reference", "observed", "tolerance", "verdict")
    rows = [(m.name, m.reference, m.observed, m.tolerance, "within" if m.within else "BEYOND")
            for m in measures]  # fmt: skip
    groups = sorted({m.group for m in measures})
    if fmt == "markdown":
        lines = [f"**tapeproxy parity**: `{observed}` against `{reference}`: {verdict}", ""]
        for group in groups:
            lines += [f"`{group}`", "", "| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
            for m, row in zip(measures, rows, strict=True):
                if m.group == group:
                    cells = [c.replace("|", "\\|") for c in row]
                    lines.append("| " + " | ".join(cells) + " |")
            lines.append("")
        return "\n".join(lines)
    lines = [f"parity of {observed} against {reference}: {verdict}"]
    for group in groups:
        mine = [row for m, row in zip(measures, rows, strict=True) if m.group == group]
        widths = [max(len(r[i]) for r in (head, *mine)) for i in range(len(head))]
        lines += ["", group]
        for row in (head, *mine):
            lines.append(
                "  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
            )
    return "\n".join(lines) + "\n"
