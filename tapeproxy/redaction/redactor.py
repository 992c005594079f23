"""Record-time redaction: turning a captured interaction into one that is safe to store.

This is the one place the recorder calls before anything touches disk, and the one place
replay calls on each incoming request before keying it, so a request's key is the same
whether or not it carried secrets: every secret becomes ``<redacted:DETECTOR>``, and the
detector of a credential-named field depends on the name, never on the value.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from tapeproxy.cassettes.model import Body, Header, Interaction, Request, Response, WsMessage
from tapeproxy.errors import ConfigError
from tapeproxy.redaction.bodies import body_edits
from tapeproxy.redaction.context import Names
from tapeproxy.redaction.detectors import Detector, TokenFinder
from tapeproxy.redaction.largebinary import is_clean
from tapeproxy.redaction.placeholders import marker
from tapeproxy.redaction.scanner import Edit, Hit, Scanner, apply_edits

__all__ = ["Redactor", "marker"]

_CONFIG_KEYS = ("redact_headers", "redact_fields", "redact_patterns", "allowlist")

try:
    from mypy_extensions import mypyc_attr
except ImportError:  # (only mypyc reads it, when it compiles this module)

    def mypyc_attr(*_: object, **__: object) -> Any:  # type: ignore[misc]
        return lambda cls: cls


@mypyc_attr(allow_interpreted_subclasses=True)  # (tests, and users, wrap it)
class Redactor:
    """Removes secrets from requests and responses (headers, URL, bodies, SSE chunks).

    Args:
        extra_headers: more header names (any case) whose values are credentials.
        extra_fields: more JSON / form field and query parameter names holding credentials.
        patterns: more regexes; a match is a secret (detector ``custom`` unless named).
        allowlist: sha256 fingerprints of strings that are never redacted nor reported.
        report_only: find secrets without forcing credential-named values to markers (the
            linter's mode); redaction still happens for what is found.
    """

    def __init__(
        self,
        extra_headers: Iterable[str] = (),
        extra_fields: Iterable[str] = (),
        patterns: Iterable[Detector] = (),
        allowlist: Iterable[str] = (),
        *,
        report_only: bool = False,
    ) -> None:
        finder, names = TokenFinder(tuple(patterns)), Names.build(extra_headers, extra_fields)
        fingerprints = frozenset(a.lower() for a in allowlist)
        self.scanner = Scanner(finder, names, fingerprints, redact=not report_only)
        # Answers are never keyed: a placeholder the server sent there ("scrubbed",
        # "<redacted>") is kept as sent, where a request's must become a marker.
        self.answers = Scanner(finder, names, fingerprints, not report_only, answers=True)

    @classmethod
    def from_config(cls, table: Mapping[str, Any], *, report_only: bool = False) -> Redactor:
        """Build from a ``[tool.tapeproxy]`` table (``redact_headers``, ``redact_fields``,
        ``redact_patterns`` (regex strings or ``{name, pattern}`` tables), ``allowlist``).

        Raises:
            ConfigError: a key has the wrong type or a pattern is not a valid regex.
        """
        for key in _CONFIG_KEYS:
            value = table.get(key, [])
            if not isinstance(value, list):
                raise ConfigError(f"[tool.tapeproxy] {key} must be a list, got {value!r}")
        return cls(
            _strings(table, "redact_headers"),
            _strings(table, "redact_fields"),
            [_pattern(p) for p in table.get("redact_patterns", [])],
            _strings(table, "allowlist"),
            report_only=report_only,
        )

    def redact_request(self, request: Request) -> Request:
        """The request with every secret in URL, headers and body replaced by a marker."""
        return self.scan_request(request, "request")[0]

    def redact_response(self, response: Response) -> Response:
        """The response with every secret replaced; streamed chunk sizes follow the edits."""
        return self.scan_response(response, "response")[0]

    def redact_interaction(self, interaction: Interaction) -> Interaction:
        """The interaction with request, response and error redacted (the key is kept)."""
        return self.scan_interaction(interaction, "")[0]

    def scan_interaction(
        self, interaction: Interaction, where: str
    ) -> tuple[Interaction, list[Hit]]:
        """The redacted interaction and every secret found in it, located under `where`."""
        request, hits = self.scan_request(interaction.request, f"{where}request")
        update: dict[str, Any] = {"request": request}
        if interaction.response is not None:
            sent = {h.secret: h.detector for h in hits}
            update["response"], more = self.scan_response(
                interaction.response, f"{where}response", _host(interaction.request.url), sent
            )
            hits += more
        if interaction.error is not None:
            message, more = self.scanner.string(interaction.error.message, f"{where}error.message")
            update["error"] = interaction.error.model_copy(update={"message": message})
            hits += more
        if all(getattr(interaction, k) is v for k, v in update.items()):
            return interaction, hits  # nothing to redact, as for most (lint: for all)
        return interaction.model_copy(update=update), hits

    def prove_clean_headers(self, interactions: Iterable[Interaction]) -> None:
        """Have the scanners remember the ordinary clean headers of many interactions, proved
        together (`Scanner.prove_clean`); scanning each interaction then finds them so."""
        asked: list[Header] = []
        answered: list[Header] = []
        for ix in interactions:
            asked += ix.request.headers
            if ix.response is not None:
                answered += ix.response.headers
        self.scanner.prove_clean(asked)
        self.answers.prove_clean(answered)

    def scan_request(self, request: Request, where: str) -> tuple[Request, list[Hit]]:
        """The redacted request and every secret found in it."""
        edits, hits = self.scanner.url_edits(request.url, f"{where}.url")
        host = _host(request.url)
        headers, more = self._headers(request.headers, f"{where}.headers", host)
        body, more2, _ = self._body(request.body, _content_type(request.headers), f"{where}.body")
        if not edits and headers == request.headers and body is request.body:
            # Replay keys every request after redacting it: most hold nothing to redact.
            return request, hits + more + more2
        new = request.model_copy(
            update={"url": apply_edits(request.url, edits), "headers": headers, "body": body}
        )
        return new, hits + more + more2

    def scan_response(
        self, response: Response, where: str, host: str = "", sent: Mapping[str, str] = {}
    ) -> tuple[Response, list[Hit]]:
        """The redacted response and every secret found in it.

        Args:
            sent: the secrets found in the request (secret to detector): an answer that
                repeats one (a model echoing its prompt) loses it wherever it stands,
                even where what a model wrote is otherwise kept.
        """
        headers, hits = self._headers(response.headers, f"{where}.headers", host, self.answers)
        ct = _content_type(response.headers)
        body, more, byte_edits = self._body(response.body, ct, f"{where}.body", self.answers, sent)
        update: dict[str, Any] = {"headers": headers, "body": body}
        if response.chunks is not None and byte_edits:
            update["chunks"] = rechunk(response.chunks, byte_edits)
        if response.messages:
            update["messages"], found = self._messages(response.messages, f"{where}.messages")
            more = more + found
        elif headers == response.headers and body is response.body:  # (then no chunk moved)
            return response, hits + more
        return response.model_copy(update=update), hits + more

    def redact_message(self, message: WsMessage) -> WsMessage:
        """One WebSocket message redacted as it would be stored (a replayed client message is
        compared with the recorded ones this way)."""
        (redacted,), _ = self._messages((message,), "message")
        return redacted

    def _messages(
        self, messages: tuple[WsMessage, ...], where: str
    ) -> tuple[tuple[WsMessage, ...], list[Hit]]:
        """WebSocket messages redacted like bodies: a client's as requests are (keys in a
        `session.update`), a server's as answers are."""
        out: list[WsMessage] = []
        hits: list[Hit] = []
        for i, (at, who, kind, body) in enumerate(messages):
            text = body.text or ""
            kind_of = "application/json" if text.lstrip()[:1] in ("{", "[") else "text/plain"
            scanner = self.scanner if who == "client" else self.answers
            new, found, _ = self._body(body, kind_of, f"{where}[{i}]", scanner)
            out.append((at, who, kind, new or body))
            hits += found
        return tuple(out), hits

    def _headers(
        self, headers: tuple[Header, ...], where: str, host: str, scanner: Scanner | None = None
    ) -> tuple[tuple[Header, ...], list[Hit]]:
        return (scanner or self.scanner).headers(headers, where, host)

    def _body(
        self,
        body: Body | None,
        content_type: str,
        where: str,
        scanner: Scanner | None = None,
        sent: Mapping[str, str] = {},
    ) -> tuple[Body | None, list[Hit], list[tuple[int, int, int]]]:
        if body is None:
            return None, [], []
        scanner = scanner or self.scanner
        if is_clean(scanner, body, content_type, sent):
            return body, [], []  # a large binary body, proved clean a window at a time
        binary = body.text is None
        text = body.to_bytes().decode("latin-1") if binary else body.text or ""
        edits, hits = body_edits(scanner, text, content_type, where, sent)
        if not edits:
            return body, hits, []
        new = apply_edits(text, edits)
        if binary:
            return Body.from_bytes(new.encode("latin-1")), hits, _byte_spans(text, edits, True)
        return Body(text=new), hits, _byte_spans(text, edits, False)


