"""The quick finders equal the regexes they stand for, on generated texts of every kind.

Each text mixes prose, JSON, base64 and base64url runs of lengths around the threshold, runs
glued to padding and to other runs, non-ASCII letters and lone surrogates; the quick finder and
the regex must give the same spans (`b64_spans`), the same places (`Words`), and
`Scanner.json_suspicious` must weigh every name the old regexes found.
"""

from __future__ import annotations

import base64
import random
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tapeproxy.redaction import quickscan
from tapeproxy.redaction.context import Names, assignment_name
from tapeproxy.redaction.detectors import TRIGGERS, TokenFinder
from tapeproxy.redaction.quickscan import (
    B64_RUN,
    Words,
    b64_spans,
    has_run,
    has_standard_run,
    run_holders,
)
from tapeproxy.redaction.scanner import (
    _CAMEL_KEY,
    _CREDENTIAL_KEY,
    _NAMES_TRIGGER,
    _PAIR_VALUE,
    Scanner,
)

_RUN = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/_-"


def _piece(rng: random.Random) -> str:
    kind = rng.randrange(10)
    if kind == 0:
        return "".join(rng.choice(_RUN) for _ in range(rng.randrange(18, 30)))
    if kind == 1:
        raw = bytes(rng.randrange(256) for _ in range(rng.randrange(10, 40)))
        return base64.b64encode(raw).decode()
    if kind == 2:
        return base64.urlsafe_b64encode(rng.randbytes(rng.randrange(10, 40))).decode()
    if kind == 3:
        return rng.choice(["=", "==", "===", "=a", " ", "\n", '"', ":", "\\", "%2F"])
    if kind == 4:
        return rng.choice(["é", "ß", "日本", "ſ", "K", "İ", "\udcff"])
    if kind == 5:
        return rng.choice(['"api_key": ', '"Token":', "secret=", '"equalTo": ', "Basic "])
    if kind == 6:
        return rng.choice(['"values" :', '"prompt_tokens": 12', '"key_id": "k"', "passwd="])
    return rng.choice(["lorem ", "ipsum ", "dolor ", "{", "}", "[", "]", ",", "0.5", "tokens"])


def _texts(seed: int, count: int) -> list[str]:
    rng = random.Random(seed)
    return ["".join(_piece(rng) for _ in range(rng.randrange(1, 60))) for _ in range(count)]


@pytest.mark.parametrize("seed", range(4))
def test_b64_spans_are_the_regex_spans(seed: int) -> None:
    for text in _texts(seed, 500):
        assert b64_spans(text) == [m.span() for m in B64_RUN.finditer(text)], text


@given(st.text(alphabet=_RUN + "=. \n\"'é", max_size=200))
@settings(max_examples=300, deadline=None)
def test_b64_spans_are_the_regex_spans_on_any_text(text: str) -> None:
    assert b64_spans(text) == [m.span() for m in B64_RUN.finditer(text)]


_WORDS = ("key", "secret", "token", "sig", "signature", "ab", "b")


def _regex_hits(words: tuple[str, ...], text: str) -> list[tuple[int, int]]:
    return sorted(
        (m.start(), i)
        for i, w in enumerate(words)
        for m in re.finditer(f"(?=({re.escape(w)}))", text)
    )


@pytest.mark.parametrize("seed", range(3))
def test_words_finds_every_overlapping_place(seed: int) -> None:
    words = Words(_WORDS)
    for text in _texts(seed, 300):
        text = text.lower() + " signatures keys abba"
        assert words.hits(text) == _regex_hits(_WORDS, text)


def test_words_reads_a_long_text_in_windows_without_losing_a_word_across_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(quickscan, "_WINDOW", 64)
    words = Words(_WORDS)
    text = "".join(_texts(7, 40)).lower()
    text = text[:60] + "signature" + text[60:130] + "secret" + text[130:]  # across windows
    assert len(text) > 10 * 64
    assert words.hits(text) == _regex_hits(_WORDS, text)


def test_a_text_with_a_lone_surrogate_goes_through_the_regex() -> None:
    words = Words(_WORDS)
    text = "a \udcff secret signature \udc80 key"
    assert words.hits(text) == _regex_hits(_WORDS, text)


def _old_names(scanner: Scanner, low: str) -> set[tuple[str, int]]:
    """The names the regexes `json_suspicious` ran before weighed."""
    names = {
        (assignment_name(low, m.start()).strip("'\"\\"), m.end())
        for m in scanner._names_trigger.finditer(low)
    }
    return names | {(m.group(1), m.end()) for m in _CREDENTIAL_KEY.finditer(low)}


