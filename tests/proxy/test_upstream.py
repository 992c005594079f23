"""Which requests ask for a stream, which answers are streamed, and what is stored of an answer
whichever client (httpx or mitmproxy) received it."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import certifi
import httpx
import pytest
from mitmproxy import http

from tapeproxy.cassettes.model import Response
from tapeproxy.proxy.upstream import (
    asks_for_stream,
    from_mitmproxy,
    is_streamed,
    to_response,
    trust_bundle,
)


def _request(
    path: str = "/v1/chat/completions", body: bytes = b"", headers: dict[str, str] | None = None
) -> http.Request:
    return http.Request.make("POST", "https://api.example.com" + path, body, headers or {})


@pytest.mark.parametrize(
    ("path", "body", "headers"),
    [
        ("/v1/chat/completions", b'{"model": "m", "stream": true}', {}),
        ("/v1/messages", b'{"stream":true,"messages":[]}', {}),
        ("/v1beta/models/gemini:streamGenerateContent", b"{}", {}),
        ("/v1beta/models/gemini:streamGenerateContent?alt=sse", b"{}", {}),
        ("/v1/x?alt=sse", b"", {}),
        ("/v1/responses/resp_1?stream=true&starting_after=3", b"", {}),
        ("/v1/chat/completions", b"{}", {"accept": "text/event-stream"}),
    ],
)
def test_stream_requests_are_recognised(path: str, body: bytes, headers: dict[str, str]) -> None:
    assert asks_for_stream(_request(path, body, headers))


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/chat/completions", b'{"model": "m", "stream": false}'),
        (
            "/v1/chat/completions",
            b'{"model": "m", "messages": [{"content": "\\"stream\\": true"}]}',
        ),
        ("/v1/chat/completions", b'{"stream": "true"}'),
        ("/v1/chat/completions", b'"stream"'),
        ("/v1/chat/completions", b'{"stream": true'),  # not JSON
        ("/v1/x?upstream=true", b""),
        ("/v1beta/models/gemini:generateContent", b"{}"),
    ],
)
def test_other_requests_do_not_ask_for_a_stream(path: str, body: bytes) -> None:
    assert not asks_for_stream(_request(path, body, {"accept": "application/json"}))


def test_a_gzip_request_body_is_read_decoded() -> None:
    request = _request(headers={"content-encoding": "gzip"})
    request.raw_content = gzip.compress(json.dumps({"stream": True}).encode())
    assert asks_for_stream(request)


@pytest.mark.parametrize(
    ("headers", "status", "method", "streamed"),
    [
        ({"content-type": "text/event-stream; charset=utf-8"}, 200, "POST", True),
        ({"content-type": "application/json"}, 200, "POST", True),  # no length: chunked
        ({"content-type": "application/json", "content-length": "2"}, 200, "POST", False),
        ({"Content-Type": "Text/Event-Stream", "content-length": "2"}, 200, "POST", True),
        ({}, 204, "POST", False),
        ({}, 200, "HEAD", False),
    ],
)
def test_streamed_answers_are_told_apart_in_both_header_types(
    headers: dict[str, str], status: int, method: str, streamed: bool
) -> None:
    assert is_streamed(httpx.Headers(headers), status, method) is streamed
    assert (
        is_streamed(
            http.Headers([(k.encode(), v.encode()) for k, v in headers.items()]), status, method
        )
        is streamed
    )


_FIELDS = [
    (b"Content-Type", b"application/json; charset=utf-8"),
    (b"X-Request-ID", b"req_1"),
    (b"set-cookie", b"a=1"),
    (b"set-cookie", b"b=2"),
    (b"Content-Encoding", b"gzip"),
    (b"Content-Length", b"0"),
    (b"x-odd", "caf\xe9".encode("latin-1")),
]


def _both(
    raw: bytes, fields: list[tuple[bytes, bytes]], reason: str = "Too Many Requests"
) -> tuple[Response, Response]:
    pieces = [(1.5, len(raw) // 2), (3.0, len(raw) - len(raw) // 2)]
    via_httpx = httpx.Response(
        429,
        headers=fields,
        stream=httpx.ByteStream(raw),
        extensions={"reason_phrase": reason.encode(), "http_version": b"HTTP/1.1"},
    )
    via_mitm = http.Response(
        b"HTTP/1.1", 429, reason.encode(), http.Headers(fields), raw, None, 0.0, 0.0
    )
    return to_response(via_httpx, raw, pieces), from_mitmproxy(via_mitm, raw, pieces)


def test_both_clients_store_the_same_answer_the_same_way() -> None:
    raw = gzip.compress(b'{"error": "slow down"}\n', mtime=0)
    from_httpx, from_mitm = _both(raw, _FIELDS)
    assert from_mitm == from_httpx
    assert from_mitm.body is not None and from_mitm.body.to_bytes() == b'{"error": "slow down"}\n'
    assert [k for k, _ in from_mitm.headers] == [k.decode() for k, _ in _FIELDS]  # order, case
    assert from_mitm.reason == "Too Many Requests" and from_mitm.http_version == "HTTP/1.1"
    assert from_mitm.chunks is None  # offsets of encoded bytes say nothing of decoded ones


def test_plain_streamed_bytes_keep_their_offsets_on_both_paths() -> None:
    fields = [(b"content-type", b"text/event-stream")]
    from_httpx, from_mitm = _both(b"data: 1\n\ndata: 2\n\n", fields, "OK")
    assert from_mitm == from_httpx
    assert from_mitm.chunks == ((1.5, 9), (3.0, 9))


def test_trust_bundle_holds_public_roots_and_the_extra_ca(tmp_path: Path) -> None:
    extra = tmp_path / "ca.pem"
    extra.write_bytes(b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    first = trust_bundle(extra, tmp_path / "conf")
    assert trust_bundle(extra, tmp_path / "conf") == first
    text = first.read_bytes()
    assert text.startswith(Path(certifi.where()).read_bytes().rstrip(b"\n"))
    assert text.endswith(extra.read_bytes())
    assert list((tmp_path / "conf").iterdir()) == [first]  # no partial files left
