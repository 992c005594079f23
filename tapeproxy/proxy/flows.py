"""Translation between mitmproxy flows and cassette models, and response header hygiene.

Header bytes are kept as latin-1 text so that every byte survives the round trip exactly.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from typing import Any, Literal

from mitmproxy import http
from mitmproxy.net.http import url

from tapeproxy.cassettes.model import (
    UNDECODABLE_ENCODING,
    Body,
    Header,
    Interaction,
    Request,
    Response,
    body_bytes,
)
from tapeproxy.providers.answer import Written
from tapeproxy.proxy.tapeserver import BodySource, SessionSource, TapeServer

__all__ = [
    "FRAMING_HEADERS",
    "HOP_BY_HOP",
    "SOURCE_HEADER",
    "Source",
    "WireResponse",
    "capture_request",
    "detail_of",
    "framing_free",
    "is_handled",
    "keep_keyed",
    "mark_handled",
    "pretty_authority",
    "recorded_pieces",
    "route_to_tapeserver",
    "source_of",
    "stream_if_routed",
    "take_keyed",
]

Source = Literal["cassette", "stub", "fault", "live", "miss", "error", "control"]
"""Who answered a request: the one decision made for each flow, kept in its metadata
(`control`: the control API, a request to the proxy itself)."""

SOURCE_HEADER = "x-tapeproxy-source"
"""Sent with every answer: `cassette`, `stub`, `fault` or `live`. Never stored in a cassette."""

_HANDLED = "tapeproxy_handled"
_DETAIL = "tapeproxy_detail"
_STREAMED = "tapeproxy_streamed"

FRAMING_HEADERS = frozenset({"content-length", "transfer-encoding", "content-encoding"})
"""Headers a replay recomputes: the stored body is decoded and whole."""

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authorization",
        "proxy-authenticate",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
    }
)
"""Request headers that belong to one hop and are not forwarded as they are."""


def capture_request(flow: http.HTTPFlow, keep: frozenset[bytes] | None = None) -> Request:
    """The request of a flow as a (not yet redacted) cassette request, body decoded.

    Args:
        keep: only the headers of these lower-case names (replay needs those it keys on).
    """
    req = flow.request
    fields = req.headers.fields
    names = [k.lower() for k, _ in fields]
    headers = tuple(
        [
            (k.decode("latin-1"), v.decode("latin-1"))
            for (k, v), name in zip(fields, names, strict=True)
            if keep is None or name in keep
        ]
    )
    if b"content-encoding" in names:
        content = req.get_content(strict=False) or b""
    else:  # what get_content returns then, without looking the header up again
        content = req.raw_content or b""
    # Built without validation: every field comes from mitmproxy's parsed request, and this
    # runs for every replayed request.
    return Request.model_construct(
        method=req.method,
        url=_pretty_url(req),
        headers=headers,
        body=Body.from_bytes(content),
    )


def _pretty_url(req: http.Request) -> str:
    """`req.pretty_url`, with the parsing of the Host header done once per distinct header."""
    host_header = req.host_header
    if not host_header or req.first_line_format == "authority":
        return req.pretty_url
    scheme = req.scheme
    path = req.path if req.path != "*" else ""
    return f"{scheme}://{pretty_authority(scheme, host_header)}{path}"


@functools.lru_cache(maxsize=256)
def pretty_authority(scheme: str, host_header: str) -> str:
    """A Host header's authority as `Request.pretty_url` writes it (the port kept only when
    it is not the scheme's)."""
    # The steps of mitmproxy's `Request.pretty_url`, with its own helpers.
    host, port = url.parse_authority(host_header, check=False)
    return url.hostport(scheme, host, port or url.default_port(scheme) or 443)


def framing_free(headers: tuple[Header, ...] | list[Header]) -> list[tuple[str, str]]:
    """Headers as replayed: without Content-Length, Transfer-Encoding and Content-Encoding,
    and with an undecodable body's Content-Encoding back under its own name."""
    return [(name.decode("latin-1"), v) for k, v in headers if (name := _wire_name(k)) is not None]


