"""How a provider behaved in recordings (or in a journal of a mock run): the profile that
`tapeproxy profile` prints, `parity` compares and `--profile` / `--faults @FILE` /
`--latency @FILE` apply.

Per host, endpoint and model: request count; status and provider error type counts; retry
success (a retry is the same request again after a failed answer: its key again, in the
order the file holds the exchanges); TTFB and total latency of the answers that did not fail;
stream chunk counts and gaps; token usage; and the response shape (every JSON path with its
types and the share of answers that have it, and which request setting makes a field
appear). Over all groups, the `[faults]`, `[latency]` and `[usage]` tables a mock run
samples from.

Misses and tapeproxy's own errors in a journal are not provider behaviour: they are counted
as `skipped` and left out.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any
from urllib.parse import urlsplit

from tapeproxy.cassettes.model import Cassette, Interaction, body_bytes
from tapeproxy.profilefile import FORMAT, percentile
from tapeproxy.providers.messages import messages
from tapeproxy.providers.read import error_type, extract
from tapeproxy.review.stats import requested_model

__all__ = [
    "FORMAT",
    "NOT_FAULTS",
    "QUANTILES",
    "build",
    "failed",
    "quantiles",
    "summary",
]

QUANTILES = 21
"""Each distribution a mock run samples from is kept as its 0, 5, 10 ... 100 % quantiles."""

NOT_FAULTS = frozenset({"400", "401", "403", "404", "422"})
"""Statuses caused by the request itself: counted in error rates, never drawn as faults."""

_NO_STATUS_FAULTS = frozenset({"reset", "timeout", "truncate", "malformed"})
_TOKENS = ("input", "output", "reasoning", "cached_input")
_CONTENT = frozenset({"messages", "input", "contents", "prompt", "system", "instructions", "model"})


def quantiles(values: Iterable[float]) -> list[float]:
    """The 0, 5 ... 100 % quantiles (`QUANTILES` values), or [] for no values."""
    ordered = sorted(values)
    if not ordered:
        return []
    return [round(percentile(ordered, i / (QUANTILES - 1)), 3) for i in range(QUANTILES)]


def summary(values: Sequence[float]) -> dict[str, float | int]:
    """count, min, mean, sd (sample), p50, p95 and max."""
    ordered = sorted(values)
    n = len(ordered)
    if not n:
        return {"count": 0}
    mean = sum(ordered) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in ordered) / (n - 1)) if n > 1 else 0.0
    return {
        "count": n,
        "min": round(ordered[0], 3),
        "mean": round(mean, 3),
        "sd": round(sd, 3),
        "p50": round(percentile(ordered, 0.5), 3),
        "p95": round(percentile(ordered, 0.95), 3),
        "max": round(ordered[-1], 3),
    }


@dataclass
class _Group:
    requests: int = 0
    status: Counter[str] = field(default_factory=Counter)
    error_types: Counter[str] = field(default_factory=Counter)
    ttfb: list[float] = field(default_factory=list)
    total: list[float] = field(default_factory=list)
    chunks: list[float] = field(default_factory=list)
    gaps: list[float] = field(default_factory=list)
    tokens: dict[str, list[float]] = field(default_factory=dict)
    shapes: dict[str, list[tuple[dict[str, set[str]], frozenset[str]]]] = field(
        default_factory=dict
    )
    failed: int = 0
    retried: int = 0
    recovered: int = 0


def _outcome(it: Interaction) -> str:
    """`200`..., `reset` (no answer), `timeout` (no answer before the client gave up),
    `truncate` (an answer cut short by the upstream); in a journal, a fault that has no
    status of its own is its kind (`malformed` too: a 200 no client can read)."""
    if it.source == "fault" and it.detail is not None and it.detail in _NO_STATUS_FAULTS:
        return it.detail
    if it.response is None:
        return "timeout" if it.error is not None and it.error.by == "client" else "reset"
    if it.error is not None and it.error.by != "client":
        return "truncate"
    return str(it.response.status)


def failed(outcome: str) -> bool:
    """Whether a profile's outcome (a status, `reset`, `timeout`...) is a failure."""
    return not outcome.isdigit() or int(outcome) >= 400


def _model(it: Interaction) -> str:
    return requested_model(it) or "(none)"


def _request_doc(it: Interaction) -> dict[str, Any]:
    try:
        doc = json.loads(body_bytes(it.request.body))
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


def _settings(doc: dict[str, Any]) -> frozenset[str]:
    """The request settings that are set (not null, false or empty), by name."""
    return frozenset(
        k for k, v in doc.items() if k not in _CONTENT and v not in (None, False, "", [], {})
    )


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _paths(value: Any, prefix: str, out: dict[str, set[str]]) -> None:
    if prefix:
        out.setdefault(prefix, set()).add(_json_type(value))
    if isinstance(value, dict):
        for k, v in value.items():
            _paths(v, f"{prefix}.{k}" if prefix else str(k), out)
    elif isinstance(value, list):
        for item in value:
            _paths(item, f"{prefix}[]", out)


def build(cassettes: Iterable[tuple[str, Cassette]]) -> dict[str, Any]:
    """The profile document of named cassettes (JSON-ready; `render` prints it)."""
    groups: dict[tuple[str, str, str], _Group] = {}
    sources: list[str] = []
    skipped = 0
    for name, cassette in cassettes:
        sources.append(name)
        chains: dict[str, list[tuple[_Group, bool]]] = {}
        for it in cassette.interactions:
            if it.source in ("miss", "error"):
                skipped += 1
                continue
            url = urlsplit(it.request.url)
            where = (url.netloc, f"{it.request.method} {url.path}", _model(it))
            group = groups.setdefault(where, _Group())
            failed = _add(group, it)
            chains.setdefault(it.key, []).append((group, failed))
        for tries in chains.values():
            _count_retries(tries)
    return _document(groups, sources, skipped)