@pytest.mark.parametrize("fields", [(), ("clientsecretvalue", "x-my-pass")])
def test_json_suspicious_weighs_every_name_the_regexes_found(fields: tuple[str, ...]) -> None:
    names = Names(fields=frozenset(fields)) if fields else Names()
    scanner = Scanner(TokenFinder(), names, frozenset(), redact=False)
    assert re.compile(_NAMES_TRIGGER)  # the old trigger is kept for free text
    for text in _texts(11, 600):
        text += ' "x-my-pass": "a", {"my api key" : 1}, "clientsecretvalue": 2'
        low = text.lower()
        found = list(scanner._json_names(low))
        assert _old_names(scanner, low) <= {n for n in found if n[0] is not None}, text
        pairs = any(n is None for n, _ in found)
        assert pairs == (text.isascii() and _PAIR_VALUE.search(text) is not None) or (
            not text.isascii()
        ), text


def test_basic_in_any_case_is_a_trigger_as_the_regex_says() -> None:
    for word in ("Basic", "bAsIc", "BASIC", "basic"):
        assert TRIGGERS.search(f"x {word} y")
        assert TRIGGERS.starts(f"x {word} y") == [2]
    assert TRIGGERS.search("Baſic")  # Unicode case folding: the regex, for non-ASCII text
    assert not TRIGGERS.search("Bas ic abasi")


@pytest.mark.parametrize("length", [24, 32])
def test_has_standard_run_is_the_regex_search(length: int) -> None:
    regex = re.compile(f"[A-Za-z0-9+/]{{{length}}}")
    texts = _texts(5, 400)
    texts += ["a" * (length - 1) + "é" + "a" * 5, "a" * (length - 1) + "_a", "a" * length]
    for text in texts:
        assert has_standard_run(text, length) == (regex.search(text) is not None), text


@pytest.mark.parametrize("length", [24, 32])
def test_has_run_and_run_holders_are_the_regex_search(length: int) -> None:
    """`has_run` of one text and `run_holders` of many (header values, found in one pass
    over them joined) say what the regex says of each."""
    regex = re.compile(f"[A-Za-z0-9+/_-]{{{length}}}")
    texts = _texts(6, 400)
    texts += ["a" * (length - 1) + "é" + "a" * 5, "a" * (length - 1) + "_a", "a" * length, ""]
    for text in texts:
        assert has_run(text, length) == (regex.search(text) is not None), text
    rng = random.Random(length)
    for _ in range(200):
        values = [t.replace("\n", " ") for t in rng.sample(texts, rng.randrange(1, 20))]
        expected = {k for k, v in enumerate(values) if regex.search(v)}
        assert run_holders(values, length) == expected, values


def test_every_credential_name_the_regex_scan_finds_the_automaton_finds() -> None:
    """`_has_credential_name` looks at every place a credential word (or a configured field)
    stands: where the regex `_names_trigger` finds a credential's name, so does it."""
    from tapeproxy.redaction.redactor import Redactor

    for config in ({}, {"redact_fields": ["acme_widget", "zz"]}):
        scanner = Redactor.from_config(config, report_only=True).scanner
        rng = random.Random(7)
        texts = _texts(11, 300) + [t for _ in range(40) for t in _keyed_texts(rng)]
        texts += ["acme_widget 1", "zz", "x-session: 1\nsig = 2", "tokens used"]
        for text in texts:
            low = text.lower()
            regex = any(
                scanner.names.field_kind(name := assignment_name(low, m.start()).strip("'\"\\"))
                or scanner.names.param_kind(name)
                or _CAMEL_KEY.search(name)
                for m in scanner._names_trigger.finditer(low)
            )
            assert scanner._has_credential_name(low) or not regex, text


