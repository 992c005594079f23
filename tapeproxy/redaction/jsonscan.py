"""A tolerant JSON tokenizer that yields every string literal with its raw span and JSON path.

Redaction edits a body in place (only the literals that hold a secret change, byte for byte
the rest stays), and findings name a JSON path; both need the spans that `json.loads` hides.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass

from tapeproxy.cassettes.store import read_json

__all__ = ["Literal", "decode_literal", "literals", "parses_as_json"]

# A string literal as "unrolled" runs of plain characters between escapes: each run is one
# character-class loop in `re`, where an alternation per character costs far more.
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[{}\[\],:]|[^{}\[\],:"\s]+|\s+', re.DOTALL)


@dataclass(frozen=True)
class Literal:
    """A string literal: raw span (quotes included), JSON path, field name, key or value."""

    start: int
    end: int
    path: str
    name: str
    is_key: bool


def parses_as_json(text: str) -> bool:
    """Whether `text` is one JSON object or array (cheap check on the first character first)."""
    head = text.lstrip()[:1]
    if head not in ("{", "["):
        return False
    try:
        read_json(text)
    except ValueError:
        return False
    return True


def decode_literal(raw: str) -> str:
    """The string a raw literal (with its quotes) stands for."""
    if "\\" not in raw:
        return raw[1:-1]
    value: str = json.loads(raw)
    return value


def literals(text: str) -> Iterator[Literal]:
    """Every string literal of a JSON text, in order, with the path of the value it belongs to.

    Paths look like ``.messages[0].content``; a key literal carries the path of its object.
    """
    stack: list[list[object]] = []  # [kind, key-or-index, expecting_key, pair name]
    for m in _TOKEN.finditer(text):
        tok = m.group()
        c = tok[0]
        if c == "{":
            stack.append(["{", "", True, ""])
        elif c == "[":
            stack.append(["[", 0, False, ""])
        elif c in "}]":
            if stack:
                stack.pop()
        elif c == ",":
            if stack:
                top = stack[-1]
                if top[0] == "[":
                    top[1] = int(str(top[1])) + 1
                else:
                    top[2] = True
        elif c == ":":
            if stack:
                stack[-1][2] = False
        elif c == '"':
            yield from _literal(stack, m.start(), m.end(), tok)


def _literal(stack: list[list[object]], start: int, end: int, tok: str) -> Iterator[Literal]:
    if stack and stack[-1][0] == "{" and stack[-1][2]:
        name = decode_literal(tok)
        stack[-1][1] = name
        yield Literal(start, end, _path(stack[:-1]) if len(stack) > 1 else "", name, True)
        return
    inner = outer = None  # the innermost object holding the literal, and the one around it
    for frame in reversed(stack):
        if frame[0] == "{":
            if inner is not None:
                outer = frame
                break
            inner = frame
    name = "" if inner is None else str(inner[1])
    if inner is not None and name.lower() in _PAIR_NAMES:
        inner[3] = decode_literal(tok)
    elif inner is not None and name.lower() in _PAIR_VALUES and inner[3]:
        name = str(inner[3])  # {"name": "api-key", "value": ...}: HAR, Postman, k8s env
    elif outer is not None and name in _MATCHERS:
        name = str(outer[1])  # {"api-key": {"equalTo": ...}}: WireMock and the like
    yield Literal(start, end, _path(stack), name, False)


_PAIR_NAMES = frozenset({"name", "key", "header", "field", "param", "variable"})
_PAIR_VALUES = frozenset({"value", "values"})
_MATCHERS = frozenset({"equalTo", "contains", "matches", "equalToJson", "exact", "prefix"})
"""A name-value pair written as an object with a name key and a value key names its value
by the name's value; a matcher object (one key saying how to compare) names its value by the
key that holds it. Both are how other tools' cassettes and mocks hold headers."""


def _path(stack: list[list[object]]) -> str:
    out = []
    for kind, key, *_ in stack:
        out.append(f"[{key}]" if kind == "[" else f".{key}")
    return "".join(out)
