"""The HTTP client the recorder forwards with, and what it captures from an upstream response.

The recorder fetches from the upstream itself (rather than letting mitmproxy forward) so that
a response is read to its end and recorded whole even when the client hangs up early (the
`openai` SDK closes a stream at `data: [DONE]`), and so that resets and timeouts are captured
as what they were.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import certifi
import httpx
from mitmproxy.net import encoding

from tapeproxy.cassettes.model import Body, Header, Response

__all__ = ["STREAM_TYPES", "decode_body", "is_streamed", "make_client", "to_response"]

STREAM_TYPES = (
    "text/event-stream",
    "application/x-ndjson",
    "application/ndjson",
    "application/stream+json",
    "application/vnd.amazon.eventstream",
    "application/jsonl",
)


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


def is_streamed(headers: httpx.Headers, status: int, method: str) -> bool:
    """Whether a response should be relayed piece by piece rather than read whole first."""
    if method == "HEAD" or status in (204, 304) or status < 200:
        return False
    content_type = headers.get("content-type", "").lower()
    if any(content_type.startswith(t) for t in STREAM_TYPES):
        return True
    return "content-length" not in headers


def decode_body(raw: bytes, headers: list[Header]) -> tuple[bytes, list[Header], bool]:
    """Decode a body from its content-encoding.

    Returns:
        The decoded body, the headers to store, and whether decoding changed the bytes. A body
        that cannot be decoded is kept raw and its Content-Encoding header is renamed, so a
        replay never sends bytes under an encoding they are not in.
    """
    encodings = [v for k, v in headers if k.lower() == "content-encoding"]
    if not encodings or not raw:
        return raw, headers, False
    value = encodings[-1].strip().lower()
    try:
        decoded = encoding.decode(raw, value)
    except ValueError:
        renamed = [
            ("x-tapeproxy-undecodable-content-encoding", v)
            if k.lower() == "content-encoding"
            else (k, v)
            for k, v in headers
        ]
        return raw, renamed, False
    assert isinstance(decoded, bytes)
    return decoded, headers, decoded != raw


def to_response(
    resp: httpx.Response,
    raw_body: bytes,
    pieces: list[tuple[float, int]] | None,
) -> Response:
    """A cassette response from an httpx response and the raw bytes read from it."""
    headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in resp.headers.raw]
    body, headers, changed = decode_body(raw_body, headers)
    chunks = None if changed or pieces is None or len(pieces) < 2 else tuple(pieces)
    return Response(
        status=resp.status_code,
        reason=resp.reason_phrase,
        http_version=resp.http_version,
        headers=tuple(headers),
        body=Body.from_bytes(body),
        chunks=chunks,
    )
