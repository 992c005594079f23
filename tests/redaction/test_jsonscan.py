"""The JSON tokenizer behind in-place redaction: the literals it yields, on any text."""

from __future__ import annotations

import json
import random

import pytest

from tapeproxy.cassettes.store import read_json
from tapeproxy.redaction.jsonscan import decode_literal, literals
from tests.redaction.texts import json_texts


def _reference(text: str) -> list[str]:
    """Every string literal of a JSON text, by json's own scanner (valid documents only)."""
    out: list[str] = []

    def walk(value: object) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                out.append(k)
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)
        elif isinstance(value, str):
            out.append(value)

    walk(json.loads(text))
    return out


def _document(rng: random.Random, depth: int = 0) -> object:
    pieces = ["a", '"', "\\", "\n", "\u2581", "é", " ", "{", "]", ":", ","]
    if depth > 3 or rng.random() < 0.3:
        return "".join(rng.choices(pieces, k=rng.randint(0, 12)))
    if rng.random() < 0.5:
        return [_document(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {
        f"k{i}{rng.choice(pieces)}": _document(rng, depth + 1) for i in range(rng.randint(0, 4))
    }


def test_the_literals_are_json_s_own_strings_with_escapes_of_every_kind() -> None:
    rng = random.Random(12)
    for _ in range(3000):
        text = json.dumps(_document(rng), ensure_ascii=rng.random() < 0.5)
        got = [decode_literal(text[lit.start : lit.end]) for lit in literals(text)]
        assert got == _reference(text), text


def test_a_huge_literal_is_one_token() -> None:
    text = json.dumps({"content": 'word \\ "quoted" ' * 200_000})
    (key, value) = list(literals(text))
    assert key.is_key and not value.is_key
    assert decode_literal(text[value.start : value.end]).startswith('word \\ "quoted"')


def test_read_json_reads_what_json_loads_reads_and_refuses_what_it_refuses() -> None:
    edge = [
        '{"a": "\\udc80"}',  # a lone surrogate (kept for undecodable bytes): the fallback
        '["\\ud83d\\ude00", 1e999, -0.0, 12345678901234567890123, 1.5e-07]',
        '{"a": NaN, "b": Infinity, "a": 2}',
        '{"a": "x\ty"}',  # a raw control character in a string
        "[1,]",
        '{"a": 1} trailing',
        "\ufeff{}",
        '["\\x"]',
        "[01]",
        "[" * 5000 + "]" * 5000,  # deeper than either parser goes
    ]
    texts = [*edge, *json_texts()[:400]]
    for text in texts:
        try:
            want = json.loads(text)
        except (ValueError, RecursionError) as e:
            with pytest.raises(type(e)):
                read_json(text)
            continue
        got = read_json(text)
        # (NaN != NaN, -0.0 == 0.0: the JSON each gives back tells them apart)
        assert json.dumps(got) == json.dumps(want), text[:80]
