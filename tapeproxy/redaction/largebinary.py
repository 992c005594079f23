"""Proving a large binary body clean a window at a time, without its whole text in memory.

`body_edits` scans a binary body as one latin-1 string: a 64 MiB answer was then held three
times over while it was redacted (its base64, its bytes, their text), 213 MiB above the body.
`is_clean` takes 3 MiB at a time (from the bytes of a body kept as bytes, or decoded straight
from its base64) and reaches the same verdict as `body_edits` on the whole text whenever that
verdict is "nothing to edit", which is what a recorded image, audio file or archive almost
always gets. Anything else (a token, a request's secret echoed, a body that may not be binary
after all) goes back to the whole-text scan, which finds and edits what it must.

Why a window's scan is the whole text's: the token detectors (`TokenFinder.find`, glued, as
for binary) try a regex at the places near a trigger, and a match at a place depends only on
the characters from there to one past its end. Each window reaches `_OVERLAP` characters past
its share of the body, longer than any detector with a bounded length can match, so every
place in a window's share is tried on the same characters as in the whole text; if any
regex matches anywhere, even where `find` would leave the match out (a placeholder, a failed
checksum), the verdict is left to the whole text. Three detectors can match
without bound (the runs of a JWT, the blanks after ``Basic``, a URL's host): a match longer
than the overlap would cover the whole overlap with their characters, and a window whose
overlap is all such characters is left to the whole text too.
"""

from __future__ import annotations

import binascii
import functools
import re
from collections.abc import Callable, Iterator, Mapping

from tapeproxy.cassettes.model import Body
from tapeproxy.redaction.bodies import _forms, is_sse, mostly_control, sample_spans
from tapeproxy.redaction.layers import wide_text
from tapeproxy.redaction.scanner import Scanner

__all__ = ["LARGE_BINARY", "is_clean"]

_SHARE = 3 << 20
"""Bytes each window is the first to look at (a multiple of 3: whole base64 quads)."""
_OVERLAP = 3 << 14
"""Bytes a window reaches past its share (48 KiB: the longest bounded match is 20,122
characters, a private key)."""
LARGE_BINARY = 2 * _SHARE
"""Bytes from which a binary body is proved clean by windows."""

_UNBOUNDED = re.compile(r"[^A-Za-z0-9_.\[\]\s+/=-]")
"""A character no match of an unbounded detector can hold (a JWT, ``Basic`` and its
credential, a URL's host: see the module's text)."""
_BLANKS = re.compile(r"\s")


def byte_length(b64: str) -> int:
    """How many bytes a valid base64 string stands for."""
    return len(b64) // 4 * 3 - len(b64[-2:]) + len(b64[-2:].rstrip("="))


def decoded(b64: str, start: int, end: int) -> str:
    """Bytes ``[start, end)`` of what `b64` stands for, as latin-1 text (as `body_edits`
    sees a binary body), decoding only the base64 quads that hold them."""
    first, last = start // 3, -(-end // 3)
    data = binascii.a2b_base64(b64[4 * first : 4 * last])
    return data[start - 3 * first : end - 3 * first].decode("latin-1")


def _latin1(data: bytes, start: int, end: int) -> str:
    return data[start:end].decode("latin-1")


def _windows(read: Callable[[int, int], str], length: int) -> Iterator[tuple[str, int]]:
    """Each window's text and how many of its characters are its share."""
    for start in range(0, length, _SHARE):
        share = min(_SHARE, length - start)
        yield read(start, min(length, start + share + _OVERLAP)), share


def is_clean(scanner: Scanner, body: Body, content_type: str, sent: Mapping[str, str] = {}) -> bool:
    """True only when `body_edits` would find nothing to edit nor report in `body`, a binary
    body (False: scan it whole).

    Args:
        sent: the secrets the request carried (an answer that repeats one is not clean).
    """
    if body.text is not None:
        return False
    read: Callable[[int, int], str]
    if body.kept_as_bytes:
        data = body.to_bytes()
        length = len(data)
        read = functools.partial(_latin1, data)
    else:
        b64 = body.base64 or ""
        length = byte_length(b64)
        read = functools.partial(decoded, b64)
    if length < LARGE_BINARY or scanner.finder.always:  # (configured patterns are unbounded)
        return False
    head = read(0, 4096)
    if wide_text(head.encode("latin-1")) is not None:
        return False  # UTF-16 or UTF-32 text: scanned as the text it is
    if is_sse(head, content_type.lower()) or head.lstrip()[:1] in ("{", "[", ""):
        return False  # a stream, or maybe JSON (or 4 KiB of blanks): the whole text decides
    if "x-www-form-urlencoded" in content_type.lower() or not _BLANKS.search(head):
        return False  # a form holds no blank anywhere but a last newline
    sample = "".join(read(a, b) for a, b in sample_spans(length))
    if not mostly_control(sample):
        return False  # large text that is not UTF-8: scanned whole as text
    forms = [f for secret in sent if len(secret) >= 6 for f in _forms(secret)]
    if any(len(f) > _OVERLAP for f in forms):
        return False
    for text, share in _windows(read, length):
        overlap = text[share:]
        if overlap and len(overlap) == _OVERLAP and not _UNBOUNDED.search(overlap):
            return False  # a run of an unbounded detector may reach past this window
        if any(f in text for f in forms) or scanner.finder.matches_anywhere(text, glued=True):
            return False
    return True
