"""The on-disk cassette format `tapeproxy/1` as frozen pydantic models.

A cassette is one JSON document (stored zstd-compressed, see `tapeproxy.cassettes.store`)::

    {"format": "tapeproxy/1",
     "meta": {"created": ..., "tapeproxy": "<version>", "match": {...}},
     "interactions": [{"key": ..., "request": {...}, "response": {...}, "timing": {...}}]}

Bodies are stored once and whole, decoded from any content-encoding: ``{"text": ...}`` when
the bytes are UTF-8, else ``{"base64": ...}``, ``null`` when empty. The bytes a replay sends are
exactly `Body.to_bytes()`; nothing is re-serialised.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
from typing import Annotated, ClassVar, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    model_validator,
)

__all__ = [
    "FORMAT",
    "KEPT_AS_BYTES",
    "SHARED_HEADERS",
    "UNDECODABLE_ENCODING",
    "Body",
    "Cassette",
    "Header",
    "Interaction",
    "JournalMeta",
    "KeptBody",
    "MatchRules",
    "Meta",
    "RecordedError",
    "Request",
    "Response",
    "Timing",
    "WsClose",
    "WsMessage",
    "body_bytes",
    "new_cassette",
    "utf8_or_none",
]

FORMAT = "tapeproxy/1"

Header = tuple[str, str]
"""A header as ``(name, value)``; lists of them keep the order and case seen on the wire."""

DEFAULT_MATCH_HEADERS = ("anthropic-beta", "anthropic-version", "openai-beta")

UNDECODABLE_ENCODING = "x-tapeproxy-undecodable-content-encoding"
"""The stored name of a Content-Encoding the body did not decode from (the body is then kept
raw): a replay sends it as Content-Encoding again, so a client fails as it did live."""

SHARED_HEADERS = "shared_headers"
"""Validation context key: a dict in which equal headers are made one tuple (see `_Headers`)."""


_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_UNSAFE = re.compile(r"[\r\n\x00]")


def _checked(header: Header) -> Header:
    """A header that can be written to the wire as it is, or ValueError.

    A cassette may come from an untrusted pull request: a CR or LF in a value would be sent
    as extra header lines (response splitting), so names must be HTTP tokens and values may
    hold no CR, LF or NUL. The few dozen names every cassette repeats are checked once (a
    value's three `in` tests take half the time of a regex search)."""
    name, value = header
    if name not in _TOKEN_NAMES:
        if not _TOKEN.fullmatch(name):
            raise ValueError(f"header name {name!r} is not an HTTP token")
        if len(_TOKEN_NAMES) >= _TOKEN_NAMES_MAX:
            _TOKEN_NAMES.clear()
        _TOKEN_NAMES.add(name)
    if "\r" in value or "\n" in value or "\x00" in value:
        raise ValueError(f"header {name!r} has a CR, LF or NUL in its value: {value!r}")
    return header


_TOKEN_NAMES: set[str] = set()
"""Header names found to be HTTP tokens (at most `_TOKEN_NAMES_MAX`)."""
_TOKEN_NAMES_MAX = 4096


def _shared(headers: tuple[Header, ...], info: ValidationInfo) -> tuple[Header, ...]:
    table = info.context.get(SHARED_HEADERS) if isinstance(info.context, dict) else None
    if table is None:
        return tuple([_checked(h) for h in headers])
    # Each distinct header is checked once, when it first enters the table.
    return tuple([table.get(h) or table.setdefault(h, _checked(h)) for h in headers])


def _one_line(text: str) -> str:
    if _UNSAFE.search(text):
        raise ValueError(f"a CR, LF or NUL in {text!r}")
    return text


_Headers = Annotated[tuple[Header, ...], AfterValidator(_shared)]
"""Headers in wire order. Validated with a `SHARED_HEADERS` dict in the context (as a cassette
is loaded), a header equal to one seen before is that same tuple. Most headers repeat from one
interaction to the next, so replaying an answer from a large cassette reads fewer objects that
no recent request touched: at 100,000 interactions, 6% more requests per second side by side
(CPU per request 533 -> 497 us), for no cost in load time or peak memory."""


class _Frozen(BaseModel):
    # Fields may be added within tapeproxy/1: a reader keeps what a later 1.x writer added
    # (it is saved again as it was) instead of refusing the whole cassette.
    model_config = ConfigDict(frozen=True, extra="allow")


KEPT_AS_BYTES = 1 << 20
"""Binary bodies from this size on are kept as their bytes (`Body.from_bytes`)."""


class Body(_Frozen):
    """A message body: exactly one of `text` (UTF-8) or `base64` (anything else).

    A binary body of `KEPT_AS_BYTES` or more made by `from_bytes` (a recorded image, audio
    file or upload) is a `KeptBody`: it holds its bytes, and `base64` is None until it is
    saved. Making the base64 str of a 64 MiB answer held its bytes, the base64 bytes and the
    str at once, 170 MiB above the answer, while the client's copy was still held too.
    `b64` gives the base64 of either kind; equality and hashing do not tell them apart."""

    text: str | None = None
    base64: str | None = None
    kept_as_bytes: ClassVar[bool] = False
    """Whether the body holds its bytes rather than `text` or `base64` (a `KeptBody`)."""

    @model_validator(mode="after")
    def _one_of(self) -> Self:
        if (self.text is None) == (self.base64 is None):
            if self.kept_as_bytes:
                return self  # its base64 is made when it is saved
            raise ValueError("a body holds exactly one of 'text' or 'base64'")
        if self.base64 is not None:
            try:  # binascii reads an ASCII str in place (base64.b64decode copies it first)
                binascii.a2b_base64(self.base64, strict_mode=True)
            except (binascii.Error, ValueError) as e:
                raise ValueError(f"body 'base64' is not valid base64: {e}") from e
        return self

    @classmethod
    def from_bytes(cls, data: bytes) -> Body | None:
        """Wrap raw bytes: text when they decode as UTF-8, base64 otherwise (kept as the
        bytes from `KEPT_AS_BYTES` on), None when empty. Built without validation (it runs
        for every replayed request): each form is valid by construction, and checking base64
        would decode the whole body once more."""
        if not data:
            return None
        text = utf8_or_none(data)
        if text is not None:
            return cls.model_construct(text=text)
        if len(data) >= KEPT_AS_BYTES:
            return KeptBody.holding(data)
        return cls.model_construct(base64=base64.b64encode(data).decode("ascii"))

    def to_bytes(self) -> bytes:
        """The exact bytes this body stands for."""
        if self.text is not None:
            return self.text.encode("utf-8")
        return binascii.a2b_base64(self.base64 or "")  # the str read in place, not copied

    def b64(self) -> str | None:
        """The base64 of a binary body (made now for one kept as bytes); None for text."""
        return self.base64

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Body):
            return NotImplemented
        if not (self.kept_as_bytes or other.kept_as_bytes):
            return super().__eq__(other)
        return (
            self.text == other.text
            and self.to_bytes() == other.to_bytes()
            and self.__pydantic_extra__ == other.__pydantic_extra__
        )

    def __hash__(self) -> int:
        return hash((self.text, self.b64()))


