"""A large binary body proved clean a window at a time: the verdict must be the whole-text
scan's whenever it says "clean", and the body is never held whole as text."""

from __future__ import annotations

import base64
import json
import random
import tracemalloc
from re import _parser

import pytest

from tapeproxy.cassettes import model
from tapeproxy.cassettes.model import Body, Response
from tapeproxy.redaction import Redactor, largebinary
from tapeproxy.redaction.bodies import body_edits
from tapeproxy.redaction.detectors import _LEAD, DETECTORS, _anchored
from tests.redaction.corpus import FORMATS

_SHARE = 3 * 1000
_OVERLAP = 3 * 6800  # just over the longest bounded match (20,122) and its lead


@pytest.fixture
def small_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    """Windows of 3,000 bytes: a 100 KB body then has dozens of boundaries to get wrong;
    and binary bodies kept as bytes from 1 KB."""
    monkeypatch.setattr(largebinary, "_SHARE", _SHARE)
    monkeypatch.setattr(largebinary, "_OVERLAP", _OVERLAP)
    monkeypatch.setattr(largebinary, "LARGE_BINARY", 2 * _SHARE)
    monkeypatch.setattr(model, "KEPT_AS_BYTES", 1000)


def _body(data: bytes, kept: bool) -> Body:
    """The body as recorded (kept as bytes) or as loaded from a cassette (base64)."""
    body = Body.from_bytes(data) if kept else Body(base64=base64.b64encode(data).decode())
    assert body is not None and body.kept_as_bytes == kept
    return body


def test_every_detector_fits_the_overlap_or_is_guarded() -> None:
    """A detector whose match can be longer than the overlap must be one whose characters
    the guard knows; a new unbounded detector has to be weighed there first."""
    unbounded = set()
    for d in DETECTORS:
        widest = _parser.parse(_anchored(d)).getwidth()[1]
        if widest >= _parser.MAXREPEAT:
            unbounded.add(d.name)
        else:
            assert widest + _LEAD + 1 < largebinary._OVERLAP, d.name
            assert widest + _LEAD + 1 < _OVERLAP, d.name  # the tests' small windows too
    assert unbounded == {"jwt", "url-credentials", "basic-auth"}


def test_decoded_gives_any_range_of_the_bytes() -> None:
    rng = random.Random(5)
    for n in (0, 1, 2, 3, 4, 5, 97, 3000, 3001, 3002):
        data = rng.randbytes(n)
        b64 = base64.b64encode(data).decode()
        assert largebinary.byte_length(b64) == n
        for _ in range(30):
            a = rng.randrange(n + 1)
            b = rng.randrange(a, n + 1)
            assert largebinary.decoded(b64, a, b) == data[a:b].decode("latin-1")


def _binary(rng: random.Random, n: int) -> bytearray:
    """Random bytes as a recorded image or archive holds them (no form, no JSON, no SSE)."""
    data = bytearray(rng.randbytes(n))
    data[:4] = b"\x89PNG"
    return data


def _plant(data: bytearray, at: int, piece: bytes) -> None:
    data[at : at + len(piece)] = piece