def _add(g: _Group, it: Interaction) -> bool:
    """Add one exchange to its group; whether it failed."""
    g.requests += 1
    outcome = _outcome(it)
    g.status[outcome] += 1
    body = body_bytes(it.response.body) if it.response is not None else b""
    if failed(outcome):
        kind = error_type(body) if body else None
        g.error_types[kind or outcome] += 1
        return True
    if it.timing.total_ms > 0:
        g.ttfb.append(it.timing.ttfb_ms)
        g.total.append(it.timing.total_ms)
    assert it.response is not None
    if it.response.chunks and len(it.response.chunks) > 1:
        offsets = [at for at, _ in it.response.chunks]
        g.chunks.append(len(offsets))
        g.gaps.extend(b - a for a, b in pairwise(offsets))
    llm = extract(body)
    if llm is not None and llm.usage is not None:
        u = llm.usage
        for name, value in zip(
            _TOKENS,
            (u.input_tokens, u.output_tokens, u.reasoning_tokens, u.cached_input_tokens),
            strict=True,
        ):
            if value is not None:
                g.tokens.setdefault(name, []).append(value)
    found, streamed = messages(body)
    if found:
        paths: dict[str, set[str]] = {}
        for message in found:
            _paths(message.data, "", paths)
        kind = "stream" if streamed else "plain"
        g.shapes.setdefault(kind, []).append((paths, _settings(_request_doc(it))))
    return False


def _count_retries(tries: list[tuple[_Group, bool]]) -> None:
    """Chains of one request's tries (split after each success): a chain that began with a
    failure is a failed request; retried when it has more tries; recovered when it ends in a
    success."""
    chain: list[tuple[_Group, bool]] = []
    for attempt in tries:
        chain.append(attempt)
        if not attempt[1]:
            _chain_done(chain)
            chain = []
    if chain:
        _chain_done(chain)


def _chain_done(chain: list[tuple[_Group, bool]]) -> None:
    group, first_failed = chain[0]
    if not first_failed:
        return
    group.failed += 1
    if len(chain) > 1:
        group.retried += 1
        if not chain[-1][1]:
            group.recovered += 1


def _shape(answers: list[tuple[dict[str, set[str]], frozenset[str]]]) -> dict[str, Any]:
    n = len(answers)
    types: dict[str, set[str]] = {}
    seen: Counter[str] = Counter()
    for paths, _ in answers:
        for path, kinds in paths.items():
            types.setdefault(path, set()).update(kinds)
            seen[path] += 1
    fields = {
        path: {"types": sorted(types[path]), "share": round(seen[path] / n, 4)}
        for path in sorted(types)
    }
    presence = []
    candidates = sorted(set().union(*(settings for _, settings in answers)))
    for path in sorted(p for p in types if 0 < seen[p] < n):
        for setting in candidates:
            if all((path in paths) == (setting in settings) for paths, settings in answers):
                presence.append({"path": path, "when": setting})
                break
    return {"answers": n, "fields": fields, "presence": presence}


def _document(
    groups: dict[tuple[str, str, str], _Group], sources: list[str], skipped: int
) -> dict[str, Any]:
    total = sum(g.requests for g in groups.values())
    faults: Counter[str] = Counter()
    out_groups = []
    every: dict[str, list[float]] = {"ttfb": [], "total": [], "gaps": []}
    usage: dict[str, list[float]] = {}
    for (host, endpoint, model), g in sorted(groups.items()):
        for outcome, n in g.status.items():
            if failed(outcome) and outcome not in NOT_FAULTS:
                faults[outcome] += n
        every["ttfb"] += g.ttfb
        every["total"] += g.total
        every["gaps"] += g.gaps
        for name, values in g.tokens.items():
            usage.setdefault(name, []).extend(values)
        out_groups.append(
            {
                "host": host,
                "endpoint": endpoint,
                "model": model,
                "requests": g.requests,
                "status": dict(sorted(g.status.items())),
                "error_types": dict(sorted(g.error_types.items())),
                "retries": {
                    "failed": g.failed,
                    "retried": g.retried,
                    "recovered": g.recovered,
                    "success_rate": round(g.recovered / g.failed, 4) if g.failed else None,
                },
                "latency_ms": {"ttfb": summary(g.ttfb), "total": summary(g.total)},
                "stream": {"chunks": summary(g.chunks), "gap_ms": summary(g.gaps)},
                "tokens": {name: summary(g.tokens.get(name, [])) for name in _TOKENS},
                "shape": {kind: _shape(answers) for kind, answers in sorted(g.shapes.items())},
            }
        )
    return {
        "format": FORMAT,
        "sources": sources,
        "requests": total,
        "skipped": skipped,
        "faults": {k: round(n / total, 4) for k, n in sorted(faults.items())} if total else {},
        "latency": {
            "ttfb_ms": quantiles(every["ttfb"]),
            "total_ms": quantiles(every["total"]),
            "gap_ms": quantiles(every["gaps"]),
        },
        "usage": {name: quantiles(usage.get(name, [])) for name in _TOKENS},
        "groups": out_groups,
    }
