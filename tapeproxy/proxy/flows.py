"""Translation between mitmproxy flows and cassette models, and response header hygiene.

Header bytes are kept as latin-1 text so that every byte survives the round trip exactly.
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass

from mitmproxy import http

from tapeproxy.cassettes.model import Body, Header, Interaction, Request, body_bytes

__all__ = [
    "FRAMING_HEADERS",
    "HOP_BY_HOP",
    "WireResponse",
    "capture_request",
    "framing_free",
    "make_response",
    "redirect_to_tapeserver",
]

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


def _text(value: bytes) -> str:
    return value.decode("latin-1")


def capture_request(flow: http.HTTPFlow) -> Request:
    """The request of a flow as a (not yet redacted) cassette request, body decoded."""
    req = flow.request
    content = req.get_content(strict=False) or b""
    # Built without validation: every field comes from mitmproxy's parsed request, and this
    # runs for every replayed request.
    return Request.model_construct(
        method=req.method,
        url=req.pretty_url,
        headers=tuple((_text(k), _text(v)) for k, v in req.headers.fields),
        body=_body(content),
    )


def _body(content: bytes) -> Body | None:
    if not content:
        return None
    try:
        return Body.model_construct(text=content.decode("utf-8"), base64=None)
    except UnicodeDecodeError:
        return Body.model_construct(text=None, base64=base64.b64encode(content).decode("ascii"))


def framing_free(headers: tuple[Header, ...] | list[Header]) -> list[tuple[str, str]]:
    """Headers without Content-Length, Transfer-Encoding and Content-Encoding."""
    return [(k, v) for k, v in headers if k.lower() not in FRAMING_HEADERS]


@dataclass(frozen=True, slots=True)
class WireResponse:
    """What a whole replayed response is made of, prepared once per recorded interaction."""

    status: int
    reason: bytes
    fields: tuple[tuple[bytes, bytes], ...]
    body: bytes

    @classmethod
    def of(cls, interaction: Interaction) -> WireResponse:
        """Headers without framing plus a recomputed Content-Length, and the body bytes."""
        recorded = interaction.response
        assert recorded is not None
        body = body_bytes(recorded.body)
        fields = [
            (k.encode("latin-1"), v.encode("latin-1")) for k, v in framing_free(recorded.headers)
        ]
        if recorded.status not in (204, 304) and recorded.status >= 200:
            fields.append((b"content-length", str(len(body)).encode()))
        return cls(recorded.status, recorded.reason.encode("latin-1"), tuple(fields), body)

    def make(self) -> http.Response:
        """A new mitmproxy response (each flow needs its own object)."""
        now = time.time()
        return http.Response(
            b"HTTP/1.1",
            self.status,
            self.reason,
            http.Headers(self.fields),
            self.body,
            None,
            now,
            now,
        )


def make_response(interaction: Interaction) -> http.Response:
    """A whole mitmproxy response for a recorded interaction, with a recomputed length."""
    return WireResponse.of(interaction).make()


def redirect_to_tapeserver(flow: http.HTTPFlow, port: int, path: str) -> None:
    """Point a flow at the loopback tape server: mitmproxy then streams what it writes."""
    req = flow.request
    req.scheme = "http"
    req.host = "127.0.0.1"
    req.port = port
    req.method = "GET"
    req.path = path
    req.headers = http.Headers(host=f"127.0.0.1:{port}")
    req.content = b""
    flow.metadata["tapeproxy_stream"] = True