def _bodies(seed: int) -> list[tuple[str, bytes, dict[str, str]]]:
    """Binary bodies of 30-120 KB: clean ones, and ones with a token, a placeholder, a
    request's secret or a long JWT placed across, before and after window boundaries."""
    rng = random.Random(seed)
    out: list[tuple[str, bytes, dict[str, str]]] = []
    for i in range(40):
        out.append((f"clean-{i}", bytes(_binary(rng, rng.randrange(30_000, 120_000))), {}))
    for fmt in FORMATS:
        secret = fmt.make(rng).encode()
        data = _binary(rng, rng.randrange(30_000, 120_000))
        edge = rng.randrange(1, len(data) // _SHARE) * _SHARE  # a window boundary
        at = edge + rng.choice((-len(secret) // 2, -len(secret), 0, 1, -1, -_LEAD))
        _plant(data, max(8, min(at, len(data) - len(secret))), secret)
        out.append((f"token-{fmt.name}", bytes(data), {}))
    for i in range(10):  # a request's secret echoed across a boundary
        secret = "".join(rng.choice("abcdefghjkmnpqrstuvwxyz23456789") for _ in range(24))
        data = _binary(rng, 60_000)
        _plant(data, 5 * _SHARE - 12, secret.encode())
        out.append((f"echo-{i}", bytes(data), {secret: "custom"}))
    for i in range(5):  # placeholders, which `find` leaves out, right before a real token
        data = _binary(rng, 60_000)
        _plant(data, 4 * _SHARE - 40, b"sk-proj-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx")
        token = next(f for f in FORMATS if f.name == "github-pat").make(rng).encode()
        _plant(data, 4 * _SHARE + rng.randrange(-5, 40), token)
        out.append((f"placeholder-then-token-{i}", bytes(data), {}))
    jwt_run = ("eyJ" + "A" * (_OVERLAP + 500) + ".eyJ" + "B" * 40 + "." + "C" * 40).encode()
    data = _binary(rng, 3 * _OVERLAP)
    _plant(data, 2 * _SHARE - 50, jwt_run)  # starts in one window, ends past its reach
    out.append(("jwt-longer-than-the-overlap", bytes(data), {}))
    return out


@pytest.mark.usefixtures("small_windows")
@pytest.mark.parametrize("kept", [False, True], ids=["base64", "kept-as-bytes"])
@pytest.mark.parametrize("answers", [False, True])
def test_a_clean_verdict_is_the_whole_scans(answers: bool, kept: bool) -> None:
    r = Redactor()
    scanner = r.answers if answers else r.scanner
    clean = found = 0
    for name, data, sent in _bodies(seed=41):
        whole = body_edits(scanner, data.decode("latin-1"), "image/png", "b", sent)
        if largebinary.is_clean(scanner, _body(data, kept), "image/png", sent):
            assert whole == ([], []), name
            clean += 1
        elif name.startswith("clean-"):
            pytest.fail(f"{name}: random bytes should be proved clean")
        found += bool(whole[1])
    # (formats that need a name beside them, an Azure key's 32 hex, are not tokens in binary)
    assert clean >= 40 and found >= 55


@pytest.mark.usefixtures("small_windows")
def test_what_is_not_binary_is_left_to_the_whole_scan() -> None:
    scanner = Redactor().answers
    rng = random.Random(3)
    noise = bytes(_binary(rng, 50_000))
    for content_type, data in (
        ("text/event-stream", noise),
        ("application/octet-stream", b"data: " + noise),
        ("application/octet-stream", b'  {"a": "' + noise),
        ("application/x-www-form-urlencoded", noise),
        (
            "application/octet-stream",
            b"a=" + bytes(b for b in noise if b < 0x80 and b > 0x20)[:5000] + noise,
        ),
        ("application/octet-stream", ("é" * 30_000).encode("latin-1")),  # text, not UTF-8
    ):
        for kept in (False, True):
            body = _body(data, kept)
            assert not largebinary.is_clean(scanner, body, content_type), (content_type, kept)
    # and below the size it is for, or with configured patterns (no trigger known), or text
    assert not largebinary.is_clean(scanner, _body(noise[:5000], False), "")
    assert largebinary.is_clean(Redactor(patterns=[]).answers, _body(noise, False), "")
    configured = Redactor.from_config({"redact_patterns": ["zz[0-9]{4}"]}).answers
    assert not largebinary.is_clean(configured, _body(noise, False), "")
    assert not largebinary.is_clean(scanner, Body(text="x" * 60_000), "")


def test_a_large_binary_answer_is_redacted_without_its_text_in_memory() -> None:
    """A 32 MiB binary answer, through the redactor: the same answer back when it is clean,
    with a few windows' worth allocated on the way, not the body; a token in a 12 MiB one is
    still replaced."""
    rng = random.Random(9)
    data = _binary(rng, 32 << 20)
    body = Body(base64=base64.b64encode(data).decode())
    response = Response(status=200, headers=(("content-type", "image/png"),), body=body)
    r = Redactor()
    tracemalloc.start()
    try:
        assert r.redact_response(response) is response
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < len(data) // 2, peak  # the whole-text scan held bytes and text: 2x
    data = data[: 12 << 20]
    token = next(f for f in FORMATS if f.name == "anthropic-api").make(rng)
    _plant(data, 3 << 20, token.encode())
    dirty = response.model_copy(update={"body": Body(base64=base64.b64encode(data).decode())})
    redacted = r.redact_response(dirty).body
    assert redacted is not None and token.encode() not in redacted.to_bytes()
    assert redacted.to_bytes().count(b"<redacted:") == 1


def test_json_body_of_the_corpus_is_never_taken_for_binary() -> None:
    """A large JSON answer that is not UTF-8 (kept as base64) goes to the whole scan."""
    doc = json.dumps({"blob": "x" * (7 << 20)}).encode() + b"\xff"
    b64 = base64.b64encode(doc).decode()
    assert not largebinary.is_clean(Redactor().answers, Body(base64=b64), "application/json")