class KeptBody(Body):
    """A binary body that holds its bytes until it is saved (see `Body`)."""

    kept_as_bytes: ClassVar[bool] = True
    _data: bytes = PrivateAttr(default=b"")

    @classmethod
    def holding(cls, data: bytes) -> KeptBody:
        """The body of `data` (a bytearray is copied: what it holds may change)."""
        body = cls.model_construct()
        body._data = bytes(data)
        return body

    def to_bytes(self) -> bytes:
        return self._data

    def b64(self) -> str | None:
        return base64.b64encode(self._data).decode("ascii")


_PEEK = 4096


def utf8_or_none(data: bytes) -> str | None:
    """`data` decoded as UTF-8, or None when it is not UTF-8.

    CPython sizes the result of a decode before it reads the bytes, so a large binary body
    cost a string of its own size just to learn that it is binary: the first bytes are read
    first (a character cut at the end of that window is not an error), and binary bodies,
    which show it at once, are never decoded whole."""
    if len(data) > _PEEK:
        try:
            codecs.getincrementaldecoder("utf-8")().decode(data[:_PEEK], final=False)
        except UnicodeDecodeError:
            return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def body_bytes(body: Body | None) -> bytes:
    """The bytes of an optional body (empty for None)."""
    return b"" if body is None else body.to_bytes()


class MatchRules(_Frozen):
    """The rules that turn a request into its key; stored in the cassette's meta."""

    headers: tuple[str, ...] = DEFAULT_MATCH_HEADERS
    ignore_query: tuple[str, ...] = ()
    ignore_json_paths: tuple[str, ...] = ()


