"""Stamped answers are byte for byte what the writers write, and leave the ids where the
writers leave them; `Ids.values` reads what the single calls read."""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tapeproxy.providers.answer import Answer, Failure, Ids, RequestFacts, Written
from tapeproxy.providers.llm import ToolCall
from tapeproxy.providers.request import read_request
from tapeproxy.providers.stamp import Stamps
from tapeproxy.providers.write import STAMPED, write

_WORDS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota"]

ANSWERS = {
    "text": Answer(text="The capital of France is Paris. It has 2.1 million people: 100% sure."),
    "empty text": Answer(text=""),
    "non-ASCII": Answer(text='Grüße, 東京 — ça va? \u2028 "quoted" \\ and a tab\t.'),
    "json": Answer(json={"city": "Paris", "rank": 1, "tags": ["a", "b"]}),
    "tool call": Answer(tool_calls=(ToolCall("get_weather", {"city": "Paris", "unit": "C"}),)),
    "text and two calls": Answer(
        text="Checking.",
        tool_calls=(ToolCall("a", {"x": 1}), ToolCall("b", '{"y": [1, 2]}')),
    ),
    "reasoning": Answer(text="42", reasoning="Six times seven is forty-two."),
    "given usage and chunks": Answer(
        text="one two three", chunks=("one", " two", " three"), input_tokens=7, output_tokens=3
    ),
    "finish length": Answer(text="cut sho", finish_reason="length"),
    "rate limited": Answer(error=Failure(429, None, "slow down", retry_after=2.0)),
    "server error": Answer(error=Failure(500, None, "boom")),
    "overloaded": Answer(error=Failure(529, "overloaded_error", "busy")),
}


_GEMINI_ACTIONS = ("generateContent", "streamGenerateContent", "streamGenerateContent?alt=sse")
_GEMINI = "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash"


def _prompt(rng: random.Random) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(rng.randint(1, 30)))


def _requests(endpoint: str, rng: random.Random) -> Iterator[tuple[str, bytes]]:
    """(url, body) of requests to one endpoint in each of its shapes, with varied prompts and
    fields that are not the shape (temperature, metadata, tools)."""
    extra: dict[str, Any] = {
        "temperature": rng.choice([0, 0.5, 1]),
        "metadata": {"purpose": rng.choice(["a", "b"])},
        "tools": [{"type": "function", "function": {"name": rng.choice(_WORDS)}}],
    }
    if endpoint == "chat":
        for host, path in (
            ("api.openai.com", "/v1/chat/completions"),
            ("example.openai.azure.com", "/openai/deployments/gpt4o/chat/completions"),
            ("api.groq.com", "/openai/v1/chat/completions"),
        ):
            for stream, usage in ((False, False), (True, False), (True, True)):
                doc = {"model": rng.choice(["gpt-4o-mini", "gpt-4.1"]), **extra}
                doc["messages"] = [{"role": "user", "content": _prompt(rng)}]
                if stream:
                    doc["stream"] = True
                if usage:
                    doc["stream_options"] = {"include_usage": True}
                yield f"https://{host}{path}", json.dumps(doc).encode()
    elif endpoint == "messages":
        for stream in (False, True):
            doc = {"model": "claude-sonnet-4-5", "max_tokens": 100, **extra}
            doc["messages"] = [{"role": "user", "content": _prompt(rng)}]
            if stream:
                doc["stream"] = True
            yield "https://api.anthropic.com/v1/messages", json.dumps(doc).encode()
    else:
        for host in ("generativelanguage.googleapis.com", "us-aiplatform.googleapis.com"):
            for model in ("gemini-2.5-flash", "gemini-2.0-flash"):
                for action in _GEMINI_ACTIONS:
                    doc = {"contents": [{"role": "user", "parts": [{"text": _prompt(rng)}]}]}
                    url = f"https://{host}/v1beta/models/{model}:{action}"
                    yield url, json.dumps({**doc, "generationConfig": extra}).encode()


def _facts(url: str, body: bytes) -> RequestFacts:
    facts = read_request("POST", url, body)
    assert facts is not None
    return facts


