"""Tests for tapeproxy/cassettes/model.py: the tapeproxy/1 models."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tapeproxy.cassettes.model import (
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


def test_chunk_sizes_must_cover_the_body() -> None:
    Response(status=200, body=Body(text="abcd"), chunks=((0.0, 1), (5.0, 3)))
    with pytest.raises(ValidationError, match="add up to 3 bytes but the body has 4"):
        Response(status=200, body=Body(text="abcd"), chunks=((0.0, 3),))


def test_an_interaction_needs_an_outcome() -> None:
    request = Request(method="GET", url="https://h/")
    with pytest.raises(ValidationError, match="needs a response, an error"):
        Interaction(key="k", request=request)
    Interaction(key="k", request=request, error=RecordedError(message="reset"))


def test_models_are_frozen_and_forbid_extra_fields() -> None:
    request = Request(method="GET", url="https://h/")
    with pytest.raises(ValidationError):
        request.method = "POST"  # type: ignore[misc]
    with pytest.raises(ValidationError, match="extra"):
        Request.model_validate({"method": "GET", "url": "https://h/", "cookies": []})


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
