"""Tests for tapeproxy/review/show.py: the readable, deterministic text of a cassette."""

from __future__ import annotations

from pathlib import Path

import pytest

from tapeproxy.cassettes.model import Body, Interaction, Request, Response, new_cassette
from tapeproxy.cassettes.store import save
from tapeproxy.errors import CassetteError
from tapeproxy.review.show import render, show_file
from tests.cassettes.samples import sample_cassette


def test_render_is_deterministic_and_readable() -> None:
    text = render(sample_cassette())
    assert text == render(sample_cassette())
    lines = text.splitlines()
    assert lines[0] == "tapeproxy/1 cassette, 5 interaction(s)"
    assert "=== [1/5] POST https://api.openai.com/v1/chat/completions" in lines
    assert "> openai-beta: assistants=v2" in lines  # matched header shown
    assert not any("authorization" in line.lower() for line in lines)  # others only counted
    assert "> (3 other header(s) not part of the key)" in lines
    assert '      "model": "gpt-4o"' in lines  # pretty JSON, sorted keys
    assert '      "embedding": [0.5, -1, 2e-05],' in lines  # number lists on one line
    assert "< HTTP/1.1 429 Too Many Requests" in lines
    assert "timing: ttfb 412 ms, total 430 ms" in lines
    assert "timing: ttfb 100 ms, total 1830 ms, 4 chunk(s), last at 30 ms" in lines
    assert "error after 12 ms: connection reset by peer" in lines


def test_sse_bodies_show_one_event_per_line() -> None:
    lines = render(sample_cassette()).splitlines()
    start = lines.index("response body: text/event-stream, 256 bytes, 4 event(s)")
    assert lines[start + 1 : start + 5] == [
        '    event: message_start | data: {"type":"message_start","message":{"id":"msg_1"}}   ',
        '    event: ping | data: {"type": "ping"}',
        "    event: content_block_delta | "
        'data: {"type":"content_block_delta","delta":{"text":"hé"}}',
        '    event: message_stop | data: {"type":"message_stop"}',
    ]


def test_binary_bodies_are_summarised() -> None:
    text = render(sample_cassette())
    assert (
        "response body: application/octet-stream, 256 bytes of binary data, sha256 40aff2e9d2d8922e"
        in text
    )


def test_odd_content_never_crashes() -> None:
    weird = Request(
        method="POST",
        url="https://h/x",
        headers=(("x-bad", "\udcff"),),
        body=Body(text='{"a": "\\ud800", "deep": ' + "[" * 5000 + "]" * 5000 + "}"),
    )
    response = Response(status=200, body=Body(text="not json\r\nsecond line"))
    cassette = new_cassette("0", "t").model_copy(
        update={"interactions": (Interaction(key="k", request=weird, response=response),)}
    )
    text = render(cassette)
    text.encode("utf-8")  # always printable as UTF-8
    assert "    not json\n    second line\n" in text


def test_show_file_reads_and_names_bad_files(tmp_path: Path) -> None:
    path = tmp_path / "c.json.zst"
    save(path, sample_cassette())
    assert show_file(path) == render(sample_cassette())
    with pytest.raises(CassetteError, match="nope"):
        show_file(tmp_path / "nope.json.zst")
