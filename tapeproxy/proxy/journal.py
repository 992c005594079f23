"""The journal: every exchange the proxy answered, as its client got it, with who answered it
(cassette, stub, fault, live, miss) and when.

`--journal PATH` writes it as a cassette (`meta.journal`), so `stats`, `profile` and `parity`
read a mock run like a recording; `--report PATH` reads the same exchanges for the client's
behaviour under faults (`proxy.verdicts`).

The journal is two addons: `Journal` takes the request as it arrived, before the replayer
may point the flow at the tape server; its `tail`, last in the chain, sees the answer the
client got: the head, each streamed piece with its offset from the request's arrival, and the
end (or the failure that ended it). Both only run when a journal or a report is asked for.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from mitmproxy import http

from tapeproxy import __version__
from tapeproxy.cassettes import store
from tapeproxy.cassettes.model import (
    Cassette,
    Interaction,
    JournalMeta,
    Meta,
    RecordedError,
    Request,
    Timing,
)
from tapeproxy.proxy.flows import capture_request, detail_of, source_of
from tapeproxy.proxy.session import TapeSession
from tapeproxy.proxy.upstream import from_mitmproxy

__all__ = ["Exchange", "Journal", "retry_after_of"]

_WATCH = "tapeproxy_journal"


@dataclass(frozen=True, slots=True)
class Exchange:
    """One answered exchange, as the client report reads it.

    `arrived` and `ended` are wall-clock seconds; `status` is None when no answer came (a
    reset, a timeout); `retry_after` is how long the answer told the client to wait.
    """

    key: str
    client: str
    source: str
    detail: str | None
    arrived: float
    ended: float
    status: int | None
    retry_after: float | None


def retry_after_of(headers: Iterable[tuple[str, str]]) -> float | None:
    """Seconds an answer tells the client to wait: `retry-after-ms` (OpenAI's, which its SDK
    prefers) or `retry-after` in seconds; None when neither is a number (an HTTP date is not
    read: no provider sends one)."""
    found: dict[str, str] = {}
    for name, value in headers:
        low = name.lower()
        if low in ("retry-after-ms", "retry-after"):
            found.setdefault(low, value)
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        try:
            seconds = float(found[name]) * scale
        except (KeyError, ValueError):
            continue
        if seconds >= 0:
            return seconds
    return None


def _ms(start: float, now: float) -> float:
    return round((now - start) * 1000.0, 3)


class _Watch:
    """One exchange being watched: the request as it arrived; as a response's `stream`
    callable, each piece the client gets, with its offset (an earlier addon's callable, if
    any, still runs first: the client gets what it returns)."""

    __slots__ = ("arrived", "client", "inner", "pieces", "raw", "request", "streamed")

    def __init__(self, request: Request, client: str, arrived: float) -> None:
        self.request = request
        self.client = client
        self.arrived = arrived
        self.inner: Callable[[bytes], bytes | Iterable[bytes]] | None = None
        self.streamed = False
        self.raw = bytearray()
        self.pieces: list[tuple[float, int]] = []

    def __call__(self, data: bytes) -> bytes | Iterable[bytes]:
        out = self.inner(data) if self.inner is not None else data
        pieces = [out] if isinstance(out, bytes) else list(out)
        for piece in pieces:
            if piece:
                self.pieces.append((_ms(self.arrived, time.time()), len(piece)))
                self.raw += piece
        return out if isinstance(out, bytes) else pieces


def _client(flow: http.HTTPFlow) -> str:
    """Who sent a request, as the report names it: its User-Agent (a client keeps it across
    connections and retries), else its address."""
    agent: str | None = flow.request.headers.get("user-agent")
    if agent:
        return agent
    peer = flow.client_conn.peername
    return f"client at {peer[0]}" if peer else "client"


class Journal:
    """Keeps every exchange the proxy answered; thread-safe.

    Args:
        session: the session in use (the runner replaces it when the cassette switches);
            its match rules key the exchanges and its redactor cleans them before saving.
        keep: keep whole exchanges for `save` (a report alone needs only their outline).
    """

    def __init__(self, session: TapeSession, keep: bool = True) -> None:
        self.session = session
        self._keep = keep
        self._lock = threading.Lock()
        self._exchanges: list[Exchange] = []
        self._kept: list[tuple[float, Interaction]] = []
        self._saved = 0
        self.tail = _Tail(self)
        """The addon placed last in the chain: it sees each answer as the client gets it."""

    def request(self, flow: http.HTTPFlow) -> None:
        """Take the request as it arrived (before it may be pointed at the tape server)."""
        if flow.response is not None or source_of(flow) is not None or _WATCH in flow.metadata:
            return
        flow.metadata[_WATCH] = _Watch(capture_request(flow), _client(flow), time.time())

    def exchanges(self) -> list[Exchange]:
        """Every exchange ended so far, in the order they ended."""
        with self._lock:
            return list(self._exchanges)

    def interactions(self) -> list[Interaction]:
        """Every kept exchange so far (not redacted yet), in the order requests arrived."""
        with self._lock:
            kept = list(self._kept)
        return [it for _, it in sorted(kept, key=lambda pair: pair[0])]

    def save(self, path: Path, meta: JournalMeta) -> bool:
        """Write the journal (redacted, in arrival order) as a cassette; False when nothing
        was added since the last save."""
        with self._lock:
            if self._saved == len(self._kept) and path.exists():
                return False
            count = len(self._kept)
        session = self.session
        redact = session.redactor.redact_interaction
        now = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
        cassette = Cassette(
            meta=Meta(created=now, tapeproxy=__version__, match=session.rules, journal=meta),
            interactions=tuple(redact(it) for it in self.interactions()[:count]),
        )
        store.save(path, cassette)
        with self._lock:
            self._saved = count
        return True

    def _streams(self, flow: http.HTTPFlow) -> None:
        watch: _Watch | None = flow.metadata.get(_WATCH)
        resp = flow.response
        if watch is None or resp is None or not resp.stream:
            return
        watch.streamed = True
        if callable(resp.stream):
            watch.inner = resp.stream
        resp.stream = watch

    def _ended(self, flow: http.HTTPFlow) -> None:
        watch: _Watch | None = flow.metadata.pop(_WATCH, None)
        source = source_of(flow)
        if watch is None or source is None:
            return  # passed through untouched: no one answered it
        ended = time.time()
        resp = flow.response
        request = watch.request
        key = self.session.key(request)
        status = resp.status_code if resp is not None else None
        retry_after = None
        if resp is not None:
            fields = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in resp.headers.fields]
            retry_after = retry_after_of(fields)
        exchange = Exchange(
            key, watch.client, source, detail_of(flow), watch.arrived, ended, status, retry_after
        )
        interaction = self._interaction(flow, watch, key, ended) if self._keep else None
        with self._lock:
            self._exchanges.append(exchange)
            if interaction is not None:
                self._kept.append((watch.arrived, interaction))

    def _interaction(
        self, flow: http.HTTPFlow, watch: _Watch, key: str, ended: float
    ) -> Interaction | None:
        resp = flow.response
        error = None
        if flow.error is not None:
            by = "client" if "disconnect" in flow.error.msg.lower() else None
            error = RecordedError(message=flow.error.msg, after_ms=_ms(watch.arrived, ended), by=by)
        if resp is None and error is None:
            return None
        response = None
        timing = Timing(total_ms=_ms(watch.arrived, ended))
        if resp is not None:
            if watch.streamed:
                response = from_mitmproxy(resp, bytes(watch.raw), watch.pieces)
            else:
                response = from_mitmproxy(resp, resp.raw_content or b"", None)
            first = resp.timestamp_start or ended
            timing = Timing(ttfb_ms=max(0.0, _ms(watch.arrived, first)), total_ms=timing.total_ms)
        return Interaction(
            key=key,
            request=watch.request,
            response=response,
            error=error,
            timing=timing,
            source=source_of(flow),
            detail=detail_of(flow),
        )


class _Tail:
    """The journal's hooks that run after every other addon's."""

    def __init__(self, journal: Journal) -> None:
        self._journal = journal

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        """Watch a streamed answer piece by piece, as the client gets it."""
        self._journal._streams(flow)

    def response(self, flow: http.HTTPFlow) -> None:
        """Keep an exchange that ended with its answer."""
        self._journal._ended(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        """Keep an exchange that ended in a failure (reset, timeout, cut short)."""
        self._journal._ended(flow)
