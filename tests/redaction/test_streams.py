"""Streamed text joined in any shape (`tapeproxy.redaction.streams`), and what is not a stream."""

from __future__ import annotations

import base64
import json
import random
import string

import pytest

from tapeproxy.redaction.streams import joined_texts


def _text(seed: int) -> str:
    rng = random.Random(seed)
    return "".join(rng.choices(string.ascii_letters + string.digits, k=40))


def _pieces(text: str) -> list[str]:
    return [text[:7], text[7:19], text[19:]]


def _sse(pieces: list[str]) -> str:
    events = [{"type": "x.delta", "delta": {"text": p}} for p in pieces]
    return "".join(f"event: x\ndata: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"


def _shapes(pieces: list[str]) -> dict[str, object]:
    sse = _sse(pieces)
    dict_events = [{"choices": [{"delta": {"content": p}}]} for p in pieces]
    return {
        "sse text": {"body": {"string": sse}},
        "sse with CRLF": {"body": sse.replace("\n", "\r\n")},
        "list of raw events": {"whatever": [f"data: {json.dumps(e)}\n\n" for e in dict_events]},
        "list of parsed events": {"chunks": dict_events},
        "wrapped events": [{"t": i, "data": json.dumps(e)} for i, e in enumerate(dict_events)],
        "ndjson text": "".join(
            json.dumps({"kind": "chunk", "data": e}) + "\n" for e in dict_events
        ),
        "base64 sse": {"content": {"text": base64.b64encode(sse.encode()).decode()}},
    }


@pytest.mark.parametrize("shape", list(_shapes(["a", "b"])))
def test_a_stream_is_joined_whatever_holds_it(shape: str) -> None:
    text = _text(len(shape))
    doc = _shapes(_pieces(text))[shape]
    assert text in {joined for _, joined, _ in joined_texts(doc)}


def test_lists_of_pairs_and_of_large_objects_are_not_streams() -> None:
    headers = [["content-type", "application/json"], ["x-request-id", "req_abc"]]
    big = [{f"k{i}": f"value {i} of {n}" for i in range(80)} for n in range(3)]
    assert list(joined_texts({"headers": headers, "interactions": big})) == []


def test_a_single_event_is_not_joined_with_anything() -> None:
    assert list(joined_texts({"body": _sse(["only one piece here"])})) == []


def test_the_quick_check_never_hides_a_stream_the_walk_would_join() -> None:
    from tapeproxy.redaction.streams import may_hold_events
    from tests.redaction.texts import json_texts

    quick = 0
    for text in json_texts():
        if not may_hold_events(text):
            quick += 1
            assert joined_texts(text) == [], text
    assert quick > 300  # plain answers take it


def _stream_shapes(pieces: list[str]) -> dict[str, str]:
    """A stream of `pieces` in each shape a JSON body can hold one."""
    events = [{"candidates": [{"content": {"parts": [{"text": p}]}}]} for p in pieces]
    sse = "".join(f"data: {json.dumps(e)}\n\n" for e in events)
    ndjson = "\n".join(json.dumps(e) for e in events)
    return {
        "json array": json.dumps(events),
        "sse in a string": json.dumps({"body": sse}),
        "ndjson in a string": json.dumps({"body": ndjson}),
        "event strings": json.dumps({"chunks": [json.dumps(e) for e in events]}),
        "base64": json.dumps({"content": base64.b64encode(sse.encode()).decode()}),
    }


@pytest.mark.parametrize("shape", sorted(_stream_shapes(["a", "b"])))
def test_each_shape_of_a_stream_in_json_passes_the_quick_check(shape: str) -> None:
    from tapeproxy.redaction.streams import may_hold_events

    rng = random.Random(shape)
    word = "".join(rng.choice(string.ascii_letters) for _ in range(30))
    text = _stream_shapes([word[:12], word[12:]])[shape]
    assert any(joined == word for _, joined, _ in joined_texts(text)), text
    assert may_hold_events(text)
