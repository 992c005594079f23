"""Tests for tapeproxy/cassettes/model.py: the tapeproxy/1 models."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tapeproxy.cassettes.model import (
    KEPT_AS_BYTES,
    Body,
    Cassette,
    Interaction,
    Meta,
    RecordedError,
    Request,
    Response,
    body_bytes,
    new_cassette,
)


@pytest.mark.parametrize(
    "data",
    [b"", b"plain text", "h\u00e9 \u2603".encode(), b"\xff\xfe\x00binary", bytes(range(256))],
)
def test_body_round_trips_bytes_exactly(data: bytes) -> None:
    body = Body.from_bytes(data)
    assert body_bytes(body) == data
    if data:
        assert body is not None
        assert (body.text is not None) == (
            data != b"\xff\xfe\x00binary" and data != bytes(range(256))
        )


def test_body_holds_exactly_one_of_text_or_base64() -> None:
    with pytest.raises(ValidationError, match="exactly one"):
        Body()
    with pytest.raises(ValidationError, match="exactly one"):
        Body(text="a", base64="YQ==")
    with pytest.raises(ValidationError, match="not valid base64"):
        Body(base64="***")


def test_a_large_binary_body_is_kept_as_its_bytes_and_stands_for_the_same_body() -> None:
    """`from_bytes` keeps a binary body of 1 MiB or more as its bytes (no base64 str is made
    while recording); it is the same body as its base64 form in every way that counts."""
    import base64
    import pickle
    import random

    data = random.Random(2).randbytes(KEPT_AS_BYTES)
    kept = Body.from_bytes(data)
    encoded = Body(base64=base64.b64encode(data).decode())
    assert kept is not None and kept.kept_as_bytes and kept.base64 is None
    assert kept.to_bytes() is data  # held as it came, not copied
    assert kept.b64() == encoded.base64 == encoded.b64()
    assert kept == encoded and encoded == kept and hash(kept) == hash(encoded)
    assert kept != Body(base64=base64.b64encode(data[:-1]).decode())
    assert not Body.from_bytes(data[: KEPT_AS_BYTES - 1]).kept_as_bytes  # type: ignore[union-attr]
    assert not Body.from_bytes(b"a" * KEPT_AS_BYTES).kept_as_bytes  # type: ignore[union-attr]
    answer = Response(status=200, body=kept, chunks=((0.0, len(data)),))  # validated
    assert answer.body is kept and answer == Response(
        status=200, body=encoded, chunks=((0.0, len(data)),)
    )
    assert pickle.loads(pickle.dumps(kept)) == kept and kept.model_copy().to_bytes() == data
    assert Body.from_bytes(bytearray(data)).to_bytes() == data  # type: ignore[union-attr]


def test_chunk_sizes_must_cover_the_body() -> None:
    Response(status=200, body=Body(text="abcd"), chunks=((0.0, 1), (5.0, 3)))
    with pytest.raises(ValidationError, match="add up to 3 bytes but the body has 4"):
        Response(status=200, body=Body(text="abcd"), chunks=((0.0, 3),))


def test_an_interaction_needs_an_outcome() -> None:
    request = Request(method="GET", url="https://h/")
    with pytest.raises(ValidationError, match="needs a response, an error"):
        Interaction(key="k", request=request)
    Interaction(key="k", request=request, error=RecordedError(message="reset"))


def test_models_are_frozen_and_keep_fields_a_later_writer_added() -> None:
    request = Request(method="GET", url="https://h/")
    with pytest.raises(ValidationError):
        request.method = "POST"  # type: ignore[misc]
    later = Request.model_validate({"method": "GET", "url": "https://h/", "cookies": []})
    assert later.model_dump()["cookies"] == []


# A cassette from an untrusted pull request must not be able to write extra header lines.
SPLITTING = ["\r\nSet-Cookie: a=b", "\nX-Injected: 1", "ok\rX: y", "nul\x00"]


@pytest.mark.parametrize("value", SPLITTING)
def test_header_values_with_line_breaks_are_refused(value: str) -> None:
    with pytest.raises(ValidationError, match="CR, LF or NUL"):
        Response(status=200, headers=(("x-ok", "fine"), ("x-bad", value)))
    with pytest.raises(ValidationError, match="CR, LF or NUL"):
        Request(method="GET", url="https://h/", headers=(("x-bad", value),))


@pytest.mark.parametrize("name", ["x bad", "x:bad", "x\r\ny", "", "\u00e9t\u00e9", "(x)"])
def test_header_names_must_be_tokens(name: str) -> None:
    with pytest.raises(ValidationError, match="not an HTTP token"):
        Response(status=200, headers=((name, "v"),))


@pytest.mark.parametrize("field", ["reason", "http_version"])
def test_status_line_fields_are_one_line(field: str) -> None:
    with pytest.raises(ValidationError, match="CR, LF or NUL"):
        Response.model_validate({"status": 200, field: "OK\r\nX-Injected: 1"})


def test_request_line_fields_are_one_line() -> None:
    with pytest.raises(ValidationError, match="CR, LF or NUL"):
        Request(method="GET", url="https://h/\r\nHost: evil")


def test_ordinary_headers_are_accepted() -> None:
    headers = (
        ("Content-Type", "text/event-stream; charset=utf-8"),
        ("x-request-id", "req_\t123"),
        ("set-cookie", "__cf_bm=abc; path=/; expires=Thu, 01-Jan-2026 00:00:00 GMT"),
        ("x-latin", "caf\u00e9"),
        ("x-undecodable", "\udcff"),
    )
    assert Response(status=200, headers=headers).headers == headers


def test_format_is_a_literal_and_new_cassette_stamps_meta() -> None:
    cassette = new_cassette("9.9", "2025-01-01T00:00:00Z")
    assert cassette.format == "tapeproxy/1"
    assert cassette.meta == Meta(created="2025-01-01T00:00:00Z", tapeproxy="9.9")
    with pytest.raises(ValidationError):
        Cassette.model_validate({"format": "tapeproxy/2", "meta": cassette.meta.model_dump()})


def test_status_range_is_checked() -> None:
    with pytest.raises(ValidationError):
        Response(status=99)
    assert Response(status=599).status == 599


@pytest.mark.parametrize("cut", [4093, 4094, 4095, 4096, 4097])
def test_text_bodies_are_found_whatever_character_the_first_window_cuts(cut: int) -> None:
    from tapeproxy.cassettes.model import utf8_or_none

    # a 2-, 3- and 4-byte character placed across the window's end, in long bodies
    for char in ("é", "€", "😀"):
        text = "a" * cut + char * 3 + "z" * 5000
        assert utf8_or_none(text.encode("utf-8")) == text
        body = Body.from_bytes(text.encode("utf-8"))
        assert body is not None and body.text == text


def test_binary_bodies_are_found_wherever_the_first_invalid_byte_is() -> None:
    from tapeproxy.cassettes.model import utf8_or_none

    for at in (0, 100, 4095, 4096, 9000):  # in the first window, at its end, after it
        data = bytearray(b"x" * 10_000)
        data[at] = 0xFF
        assert utf8_or_none(bytes(data)) is None
        body = Body.from_bytes(bytes(data))
        assert body is not None and body.text is None and body.to_bytes() == bytes(data)
    assert utf8_or_none(b"") == ""
    with pytest.raises(ValueError, match="base64"):
        Body(base64="not*base64")
    with pytest.raises(ValueError, match="base64"):
        Body(base64="QUJD=QUJD")  # padding inside: refused in strict mode, as before
