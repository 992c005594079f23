"""Scanning whole message bodies: SSE streams joined per field, JSON, forms, free text.

SSE: the string values of each field name (``content``, ``text``, ``partial_json``,
``arguments``, ``delta``...) are joined across events in order, so a key streamed in pieces
is seen whole; each piece of it is replaced (the marker in the first, nothing in the rest).
A binary body (images, audio, compressed or framed data) gets the token detectors only, with
no word boundary: it has no words and no text layers to decode. Every body gets a raw-text
pass as a safety net for layouts nothing else understood; in a JSON body it only edits inside
string literals: a credential is a string, and an edit of a number (a price in scientific
notation under a name like secret_sauce) or of the structure would make valid JSON invalid.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

from tapeproxy.providers.generated import is_generated
from tapeproxy.redaction.detectors import Match
from tapeproxy.redaction.jsonscan import decode_literal, literals, parses_as_json
from tapeproxy.redaction.layers import may_be_wide, wide_text
from tapeproxy.redaction.placeholders import marker
from tapeproxy.redaction.quickscan import B64_RUN
from tapeproxy.redaction.scanner import Edit, Hit, Scanner, apply_edits

__all__ = ["body_edits", "is_sse"]

_LINE = re.compile(r"[^\n]*\n|[^\n]+$")
_FORM = re.compile(r"^[\w.%+~*-]+=[^&\s]*(?:&[\w.%+~*-]+=[^&\s]*)*$")


@dataclass(frozen=True)
class _Piece:
    event: int
    start: int  # literal start within the event payload (-1: the payload is not JSON)
    text: str


def is_sse(text: str, content_type: str) -> bool:
    """Whether a body is a server-sent event stream."""
    return "event-stream" in content_type.lower() or text.startswith(
        ("data:", "event:", ": ", "id:")
    )


def body_edits(
    scanner: Scanner, text: str, content_type: str, path: str, sent: Mapping[str, str] = {}
) -> tuple[list[Edit], list[Hit]]:
    """Edits and hits for a body, structure first, then a raw pass for what is left.

    Args:
        sent: for an answer, the secrets its request carried (secret to detector): found
            wherever the answer repeats them, whole or split across a stream's events.
    """
    ct = content_type.lower()
    sent = {s: d for s, d in sent.items() if len(s) >= 6}
    echoed = any(_forms(s)[-1] in text for s in sent)
    events = _events(text) if is_sse(text, ct) else None
    is_json = events is None and parses_as_json(text)
    if events is None and not is_json:
        events = _ndjson_events(text)  # (Ollama streams NDJSON: an object on each line)
    sse = events is not None  # a stream of events, SSE or NDJSON
    if not sse and not is_json and (wide := _wide(text)) is not None:
        return _wide_edits(scanner, wide, content_type, path, sent)
    if is_json and not echoed and not scanner.json_suspicious(text):
        return [], []
    # A large binary body goes straight to its own scan: `suspicious` would lower-case a copy
    # of it (64 MiB more for a 64 MiB image) to decide what that scan decides anyway.
    large = not sse and not is_json and len(text) >= _LARGE
    binary = large and not _is_form(text, ct) and _looks_binary(text)
    if not sse and not is_json and not echoed and not binary and not scanner.suspicious(text):
        return [], []  # (not for SSE: a trigger may be split across events)
    strings: list[tuple[int, int]] | None = None  # a JSON body's string literals, when found
    if events is not None:
        edits, hits = _sse_edits(scanner, events, path, sent)
    elif is_json:
        edits, hits = scanner.json_edits(text, path)
        strings = []
    elif _is_form(text, ct):
        edits, hits = scanner.form_edits(text, path)
    elif binary or (not large and _looks_binary(text)):  # (a large one was asked above)
        # no text layers to decode, and no words: a token may follow any byte (and the raw
        # pass below would add nothing: these are its detectors, without a word boundary)
        found = [m for m in scanner.finder.find(text, glued=True) if not scanner.allowed(m.secret)]
        edits = [Edit(m.start, m.end, marker(m.detector)) for m in found]
        hits = [Hit(m.detector, m.secret, f"{path}[binary]") for m in found]
        if (boundary := _boundary(content_type)) is not None:  # fields beside a binary file
            more, found_hits = scanner.multipart_edits(text, boundary, path)
            edits += [
                e for e in more if not any(o.start < e.end and e.start < o.end for o in edits)
            ]
            hits += found_hits
        return edits, hits + _echoes(text, sent, edits, path)
    elif (boundary := _boundary(content_type)) is not None:
        edits, hits = scanner.multipart_edits(text, boundary, path)
    else:
        edits, hits = scanner.text_edits(text, path)
    seen = {h.secret for h in hits}
    written: list[tuple[int, int]] | None = None  # an answer's spans of what the model wrote
    for m in scanner.matches(text):
        if m.secret in seen or any(e.start < m.end and m.start < e.end for e in edits):
            continue
        if strings is not None:
            strings = strings or [(lit.start, lit.end) for lit in literals(text)]
            if not any(start < m.start and m.end < end for start, end in strings):
                continue  # not inside a JSON string: a number or the structure
        if scanner.model is not None:
            written = _model_spans(text, events) if written is None else written
            if any(start < m.start and m.end < end for start, end in written):
                continue  # scanned above by the rules for what a model wrote
        edits.append(Edit(m.start, m.end, marker(m.detector)))
        hits.append(Hit(m.detector, m.secret, f"{path}[raw]"))
    return edits, hits + _echoes(text, sent, edits, path)


def _wide(text: str) -> tuple[str, str, int] | None:
    """`layers.wide_text` of a body whose characters are its bytes (each below 256), or None
    (the quick test first: a NUL near the start, or a byte order mark)."""
    try:
        if not may_be_wide(text[:64].encode("latin-1")):
            return None
        return wide_text(text.encode("latin-1"))
    except UnicodeEncodeError:  # (a character above 255: UTF-8 text, not bytes)
        return None


def _wide_edits(
    scanner: Scanner,
    wide: tuple[str, str, int],
    content_type: str,
    path: str,
    sent: Mapping[str, str],
) -> tuple[list[Edit], list[Hit]]:
    """A UTF-16 or UTF-32 body scanned as the text it encodes: edits on that text are
    moved to its bytes (the body's text holds one character per byte), their replacement
    encoded the same way."""
    decoded, codec, bom = wide
    edits, hits = body_edits(scanner, decoded, content_type, f"{path}<{codec}>", sent)
    if not edits:
        return [], hits
    # byte offset of each character (a UTF-16 character beyond the BMP takes four bytes)
    wide4 = "32" in codec
    offsets = list(
        itertools.accumulate((4 if wide4 or ord(c) > 0xFFFF else 2 for c in decoded), initial=bom)
    )
    moved = [
        Edit(
            offsets[e.start], offsets[e.end], e.new.encode(codec, "surrogatepass").decode("latin-1")
        )
        for e in edits
    ]
    return moved, hits


def _echoes(text: str, sent: Mapping[str, str], edits: list[Edit], path: str) -> list[Hit]:
    """The request's secrets where `text` repeats them: edits added to `edits`, hits
    returned."""
    hits: list[Hit] = []
    for secret, detector in sent.items():
        for form in _forms(secret):
            for at in _occurrences(text, form):
                end = at + len(form)
                if not any(e.start < end and at < e.end for e in edits):
                    edits.append(Edit(at, end, marker(detector)))
                    hits.append(Hit(detector, secret, f"{path}[echoed]"))
    return hits


def _forms(secret: str) -> tuple[str, ...]:
    """How a secret can stand in a body: as it is, and as a JSON string holds it (the
    shortest last: a test that the body mentions it at all)."""
    escaped = json.dumps(secret, ensure_ascii=False)[1:-1]
    return (escaped, secret) if escaped != secret else (secret,)


_SAMPLE = 4096
_LARGE = 1 << 20


_BOUNDARY = re.compile(r'multipart/form-data\s*;.*?\bboundary="?([^";,\s]+)"?', re.IGNORECASE)


def _boundary(content_type: str) -> str | None:
    """A ``multipart/form-data`` body's boundary (None: not one)."""
    m = _BOUNDARY.search(content_type)
    return m.group(1) if m else None


def _is_form(text: str, content_type: str) -> bool:
    """Whether a body is ``a=b&c=d``: so typed, or so shaped and not one base64 run, whose
    ``=`` padding would read as a name with an empty value (its text is then never decoded)."""
    if "x-www-form-urlencoded" in content_type:
        return True
    return _FORM.match(text) is not None and B64_RUN.fullmatch(text.strip()) is None


def _looks_binary(text: str) -> bool:
    """Whether a body is binary data (an image, audio, a compressed or framed format) rather
    than text: more than 1 in 10 characters of samples from its start, middle and end are
    control characters. Text layers (percent-encoding, base64, JSON in strings) are not
    looked for in binary: decoding random bytes as if they were would copy and rescan the
    whole body at every layer."""
    return mostly_control("".join(text[a:b] for a, b in sample_spans(len(text))))


def sample_spans(length: int) -> list[tuple[int, int]]:
    """Where `_looks_binary` samples a body of `length` characters: all of it when short,
    else 4 KiB at its start, middle and end."""
    if length <= 3 * _SAMPLE:
        return [(0, length)]
    mid = length // 2
    return [(0, _SAMPLE), (mid, mid + _SAMPLE), (length - _SAMPLE, length)]


def mostly_control(sample: str) -> bool:
    """Whether more than 1 in 10 characters of `sample` are control characters."""
    control = sum(1 for c in sample if not c.isprintable() and c not in "\r\n\t")
    return control * 10 > len(sample)


def _events(text: str) -> list[tuple[int, str]]:
    """(offset, payload) of each ``data:`` line."""
    out = []
    for m in _LINE.finditer(text):
        line = m.group().rstrip("\r\n")
        if line.startswith("data:"):
            off = 6 if line[5:6] == " " else 5
            out.append((m.start() + off, line[off:]))
    return out


def _ndjson_events(text: str) -> list[tuple[int, str]] | None:
    """(offset, payload) of each line of NDJSON text, two or more lines that each hold a
    JSON object; None when `text` is not that."""
    if text.lstrip()[:1] != "{" or "\n" not in text.strip():
        return None
    out = []
    for m in _LINE.finditer(text):
        line = m.group().rstrip("\r\n")
        if line.strip():
            if line.lstrip()[:1] != "{" or not parses_as_json(line):
                return None
            out.append((m.start(), line))
    return out if len(out) >= 2 else None


def _sse_edits(
    scanner: Scanner, events: list[tuple[int, str]], path: str, sent: Mapping[str, str]
) -> tuple[list[Edit], list[Hit]]:
    """Edits and hits for the events of a stream (each ``(offset, payload)``): the values of
    each field joined across events, then each event's payload on its own."""
    groups: dict[str, list[_Piece]] = {}
    is_json = [parses_as_json(payload) for _, payload in events]
    for k, (_, payload) in enumerate(events):
        if not is_json[k]:
            groups.setdefault("", []).append(_Piece(k, -1, payload))
            continue
        for lit in literals(payload):
            if not lit.is_key:
                value = decode_literal(payload[lit.start : lit.end])
                groups.setdefault(lit.name, []).append(_Piece(k, lit.start, value))
    pre: dict[int, dict[int, list[Edit]]] = {}
    hits: list[Hit] = []
    joiner = scanner.model or scanner  # an answer's stream is what a model wrote
    for pieces in groups.values():
        hits += _split_secrets(joiner, pieces, pre, f"{path}.sse[joined]", sent)
    edits: list[Edit] = []
    for k, (offset, payload) in enumerate(events):
        where = f"{path}.sse[{k}]"
        if is_json[k]:
            ev_edits, ev_hits = scanner.json_edits(payload, where, 0, pre.get(k))
        else:
            pre_text = apply_edits(payload, pre.get(k, {}).get(-1, []))
            new, ev_hits = scanner.string(pre_text, where)
            ev_edits = [Edit(0, len(payload), new)] if new != payload else []
        edits += [Edit(e.start + offset, e.end + offset, e.new) for e in ev_edits]
        hits += ev_hits
    return edits, hits


def _model_spans(text: str, events: list[tuple[int, str]] | None) -> list[tuple[int, int]]:
    """The spans of the string literals of an answer (plain JSON, or each event of a
    stream) that hold what the model wrote."""
    docs = events if events is not None else [(0, text)]
    return [
        (offset + lit.start, offset + lit.end)
        for offset, doc in docs
        if doc.lstrip()[:1] in ("{", "[")
        for lit in literals(doc)
        if not lit.is_key and is_generated(lit.path)
    ]


def _occurrences(text: str, part: str) -> list[int]:
    out, at = [], text.find(part)
    while at >= 0:
        out.append(at)
        at = text.find(part, at + len(part))
    return out


def _found_alone(scanner: Scanner, text: str, secret: str) -> bool:
    return any(x.secret == secret for x in scanner.matches(text))


def _split_secrets(
    scanner: Scanner,
    pieces: list[_Piece],
    pre: dict[int, dict[int, list[Edit]]],
    path: str,
    sent: Mapping[str, str],
) -> list[Hit]:
    """Find secrets spanning several pieces; queue their per-piece replacements in `pre`."""
    if len(pieces) < 2:
        return []
    starts, pos = [], 0
    for p in pieces:
        starts.append(pos)
        pos += len(p.text)
    joined = "".join(p.text for p in pieces)
    hits = []
    echoes = [
        Match(at, at + len(secret), detector, secret)
        for secret, detector in sent.items()
        for at in _occurrences(joined, secret)
    ]
    for m in scanner.matches(joined) + scanner.pair_matches(joined) + echoes:
        touched = [
            i for i, s in enumerate(starts) if s < m.end and m.start < s + len(pieces[i].text)
        ]
        if len(touched) < 2 and _found_alone(scanner, pieces[touched[0]].text, m.secret):
            continue  # the per-event pass finds it
        hits.append(Hit(m.detector, m.secret, path))
        for n, i in enumerate(touched):
            lo = max(m.start - starts[i], 0)
            hi = min(m.end - starts[i], len(pieces[i].text))
            new = marker(m.detector) if n == 0 else ""
            pre.setdefault(pieces[i].event, {}).setdefault(pieces[i].start, []).append(
                Edit(lo, hi, new)
            )
    return hits
