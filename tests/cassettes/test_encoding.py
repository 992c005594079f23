"""The one Content-Encoding decoder: every coding, chains, the size limit, strict (live
traffic) and lenient (import of recorders that already decoded the body)."""

from __future__ import annotations

import gzip
import os
import zlib

import brotli
import pytest
import zstandard

from tapeproxy.cassettes.encoding import EncodingError, decode, split_codings

BODY = b'{"text": "' + os.urandom(64).hex().encode() + b'"}' * 50

ENCODERS = {
    "gzip": gzip.compress,
    "x-gzip": gzip.compress,
    "deflate": zlib.compress,
    "br": brotli.compress,
    "zstd": lambda b: zstandard.ZstdCompressor().compress(b),
    "identity": lambda b: b,
}


@pytest.mark.parametrize("coding", sorted(ENCODERS))
def test_every_coding_round_trips(coding: str) -> None:
    assert decode(ENCODERS[coding](BODY), [coding], limit=1 << 20) == BODY


def test_raw_deflate_and_concatenated_gzip_members() -> None:
    raw = zlib.compressobj(wbits=-15)
    data = raw.compress(BODY) + raw.flush()
    assert decode(data, ["deflate"], limit=1 << 20) == BODY
    assert decode(gzip.compress(b"ab") + gzip.compress(b"cd"), ["gzip"], limit=10) == b"abcd"


def test_chained_codings_are_undone_last_first() -> None:
    data = brotli.compress(gzip.compress(BODY))
    codings = split_codings(["gzip", " BR "])
    assert codings == ["gzip", "br"]
    assert decode(data, codings, limit=1 << 20) == BODY


@pytest.mark.parametrize("coding", ["gzip", "deflate", "br", "zstd"])
def test_strict_refuses_what_is_not_in_its_coding_and_lenient_keeps_text(coding: str) -> None:
    with pytest.raises(EncodingError, match=coding):
        decode(BODY, [coding], limit=1 << 20)
    assert decode(BODY, [coding], limit=1 << 20, lenient=True) == BODY


def test_unknown_codings_and_bombs_are_errors() -> None:
    with pytest.raises(EncodingError, match="unknown content-encoding 'compress'"):
        decode(BODY, ["compress"], limit=1 << 20)
    bomb = b"\0" * (1 << 20)
    for coding in ("gzip", "deflate", "br", "zstd"):
        with pytest.raises(EncodingError, match="more than"):
            decode(ENCODERS[coding](bomb), [coding], limit=1000)


def test_truncated_data_is_an_error_even_when_lenient() -> None:
    with pytest.raises(EncodingError, match="truncated"):
        decode(gzip.compress(BODY)[:-20], ["gzip"], limit=1 << 20, lenient=True)
