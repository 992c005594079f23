"""Streamed text put back together, in whatever file shape holds the stream.

A provider streams an answer as events that each carry a few characters (``delta.content``,
``delta.text``, ``output_text.delta``, a Gemini part's ``text``...), so a secret in the answer
is split across events and no single string holds it. Other tools keep such a stream in many
shapes: one SSE text (vcrpy, HAR ``content.text``, WireMock), base64 of it (Polly), a list of
raw event strings under a key of the tool's choosing, NDJSON lines of events or of wrapped
event text. This module finds every such sequence of events in a parsed document, without
knowing any provider's field names: the strings found at the same place of successive events
are joined in order, and each joined text is scanned as one string.
"""

from __future__ import annotations

import binascii
import re
from typing import Any

from tapeproxy.cassettes.store import read_json
from tapeproxy.redaction.quickscan import has_standard_run
from tapeproxy.redaction.scanner import printable_text

__all__ = ["joined_texts", "may_hold_events"]

_MAX_DEPTH = 5
_OPENS_OBJECT = re.compile(r"\s*\{")
_MAX_DECODED = 32 << 20
_SSE_DATA = re.compile(r"^data:[ ]?(.*)$", re.MULTILINE)
_BASE64 = re.compile(r"[A-Za-z0-9+/]{32,}={0,2}")


def joined_texts(doc: Any, path: str = "") -> list[tuple[str, str, int]]:
    """``(path, joined text, pieces)`` for each field that successive events of a sequence
    carry (in a list, an SSE text or NDJSON text anywhere in `doc`), when 2 or more hold it."""
    out: list[tuple[str, str, int]] = []
    _walk(doc, path, 0, out)
    return out


_OBJECTS_IN_ROW = re.compile(r"\}(?:\s*,|[ \t\r]*\n)\s*\{")
_LINES_OF_OBJECTS = re.compile(r"\}[ \t\r]*\n\s*\{")
_STRING_OPENS = re.compile(r'"\s*[\[{]')
"""In a JSON text, what `joined_texts` can find a sequence of events in: two objects in a
row (a list of them, or NDJSON lines), an SSE line (``data:``), a string that holds JSON or
NDJSON, or else a long base64 run (`has_standard_run`). Looked for one at a time: each regex
starts with a literal that `re` finds fast, where their alternation tried every position
(7.7 against 3.1 us on a 1.5 KB answer)."""


def may_hold_events(text: str, object_lists: bool = True) -> bool:
    """False only when `joined_texts(text)` is sure to find nothing (a JSON document with
    no list of objects and no string that holds events, JSON or base64): the quick path
    for a plain answer.

    Args:
        object_lists: False: what `joined_texts` would find in lists of objects does not
            count (a request's messages, tools and inputs, which its client wrote whole).
    """
    if len(text) < 12:
        return False
    if text.lstrip()[:1] not in ("{", "["):
        return True  # SSE, NDJSON or base64 text: looked into as it is
    return (
        "data:" in text
        # objects in a row, in a list or on lines (NDJSON); a request's lines only
        or (_OBJECTS_IN_ROW if object_lists else _LINES_OF_OBJECTS).search(text) is not None
        or _STRING_OPENS.search(text) is not None
        or has_standard_run(text, 32)
    )


def _walk(value: Any, path: str, depth: int, out: list[tuple[str, str, int]]) -> None:
    # Appends to `out` rather than yielding: a document is walked node by node, and a chain
    # of nested generators costs at every level of it.
    if depth > _MAX_DEPTH:
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if isinstance(v, (dict, list)) or (isinstance(v, str) and len(v) >= 12):
                _walk(v, f"{path}.{k}", depth, out)
    elif isinstance(value, list):
        leaves = [_leaves(v, depth) for v in value] if _is_event_list(value) else None
        if leaves is not None:
            out += _joined(path, leaves)
        for i, v in enumerate(value):
            if leaves is not None and not any(">" in rel or "[" in rel for rel, _ in leaves[i]):
                continue  # plain strings only, each looked into by `_leaves`: nothing to walk
            if isinstance(v, (dict, list)) or (isinstance(v, str) and len(v) >= 12):
                _walk(v, f"{path}[{i}]", depth, out)
    elif isinstance(value, str) and len(value) >= 12:
        events = _events(value)
        if events is not None:
            out += _joined(path, [_leaves(e, depth + 1) for e in events])
            for e in events:
                if not isinstance(e, str):
                    _walk(e, path, depth + 1, out)
            return
        decoded = _decoded(value)
        if decoded is not None:
            _walk(decoded, f"{path}<decoded>", depth + 1, out)