def rechunk(
    chunks: tuple[tuple[float, int], ...], edits: list[tuple[int, int, int]]
) -> tuple[tuple[float, int], ...]:
    """Chunk sizes after replacing byte ranges ``(start, end, new_length)`` of the body.

    A chunk boundary before an edit stays, one after it moves by the edit's change in length,
    one inside it is kept inside the replacement; the sizes still add up to the new body.
    """
    ordered = sorted(edits)

    def move(p: int) -> int:
        shift = 0
        for start, end, n in ordered:
            if p >= end:
                shift += n - (end - start)
            elif p > start:
                return start + shift + min(p - start, n)
            else:
                break
        return p + shift

    out, prev_old, prev_new = [], 0, 0
    for offset, size in chunks:
        boundary = move(prev_old + size)
        out.append((offset, boundary - prev_new))
        prev_old, prev_new = prev_old + size, boundary
    return tuple(out)


def _byte_spans(text: str, edits: list[Edit], binary: bool) -> list[tuple[int, int, int]]:
    if binary or text.isascii():
        return [(e.start, e.end, len(e.new.encode())) for e in edits]
    return [
        (len(text[: e.start].encode()), len(text[: e.end].encode()), len(e.new.encode()))
        for e in edits
    ]


def _host(url: str) -> str:
    """The host of `url` ("" when it has none), remembered: a cassette's interactions go to
    a few URLs, and splitting one took 2 us."""
    host = _HOSTS.get(url)
    if host is None:
        try:
            host = urlsplit(url).hostname or ""
        except ValueError:
            host = ""
        if len(_HOSTS) >= _HOSTS_MAX:
            _HOSTS.clear()
        _HOSTS[url] = host
    return host


_HOSTS: dict[str, str] = {}
_HOSTS_MAX = 4096


def _content_type(headers: tuple[Header, ...]) -> str:
    return next((v for n, v in headers if n.lower() == "content-type"), "")


def _strings(table: Mapping[str, Any], key: str) -> list[str]:
    values = table.get(key, [])
    if not all(isinstance(v, str) for v in values):
        raise ConfigError(f"[tool.tapeproxy] {key} must be a list of strings")
    return list(values)


def _pattern(item: Any) -> Detector:
    name, pattern = "custom", item
    if isinstance(item, dict):
        name, pattern = str(item.get("name", "custom")), item.get("pattern")
    if not isinstance(pattern, str):
        raise ConfigError(f"[tool.tapeproxy] redact_patterns: {item!r} is not a regex string")
    try:
        re.compile(pattern)
    except re.error as e:
        raise ConfigError(
            f"[tool.tapeproxy] redact_patterns: {pattern!r} is not a regex ({e})"
        ) from e
    if not re.fullmatch(r"[a-z0-9-]+", name):
        raise ConfigError(f"[tool.tapeproxy] redact_patterns: name {name!r} must be [a-z0-9-]+")
    return Detector(name, pattern)
