"""The canonical form of a request and its key: sha256 over that form.

Canonical form (DESIGN "The request key", PROVIDER_WIRE §6): method; scheme, host and port
(default port dropped, host lower-cased); path; query parameters sorted, minus ignored and
credential ones; the body (JSON re-serialised with sorted keys minus ignored JSON paths, form
bodies sorted, multipart matched by endpoint only, anything else as its sha256); and only the
headers named in the match rules. Credentials never take part, so a replay without
credentials matches a recording made with them. URL fragments are stripped.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tapeproxy.cassettes.model import Header, MatchRules

__all__ = [
    "CREDENTIAL_HEADERS",
    "CREDENTIAL_QUERY_PARAMS",
    "CanonicalRequest",
    "canonical_request",
    "drop_path",
    "key_of",
    "request_key",
]

CREDENTIAL_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "x-api-key",
        "api-key",
        "x-goog-api-key",
        "cookie",
        "set-cookie",
        "x-amz-security-token",
    }
)
"""Header names whose values are credentials: never stored, never part of a key."""

CREDENTIAL_QUERY_PARAMS = frozenset(
    {
        "key",
        "api_key",
        "apikey",
        "api-key",
        "access_token",
        "token",
        "secret",
        "password",
        "client_secret",
        "sig",
        "x-amz-security-token",
        "x-amz-credential",
        "x-amz-signature",
    }
)
"""Query parameter names whose values are credentials (compared lower-cased)."""

_DEFAULT_PORTS = {"http": 80, "https": 443}

CanonicalRequest = dict[str, Any]
"""The canonical form: a JSON-able dict with method, scheme, host, port, path, query,
headers and body. Two requests match when their canonical forms are equal."""


def canonical_request(
    method: str,
    url: str,
    headers: Iterable[Header],
    body: bytes,
    rules: MatchRules,
) -> CanonicalRequest:
    """Build the canonical form of a request under the given match rules."""
    scheme, host, port, path, raw_query = _split_url(url)
    ignored_query = _ignored_query(rules.ignore_query)
    query = (
        sorted(
            (k, v)
            for k, v in parse_qsl(raw_query, keep_blank_values=True)
            if k.lower() not in ignored_query
        )
        if raw_query
        else []
    )
    matched = _matched_headers(rules.headers)
    kept: dict[str, list[str]] = {}
    content_type = ""
    for name, value in headers:
        lname = name.lower()
        if lname == "content-type":
            content_type = value.lower()
        if lname in matched:
            kept.setdefault(lname, []).append(value)
    return {
        "method": method.upper(),
        "scheme": scheme,
        "host": host,
        "port": port,
        "path": path,
        "query": [list(q) for q in query],
        "headers": {k: ", ".join(v) for k, v in sorted(kept.items())},
        "body": _canonical_body(body, content_type, rules.ignore_json_paths),
    }


def request_key(
    method: str,
    url: str,
    headers: Iterable[Header],
    body: bytes,
    rules: MatchRules,
) -> str:
    """The sha256 hex digest of the request's canonical form."""
    return key_of(canonical_request(method, url, headers, body, rules))


# Built once: `json.dumps` with options builds an encoder per call.
_ENCODE = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode


@functools.lru_cache(maxsize=1024)
def _split_url(url: str) -> tuple[str, str, int | None, str, str]:
    """Scheme, host, port (None when it is the scheme's default), path and raw query.

    Cached: a test suite sends most of its requests to a handful of endpoints.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or _DEFAULT_PORTS.get(scheme)
    return (
        scheme,
        (parts.hostname or "").lower(),
        None if port == _DEFAULT_PORTS.get(scheme) else port,
        parts.path or "/",
        parts.query,
    )


@functools.lru_cache(maxsize=64)
def _ignored_query(ignore_query: tuple[str, ...]) -> frozenset[str]:
    return frozenset(q.lower() for q in ignore_query) | CREDENTIAL_QUERY_PARAMS


@functools.lru_cache(maxsize=64)
def _matched_headers(headers: tuple[str, ...]) -> frozenset[str]:
    return frozenset(h.lower() for h in headers) - CREDENTIAL_HEADERS


def key_of(canonical: CanonicalRequest) -> str:
    """The key of an already canonical request."""
    data = _ENCODE(canonical)
    # surrogatepass: JSON bodies may hold lone surrogates ("\ud800"), still a valid request.
    return hashlib.sha256(data.encode("utf-8", "surrogatepass")).hexdigest()


def _canonical_body(body: bytes, content_type: str, ignore_paths: tuple[str, ...]) -> Any:
    if not body:
        return None
    if content_type.startswith("multipart/"):
        # Random boundaries make every upload differ: match multipart by endpoint only.
        return {"multipart": True}
    if content_type.startswith("application/x-www-form-urlencoded"):
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return {"sha256": hashlib.sha256(body).hexdigest()}
        pairs = sorted(parse_qsl(text, keep_blank_values=True))
        return {"form": [list(p) for p in pairs if p[0].lower() not in CREDENTIAL_QUERY_PARAMS]}
    parsed = _parse_json(body)
    if parsed is not _NOT_JSON:
        for path in ignore_paths:
            parsed = drop_path(parsed, path.split("."))
        return {"json": parsed}
    return {"sha256": hashlib.sha256(body).hexdigest()}


_NOT_JSON = object()


def _parse_json(body: bytes) -> Any:
    first = body.lstrip()[:1]
    if first not in (b"{", b"["):
        return _NOT_JSON
    try:
        return json.loads(body)
    except ValueError:
        return _NOT_JSON


def drop_path(value: Any, path: list[str]) -> Any:
    """Remove a dotted path (``*`` matches any key or list item) from a JSON value."""
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        names = list(value) if head == "*" else [head]
        out = dict(value)
        for name in names:
            if name not in out:
                continue
            if rest:
                out[name] = drop_path(out[name], rest)
            else:
                del out[name]
        return out
    if isinstance(value, list) and head in ("*", "[]"):
        return [drop_path(item, rest) if rest else item for item in value]
    return value
