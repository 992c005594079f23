"""Tests for tapeproxy/cassettes/key.py: the canonical request and its key (property-based)."""

from __future__ import annotations

import json
import random
from typing import Any
from urllib.parse import urlencode

from hypothesis import given, settings
from hypothesis import strategies as st

from tapeproxy.cassettes.key import (
    CREDENTIAL_HEADERS,
    CREDENTIAL_QUERY_PARAMS,
    canonical_request,
    key_of,
    request_key,
)
from tapeproxy.cassettes.model import Header, MatchRules

RULES = MatchRules()
URL = "https://api.example.com/v1/chat/completions"
CT_JSON: Header = ("content-type", "application/json")
quick = settings(max_examples=60, deadline=None)

VOLATILE_HEADERS = (
    "user-agent",
    "x-stainless-retry-count",
    "x-stainless-os",
    "x-stainless-package-version",
    "content-length",
    "accept-encoding",
    "connection",
    "host",
    "traceparent",
    "date",
    "x-request-id",
    "accept",
)

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(10**12), 10**12)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
json_objects = st.dictionaries(st.text(max_size=8), json_values, max_size=6)
tokens = st.text(st.characters(codec="ascii", categories=("L", "N")), min_size=1, max_size=8)


def key(
    method: str = "POST",
    url: str = URL,
    headers: tuple[Header, ...] = (CT_JSON,),
    body: bytes = b'{"model":"m"}',
    rules: MatchRules = RULES,
) -> str:
    return request_key(method, url, headers, body, rules)


def _shuffled(value: Any, rng: random.Random) -> Any:
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        return {k: _shuffled(v, rng) for k, v in items}
    if isinstance(value, list):
        return [_shuffled(v, rng) for v in value]
    return value


# ---- what does not change the key ---------------------------------------------------------------


@quick
@given(json_objects, st.randoms(use_true_random=False), st.sampled_from([None, 0, 2, 4, "\t"]))
def test_json_key_order_and_whitespace_do_not_change_the_key(
    body: dict[str, Any], rng: random.Random, indent: int | str | None
) -> None:
    compact = json.dumps(body, separators=(",", ":")).encode()
    loose = json.dumps(_shuffled(body, rng), indent=indent, ensure_ascii=False).encode()
    assert key(body=compact) == key(body=b"  \n" + loose + b"\r\n")


@quick
@given(
    st.lists(st.tuples(tokens, st.text(max_size=6)), max_size=6), st.randoms(use_true_random=False)
)
def test_query_parameter_order_does_not_change_the_key(
    pairs: list[tuple[str, str]], rng: random.Random
) -> None:
    shuffled = list(pairs)
    rng.shuffle(shuffled)
    assert key(url=f"{URL}?{urlencode(pairs)}") == key(url=f"{URL}?{urlencode(shuffled)}")


def test_default_ports_and_host_case_do_not_change_the_key() -> None:
    assert key(url="https://h:443/") == key(url="https://h/") == key(url="https://H/")
    assert key(url="http://h:80/x") == key(url="http://h/x")
    assert key(url="https://h") == key(url="https://h/")
    assert key(url="https://h:8443/") != key(url="https://h/")
    assert key(url="http://h:443/") != key(url="https://h/")


@quick
@given(
    st.lists(
        st.tuples(
            st.sampled_from(sorted(CREDENTIAL_HEADERS) + list(VOLATILE_HEADERS)),
            st.text(st.characters(codec="latin-1"), max_size=30),
        ),
        max_size=8,
    ),
    st.booleans(),
)
def test_credential_and_volatile_headers_do_not_change_the_key(
    extra: list[Header], upper: bool
) -> None:
    extra = [(n.upper() if upper else n, v) for n, v in extra]
    assert key(headers=(CT_JSON, *extra)) == key(headers=(CT_JSON,))


def test_credential_headers_stay_out_even_when_configured_as_matched() -> None:
    rules = MatchRules(headers=("authorization", "openai-beta"))
    with_secret = canonical_request("GET", URL, [("Authorization", "Bearer a")], b"", rules)
    assert with_secret["headers"] == {}
    assert key(headers=(("Authorization", "a"),), rules=rules) == key(headers=(), rules=rules)


def test_credential_query_parameters_do_not_change_the_key() -> None:
    assert key(url=f"{URL}?key=AIza123&alt=sse") == key(url=f"{URL}?alt=sse")


def test_fragments_are_stripped() -> None:
    assert key(url=URL + "#stream") == key(url=URL)


def test_multipart_bodies_match_by_endpoint() -> None:
    one = (("content-type", "multipart/form-data; boundary=aaa"),)
    two = (("content-type", "multipart/form-data; boundary=bbb"),)
    assert key(url="https://h/v1/files", headers=one, body=b"--aaa\r\nx\r\n--aaa--") == key(
        url="https://h/v1/files", headers=two, body=b"--bbb\r\ny\r\n--bbb--"
    )
    assert key(url="https://h/v1/files", headers=one, body=b"x") != key(
        url="https://h/v1/uploads", headers=one, body=b"x"
    )


def test_form_bodies_are_sorted() -> None:
    form = (("content-type", "application/x-www-form-urlencoded"),)
    assert key(headers=form, body=b"b=2&a=1") == key(headers=form, body=b"a=1&b=2")
    assert key(headers=form, body=b"b=2&a=1") != key(headers=form, body=b"a=2&b=1")