class Request(_Frozen):
    """A recorded request, redacted: credentials never appear here."""

    method: Annotated[str, AfterValidator(_one_line)]
    url: Annotated[str, AfterValidator(_one_line)]
    headers: _Headers = ()
    body: Body | None = None


class Response(_Frozen):
    """A recorded response: status, reason, headers in wire order, decoded body, chunking.

    `chunks` is set for streamed bodies only: ``(offset_ms, nbytes)`` for each piece as it
    arrived, offsets measured from the moment the request was sent upstream. The sizes add
    up to the length of the body.
    """

    status: int = Field(ge=100, le=999)
    reason: Annotated[str, AfterValidator(_one_line)] = ""
    http_version: Annotated[str, AfterValidator(_one_line)] = "HTTP/1.1"
    headers: _Headers = ()
    body: Body | None = None
    chunks: tuple[tuple[float, int], ...] | None = None
    messages: tuple[WsMessage, ...] | None = None
    """A WebSocket session (the response is its 101 handshake): every message, in order."""
    close: WsClose | None = None

    @model_validator(mode="after")
    def _chunks_cover_body(self) -> Self:
        if self.chunks is not None:
            total = sum(n for _, n in self.chunks)
            if total != len(body_bytes(self.body)):
                raise ValueError(
                    f"chunk sizes add up to {total} bytes but the body has "
                    f"{len(body_bytes(self.body))}"
                )
        return self


WsMessage = tuple[float, Literal["client", "server"], Literal["text", "binary"], Body]
"""One WebSocket message: offset in ms from the handshake's answer, who sent it, its kind, its
bytes (`{"text": ...}` or `{"base64": ...}`)."""


class WsClose(_Frozen):
    """How a WebSocket session ended: the close code and reason, and who closed it."""

    code: int | None = None
    reason: str = ""
    by: Literal["client", "server"] | None = None


class RecordedError(_Frozen):
    """A transport failure seen while recording (reset, timeout, TLS failure...).

    `by` says who ended the exchange: ``client`` (it gave up or hung up first: the upstream
    was not at fault), ``upstream`` (it refused, reset, timed out or cut the answer short),
    or None when it was not recorded (cassettes of older versions).
    """

    message: str
    after_ms: float = 0.0
    by: Literal["client", "upstream"] | None = None


class Timing(_Frozen):
    """When the answer came: time to first byte and to the end, from the request being sent."""

    ttfb_ms: float = 0.0
    total_ms: float = 0.0


class Interaction(_Frozen):
    """One request and what came back for it (a response, an error, or a partial of both).

    In a journal (`Meta.journal`), `source` says who answered (`cassette`, `stub`, `fault`,
    `live`, `miss`, `error`) and `detail` which stub rule or which fault kind; a recording
    has neither.
    """

    key: str
    request: Request
    response: Response | None = None
    error: RecordedError | None = None
    timing: Timing = Timing()
    source: str | None = None
    detail: str | None = None
    recorded_at: str | None = None
    """When it was recorded (ISO 8601, UTC, seconds); None in cassettes older than the field
    and in imports, whose age is then the cassette's `meta.created`."""

    @model_validator(mode="after")
    def _has_outcome(self) -> Self:
        if self.response is None and self.error is None:
            raise ValueError("an interaction needs a response, an error, or both")
        return self


class JournalMeta(_Frozen):
    """What a journal is the record of: the run's cassette and record mode, and the faults
    and seed it drew with (None: none)."""

    cassette: str
    mode: str
    faults: str | None = None
    seed: int | None = None


class Meta(_Frozen):
    """Who wrote the cassette, when, and with which matching rules; `journal` when it is the
    journal of a proxy run (every exchange the proxy answered) rather than a recording."""

    created: str
    tapeproxy: str
    match: MatchRules = MatchRules()
    journal: JournalMeta | None = None


class Cassette(_Frozen):
    """A whole cassette file."""

    format: Literal["tapeproxy/1"] = "tapeproxy/1"
    meta: Meta
    interactions: tuple[Interaction, ...] = ()


def new_cassette(version: str, created: str, rules: MatchRules | None = None) -> Cassette:
    """An empty cassette stamped with the writing tapeproxy's version and creation time."""
    return Cassette(meta=Meta(created=created, tapeproxy=version, match=rules or MatchRules()))