_MAX_LEAVES = 64


def _is_event_list(items: list[Any]) -> bool:
    """Whether a list can be a stream's events: 2 or more, each an event's text (SSE or
    JSON) or a small object. Lists of lists (header pairs, chunk sizes) and of large objects
    (a cassette's interactions) are not."""
    if len(items) < 2:
        return False
    for item in items:
        if isinstance(item, str):
            if _events(item) is None and not isinstance(_decoded(item), dict):
                return False
        elif not isinstance(item, dict) or _count_leaves(item, _MAX_LEAVES) > _MAX_LEAVES:
            return False
    return True


def _count_leaves(value: Any, limit: int) -> int:
    """How many leaves `value` has, counting no further than just past `limit`."""
    if isinstance(value, dict):
        items: Any = value.values()
    elif isinstance(value, list):
        items = value
    else:
        return 1
    n = 0
    for v in items:
        n += _count_leaves(v, limit - n)
        if n > limit:
            break
    return n


def _joined(path: str, elements: list[list[tuple[str, str]]]) -> list[tuple[str, str, int]]:
    """Join, per relative path, the strings the elements hold there (in order)."""
    if len(elements) < 2:
        return []
    by_path: dict[str, list[str]] = {}
    for leaves in elements:
        for rel, text in leaves:
            by_path.setdefault(rel, []).append(text)
    return [
        (f"{path}{rel}", "".join(pieces), len(pieces))
        for rel, pieces in by_path.items()
        if len(pieces) >= 2
    ]


def _leaves(value: Any, depth: int, rel: str = "") -> list[tuple[str, str]]:
    """Every string under `value` with its path relative to it, strings that hold JSON or
    events opened up (an element may be a raw SSE event or a wrapper around one)."""
    out: list[tuple[str, str]] = []
    if depth > _MAX_DEPTH:
        return out
    if isinstance(value, dict):
        for k, v in value.items():
            out += _leaves(v, depth, f"{rel}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _leaves(v, depth, f"{rel}[{i}]")
    elif isinstance(value, str):
        events = _events(value) if len(value) >= 6 else None
        if events is None:
            decoded = _decoded(value) if len(value) >= 6 else None
            if decoded is None:
                out.append((rel, value))
            else:
                out += _leaves(decoded, depth + 1, f"{rel}>")
        else:
            for e in events:  # one raw event, or a few, in one element: all go in order
                out += _leaves(e, depth + 1, f"{rel}>")
    return out


def _events(text: str) -> list[Any] | None:
    """The events of an SSE text (their data, JSON parsed) or of NDJSON text; None if `text`
    is neither."""
    if text.find("data:", 0, 200) >= 0 and _SSE_DATA.search(text):
        out: list[Any] = []
        for block in re.split(r"\r?\n\r?\n", text):
            data = "\n".join(m.group(1) for m in _SSE_DATA.finditer(block))
            if data:
                out.append(_parsed(data))
        return out or None
    if "\n" in text and "\n" in text.strip() and _OPENS_OBJECT.match(text):
        lines = [line for line in text.splitlines() if line.strip()]
        if len(lines) < 2 or not isinstance(first := _parsed(lines[0]), dict):
            return None  # (pretty-printed JSON: its first line is no object)
        parsed = [first, *(_parsed(line) for line in lines[1:])]
        if all(isinstance(p, dict) for p in parsed):
            return parsed
    return None


def _parsed(text: str) -> Any:
    s = text.strip()
    if s[:1] in ("{", "["):
        try:
            return read_json(s)
        except ValueError:
            pass
    return text


def _decoded(text: str) -> Any | None:
    """What a string holds when it is JSON, or base64 of text; None when neither."""
    # (most strings are prose: no copy of them is made to learn that)
    s = text.strip() if text[:1].isspace() or text[-1:].isspace() else text
    if s[:1] in ("{", "["):
        parsed = _parsed(s)
        return parsed if isinstance(parsed, (dict, list)) else None
    if len(s) > _MAX_DECODED or not _BASE64.fullmatch(s):
        return None
    try:  # (base64.b64decode(validate=True) is this behind wrappers that took longer)
        data = binascii.a2b_base64(s + "=" * (-len(s) % 4), strict_mode=True)
    except binascii.Error:
        return None
    return printable_text(data)
