"""Printing a drift report as plain text, as markdown for a pull-request comment (a summary
table, then one collapsible section per cassette), or as JSON (documented in README)."""

from __future__ import annotations

import difflib
import json
from typing import Any

from tapeproxy.review.compare import Change
from tapeproxy.review.diff import CassetteDiff, DiffReport, InteractionDiff

__all__ = ["FORMATS", "render", "to_json"]

FORMATS = ("text", "markdown", "json")


def render(report: DiffReport, fmt: str) -> str:
    """The report in one of `FORMATS`."""
    if fmt == "json":
        return json.dumps(to_json(report), indent=2, ensure_ascii=False)
    if fmt == "markdown":
        return _markdown(report)
    return _text(report)


def to_json(report: DiffReport) -> dict[str, Any]:
    """The report as JSON-ready data (the `--format json` document)."""
    return {
        "drift": report.drift,
        "cassettes": [
            {
                "path": c.path,
                "status": c.status,
                "threshold": c.threshold,
                "drift": c.drift,
                "summary": _counts(c),
                "interactions": [_interaction_json(i) for i in c.interactions],
            }
            for c in report.cassettes
        ],
    }


def _counts(c: CassetteDiff) -> dict[str, int]:
    kinds = ("added", "removed", "changed", "drifted")
    return {
        **{k: c.count(k) for k in kinds},
        "timing_only": c.timing_only,
        "unchanged": c.unchanged,
    }


def _interaction_json(i: InteractionDiff) -> dict[str, Any]:
    return {
        "kind": i.kind,
        "key": i.key,
        "occurrence": i.occurrence,
        "method": i.method,
        "url": i.url,
        "drift": i.drift,
        "summary": i.summary,
        "changes": [
            {"field": c.field, "old": c.old, "new": c.new, "ratio": c.ratio, "drift": c.drift}
            for c in i.changes
        ],
    }


def _verdict(report: DiffReport) -> str:
    if not report.cassettes:
        return "No cassette changed."
    drifted = sum(1 for c in report.cassettes if c.drift)
    if drifted:
        return f"Drift beyond threshold in {drifted} of {len(report.cassettes)} changed cassettes."
    return f"{len(report.cassettes)} changed cassettes, no drift beyond threshold."


def _text(report: DiffReport) -> str:
    lines = [_verdict(report)]
    for c in report.cassettes:
        counts = _counts(c)
        listed = ", ".join(f"{v} {k.replace('_', '-')}" for k, v in counts.items() if v)
        mark = "DRIFT" if c.drift else "ok"
        lines += ["", f"{c.path} [{c.status}, threshold {c.threshold}] {mark}: {listed}"]
        for i in c.interactions:
            lines.append(f"  {_headline(i)}")
            lines.extend(f"      {line}" for line in _change_lines(i.changes))
    return "\n".join(lines) + "\n"


def _headline(i: InteractionDiff) -> str:
    flag = " DRIFT" if i.drift else ""
    repeat = f" #{i.occurrence + 1}" if i.occurrence else ""
    tail = f": {i.summary}" if i.summary else ""
    return f"{i.kind}{flag}: {i.method} {i.url}{repeat}{tail}"


def _change_lines(changes: tuple[Change, ...], indent: str = "  ") -> list[str]:
    out = []
    for c in changes:
        ratio = f" (similarity {c.ratio:.2f})" if c.ratio is not None else ""
        flag = " DRIFT" if c.drift else ""
        if c.field in ("text", "body"):
            out.append(f"{c.field}{ratio}{flag}:")
            out.extend(f"{indent}{line}" for line in _text_diff(str(c.old), str(c.new)))
        else:
            out.append(f"{c.field}{flag}: {_short(c.old)} -> {_short(c.new)}")
    return out


def _text_diff(old: str, new: str) -> list[str]:
    diff = difflib.unified_diff(old.splitlines(), new.splitlines(), "old", "new", lineterm="", n=1)
    return list(diff)[2:] or [f"- {old!r}", f"+ {new!r}"]


def _short(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _markdown(report: DiffReport) -> str:
    lines = ["## tapeproxy cassette diff", "", _verdict(report), ""]
    if report.cassettes:
        lines += [
            "| cassette | status | drift | added | removed | changed | drifted | timing-only |",
            "|---|---|---|---:|---:|---:|---:|---:|",
        ]
        for c in report.cassettes:
            n = _counts(c)
            lines.append(
                f"| `{c.path}` | {c.status} | {'❌ yes' if c.drift else '✅ no'} | {n['added']} "
                f"| {n['removed']} | {n['changed']} | {n['drifted']} | {n['timing_only']} |"
            )
    for c in report.cassettes:
        if not c.interactions:
            continue
        lines += [
            "",
            "<details>",
            f"<summary><code>{_html(c.path)}</code> (threshold {c.threshold})</summary>",
            "",
        ]
        for i in c.interactions:
            lines.append(f"- **{_html(_headline(i))}**")
            if i.changes:
                lines += ["", "  ````diff"]
                lines.extend(f"  {line}" for line in _change_lines(i.changes, indent=""))
                lines.append("  ````")
        lines += ["", "</details>"]
    return "\n".join(lines) + "\n"


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
