"""Tests for tapeproxy/proxy/flows.py: requests captured from mitmproxy flows, and replayed
answers made into mitmproxy responses."""

from __future__ import annotations

import gzip

from mitmproxy import http
from mitmproxy.test import tflow

from tapeproxy.cassettes.model import Body, Response, body_bytes
from tapeproxy.proxy.flows import WireResponse, capture_request

_HOSTS = [
    ("http://api.x.test/a?b=1", None),
    ("https://api.x.test/a", "API.X.test"),
    ("https://api.x.test/a", "api.x.test:443"),
    ("http://api.x.test:8080/a", "api.x.test:8080"),
    ("http://[::1]:8080/a", "[::1]:8080"),
    ("http://[::1]:8080/a", "[::1]"),
    ("https://a.test/x", "b.test:80"),
    ("http://a.test/", "bücher.test"),
    ("http://a.test/p", "a.test:"),
    ("https://a.test/p", "a.test:99999"),
]


def _flow(request: http.Request) -> http.HTTPFlow:
    flow = tflow.tflow()
    flow.request = request
    return flow


def test_url_is_mitmproxys_pretty_url() -> None:
    for url, host in _HOSTS:
        for version in ("HTTP/1.1", "HTTP/2.0"):
            req = http.Request.make("GET", url, b"", [(b"host", host.encode())] if host else [])
            req.http_version = version
            req.authority = host or "" if version == "HTTP/2.0" else ""
            for path in ("/v1/x?y=1", "*"):
                req.path = path
                for _ in range(2):  # the second time from the cache
                    assert capture_request(_flow(req)).url == req.pretty_url, (url, host)


def test_body_is_decoded_as_mitmproxy_decodes_it() -> None:
    raw = b'{"a": 1}'
    cases = [
        ([], raw, raw),
        ([(b"Content-Encoding", b"gzip")], gzip.compress(raw), raw),
        ([(b"content-encoding", b"bogus")], raw, raw),  # undecodable: kept as it came
        ([(b"content-encoding", b"")], raw, raw),
    ]
    for headers, content, expected in cases:
        req = http.Request.make("POST", "http://a.test/", b"", headers)
        req.raw_content = content
        captured = capture_request(_flow(req))
        assert body_bytes(captured.body) == expected
        assert captured.headers == tuple((k.decode(), v.decode()) for k, v in req.headers.fields)


def test_replayed_answer_is_a_whole_mitmproxy_response() -> None:
    recorded = Response(
        status=200,
        reason="OK",
        headers=(
            ("Content-Type", "application/json"),
            ("Content-Encoding", "gzip"),  # the stored body is decoded
            ("Transfer-Encoding", "chunked"),
            ("content-length", "999"),
            ("X-Req", "a: b"),
            ("Set-Cookie", "a=1"),
            ("set-cookie", "b=2"),
            ("X-Latin", "caf\xe9"),
        ),
        body=Body(text='{"ok": true}'),
    )
    made = WireResponse.of(recorded).make()
    assert made.status_code == 200
    assert made.content == b'{"ok": true}'
    assert bytes(made.headers) == (
        b"Content-Type: application/json\r\nX-Req: a: b\r\nSet-Cookie: a=1\r\n"
        b"set-cookie: b=2\r\nX-Latin: caf\xe9\r\nx-tapeproxy-source: cassette\r\n"
        b"content-length: 12\r\n"
    )
    assert made.headers["x-req"] == "a: b"
    assert made.headers.get_all("set-cookie") == ["a=1", "b=2"]
    assert "content-encoding" not in made.headers


def test_each_replayed_response_has_its_own_headers() -> None:
    wire = WireResponse.of(Response(status=201, headers=(("x-a", "1"),), body=None))
    first = wire.make()
    first.headers["x-a"] = "changed"
    first.headers["x-b"] = "added"
    second = wire.make()
    source = (b"x-tapeproxy-source", b"cassette")
    assert second.headers.fields == ((b"x-a", b"1"), source, (b"content-length", b"0"))
    assert first.headers.fields == (
        (b"x-a", b"changed"),
        source,
        (b"content-length", b"0"),
        (b"x-b", b"added"),
    )


def test_no_content_length_where_a_response_has_no_body() -> None:
    for status in (101, 204, 304):
        made = WireResponse.of(Response(status=status)).make()
        assert "content-length" not in made.headers, status


def test_made_response_equals_mitmproxys_own_construction() -> None:
    """`make` builds the response without mitmproxy's constructor (its type checks cost a
    quarter of a replayed answer): it must give what the constructor gives, field for field,
    and set every field mitmproxy's response data has."""
    import dataclasses

    from mitmproxy import http

    wire = WireResponse.of(
        Response(status=418, reason="Teapot", headers=(("x-a", "1"),), body=Body(text="hi"))
    )
    made = wire.make()
    own = http.Response(
        b"HTTP/1.1",
        418,
        b"Teapot",
        http.Headers(wire.fields),
        b"hi",
        None,
        made.timestamp_start,
        made.timestamp_end,
    )
    assert made.get_state() == own.get_state()
    names = {f.name for f in dataclasses.fields(http.ResponseData)}
    assert set(vars(made.data)) == names
    assert made.timestamp_start == made.timestamp_end is not None
    assert made.data is not wire.make().data
