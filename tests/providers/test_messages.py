"""Splitting bodies into JSON messages: SSE (LF and CRLF), NDJSON, JSON arrays."""

from __future__ import annotations

from tapeproxy.providers.messages import Message, messages


def test_single_document() -> None:
    assert messages(b'  {"a": 1}\n') == ((Message({"a": 1}),), False)


def test_sse_with_crlf_events_comments_and_done() -> None:
    body = (
        b'event: x\r\ndata: {"n": 1}\r\n\r\n: keep-alive\r\n\r\n'
        b'data: {"n":\r\ndata: 2}\r\n\r\ndata: [DONE]\r\n\r\n'
    )
    found, streamed = messages(body)
    assert streamed
    assert found == (Message({"n": 1}, "x"), Message({"n": 2}))


def test_ndjson() -> None:
    found, streamed = messages(b'{"a": 1}\n{"b": 2}\nnot json\n')
    assert streamed and [m.data for m in found] == [{"a": 1}, {"b": 2}]


def test_json_array_whole_and_truncated() -> None:
    whole = b'[{\n  "a": 1\n}\n,\r\n{\n  "b": 2\n}\n]'
    assert [m.data for m in messages(whole)[0]] == [{"a": 1}, {"b": 2}]
    cut = b'[{"a": 1}\n,\r\n{"b": 2}\n,\r\n{"c": '
    assert [m.data for m in messages(cut)[0]] == [{"a": 1}, {"b": 2}]


def test_not_utf8() -> None:
    assert messages(b"\xff\xfe\x00") == ((), False)