def test_long_texts_are_not_copied_to_find_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Over the copy limit the finders use their regexes, and agree all the same."""
    monkeypatch.setattr(quickscan, "_COPY_MAX", 16)
    for text in _texts(9, 200):
        assert b64_spans(text) == [m.span() for m in B64_RUN.finditer(text)]
        assert has_standard_run(text, 32) == (re.search("[A-Za-z0-9+/]{32}", text) is not None)


def _keyed_texts(rng: random.Random) -> list[str]:
    """JSON with credential-ish keys of every kind under every kind of value, laid out
    compact, pretty and oddly (space before the colon, an escaped quote in a key)."""
    names = [
        "prompt_tokens", "completion_tokens_details", "api_key", "secret_name", "token",
        "auth_token", "x_session", "cookie", "password", "passwordless", "key_id", "sig",
        "signature", "tokens_used", "Token", "api-key", "my.secret.value", "k" * 50 + "_token",
    ]  # fmt: skip
    values = ["38", "-1.5e-3", "0", '"abc"', '"sk-not-a-key"', "null", "true", "{}", "[1]", '"38"']
    out = []
    for _ in range(400):
        pairs = [(rng.choice(names), rng.choice(values)) for _ in range(rng.randrange(1, 6))]
        style = rng.randrange(4)
        if style == 0:
            body = ",".join(f'"{k}":{v}' for k, v in pairs)
        elif style == 1:
            body = ",\n  ".join(f'"{k}": {v}' for k, v in pairs)
        elif style == 2:
            body = ", ".join(f'"{k}" : {v}' for k, v in pairs)
        else:
            body = ",".join(f'"a\\"{k}": {v}' for k, v in pairs)
        out.append("{" + body + "}")
    return out


@pytest.mark.parametrize("answers", [False, True])
def test_keys_passed_over_quickly_are_those_the_full_loop_passes_over(
    answers: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """json_suspicious passes over a plain key that is no credential's, or only hints at
    one with a number for its value, without weighing it in full: its verdict must be the
    one it gives with that shortcut taken away."""
    from tapeproxy.redaction import scanner as scanning
    from tapeproxy.redaction.redactor import Redactor
    from tests.redaction.texts import json_texts

    r = Redactor()
    scanner = r.answers if answers else r.scanner
    texts = _keyed_texts(random.Random(3)) + json_texts()
    quick = [scanner.json_suspicious(t) for t in texts]
    monkeypatch.setattr(scanning, "_PLAIN_KEY", re.compile(r"(?!)"))  # never a plain key
    full = [scanner.json_suspicious(t) for t in texts]
    assert quick == full
    assert 100 < sum(quick) < len(texts) - 100  # both verdicts are met often


def _b64_text_by_the_base64_module(run: str) -> str | None:
    """What `_decoded_b64_text` stood for when it went through `base64`'s wrappers."""
    if len(run) > 65536 or len(set(run)) < 10:
        return None
    try:
        padded = run + "=" * (-len(run) % 4)
        if "-" in run or "_" in run:
            data = base64.urlsafe_b64decode(padded)
        else:
            data = base64.b64decode(padded, validate=True)
        text = data.decode("utf-8")
    except ValueError:
        return None
    printable = sum(c.isprintable() or c in "\n\r\t" for c in text)
    return text if text and printable >= 0.95 * len(text) else None


def _runs(rng: random.Random) -> list[str]:
    """Runs as texts hold them: ids, base64 of text and of bytes in both alphabets, with too
    much, too little or misplaced padding, and characters no run has."""
    raw = rng.choice(
        [
            rng.randbytes(rng.randrange(0, 48)),
            " ".join(rng.choice(["token", "été", "日本", "a:b", "\n", "\x01"]) for _ in range(9)),
            "x" * rng.randrange(1, 40),
            "".join(rng.choice("ab c") for _ in range(rng.randrange(4, 30))),  # few letters
        ]
    )
    data = raw if isinstance(raw, bytes) else raw.encode()
    std, url = base64.b64encode(data).decode(), base64.urlsafe_b64encode(data).decode()
    out = [std, url, std.rstrip("="), url.rstrip("="), std + "=", "=" + std, std + "===="]
    out += [std.replace("+", "-"), std[:-1], std[:5] + "é" + std[5:], std[:7] + "\n" + std[7:]]
    out.append("".join(rng.choice(_RUN + "=") for _ in range(rng.randrange(1, 70))))
    out.append(f"req_{rng.randbytes(16).hex()}")
    return out


@pytest.mark.parametrize("seed", range(3))
def test_base64_runs_decode_as_through_the_base64_module(seed: int) -> None:
    from tapeproxy.redaction.scanner import _decoded_b64_text

    rng = random.Random(seed)
    runs = [run for _ in range(3000) for run in _runs(rng)]
    texts = 0
    for run in runs:
        got = _decoded_b64_text(run)
        assert got == _b64_text_by_the_base64_module(run), run
        texts += got is not None
    assert texts > 3000  # text is found as well as refused
