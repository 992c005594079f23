"""HAR 1.2 (the HTTP Archive format of browser devtools and HAR viewers) both ways.

Export: every interaction an entry, with `pages: []`, `timings` (`wait` the time to first
byte, `receive` the rest), request `postData.text`, and the response body as `content.text`:
streamed bodies as the text they are, binary ones base64 with `encoding: "base64"`. What HAR
has no field for is kept in custom `_tapeproxy` fields (a HAR reader ignores them): the key,
a streamed body's chunk offsets, a transport failure. A failed exchange with no answer is an
entry with status 0, as browsers export an aborted request.

Import: each entry a `Request` and `Response` (or failure), redacted and keyed like a
recording, so an exported-then-imported cassette replays identically. Browser-only headers
that are not part of a request (HTTP/2 pseudo-headers such as `:authority`) are dropped.
HAR holds bodies decoded, as a cassette does, so headers are kept as they are (a replay
recomputes Content-Encoding and Content-Length); a body that is still gzip is decoded.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tapeproxy import __version__
from tapeproxy.cassettes.framing import split_events, stream_kind
from tapeproxy.cassettes.model import (
    Body,
    Cassette,
    Header,
    Interaction,
    MatchRules,
    RecordedError,
    Request,
    Response,
    Timing,
    body_bytes,
    new_cassette,
)
from tapeproxy.cassettes.store import save
from tapeproxy.cassettes.vcr import Imported, Redacts, decode_content, redacted_and_keyed
from tapeproxy.errors import BadInputError, CassetteError

__all__ = ["export_har", "import_har", "read_har"]

_TEXT_TYPES = ("text/", "json", "xml", "event-stream", "javascript", "x-www-form-urlencoded")


def _header_list(headers: Iterable[Header]) -> list[dict[str, str]]:
    return [{"name": k, "value": v} for k, v in headers]


def _content_type(headers: Iterable[Header], default: str) -> str:
    for k, v in headers:
        if k.lower() == "content-type":
            return v
    return default


def _text_or_base64(body: Body | None) -> tuple[str, str | None]:
    if body is None:
        return "", None
    if body.text is not None:
        return body.text, None
    return body.b64() or "", "base64"


def _entry(it: Interaction, started: str) -> dict[str, Any]:
    req = it.request
    text, encoding = _text_or_base64(req.body)
    request: dict[str, Any] = {
        "method": req.method,
        "url": req.url,
        "httpVersion": "HTTP/1.1",
        "cookies": [],
        "headers": _header_list(req.headers),
        "queryString": [
            {"name": k, "value": v}
            for k, v in parse_qsl(urlsplit(req.url).query, keep_blank_values=True)
        ],
        "headersSize": -1,
        "bodySize": len(body_bytes(req.body)),
    }
    if req.body is not None:
        request["postData"] = {
            "mimeType": _content_type(req.headers, "application/octet-stream"),
            "text": text,
            **({"_encoding": encoding} if encoding else {}),
        }
    resp = it.response
    custom: dict[str, Any] = {"key": it.key}
    if resp is None:
        response: dict[str, Any] = {
            "status": 0,
            "statusText": "",
            "httpVersion": "",
            "cookies": [],
            "headers": [],
            "content": {"size": 0, "mimeType": "x-unknown"},
            "redirectURL": "",
            "headersSize": -1,
            "bodySize": -1,
        }
    else:
        text, encoding = _text_or_base64(resp.body)
        size = len(body_bytes(resp.body))
        content: dict[str, Any] = {
            "size": size,
            "mimeType": _content_type(resp.headers, "x-unknown"),
            "text": text,
        }
        if encoding:
            content["encoding"] = encoding
        location = next((v for k, v in resp.headers if k.lower() == "location"), "")
        response = {
            "status": resp.status,
            "statusText": resp.reason,
            "httpVersion": resp.http_version,
            "cookies": [],
            "headers": _header_list(resp.headers),
            "content": content,
            "redirectURL": location,
            "headersSize": -1,
            "bodySize": size,
        }
        if resp.chunks is not None:
            custom["chunks"] = [list(c) for c in resp.chunks]
    if it.error is not None:
        custom["error"] = it.error.model_dump(exclude_none=True)
    total = max(0.0, it.timing.total_ms)
    wait = min(max(0.0, it.timing.ttfb_ms), total)
    return {
        "startedDateTime": started,
        "time": total,
        "request": request,
        "response": response,
        "cache": {},
        "timings": {
            "blocked": -1,
            "dns": -1,
            "connect": -1,
            "ssl": -1,
            "send": 0,
            "wait": wait,
            "receive": round(total - wait, 3),
        },
        "_tapeproxy": custom,
    }


def export_har(cassette: Cassette) -> dict[str, Any]:
    """A cassette as a HAR 1.2 document (every entry started at the cassette's creation
    time: a cassette keeps no per-exchange clock)."""
    started = cassette.meta.created.replace("+00:00", "Z")
    if "T" in started and not started.endswith("Z") and "+" not in started[10:]:
        started += "Z"
    return {
        "log": {
            "version": "1.2",
            "creator": {"name": "tapeproxy", "version": __version__},
            "pages": [],
            "entries": [_entry(it, started) for it in cassette.interactions],
        }
    }


def _where(source: Path, index: int) -> str:
    return f"{source}: log.entries[{index}]"


def _pairs(raw: Any, where: str) -> tuple[Header, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise CassetteError(f"{where}: expected a list of {{name, value}}")
    out = []
    for item in raw:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise CassetteError(f"{where}: expected {{name, value}} items")
        name, value = item["name"], item.get("value", "")
        if name.startswith(":"):
            continue  # an HTTP/2 pseudo-header: part of the request line, not a header
        out.append((name, str(value)))
    return tuple(out)


def _decoded(text: Any, encoding: Any, where: str) -> bytes:
    if text is None:
        return b""
    if not isinstance(text, str):
        raise CassetteError(f"{where}: expected text")
    if encoding == "base64":
        try:
            return base64.b64decode(text, validate=True)
        except binascii.Error as e:
            raise CassetteError(f"{where}: not valid base64 ({e})") from None
    return text.encode("utf-8")


def _interaction(entry: Any, where: str, rules: MatchRules, redactor: Redacts) -> Interaction:
    if not isinstance(entry, dict):
        raise CassetteError(f"{where}: expected an entry object")
    raw_req, raw_resp = entry.get("request"), entry.get("response")
    if not isinstance(raw_req, dict) or not isinstance(raw_resp, dict):
        raise CassetteError(f"{where}: an entry needs request and response objects")
    method, url = raw_req.get("method"), raw_req.get("url")
    if not isinstance(method, str) or not isinstance(url, str) or not method or not url:
        raise CassetteError(f"{where}.request: needs method and url")
    post = raw_req.get("postData") or {}
    body = _decoded(post.get("text"), post.get("_encoding"), f"{where}.request.postData")
    request = Request(
        method=method.upper(),
        url=url,
        headers=_pairs(raw_req.get("headers"), f"{where}.request.headers"),
        body=Body.from_bytes(body),
    )
    found = entry.get("_tapeproxy")
    custom: dict[str, Any] = found if isinstance(found, dict) else {}
    status = raw_resp.get("status")
    response = None
    if isinstance(status, int) and not isinstance(status, bool) and 100 <= status <= 999:
        content = raw_resp.get("content") or {}
        data = _decoded(content.get("text"), content.get("encoding"), f"{where}.response.content")
        headers = _pairs(raw_resp.get("headers"), f"{where}.response.headers")
        if data[:2] == b"\x1f\x8b":  # HAR holds bodies decoded; this one is still gzip
            data, headers = decode_content(data, headers, f"{where}.response")
        response = Response(
            status=status,
            reason=str(raw_resp.get("statusText") or ""),
            http_version=str(raw_resp.get("httpVersion") or "HTTP/1.1"),
            headers=headers,
            body=Body.from_bytes(data),
            chunks=_chunks(custom.get("chunks"), data, headers, url),
        )
    error = None
    if isinstance(custom.get("error"), dict):
        error = RecordedError.model_validate(custom["error"])
    elif response is None:
        error = RecordedError(message="no response (HAR status 0)")
    timings = entry.get("timings")
    total = _number(entry.get("time"))
    wait = _number(timings.get("wait")) if isinstance(timings, dict) else 0.0
    raw = Interaction(
        key="0" * 64,
        request=request,
        response=response,
        error=error,
        timing=Timing(ttfb_ms=max(0.0, wait), total_ms=max(0.0, total)),
    )
    return redacted_and_keyed(raw, rules, redactor)


def _number(value: Any) -> float:
    """A HAR time in ms (-1, absent or not a number: 0)."""
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    return float(value) if ok else 0.0


def _chunks(
    raw: Any, data: bytes, headers: tuple[Header, ...], url: str
) -> tuple[tuple[float, int], ...] | None:
    """The chunk offsets the export kept, if they still cover the body (redaction may have
    changed it: the sizes are then recomputed); else one chunk per event of a stream."""
    if isinstance(raw, list) and all(
        isinstance(c, list) and len(c) == 2 and all(isinstance(x, int | float) for x in c)
        for c in raw
    ):
        chunks = tuple((float(at), int(n)) for at, n in raw)
        if sum(n for _, n in chunks) == len(data) and len(chunks) > 1:
            return chunks
    kind = stream_kind(headers, url, data)
    pieces = split_events(kind, data) if kind else []
    return tuple((0.0, len(p)) for p in pieces) if len(pieces) > 1 else None


def read_har(source: Path, rules: MatchRules, redactor: Redacts) -> tuple[Interaction, ...]:
    """The entries of a HAR file as interactions, redacted and keyed.

    Raises:
        CassetteError: it is not a readable HAR document.
    """
    try:
        doc = json.loads(source.read_bytes())
    except OSError as e:
        raise CassetteError(f"{source}: cannot read the HAR file ({e.strerror or e})") from None
    except ValueError as e:
        raise CassetteError(f"{source}: not JSON ({e})") from None
    entries = doc.get("log", {}).get("entries") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        raise CassetteError(f"{source}: not a HAR document (no log.entries list)")
    rules = rules or MatchRules()
    return tuple(_interaction(e, _where(source, i), rules, redactor) for i, e in enumerate(entries))


def import_har(
    paths: Iterable[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    *,
    redactor: Redacts,
    rules: MatchRules | None = None,
    created: str,
) -> list[Imported]:
    """HAR files as cassettes `<out_dir>/<stem>.json.zst`; every file is read before any is
    written.

    Raises:
        CassetteError: a file is not a readable HAR document.
        BadInputError: two files would be written to the same cassette.
        CassetteWriteError: a cassette could not be written.
    """
    rules = rules or MatchRules()
    planned: dict[Path, tuple[Path, Cassette]] = {}
    for raw in paths:
        source = Path(raw)
        stem = source.name[: -len(".har")] if source.name.lower().endswith(".har") else source.stem
        target = Path(out_dir) / f"{stem}.json.zst"
        if target in planned:
            raise BadInputError(f"{source} and {planned[target][0]} would both be {target}")
        interactions = read_har(source, rules, redactor)
        cassette = new_cassette(__version__, created, rules)
        planned[target] = (source, cassette.model_copy(update={"interactions": interactions}))
    return [
        Imported(source, target, len(cassette.interactions), save(target, cassette))
        for target, (source, cassette) in planned.items()
    ]
