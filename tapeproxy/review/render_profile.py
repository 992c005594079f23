"""Printing a profile (text, JSON, TOML) and reading one back (JSON or TOML).

The TOML form holds the same document as the JSON one; its `[faults]`, `[latency]` and
`[usage]` tables are what `--faults @FILE`, `--latency @FILE` and `--profile FILE` read.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["FORMATS", "render", "to_toml"]

FORMATS = ("text", "json", "toml")

_BARE = re.compile(r"^[A-Za-z0-9_-]+$")


def render(doc: dict[str, Any], fmt: str) -> str:
    """The profile in one of `FORMATS`."""
    if fmt == "json":
        return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    if fmt == "toml":
        return to_toml(doc)
    return _text(doc)


def _text(doc: dict[str, Any]) -> str:
    lines = [f"{doc['requests']} requests in {len(doc['sources'])} file(s)"]
    if doc["skipped"]:
        lines.append(f"  skipped: {doc['skipped']} (misses and tapeproxy errors in a journal)")
    if doc["faults"]:
        rates = ", ".join(f"{k} {v:.2%}" for k, v in doc["faults"].items())
        lines.append(f"faults (per request, as --faults @FILE draws them): {rates}")
    for g in doc["groups"]:
        lines += ["", f"{g['endpoint']} on {g['host']}, model {g['model']}: {g['requests']}"]
        status = ", ".join(f"{k} {n}" for k, n in g["status"].items())
        lines.append(f"  status: {status}")
        if g["error_types"]:
            lines.append(
                "  error types: " + ", ".join(f"{k} {n}" for k, n in g["error_types"].items())
            )
        r = g["retries"]
        if r["failed"]:
            rate = f"{r['success_rate']:.0%}" if r.get("success_rate") is not None else "-"
            lines.append(
                f"  failed requests: {r['failed']}, retried {r['retried']}, recovered "
                f"{r['recovered']} (retry success {rate})"
            )
        lines.append("  latency ms      count      min     mean      p50      p95      max")
        for name in ("ttfb", "total"):
            lines.append(_row(f"  {name}", g["latency_ms"][name]))
        if g["stream"]["chunks"]["count"]:
            lines.append(_row("  chunks/stream", g["stream"]["chunks"]))
            lines.append(_row("  chunk gap ms", g["stream"]["gap_ms"]))
        for name, row in g["tokens"].items():
            if row["count"]:
                lines.append(_row(f"  {name.split('_')[0]} tokens", row))
        for kind, shape in g["shape"].items():
            fields = shape["fields"]
            sometimes = [p for p, f in fields.items() if f["share"] < 1]
            lines.append(
                f"  shape ({kind}, {shape['answers']} answers): {len(fields)} paths, "
                f"{len(sometimes)} not always present"
            )
            for rule in shape["presence"][:10]:
                lines.append(f"    {rule['path']} appears when {rule['when']} is set")
    return "\n".join(lines) + "\n"


def _row(name: str, row: dict[str, Any]) -> str:
    if not row["count"]:
        return f"{name:<16}{0:>6}"
    cells = " ".join(f"{row[k]:>8.1f}" for k in ("min", "mean", "p50", "p95", "max"))
    return f"{name:<16}{row['count']:>6} {cells}"


def _key(name: str) -> str:
    return name if _BARE.match(name) else json.dumps(name, ensure_ascii=False)


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    # TOML has no null: a key whose value is None is left out (readers take it as absent)
    return "{" + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items() if x is not None) + "}"


def to_toml(doc: dict[str, Any]) -> str:
    """The profile as TOML: scalars first, then `[faults]`, `[latency]`, `[usage]` and one
    `[[groups]]` table per group (nested tables inline)."""
    lines = [
        "# tapeproxy profile: --faults @FILE reads [faults], --latency @FILE [latency],",
        "# --profile FILE all of it.",
    ]
    tables = []
    for k, v in doc.items():
        if isinstance(v, dict):
            tables.append((k, v))
        elif v is not None and not (isinstance(v, list) and v and isinstance(v[0], dict)):
            lines.append(f"{_key(k)} = {_value(v)}")
    for name, table in tables:
        lines += ["", f"[{_key(name)}]"]
        lines += [f"{_key(k)} = {_value(v)}" for k, v in table.items() if v is not None]
    for group in doc.get("groups", []):
        lines += ["", "[[groups]]"]
        lines += [f"{_key(k)} = {_value(v)}" for k, v in group.items() if v is not None]
    return "\n".join(lines) + "\n"
