"""Undoing a body's Content-Encoding (gzip, deflate, br, zstd, identity), bounded in size:
the one decoder of live traffic and of imported cassettes.

Strict by default: a body that does not decode as its header says is an error, which the
recorder keeps as what happened (the raw bytes under their encoding). Importing is lenient
where recorders are known to have decoded the body already and left the header: a gzip or
zstd header on bytes without the format's magic number, or a deflate / br header on text.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import zstandard

from tapeproxy.cassettes.store import ZSTD_MAGIC

__all__ = ["EncodingError", "decode", "split_codings"]

_GZIP_MAGIC = b"\x1f\x8b"


class EncodingError(ValueError):
    """A body does not decode as its Content-Encoding says (or decodes beyond the limit)."""


def split_codings(values: Sequence[str]) -> list[str]:
    """The codings of Content-Encoding header values, in the order they were applied."""
    return [c.strip().lower() for value in values for c in value.split(",") if c.strip()]


def decode(data: bytes, codings: Sequence[str], *, limit: int, lenient: bool = False) -> bytes:
    """`data` with `codings` undone (last applied first).

    Raises:
        EncodingError: a coding is unknown, the data is not in it, or decodes to more than
            `limit` bytes.
    """
    for coding in reversed(codings):
        data = _one(coding, data, limit, lenient)
    return data


def _one(coding: str, data: bytes, limit: int, lenient: bool) -> bytes:
    try:
        if coding in ("gzip", "x-gzip"):
            if lenient and data[:2] != _GZIP_MAGIC:
                return data
            return _inflate(data, 31, limit)
        if coding == "zstd":
            if lenient and not data.startswith(ZSTD_MAGIC):
                return data
            return _unzstd(data, limit)
        if coding == "deflate":
            return _inflate_any(data, limit, lenient)
        if coding == "br":
            return _unbrotli(data, limit, lenient)
    except (OSError, EOFError, zlib.error, zstandard.ZstdError) as e:
        raise EncodingError(f"cannot undo content-encoding {coding} ({e})") from e
    if coding == "identity":
        return data
    raise EncodingError(f"unknown content-encoding {coding!r}")


class _TooBig(zlib.error):
    """Data that decodes beyond the limit (not to be mistaken for data in another format)."""


def _inflate(data: bytes, wbits: int, limit: int) -> bytes:
    """Decode every member of a zlib/gzip/raw-deflate stream, refusing truncated or huge ones."""
    out = bytearray()
    while True:
        decoder = zlib.decompressobj(wbits=wbits)
        out += decoder.decompress(data, limit + 1 - len(out))
        if len(out) > limit or decoder.unconsumed_tail:
            raise _TooBig(f"decodes to more than {limit} bytes")
        if not decoder.eof:
            raise zlib.error("truncated compressed data")
        data = decoder.unused_data if wbits == 31 else b""
        if not data:
            return bytes(out)


def _inflate_any(data: bytes, limit: int, lenient: bool) -> bytes:
    # "deflate" is zlib-wrapped by the RFC but raw deflate in some servers.
    for wbits in (15, -15):
        try:
            return _inflate(data, wbits, limit)
        except _TooBig:
            raise
        except zlib.error:
            continue
    if lenient:
        _require_text(data, "deflate")
        return data
    raise zlib.error("not deflate data")


def _unzstd(data: bytes, limit: int) -> bytes:
    size = zstandard.get_frame_parameters(data).content_size
    if size != zstandard.CONTENTSIZE_UNKNOWN and size > limit:
        raise zstandard.ZstdError(f"decodes to more than {limit} bytes")
    decoder = zstandard.ZstdDecompressor().decompressobj()
    out = decoder.decompress(data)
    if not decoder.eof:
        raise zstandard.ZstdError("truncated zstd data")
    if len(out) > limit:
        raise zstandard.ZstdError(f"decodes to more than {limit} bytes")
    return out


def _unbrotli(data: bytes, limit: int, lenient: bool) -> bytes:
    import brotli  # type: ignore[import-untyped,import-not-found,unused-ignore]

    try:
        out = bytes(brotli.decompress(data))
    except brotli.error:
        if not lenient:
            raise zlib.error("not br data") from None
        _require_text(data, "br")
        return data
    if len(out) > limit:
        raise zlib.error(f"decodes to more than {limit} bytes")
    return out


def _require_text(data: bytes, coding: str) -> None:
    # A body that does not decode is accepted only as already-decoded text.
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise zlib.error(f"not {coding} data and not text") from e
