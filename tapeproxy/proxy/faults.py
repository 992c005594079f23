"""Seeded, provider-shaped faults: which answers fail, and how they fail.

`--faults 429=10%,500=5%,reset=4%` makes about that share of the answers the cassette or the
stubs would give fail instead. Whether a request fails, and how, is a pure function of
(seed, request key, occurrence of that key): the same seed fails the same requests in any
order and at any concurrency, and a client's retry (the next occurrence) draws again. No
global random state.

An HTTP fault is written by `providers.write_failure` in the shape of the request's API
(error JSON, request id, `retry-after`, rate-limit headers); the others act on the answer
that would have been sent (`truncate`, `stall`, `malformed`, `slow`) or on the connection
(`reset`, `timeout`). For a replayed WebSocket session, `reset`, `truncate`, `stall`, `slow`
and `malformed` act on its messages instead (`proxy.wsreplay`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mitmproxy import http

from tapeproxy.cassettes.model import Interaction
from tapeproxy.errors import ConfigError
from tapeproxy.profilefile import read_table
from tapeproxy.providers.answer import Failure, Ids, RequestFacts, Written, json_bytes
from tapeproxy.providers.write import write_failure
from tapeproxy.proxy.flows import (
    SOURCE_HEADER,
    WireResponse,
    framing_free,
    recorded_pieces,
    route_to_tapeserver,
)
from tapeproxy.proxy.latency import Latency
from tapeproxy.proxy.sampled import Occurrences, unit
from tapeproxy.proxy.tapeserver import Head, TapeServer

__all__ = ["KINDS", "Drawn", "Faults", "Reply", "apply_fault", "parse_faults"]

KINDS = ("overloaded", "timeout", "reset", "truncate", "stall", "malformed", "slow")
"""The kinds that are not an HTTP status (any status from 400 to 599 is a kind too)."""

_RETRY_AFTER_STATUSES = frozenset({429, 503, 529})
_STATUS_HINT = "an HTTP status 400-599 (429, 500, 502, 503, 504, 529)"


def _rate(text: str, where: str) -> float:
    raw = text.strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise ConfigError(f"{where}: rate {text!r} is not a number (write 5% or 0.05)") from None
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"{where}: rate {text!r} is outside 0-100%")
    return value


def _kind(text: str, where: str) -> str:
    kind = text.strip().lower()
    if kind.isdigit() and 400 <= int(kind) <= 599:
        return kind
    if kind in KINDS:
        return kind
    raise ConfigError(
        f"{where}: unknown fault kind {text.strip()!r}; kinds: {_STATUS_HINT}, {', '.join(KINDS)}"
    )


def parse_faults(spec: str) -> tuple[tuple[str, float], ...]:
    """`KIND=RATE,...` (RATE `5%` or `0.05`) or `@FILE` (the `[faults]` table of a TOML
    profile) as (kind, rate) pairs in the order given.

    Raises:
        ConfigError: a part is not KIND=RATE, a kind is unknown, a rate is not in 0-100%, the
            rates add up to more than 100%, or FILE cannot be read.
    """
    where = f"faults {spec!r}"
    if spec.strip().startswith("@"):
        pairs = _from_file(Path(spec.strip()[1:]))
    else:
        pairs = []
        for part in (p for p in spec.split(",") if p.strip()):
            kind, sep, rate = part.partition("=")
            if not sep:
                raise ConfigError(f"{where}: {part.strip()!r} is not KIND=RATE (e.g. 429=5%)")
            pairs.append((kind, rate))
    out: dict[str, float] = {}
    for kind, rate in pairs:
        name = _kind(str(kind), where)
        out[name] = out.get(name, 0.0) + _rate(str(rate), where)
    if sum(out.values()) > 1.0 + 1e-9:
        raise ConfigError(f"{where}: the rates add up to more than 100%")
    return tuple(out.items())


def _from_file(path: Path) -> list[tuple[Any, Any]]:
    return list(read_table(path, "faults", f"faults @{path}").items())


@dataclass(frozen=True)
class Drawn:
    """A fault drawn for one request: its kind, and the seeded values that shape it."""

    kind: str
    ids: Ids


class Faults:
    """The fault draw of one run: thread-safe, deterministic per (seed, key, occurrence).

    Args:
        rates: (kind, rate) pairs, as `parse_faults` gives them.
        seed: mixed into every draw.
        retry_after: seconds an HTTP fault tells the client to wait (rate limits, overload).
        delay: seconds a `stall` pauses a stream and a `slow` answer is late.
        hold: the longest a `timeout` holds a request whose client does not give up.
    """

    def __init__(
        self,
        rates: tuple[tuple[str, float], ...],
        seed: int = 0,
        retry_after: float = 1.0,
        delay: float = 2.0,
        hold: float = 600.0,
    ) -> None:
        self.rates = rates
        self.seed = seed
        self.retry_after = retry_after
        self.delay = delay
        self.hold = hold
        self._seen = Occurrences()

    def describe(self) -> str:
        """The rates as `--faults` takes them (e.g. `429=10%,reset=4%`)."""
        return ",".join(f"{kind}={rate * 100:g}%" for kind, rate in self.rates)

    def draw(self, key: str) -> Drawn | None:
        """The fault for this request (its key's next occurrence), or None."""
        return self._draw_at(key, self._seen.next(key))

    def draw_clean(self, key: str) -> bool:
        """Whether this key's next occurrence draws no fault. If so that occurrence is taken,
        as `draw` would take it; if not it is left for `draw` (the proxy front answers only
        requests that draw none, and leaves the others to the replayer, which draws the same)."""
        return self._seen.take_if(key, lambda n: self._draw_at(key, n) is None)

    def _draw_at(self, key: str, occurrence: int) -> Drawn | None:
        seed = f"{self.seed}\0{key}\0{occurrence}".encode()
        drawn = unit(b"fault\0" + seed)
        at = 0.0
        for kind, rate in self.rates:
            at += rate
            if drawn < at:
                return Drawn(kind, Ids(b"fault-shape\0" + seed))
        return None


@dataclass(frozen=True)
class Reply:
    """The answer a request would have had: status, reason, headers without framing, and
    the body in pieces, each due `offsets_ms[i]` after the request arrived."""

    status: int
    reason: str
    headers: tuple[tuple[str, str], ...]
    pieces: tuple[bytes, ...]
    offsets_ms: tuple[float, ...]
    ttfb_ms: float

    @classmethod
    def of_interaction(cls, found: Interaction) -> Reply | None:
        """A recorded answer (None for a recorded connection failure: no answer to fault)."""
        r = found.response
        if r is None:
            return None
        offsets, pieces = zip(*recorded_pieces(found), strict=True)
        headers = tuple(framing_free(r.headers))
        return cls(r.status, r.reason, headers, pieces, offsets, found.timing.ttfb_ms)

    @classmethod
    def of_written(cls, written: Written, offsets_ms: tuple[float, ...] | None) -> Reply:
        """A stub's answer, its events at their offsets (all at once without)."""
        offsets = offsets_ms or (0.0,) * len(written.events)
        return cls(written.status, written.reason, written.headers, written.events, offsets, 0.0)

    @property
    def body(self) -> bytes:
        return b"".join(self.pieces)

    @property
    def is_sse(self) -> bool:
        return any(
            k.lower() == "content-type" and "event-stream" in v.lower() for k, v in self.headers
        )


async def apply_fault(
    drawn: Drawn,
    faults: Faults,
    flow: http.HTTPFlow,
    reply: Reply,
    facts: RequestFacts | None,
    tapeserver: TapeServer,
    latency: Latency,
    started: float,
) -> None:
    """Answer `flow` with the fault instead of `reply` (or kill it, for `reset`/`timeout`)."""
    kind, ids = drawn.kind, drawn.ids
    if kind == "reset":
        flow.kill()
    elif kind == "timeout":
        await _hold(flow, faults.hold)
    elif kind.isdigit() or kind == "overloaded":
        written = _failure(kind, facts, faults.retry_after, ids)
        flow.response = WireResponse.of_written(written, "fault").make()
    else:
        source = _FaultSource(_shaped(kind, reply, faults.delay, ids), started, latency)
        route_to_tapeserver(flow, tapeserver, source, "fault")


async def _hold(flow: http.HTTPFlow, longest: float) -> None:
    """Give no answer until the client gives up (closes its connection), then let go of
    the connection; at most `longest` seconds."""
    loop = asyncio.get_running_loop()
    until = loop.time() + longest
    while flow.client_conn.timestamp_end is None and loop.time() < until:
        await asyncio.sleep(0.05)
    flow.kill()


def _failure(kind: str, facts: RequestFacts | None, retry_after: float, ids: Ids) -> Written:
    """The error answer of an HTTP fault (or the provider's overload answer), in the shape
    of the request's API; a JSON error for requests to no API known here."""
    if kind == "overloaded":
        anthropic = facts is not None and facts.endpoint == "messages"
        status = 529 if anthropic else 503
        gemini = facts is not None and facts.endpoint == "generate"
        message = "The model is overloaded. Please try again later." if gemini else ""
        failure = Failure(status, None, message, retry_after)
    else:
        status = int(kind)
        wait = retry_after if status in _RETRY_AFTER_STATUSES else None
        failure = Failure(status, None, "", wait)
    if facts is not None:
        return write_failure(facts, failure, ids)
    doc = {"error": {"message": f"tapeproxy fault: {status}", "type": "fault", "code": status}}
    headers = [("content-type", "application/json")]
    if failure.retry_after is not None:
        headers.append(("retry-after", f"{failure.retry_after:g}"))
    return Written(status, "Error", tuple(headers), (json_bytes(doc),))


@dataclass(frozen=True)
class _Shaped:
    """A faulted answer on the wire: head, pieces at offsets (plus seconds added to each),
    and whether the connection breaks after the last piece."""

    head: Head
    ttfb_ms: float
    pieces: tuple[tuple[float, float, bytes], ...]  # (offset ms, added s, bytes)
    abort: bool = False


def _shaped(kind: str, reply: Reply, delay: float, ids: Ids) -> _Shaped:
    head: Head = (reply.status, reply.reason, [*reply.headers, (SOURCE_HEADER, "fault")])
    timed = list(zip(reply.offsets_ms, reply.pieces, strict=True))
    if kind == "slow":
        pieces = tuple((at, delay, piece) for at, piece in timed)
        return _Shaped(head, reply.ttfb_ms, pieces)
    if kind == "malformed":
        last = reply.offsets_ms[-1] if reply.offsets_ms else reply.ttfb_ms
        return _Shaped(head, reply.ttfb_ms, ((last, 0.0, _malformed(reply, ids)),))
    timed = _split_single(timed)
    if kind == "stall":
        cut = 1 + int(ids.unit() * (len(timed) - 1))  # pause before piece `cut`, never the first
        pieces = tuple((at, delay if i >= cut else 0.0, p) for i, (at, p) in enumerate(timed))
        return _Shaped(head, reply.ttfb_ms, pieces)
    # truncate: a strict prefix, ending inside one piece (inside an event, for streams)
    body_len = sum(len(p) for _, p in timed)
    if body_len < 2:
        return _Shaped(head, reply.ttfb_ms, (), abort=True)
    keep = 1 + int(ids.unit() * (body_len - 1))  # 1 .. body_len - 1 bytes
    kept: list[tuple[float, float, bytes]] = []
    for at, piece in timed:
        if keep <= 0:
            break
        if len(piece) > keep:
            piece = piece[:keep]
        kept.append((at, 0.0, piece))
        keep -= len(piece)
    return _Shaped(head, reply.ttfb_ms, tuple(kept), abort=True)


def _split_single(timed: list[tuple[float, bytes]]) -> list[tuple[float, bytes]]:
    """A body in one piece split into two at its middle (so it can stall or break mid-way);
    a body in several pieces as it is."""
    if len(timed) != 1 or len(timed[0][1]) < 2:
        return timed
    at, piece = timed[0]
    half = len(piece) // 2
    return [(at, piece[:half]), (at, piece[half:])]


def _malformed(reply: Reply, ids: Ids) -> bytes:
    """The body with invalid JSON where a client parses it: one event's data cut short for
    a stream, the document cut short for JSON."""
    body = reply.body
    if reply.is_sse:
        events = body.split(b"\n\n")
        with_data = [i for i, e in enumerate(events) if b"data: {" in e or b"data:{" in e]
        if with_data:
            i = with_data[int(ids.unit() * len(with_data))]
            start = events[i].index(b"{", events[i].index(b"data:"))
            events[i] = events[i][: start + max(1, (len(events[i]) - start) // 2)].rstrip(b"}")
            return b"\n\n".join(events)
    cut = body[: max(1, len(body) // 2)].rstrip(b"}]")
    return cut if cut else b"{"


class _FaultSource:
    """A faulted answer written piece by piece on the tape server."""

    def __init__(self, shaped: _Shaped, started: float, latency: Latency) -> None:
        self._shaped = shaped
        self._started = started
        self._latency = latency

    async def head(self) -> Head:
        s = self._shaped
        first_added = s.pieces[0][1] if s.pieces else 0.0
        await self._latency.until(self._started, s.ttfb_ms, first_added)
        return s.head

    async def chunks(self) -> AsyncIterator[bytes]:
        for offset, added, piece in self._shaped.pieces:
            await self._latency.until(self._started, offset, added)
            yield piece
        if self._shaped.abort:
            raise ConnectionAbortedError("tapeproxy fault: truncate")
