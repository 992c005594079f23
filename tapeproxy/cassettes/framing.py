"""How streamed response bodies are framed: recognising SSE, NDJSON, JSON-array and AWS
eventstream bodies, and cutting them into their events without changing a byte.

The pieces always concatenate back to the exact body: splitting never drops, adds or
re-encodes anything (CRLF line endings, padding, comments and ``[DONE]`` stay as they were).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from tapeproxy.cassettes.model import Header
from tapeproxy.providers.streams import StreamKind, stream_media_kind

__all__ = ["StreamKind", "media_type", "split_events", "stream_kind"]

# The end of an SSE event: two line terminators in a row (CRLF, LF or CR each).
_SSE_EVENT_END = re.compile(rb"(?:\r\n|\r|\n)(?:\r\n|\r|\n)")
_EVENTSTREAM_MIN_FRAME = 16  # prelude (12 bytes) + message CRC (4 bytes)
_AFTER_ELEMENT = re.compile(r"[ \t\r\n]*(,[ \t]*(?:\r\n|\n)?)?")


def media_type(headers: Iterable[Header]) -> str:
    """The lower-cased media type of the first Content-Type header ('' when there is none)."""
    for name, value in headers:
        if name.lower() == "content-type":
            return value.split(";", 1)[0].strip().lower()
    return ""


def stream_kind(headers: Iterable[Header], url: str, body: bytes) -> StreamKind | None:
    """Which streamed framing a response body uses, or None for a plain (non-streamed) body.

    Args:
        headers: the response headers.
        url: the request URL (Gemini's `:streamGenerateContent` without `alt=sse` streams
            one JSON array under an ordinary JSON content type).
        body: the decoded response body.
    """
    mtype = media_type(headers)
    kind = stream_media_kind(mtype)
    if kind is not None:
        return kind
    if (
        mtype in ("application/json", "")
        and ":streamGenerateContent" in urlsplit(url).path
        and body.lstrip()[:1] == b"["
    ):
        return "json-array"
    return None


def split_events(kind: StreamKind, body: bytes) -> list[bytes]:
    """Cut a streamed body into its events; ``b"".join(result) == body`` always holds.

    SSE: one event per piece, each with the blank line that ends it. NDJSON: one line per
    piece. JSON array: one element per piece, with the separator after it. Eventstream: one
    binary frame per piece. Anything that does not follow the framing stays in the last piece.
    """
    if not body:
        return []
    if kind == "sse":
        ends = [m.end() for m in _SSE_EVENT_END.finditer(body)]
    elif kind == "ndjson":
        ends = [m.end() for m in re.finditer(rb"\n", body)]
    elif kind == "eventstream":
        ends = _eventstream_ends(body)
    else:
        ends = _json_array_ends(body)
    pieces: list[bytes] = []
    start = 0
    for end in ends:
        if end > start:
            pieces.append(body[start:end])
            start = end
    if start < len(body):
        pieces.append(body[start:])
    return pieces


def _eventstream_ends(body: bytes) -> list[int]:
    # Each frame starts with its own total length (4 bytes, big-endian).
    ends: list[int] = []
    pos = 0
    while pos + 4 <= len(body):
        size = int.from_bytes(body[pos : pos + 4], "big")
        if size < _EVENTSTREAM_MIN_FRAME or pos + size > len(body):
            break
        pos += size
        ends.append(pos)
    return ends


def _json_array_ends(body: bytes) -> list[int]:
    # Walk the top-level elements; a piece ends after the comma (and line break) that follows
    # its element, as a streaming server writes it. The last element keeps the closing "]".
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return []
    decoder = json.JSONDecoder()
    ends: list[int] = []
    pos = text.find("[") + 1
    done_chars, done_bytes = 0, 0
    while 0 < pos < len(text):
        while pos < len(text) and text[pos] in " \t\r\n":
            pos += 1
        try:
            _, pos = decoder.raw_decode(text, pos)
        except ValueError:
            break
        after = _AFTER_ELEMENT.match(text, pos)
        if after is None or not after.group(1):
            break
        pos = after.end()
        done_bytes += len(text[done_chars:pos].encode("utf-8"))
        done_chars = pos
        ends.append(done_bytes)
    return ends