@dataclass(frozen=True, slots=True)
class WireResponse:
    """What a whole response is made of on the wire: status line, header fields and body."""

    status: int
    reason: bytes
    fields: tuple[tuple[bytes, bytes], ...]
    body: bytes

    @classmethod
    def of(cls, recorded: Response) -> WireResponse:
        """A recorded whole answer: headers without framing plus a recomputed Content-Length,
        and the body bytes.

        Made for each answer served rather than kept: a kept copy doubled the memory of every
        interaction served, and on a large cassette, where most answers are served once, it
        was made for nearly every request anyway.
        """
        body = body_bytes(recorded.body)
        fields = [
            (name, v.encode("latin-1"))
            for k, v in recorded.headers
            if (name := _wire_name(k)) is not None
        ]
        fields.append(_FROM_CASSETTE)
        if recorded.status not in (204, 304) and recorded.status >= 200:
            fields.append((b"content-length", b"%d" % len(body)))
        return cls(recorded.status, recorded.reason.encode("latin-1"), tuple(fields), body)

    @classmethod
    def of_written(cls, written: Written, source: Source) -> WireResponse:
        """A written answer (a stub's, a fault's) whole, with its source header and length."""
        fields = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in written.headers]
        body = written.body
        fields += [
            (SOURCE_HEADER.encode(), source.encode()),
            (b"content-length", b"%d" % len(body)),
        ]
        return cls(written.status, written.reason.encode("latin-1"), tuple(fields), body)

    def make(self) -> http.Response:
        """A new mitmproxy response (each flow needs its own object)."""
        # `Headers(fields)` copies each pair and checks its types, and even `Headers()` costs
        # as much again as the rest of this: the headers are made without `__init__`, with
        # their documented raw `fields` (bytes pairs, as this class holds them) set directly.
        # Likewise the response: `Response.__init__` type-checks each field of its data (a
        # dataclass `__post_init__`, on unless Python runs with -O): a third of a cassette
        # hit's cost in the request hook. The fields here are of the right types by
        # construction; a test holds the result equal to the constructor's.
        headers = http.Headers.__new__(http.Headers)
        headers.fields = self.fields
        now = time.time()
        data = http.ResponseData.__new__(http.ResponseData)
        data.__dict__.update(
            http_version=b"HTTP/1.1",
            status_code=self.status,
            reason=self.reason,
            headers=headers,
            content=self.body,
            trailers=None,
            timestamp_start=now,
            timestamp_end=now,
        )
        response = http.Response.__new__(http.Response)
        response.data = data
        return response


_FROM_CASSETTE = (SOURCE_HEADER.encode(), b"cassette")


@functools.lru_cache(maxsize=1024)
def _wire_name(name: str) -> bytes | None:
    """A recorded header name as sent on replay; None for the framing headers, recomputed."""
    low = name.lower()
    if low == UNDECODABLE_ENCODING:
        return b"content-encoding"  # the body was kept raw: as it came, under its encoding
    return None if low in FRAMING_HEADERS else name.encode("latin-1")


def is_handled(flow: http.HTTPFlow, tapeserver: TapeServer) -> bool:
    """Whether an addon already answered or routed this flow (or it is a tape server hop)."""
    host, port = tapeserver.address
    return (
        flow.response is not None
        or bool(flow.metadata.get(_HANDLED))
        or (flow.request.host == host and flow.request.port == port)
    )


def mark_handled(flow: http.HTTPFlow, source: Source, detail: str | None = None) -> None:
    """Claim a flow so that later addons leave it alone, noting who answers it and, for a
    stub or a fault, which rule or which kind (`detail_of`)."""
    flow.metadata[_HANDLED] = source
    if detail is not None:
        flow.metadata[_DETAIL] = detail


def source_of(flow: http.HTTPFlow) -> Source | None:
    """Who answered a flow (None: nobody claimed it; it passed through)."""
    source: Source | None = flow.metadata.get(_HANDLED)
    return source


def detail_of(flow: http.HTTPFlow) -> str | None:
    """The stub rule's label or the fault's kind noted by `mark_handled`, if any."""
    detail: str | None = flow.metadata.get(_DETAIL)
    return detail


_KEYED = "tapeproxy_keyed"


def keep_keyed(flow: http.HTTPFlow, keyed: Any) -> None:
    """Leave the request as captured and keyed on the flow, for the addon that answers it."""
    flow.metadata[_KEYED] = keyed


def take_keyed(flow: http.HTTPFlow) -> Any:
    """What `keep_keyed` left on the flow (None if nothing), removed from it."""
    return flow.metadata.pop(_KEYED, None)


def route_to_tapeserver(
    flow: http.HTTPFlow,
    tapeserver: TapeServer,
    source: BodySource | SessionSource,
    answers: Source,
    keep: frozenset[str] = frozenset(),
) -> None:
    """Point a flow at the loopback tape server, which writes `source` piece by piece;
    `stream_if_routed` then has mitmproxy pass each piece on as it arrives. `keep` names the
    request headers the tape server needs (a WebSocket handshake's)."""
    host, port = tapeserver.address
    req = flow.request
    kept = [(k, v) for k, v in req.headers.fields if k.decode("latin-1").lower() in keep]
    req.scheme = "http"
    req.host = host
    req.port = port
    req.method = "GET"
    req.path = tapeserver.register(source)
    req.headers = http.Headers([(b"host", f"{host}:{port}".encode()), *kept])
    req.content = b""
    flow.metadata[_HANDLED] = answers
    flow.metadata[_STREAMED] = True


def stream_if_routed(flow: http.HTTPFlow) -> None:
    """In `responseheaders`: stream tape server answers and passed-through ones."""
    if flow.response is not None and (
        flow.metadata.get(_STREAMED) or not flow.metadata.get(_HANDLED)
    ):
        flow.response.stream = True


def recorded_pieces(found: Interaction) -> list[tuple[float, bytes]]:
    """A recorded answer's body as sent: each piece with its offset from the request (one
    piece at the total time when the answer was not streamed)."""
    assert found.response is not None
    body = body_bytes(found.response.body)
    chunks = found.response.chunks or ((found.timing.total_ms, len(body)),)
    out, at = [], 0
    for offset, size in chunks:
        out.append((offset, body[at : at + size]))
        at += size
    return out
