"""Printing cassette statistics as readable text or as JSON (documented in README)."""

from __future__ import annotations

import json
from typing import Any

from tapeproxy.review.stats import Stats

__all__ = ["FORMATS", "render"]

FORMATS = ("text", "json")


def render(stats: Stats, fmt: str) -> str:
    """The statistics in one of `FORMATS`."""
    data = stats.to_json()
    if fmt == "json":
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    errors = data["errors"]
    lines = [
        f"{data['interactions']} interactions in {len(data['cassettes'])} cassettes",
        *_table("by source", data["by_source"]),
        *_table("by host", data["by_host"]),
        *_table("by endpoint", data["by_endpoint"]),
        *_table("by model", data["by_model"]),
        *_table("by status", data["by_status"]),
        "",
        f"errors: {errors['count']} ({errors['rate']:.1%})",
        *_table("errors by status", errors["by_status"]),
        *_table("errors by type", errors["by_type"]),
        "",
        "latency (ms)      count      min     mean      p50      p95      max",
        _latency("ttfb", data["latency_ms"]["ttfb"]),
        _latency("total", data["latency_ms"]["total"]),
        "",
        "tokens: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in data["tokens"].items()),
        *_cost(data["cost"]),
        *_websocket(data["websocket"]),
        *_stale(data["stale"]),
    ]
    return "\n".join(lines) + "\n"


def _table(title: str, counts: dict[str, int]) -> list[str]:
    if not counts:
        return []
    width = max(len(k) for k in counts)
    return ["", f"{title}:", *(f"  {k:<{width}}  {v:>6}" for k, v in counts.items())]


def _latency(name: str, row: dict[str, Any]) -> str:
    cells = [f"{row[k]:>8.1f}" if row[k] is not None else f"{'-':>8}" for k in _LAT]
    return f"  {name:<14}{row['count']:>6} " + " ".join(cells)


_LAT = ("min", "mean", "p50", "p95", "max")


def _cost(cost: dict[str, Any]) -> list[str]:
    lines = ["", f"{cost['label']}: ${cost['total']:.6f} ({cost['prices']})"]
    lines += [f"  {model}: ${value:.6f}" for model, value in cost["by_model"].items()]
    if cost["unpriced_models"]:
        lines.append(
            "  not priced (unknown to genai-prices): " + ", ".join(cost["unpriced_models"])
        )
    return lines


def _stale(stale: dict[str, Any]) -> list[str]:
    if stale["max_age_days"] is None:
        return []
    lines = ["", f"older than {stale['max_age_days']:g} days: {stale['interactions']} interactions"]
    for row in stale["date_pinned"]:
        lines.append(
            f"  date-pinned model {row['model']} in {row['cassette']}: recorded {row['days']:.0f} "
            "days ago (dated snapshots are retired: re-record)"
        )
    return lines


def _websocket(ws: dict[str, int]) -> list[str]:
    if not ws["sessions"]:
        return []
    return [
        "",
        f"websocket sessions: {ws['sessions']}, messages: {ws['client_messages']} from clients, "
        f"{ws['server_messages']} from servers; audio: {ws['audio_bytes']} bytes",
    ]
