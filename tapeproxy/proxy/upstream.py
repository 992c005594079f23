"""The HTTP client the recorder relays predicted streams with, which requests ask for a stream,
and what is captured from an upstream response (from httpx or from mitmproxy).

A request that asks for a stream is fetched by the recorder itself (rather than forwarded by
mitmproxy) so that its answer is read to its end and recorded whole even when the client hangs
up early (the `openai` SDK closes a stream at `data: [DONE]`). Every other request is forwarded
by mitmproxy, and both paths store the same thing for the same upstream answer.
"""

from __future__ import annotations

import hashlib
import json
import os
import ssl
from collections.abc import Mapping
from pathlib import Path

import certifi
import httpx
from mitmproxy import http

from tapeproxy.cassettes.encoding import EncodingError, decode, split_codings
from tapeproxy.cassettes.model import UNDECODABLE_ENCODING, Body, Header, Response
from tapeproxy.cassettes.store import MAX_DECOMPRESSED_BYTES
from tapeproxy.providers.streams import stream_media_kind
from tapeproxy.proxy.flows import SOURCE_HEADER

__all__ = [
    "asks_for_stream",
    "decode_body",
    "from_mitmproxy",
    "is_streamed",
    "make_client",
    "to_response",
    "trust_bundle",
]


def make_client(upstream_ca: Path | None = None, insecure: bool = False) -> httpx.AsyncClient:
    """An httpx client that verifies upstream certificates (plus `upstream_ca`), never uses a
    proxy from the environment, never follows redirects and adds no headers of its own."""
    context: ssl.SSLContext | bool
    if insecure:
        context = False
    else:
        context = ssl.create_default_context(cafile=certifi.where())
        if upstream_ca is not None:
            context.load_verify_locations(cafile=str(upstream_ca))
    return httpx.AsyncClient(
        verify=context,
        trust_env=False,
        follow_redirects=False,
        timeout=httpx.Timeout(connect=30.0, read=600.0, write=60.0, pool=60.0),
        limits=httpx.Limits(max_connections=256, max_keepalive_connections=64),
    )


def trust_bundle(upstream_ca: Path, folder: Path) -> Path:
    """A CA file with the usual public roots plus `upstream_ca`, written once into `folder`.

    mitmproxy verifies upstream certificates against one CA file that replaces its default
    roots; this bundle makes it trust what `make_client` trusts.

    Raises:
        OSError: `upstream_ca` cannot be read or the bundle cannot be written.
    """
    pem = Path(certifi.where()).read_bytes().rstrip(b"\n") + b"\n" + upstream_ca.read_bytes()
    path = folder / f"upstream-trust-{hashlib.sha256(pem).hexdigest()[:16]}.pem"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        partial.write_bytes(pem)
        partial.replace(path)  # atomic: concurrent runs write the same bytes
    return path


def asks_for_stream(request: http.Request) -> bool:
    """Whether a request asks for a streamed answer: a JSON body with `"stream": true`, a
    Gemini `:streamGenerateContent` or `alt=sse` URL, `stream=true` in the query, or an
    `Accept: text/event-stream` header."""
    if "text/event-stream" in request.headers.get("accept", ""):
        return True
    path = request.path
    if ":streamGenerateContent" in path:
        return True
    if "alt=sse" in path and request.query.get("alt") == "sse":
        return True
    if "stream=true" in path and request.query.get("stream") == "true":
        return True
    content = request.get_content(strict=False) or b""
    if b'"stream"' not in content:
        return False
    try:
        doc = json.loads(content)
    except ValueError:
        return False
    return isinstance(doc, dict) and doc.get("stream") is True


def is_streamed(headers: Mapping[str, str], status: int, method: str) -> bool:
    """Whether a response should be relayed piece by piece rather than read whole first."""
    if method == "HEAD" or status in (204, 304) or status < 200:
        return False
    if stream_media_kind(headers.get("content-type", "")) is not None:
        return True
    return "content-length" not in headers


def decode_body(raw: bytes, headers: list[Header]) -> tuple[bytes, list[Header], bool]:
    """Decode a body from its content-encoding.

    Returns:
        The decoded body, the headers to store, and whether decoding changed the bytes. A body
        that cannot be decoded is kept raw and its Content-Encoding header renamed to
        `UNDECODABLE_ENCODING`: the cassette says what happened, and a replay sends the same
        raw bytes under the same Content-Encoding, so the client fails as it did live.
    """
    codings = split_codings([v for k, v in headers if k.lower() == "content-encoding"])
    if not codings or not raw:
        return raw, headers, False
    try:
        decoded = decode(raw, codings, limit=MAX_DECOMPRESSED_BYTES)
    except EncodingError:
        renamed = [
            (UNDECODABLE_ENCODING, v) if k.lower() == "content-encoding" else (k, v)
            for k, v in headers
        ]
        return raw, renamed, False
    return decoded, headers, decoded != raw


def to_response(
    resp: httpx.Response,
    raw_body: bytes,
    pieces: list[tuple[float, int]] | None,
) -> Response:
    """A cassette response from an httpx response and the raw bytes read from it."""
    return _response(
        resp.status_code, resp.reason_phrase, resp.http_version, resp.headers.raw, raw_body, pieces
    )


def from_mitmproxy(
    resp: http.Response,
    raw_body: bytes,
    pieces: list[tuple[float, int]] | None,
) -> Response:
    """A cassette response from a response mitmproxy received and the raw bytes of its body
    (its `raw_content`, or what a stream callable kept): the same as `to_response` for the
    same upstream answer."""
    return _response(
        resp.status_code, resp.reason, resp.http_version, resp.headers.fields, raw_body, pieces
    )


_SOURCE = SOURCE_HEADER.encode()


def _response(
    status: int,
    reason: str,
    http_version: str,
    fields: list[tuple[bytes, bytes]] | tuple[tuple[bytes, bytes], ...],
    raw_body: bytes,
    pieces: list[tuple[float, int]] | None,
) -> Response:
    headers = [
        (k.decode("latin-1"), v.decode("latin-1")) for k, v in fields if k.lower() != _SOURCE
    ]
    body, headers, changed = decode_body(raw_body, headers)
    chunks = None if changed or pieces is None or len(pieces) < 2 else tuple(pieces)
    return Response(
        status=status,
        reason=reason,
        http_version=http_version,
        headers=tuple(headers),
        body=Body.from_bytes(body),
        chunks=chunks,
    )