class _Counting:
    """The real writer, counting its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, facts: RequestFacts, answer: Answer, ids: Ids) -> Written:
        self.calls += 1
        return write(facts, answer, ids)


@pytest.mark.parametrize("endpoint", sorted(STAMPED))
@pytest.mark.parametrize("name", list(ANSWERS))
def test_stamped_answers_are_what_the_writer_writes(endpoint: str, name: str) -> None:
    answer, rng = ANSWERS[name], random.Random(f"{endpoint} {name}")
    stamps = Stamps(write, STAMPED)
    for round_, (url, body) in enumerate(
        itertools.chain(*(_requests(endpoint, rng) for _ in range(4)))
    ):
        facts = _facts(url, body)
        seed = f"0\0key{round_ % 3}\0{round_}".encode()
        ours, theirs = Ids(seed), Ids(seed)
        got = stamps.write(facts, answer, ours, identity=name)
        assert got == write(facts, answer, theirs), (url, body)
        assert ours.alnum(40) == theirs.alnum(40)  # the ids are left where the writer leaves them


@pytest.mark.parametrize(
    ("url", "doc"),
    [
        ("https://api.openai.com/v1/chat/completions", {"model": "gpt-4o", "stream": True}),
        ("https://api.anthropic.com/v1/messages", {"model": "claude-sonnet-4-5"}),
        (f"{_GEMINI}:streamGenerateContent?alt=sse", {}),
    ],
)
def test_a_shape_is_written_once_then_stamped(url: str, doc: dict[str, Any]) -> None:
    writer = _Counting()
    stamps = Stamps(writer, STAMPED)
    answer = Answer(text="Hello there, general Kenobi.", tool_calls=(ToolCall("f", {"a": 1}),))
    for i in range(20):
        body = json.dumps({**doc, "messages": [{"role": "user", "content": f"hi {i:02d}"}]})
        stamps.write(_facts(url, body.encode()), answer, Ids(b"%d" % i), identity="one")
    assert writer.calls == 2  # the placeholders and the first answer's own, to compare


@pytest.mark.parametrize(
    "text",
    [
        "\x7fA" + "\x7f" * 27,  # the first placeholder of a chat answer, as its text
        "released at 9999999001 sharp",  # the stand-in of the first timestamp
    ],
)
def test_a_text_that_holds_a_placeholder_is_written_directly(text: str) -> None:
    writer = _Counting()
    stamps = Stamps(writer, STAMPED)
    url = "https://api.openai.com/v1/chat/completions"
    facts = _facts(url, b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}')
    for i in range(5):
        got = stamps.write(facts, Answer(text=text), Ids(b"%d" % i), identity="x")
        assert got == write(facts, Answer(text=text), Ids(b"%d" % i))
        assert json.loads(got.body)["choices"][0]["message"]["content"] == text
    assert writer.calls == 2 + 4  # checked once, then always written


def _echoing(facts: RequestFacts, answer: Answer, ids: Ids) -> Written:
    """A writer that echoes a field of the request body, as Responses does."""
    doc = {"id": ids.alnum(20), "instructions": facts.body.get("instructions")}
    return Written(200, "OK", (), (json.dumps(doc, ensure_ascii=False).encode(),))


def test_only_the_endpoints_declared_are_stamped() -> None:
    """A stamp is keyed by the request's shape, not its body: a writer that echoes the body
    must not be declared (`STAMPED` leaves Responses and embeddings out)."""
    url = "https://api.openai.com/v1/responses"
    first = _facts(url, b'{"model": "gpt-4o", "input": "hi", "instructions": "be brief"}')
    second = _facts(url, b'{"model": "gpt-4o", "input": "ho", "instructions": "be long!"}')
    answer = Answer(text="ok")
    declared = Stamps(_echoing, frozenset({"responses"}))
    declared.write(first, answer, Ids(b"1"), identity="a")
    assert declared.write(second, answer, Ids(b"2"), identity="a") != _echoing(
        second, answer, Ids(b"2")
    )
    assert "responses" not in STAMPED and "embeddings" not in STAMPED
    stamps = Stamps(_echoing, STAMPED)
    stamps.write(first, answer, Ids(b"1"), identity="a")
    assert stamps.write(second, answer, Ids(b"2"), identity="a") == _echoing(
        second, answer, Ids(b"2")
    )


_METHODS = st.sampled_from(["alnum", "hex", "b64", "digits", "created"])


@settings(max_examples=300, deadline=None)
@given(
    seed=st.binary(max_size=20),
    before=st.lists(st.tuples(_METHODS, st.integers(1, 300)), max_size=6),
    draws=st.lists(st.tuples(_METHODS, st.integers(1, 120)), max_size=12),
)
def test_values_reads_what_the_single_calls_read(
    seed: bytes, before: list[tuple[str, int]], draws: list[tuple[str, int]]
) -> None:
    one, other = Ids(seed), Ids(seed)
    assert one.values(before) == other.values(before)
    at_once = one.values(draws)
    singly = [
        str(other.created()) if method == "created" else getattr(other, method)(n)
        for method, n in draws
    ]
    assert at_once == singly
    assert one.hex(300) == other.hex(300)


def test_copy_gives_the_same_values_from_where_it_was_taken() -> None:
    ids = Ids(b"seed")
    ids.alnum(250)
    twin = ids.copy()
    assert [ids.hex(10), ids.created(), ids.b64(300)] == [
        twin.hex(10),
        twin.created(),
        twin.b64(300),
    ]
