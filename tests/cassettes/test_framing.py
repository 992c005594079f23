"""Tests for tapeproxy/cassettes/framing.py: recognising and splitting streamed bodies."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tapeproxy.cassettes.framing import StreamKind, media_type, split_events, stream_kind

GEMINI = "https://generativelanguage.googleapis.com/v1beta/models/g:streamGenerateContent"


@pytest.mark.parametrize(
    ("content_type", "url", "body", "kind"),
    [
        ("text/event-stream; charset=utf-8", "https://h/", b"data: x\n\n", "sse"),
        ("Text/Event-Stream", "https://h/", b"", "sse"),
        ("application/x-ndjson", "https://h/api/chat", b"{}\n", "ndjson"),
        ("application/stream+json", "https://h/v1/chat", b"{}\n", "ndjson"),
        ("application/vnd.amazon.eventstream", "https://h/", b"\x00", "eventstream"),
        ("application/json; charset=UTF-8", GEMINI, b"[{}\n]", "json-array"),
        ("application/json", GEMINI + "?alt=sse", b' {"a": 1}', None),
        ("application/json", "https://h/v1/chat/completions", b"[{}]", None),
        (None, "https://h/", b"data: x\n\n", None),
    ],
)
def test_stream_kind(content_type: str | None, url: str, body: bytes, kind: str | None) -> None:
    headers = [] if content_type is None else [("Content-Type", content_type)]
    assert stream_kind(headers, url, body) == kind


def test_media_type_takes_the_first_content_type() -> None:
    assert (
        media_type([("x", "y"), ("content-type", " A/B ; q=1"), ("Content-Type", "c/d")]) == "a/b"
    )
    assert media_type([]) == ""


def test_sse_events_keep_their_terminators_comments_and_crlf() -> None:
    body = b"data: 1\r\n\r\n: keep-alive\n\nevent: e\ndata: 2\n\ndata: [DONE]\n\ntail"
    assert split_events("sse", body) == [
        b"data: 1\r\n\r\n",
        b": keep-alive\n\n",
        b"event: e\ndata: 2\n\n",
        b"data: [DONE]\n\n",
        b"tail",
    ]


def test_ndjson_is_split_by_line() -> None:
    assert split_events("ndjson", b'{"a":1}\n{"b":2}\n{"c"') == [
        b'{"a":1}\n',
        b'{"b":2}\n',
        b'{"c"',
    ]


def test_gemini_json_array_is_split_by_element() -> None:
    body = b'[{\n  "a": "x,y"\n}\n,\r\n{\n  "b": [1, 2]\n}\n,\r\n{\n  "c": "\xc3\xa9"\n}\n]'
    assert split_events("json-array", body) == [
        b'[{\n  "a": "x,y"\n}\n,\r\n',
        b'{\n  "b": [1, 2]\n}\n,\r\n',
        b'{\n  "c": "\xc3\xa9"\n}\n]',
    ]
    assert split_events("json-array", b"[{},{}]") == [b"[{},", b"{}]"]
    assert split_events("json-array", b"[{broken") == [b"[{broken"]


def _frame(payload: bytes) -> bytes:
    total = 12 + len(payload) + 4
    return struct.pack(">II", total, 0) + b"\x00" * 4 + payload + b"\x00" * 4


def test_eventstream_is_split_by_frame_and_keeps_a_bad_tail() -> None:
    frames = [_frame(b'{"p":1}'), _frame(b""), _frame(b"x" * 40)]
    body = b"".join(frames) + b"\x00\x00\x00\x05junk"
    assert split_events("eventstream", body) == [*frames, b"\x00\x00\x00\x05junk"]


@settings(max_examples=80, deadline=None)
@given(st.sampled_from(["sse", "ndjson", "json-array", "eventstream"]), st.binary(max_size=200))
def test_pieces_always_concatenate_to_the_body(kind: StreamKind, body: bytes) -> None:
    pieces = split_events(kind, body)
    assert b"".join(pieces) == body
    assert all(pieces)
