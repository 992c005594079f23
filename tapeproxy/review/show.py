"""`tapeproxy show`: a cassette as stable, readable text, fit to be a git textconv driver.

The text depends only on the cassette's content (no clock, no locale, no terminal width), so
the same cassette always gives the same text and `git diff` through it shows what changed:
request lines, the headers that take part in the key, JSON bodies pretty-printed with sorted
keys (lists of numbers such as embeddings kept on one line), streamed bodies one event per
line, binary bodies summarised by size and sha256, timings rounded to whole milliseconds.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

from tapeproxy.cassettes.framing import StreamKind, media_type, split_events, stream_kind
from tapeproxy.cassettes.model import Body, Cassette, Header, Interaction, Response, body_bytes

__all__ = ["render", "show_file"]

_INDENT = "    "

# Control characters other than tab and newline, shown as escapes: a cassette from an untrusted
# pull request must not move the reviewer's cursor, recolour the terminal or fake lines.
_CONTROLS = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0)) if c not in (9, 10)}


def show_file(path: str | os.PathLike[str]) -> str:
    """The readable text of the cassette file at `path` (or of a stubs file, each rule as the
    exchange it stands for).

    Raises:
        CassetteError: the file is missing or is not a valid cassette or stubs file.
    """
    from tapeproxy.review.stubview import load_any

    return render(load_any(path))


def render(cassette: Cassette) -> str:
    """The readable text of a cassette; equal cassettes always give equal text."""
    match = cassette.meta.match
    lines = [
        f"{cassette.format} cassette, {len(cassette.interactions)} interaction(s)",
        f"created {cassette.meta.created} by tapeproxy {cassette.meta.tapeproxy}",
        f"match headers: {', '.join(match.headers) or '-'}",
        f"ignored query parameters: {', '.join(match.ignore_query) or '-'}",
        f"ignored JSON paths: {', '.join(match.ignore_json_paths) or '-'}",
    ]
    matched = {h.lower() for h in match.headers}
    total = len(cassette.interactions)
    for i, interaction in enumerate(cassette.interactions, 1):
        lines.append("")
        lines.extend(_interaction(interaction, f"[{i}/{total}]", matched))
    text = "\n".join(lines).translate(_CONTROLS) + "\n"
    # JSON may hold lone surrogates ("\ud800"); keep them visible as escapes, never crash.
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _interaction(it: Interaction, label: str, matched: set[str]) -> list[str]:
    req = it.request
    lines = [f"=== {label} {req.method} {req.url}", f"key {it.key}"]
    shown = [(n, v) for n, v in req.headers if n.lower() in matched]
    lines.extend(f"> {n.lower()}: {v}" for n, v in shown)
    if len(req.headers) > len(shown):
        lines.append(f"> ({len(req.headers) - len(shown)} other header(s) not part of the key)")
    lines.extend(_body("request body", req.body, req.headers, req.url))
    resp = it.response
    if resp is not None:
        lines.append(f"< {resp.http_version} {resp.status} {resp.reason}".rstrip())
        lines.extend(f"< {n}: {v}" for n, v in resp.headers)
        lines.extend(_body("response body", resp.body, resp.headers, req.url))
        lines.extend(_messages(resp))
    timing = f"timing: ttfb {_ms(it.timing.ttfb_ms)}, total {_ms(it.timing.total_ms)}"
    if resp is not None and resp.chunks is not None:
        last = max((offset for offset, _ in resp.chunks), default=0.0)
        timing += f", {len(resp.chunks)} chunk(s), last at {_ms(last)}"
    lines.append(timing)
    if it.error is not None:
        who = f" (ended by the {it.error.by})" if it.error.by else ""
        lines.append(f"error after {_ms(it.error.after_ms)}{who}: {it.error.message}")
    return lines


def _messages(resp: Response) -> list[str]:
    """A WebSocket session's messages, one a line: offset, direction, and the text (binary
    ones by size)."""
    if resp.messages is None:
        return []
    lines = [f"websocket: {len(resp.messages)} message(s)"]
    for at, who, kind, body in resp.messages:
        arrow = ">" if who == "client" else "<"
        shown = (body.text or "") if kind == "text" else f"[binary, {len(body_bytes(body))} bytes]"
        lines.append(f"  {_ms(at):>8} {arrow} {shown}")
    if resp.close is not None:
        by = f" by the {resp.close.by}" if resp.close.by else ""
        lines.append(f"  closed{by}: {resp.close.code} {resp.close.reason}".rstrip())
    return lines


def _ms(value: float) -> str:
    return f"{round(value)} ms"


def _body(title: str, body: Body | None, headers: tuple[Header, ...], url: str) -> list[str]:
    data = body_bytes(body)
    if not data:
        return [f"{title}: empty"]
    mtype = media_type(headers) or "no content-type"
    kind = stream_kind(headers, url, data)
    if (body is not None and body.text is None) or kind == "eventstream":
        digest = hashlib.sha256(data).hexdigest()[:16]
        frames = f", {len(split_events(kind, data))} frame(s)" if kind == "eventstream" else ""
        return [f"{title}: {mtype}, {len(data)} bytes of binary data{frames}, sha256 {digest}"]
    text = data.decode("utf-8")
    if kind is not None and kind != "json-array":
        events = split_events(kind, data)
        head = f"{title}: {mtype}, {len(data)} bytes, {len(events)} event(s)"
        if "\r\n" in text:
            head += ", CRLF line ends"
        return [head, *(_INDENT + _one_line(kind, e.decode("utf-8")) for e in events)]
    pretty = _pretty_json(text)
    if pretty is not None:
        return [f"{title}: {mtype}, {len(data)} bytes, JSON", *_indented(pretty)]
    return [f"{title}: {mtype}, {len(data)} bytes, text", *_indented(text)]


def _one_line(kind: StreamKind, event: str) -> str:
    parts = [line.rstrip("\r") for line in event.replace("\r\n", "\n").split("\n")]
    parts = [p for p in parts if p] if kind == "sse" else parts[:1]
    return " | ".join(parts) if parts else "(blank)"


def _indented(text: str) -> list[str]:
    return [(_INDENT + line.rstrip("\r")).rstrip() for line in text.split("\n")]


def _pretty_json(text: str) -> str | None:
    if text.lstrip()[:1] not in ("{", "["):
        return None
    try:
        return _pretty(json.loads(text), 0)
    except (ValueError, RecursionError):
        return None


def _pretty(value: Any, level: int) -> str:
    pad = "  " * (level + 1)
    end = "  " * level
    if isinstance(value, dict) and value:
        items = [f"{pad}{_scalar(k)}: {_pretty(value[k], level + 1)}" for k in sorted(value)]
        return "{\n" + ",\n".join(items) + "\n" + end + "}"
    if isinstance(value, list) and value and not all(_is_number(x) for x in value):
        items = [pad + _pretty(x, level + 1) for x in value]
        return "[\n" + ",\n".join(items) + "\n" + end + "]"
    return _scalar(value)


def _scalar(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
