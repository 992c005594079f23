"""Statistics over cassettes: traffic by host, endpoint, model and status; error rates;
latency; token usage as reported; and the cost a live run would have had."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from importlib.metadata import version
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tapeproxy.cassettes.age import age_days
from tapeproxy.cassettes.model import Cassette, Interaction, body_bytes
from tapeproxy.profilefile import percentile
from tapeproxy.providers.llm import Usage
from tapeproxy.providers.pricing import price
from tapeproxy.providers.read import error_type, extract

__all__ = ["TOKEN_FIELDS", "Stats", "collect", "latency_summary", "requested_model"]

TOKEN_FIELDS = ("input", "output", "cached_input", "reasoning", "cache_write")
_GEMINI_MODEL = re.compile(r"/models/([^/:]+)")


@dataclass
class Stats:
    """Counters filled by `collect`; `to_json` gives the documented `--format json` document."""

    cassettes: list[str] = field(default_factory=list)
    interactions: int = 0
    by_host: Counter[str] = field(default_factory=Counter)
    by_endpoint: Counter[str] = field(default_factory=Counter)
    by_model: Counter[str] = field(default_factory=Counter)
    by_status: Counter[str] = field(default_factory=Counter)
    errors_by_status: Counter[str] = field(default_factory=Counter)
    errors_by_type: Counter[str] = field(default_factory=Counter)
    errors: int = 0
    ttfb_ms: list[float] = field(default_factory=list)
    total_ms: list[float] = field(default_factory=list)
    tokens: Counter[str] = field(default_factory=Counter)
    tokens_by_model: dict[str, Counter[str]] = field(default_factory=dict)
    cost_by_model: dict[str, Decimal] = field(default_factory=dict)
    unpriced_models: set[str] = field(default_factory=set)
    by_source: Counter[str] = field(default_factory=Counter)
    websocket: Counter[str] = field(default_factory=Counter)
    """WebSocket sessions: `sessions`, `client_messages`, `server_messages`, `audio_bytes`."""
    max_age_days: float | None = None
    stale: int = 0
    stale_pinned: dict[tuple[str, str], float] = field(default_factory=dict)
    """(cassette, model) -> the oldest age in days, for date-pinned models past the limit."""

    def to_json(self) -> dict[str, Any]:
        """The statistics as JSON-ready data."""
        rate = self.errors / self.interactions if self.interactions else 0.0
        return {
            "cassettes": self.cassettes,
            "interactions": self.interactions,
            "by_source": dict(sorted(self.by_source.items())),
            "by_host": dict(sorted(self.by_host.items())),
            "by_endpoint": dict(sorted(self.by_endpoint.items())),
            "by_model": dict(sorted(self.by_model.items())),
            "by_status": dict(sorted(self.by_status.items())),
            "errors": {
                "count": self.errors,
                "rate": round(rate, 4),
                "by_status": dict(sorted(self.errors_by_status.items())),
                "by_type": dict(sorted(self.errors_by_type.items())),
            },
            "latency_ms": {
                "ttfb": latency_summary(self.ttfb_ms),
                "total": latency_summary(self.total_ms),
            },
            "tokens": {name: self.tokens[name] for name in TOKEN_FIELDS},
            "tokens_by_model": {
                model: {name: counts[name] for name in TOKEN_FIELDS}
                for model, counts in sorted(self.tokens_by_model.items())
            },
            "websocket": {
                name: self.websocket[name]
                for name in ("sessions", "client_messages", "server_messages", "audio_bytes")
            },
            "stale": {
                "max_age_days": self.max_age_days,
                "interactions": self.stale,
                "date_pinned": [
                    {"cassette": c, "model": m, "days": round(d, 1)}
                    for (c, m), d in sorted(self.stale_pinned.items())
                ],
            },
            "cost": {
                "label": "cost a live run would have had",
                "currency": "USD",
                "prices": f"genai-prices {version('genai-prices')} list prices",
                "total": float(sum(self.cost_by_model.values(), Decimal(0))),
                "by_model": {m: float(c) for m, c in sorted(self.cost_by_model.items())},
                "unpriced_models": sorted(self.unpriced_models),
            },
        }


def latency_summary(values: Sequence[float]) -> dict[str, float | int | None]:
    """count, min, mean, p50, p95 and max (linear interpolation between ranks), in ms."""
    if not values:
        return {"count": 0, "min": None, "mean": None, "p50": None, "p95": None, "max": None}
    ordered = sorted(values)
    return {
        "count": len(ordered),
        "min": round(ordered[0], 1),
        "mean": round(sum(ordered) / len(ordered), 1),
        "p50": round(percentile(ordered, 0.50), 1),
        "p95": round(percentile(ordered, 0.95), 1),
        "max": round(ordered[-1], 1),
    }


_PINNED = re.compile(r"[-@](\d{4}-\d{2}-\d{2}|\d{8})$")
"""A model name pinned to a dated snapshot: gpt-4o-2024-08-06, claude-3-5-sonnet-20241022,
claude-3-5-sonnet-v2@20241022. Such snapshots are retired on a schedule."""


def collect(
    cassettes: Iterable[tuple[str, Cassette]],
    stubbed: Iterable[str] = (),
    max_age_s: float | None = None,
) -> Stats:
    """Statistics over named cassettes. Latency counts only interactions with a recorded
    timing (a total above zero); imported vcrpy cassettes carry none. The cassettes named in
    `stubbed` are stubs files seen as cassettes: their answers count as `stubbed`, the
    others' as `recorded`, or in a journal by their source: `cassette`, `stub`, `fault`,
    `live`, `miss` (`by_source`)."""
    stats = Stats(max_age_days=max_age_s / 86400.0 if max_age_s is not None else None)
    stubs = set(stubbed)
    for name, cassette in cassettes:
        stats.cassettes.append(name)
        plain = "stubbed" if name in stubs else "recorded"
        for item in cassette.interactions:
            _add(stats, item)
            stats.by_source[item.source or plain] += 1  # a journal says who answered
            if max_age_s is not None and name not in stubs:
                _age(stats, name, item, cassette.meta.created, max_age_s)
    return stats


def _age(stats: Stats, name: str, item: Interaction, created: str, max_age_s: float) -> None:
    days = age_days(item.recorded_at, created)
    if days is None or days * 86400.0 <= max_age_s:
        return
    stats.stale += 1
    model = requested_model(item) or ""
    if _PINNED.search(model):
        where = (name, model)
        stats.stale_pinned[where] = max(days, stats.stale_pinned.get(where, 0.0))


def _add(stats: Stats, item: Interaction) -> None:
    url = urlsplit(item.request.url)
    stats.interactions += 1
    stats.by_host[url.netloc] += 1
    stats.by_endpoint[f"{item.request.method} {url.netloc}{url.path}"] += 1
    if item.timing.total_ms > 0:
        stats.ttfb_ms.append(item.timing.ttfb_ms)
        stats.total_ms.append(item.timing.total_ms)
    body = body_bytes(item.response.body) if item.response else b""
    llm = extract(body) if item.response and item.response.status < 400 else None
    model = (llm.model if llm else None) or requested_model(item)
    stats.by_model[model or "(none)"] += 1
    status = str(item.response.status) if item.response else "error"
    stats.by_status[status] += 1
    kind = error_type(body) if item.response else "transport"
    if item.error is not None:
        kind = kind or "transport"  # a status came, then the exchange was cut short
    if status == "error" or int(status) >= 400 or kind is not None:
        stats.errors += 1
        stats.errors_by_status[status] += 1
        stats.errors_by_type[kind or "(unknown)"] += 1
    if llm is not None and llm.usage is not None:
        _add_usage(stats, model, llm.usage, item.request.url)
    if item.response is not None and item.response.messages is not None:
        _add_session(stats, item, model)


def _add_session(stats: Stats, item: Interaction, model: str | None) -> None:
    """A WebSocket session's messages: counts by direction, audio bytes (binary frames, and
    the base64 `delta` of audio events), and the usage each `response.done` reports."""
    assert item.response is not None and item.response.messages is not None
    ws = stats.websocket
    ws["sessions"] += 1
    for _, who, kind, body in item.response.messages:
        ws[f"{who}_messages"] += 1
        if kind == "binary":
            ws["audio_bytes"] += len(body_bytes(body))
            continue
        try:
            event = json.loads(body.text or "")
        except ValueError:
            continue
        if not isinstance(event, dict):
            continue
        kind_of = str(event.get("type", ""))
        if (
            "audio" in kind_of
            and kind_of.endswith(".delta")
            and isinstance(event.get("delta"), str)
        ):
            ws["audio_bytes"] += len(event["delta"]) * 3 // 4
        usage = event.get("response", {}).get("usage") if kind_of == "response.done" else None
        if isinstance(usage, dict):
            found = Usage(
                input_tokens=usage.get("input_tokens"), output_tokens=usage.get("output_tokens")
            )
            _add_usage(stats, model, found, item.request.url)


def _add_usage(stats: Stats, name: str | None, usage: Usage, url: str) -> None:
    model = name or "(unknown)"
    counts = {
        "input": usage.input_tokens or 0,
        "output": usage.output_tokens or 0,
        "cached_input": usage.cached_input_tokens or 0,
        "reasoning": usage.reasoning_tokens or 0,
        "cache_write": usage.cache_write_tokens or 0,
    }
    stats.tokens.update(counts)
    stats.tokens_by_model.setdefault(model, Counter()).update(counts)
    cost = price(usage, name, url) if name else None
    if cost is None:
        stats.unpriced_models.add(model)
    else:
        stats.cost_by_model[model] = stats.cost_by_model.get(model, Decimal(0)) + cost


def requested_model(item: Interaction) -> str | None:
    """The model a request names: in a Gemini URL path, else the JSON body's `model`."""
    url = urlsplit(item.request.url)
    found = _GEMINI_MODEL.search(url.path)
    if found:
        return found.group(1)
    named = parse_qs(url.query).get("model")  # WebSocket APIs: wss://.../realtime?model=...
    if named and named[0]:
        return named[0]
    try:
        data = json.loads(body_bytes(item.request.body))
    except ValueError:
        return None
    model = data.get("model") if isinstance(data, dict) else None
    return model if isinstance(model, str) and model else None