def test_ignore_lists_work() -> None:
    rules = MatchRules(ignore_query=("ts",), ignore_json_paths=("user", "metadata.*", "items.*.id"))
    a = b'{"model":"m","user":"u1","metadata":{"x":1},"items":[{"id":1,"v":2}]}'
    b = b'{"model":"m","user":"u2","metadata":{"y":2},"items":[{"id":9,"v":2}]}'
    assert key(url=f"{URL}?ts=1", body=a, rules=rules) == key(
        url=f"{URL}?ts=2", body=b, rules=rules
    )
    c = b'{"model":"m","user":"u2","metadata":{},"items":[{"id":9,"v":3}]}'
    assert key(body=b, rules=rules) != key(body=c, rules=rules)
    assert key(body=a) != key(body=b)  # nothing is ignored by default


def test_lone_surrogates_in_json_still_give_a_key() -> None:
    assert key(body=b'{"a":"\\ud800"}') != key(body=b'{"a":"\\ud801"}')


# ---- what does change the key ----------------------------------------------------------------


@quick
@given(
    st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]),
    st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]),
)
def test_a_different_method_changes_the_key(a: str, b: str) -> None:
    assert (key(method=a) == key(method=b)) == (a == b)
    assert key(method=a.lower()) == key(method=a)


@quick
@given(tokens, tokens, tokens, tokens)
def test_a_different_url_changes_the_key(
    host_a: str, host_b: str, path_a: str, path_b: str
) -> None:
    a = key(url=f"https://{host_a}.com/{path_a}")
    b = key(url=f"https://{host_b}.com/{path_b}")
    assert (a == b) == (host_a.lower() == host_b.lower() and path_a == path_b)


@quick
@given(tokens, st.text(max_size=6), st.text(max_size=6))
def test_a_different_query_value_changes_the_key(name: str, a: str, b: str) -> None:
    same = key(url=f"{URL}?{urlencode({name: a})}") == key(url=f"{URL}?{urlencode({name: b})}")
    assert same == (a == b or name.lower() in CREDENTIAL_QUERY_PARAMS)


@quick
@given(
    st.sampled_from(["openai-beta", "anthropic-version", "anthropic-beta"]),
    st.text(st.characters(codec="ascii", exclude_categories=("Cc",)), max_size=12),
    st.text(st.characters(codec="ascii", exclude_categories=("Cc",)), max_size=12),
)
def test_a_different_matched_header_changes_the_key(name: str, a: str, b: str) -> None:
    assert (key(headers=(CT_JSON, (name, a))) == key(headers=(CT_JSON, (name, b)))) == (a == b)
    assert key(headers=(CT_JSON, (name, a))) != key(headers=(CT_JSON,))
    assert key(headers=(CT_JSON, (name.title(), a))) == key(headers=(CT_JSON, (name, a)))


@quick
@given(json_objects, json_objects)
def test_a_different_json_body_changes_the_key(a: dict[str, Any], b: dict[str, Any]) -> None:
    same = key(body=json.dumps(a).encode()) == key(body=json.dumps(b).encode())
    assert same == (json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True))


@quick
@given(st.binary(max_size=40), st.binary(max_size=40))
def test_a_different_raw_body_changes_the_key(a: bytes, b: bytes) -> None:
    octet = (("content-type", "application/octet-stream"),)
    a, b = b"\x00" + a, b"\x00" + b  # never JSON
    assert (key(headers=octet, body=a) == key(headers=octet, body=b)) == (a == b)


def test_empty_body_differs_from_a_body() -> None:
    assert key(body=b"") != key(body=b"{}")


def test_key_of_is_the_sha256_of_the_canonical_form() -> None:
    canonical = canonical_request("POST", URL, [CT_JSON], b'{"model":"m"}', RULES)
    assert key_of(canonical) == key()
    assert len(key()) == 64
    assert canonical["body"] == {"json": {"model": "m"}}
    assert canonical["port"] is None


_PINNED_RULES = MatchRules(
    headers=("x-api-version", "Anthropic-Version"), ignore_query=("Trace", "b")
)
_PINNED: list[tuple[str, str, list[Header], bytes, MatchRules, str]] = [
    (
        "POST",
        URL,
        [CT_JSON],
        '{"b":1,"a":"é\\ud800","c":[1,2.5,null]}'.encode(),
        RULES,
        "aab50613552c1aacf62f6154a3d886d662a6cd387c732d3fc41cc7d3e19a30a0",
    ),
    (
        "get",
        "HTTP://API.Example.com:8443/v1/models?b=2&a=1&key=zz&trace=1&a=0#frag",
        [
            ("X-Api-Version", "3"),
            ("anthropic-version", "2023"),
            ("x-api-version", "4"),
            ("authorization", "Bearer x"),
        ],
        b"",
        _PINNED_RULES,
        "3d070a504042d6f9875f2608d909621d69a736a0478f3d2a12889c1895131e8c",
    ),
    (
        "POST",
        "http://h.test/form",
        [("Content-Type", "application/x-www-form-urlencoded")],
        b"z=1&a=2&token=s",
        RULES,
        "af1a667269eb83e3e9a40246384ab8ba4f4a29e75935269ea4f7aff83bcda2c9",
    ),
    (
        "POST",
        "http://h.test/bin",
        [],
        b"\x00\x01\xff",
        RULES,
        "688195e0256b7b556fea50fed8cdeefc2fe9fc674a77bd54f898dd190410831d",
    ),
]


def test_keys_stay_what_existing_cassettes_hold() -> None:
    # Computed by the implementation that wrote existing cassettes: a change here would make
    # every recorded interaction a miss.
    for method, url, headers, body, rules, key in _PINNED:
        assert request_key(method, url, headers, body, rules) == key
        assert request_key(method, url, headers, body, rules) == key  # cached rule sets too
