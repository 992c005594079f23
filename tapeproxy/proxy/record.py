"""The record addon: forward requests to the real upstream, relay the answer to the client as it
arrives, and keep every exchange (with its timing) in the session's cassette.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable

import httpx
from mitmproxy import http

from tapeproxy.cassettes.model import RecordedError, Request, Timing
from tapeproxy.proxy.flows import (
    HOP_BY_HOP,
    WireResponse,
    capture_request,
    is_handled,
    mark_handled,
    route_to_tapeserver,
    stream_if_routed,
)
from tapeproxy.proxy.session import Captured, TapeSession
from tapeproxy.proxy.tapeserver import Head, TapeServer
from tapeproxy.proxy.upstream import is_streamed, to_response

__all__ = ["Recorder"]

logger = logging.getLogger(__name__)


def _ms(start: float, now: float) -> float:
    return round((now - start) * 1000.0, 3)


class Recorder:
    """Records what the upstream answers for the requests the replayer did not answer.

    Args:
        session: the cassette being written and its counters.
        tapeserver: where streamed answers are relayed through, piece by piece.
        client_factory: makes the upstream HTTP client (called once the loop runs).
        hosts: record only these hosts (None: every host); others pass through untouched.
    """

    def __init__(
        self,
        session: TapeSession,
        tapeserver: TapeServer,
        client_factory: Callable[[], httpx.AsyncClient],
        hosts: frozenset[str] | None = None,
    ) -> None:
        self.session = session
        self.tapeserver = tapeserver
        self._client_factory = client_factory
        self._client: httpx.AsyncClient | None = None
        self._hosts = hosts
        self._pending: set[asyncio.Task[None]] = set()

    async def request(self, flow: http.HTTPFlow) -> None:
        """Forward a request upstream and record what comes back."""
        if is_handled(flow, self.tapeserver) or not self.session.records:
            return
        if self._hosts is not None and flow.request.pretty_host not in self._hosts:
            self.session.count_passthrough()
            return
        mark_handled(flow)
        request = capture_request(flow)
        outgoing = httpx.Request(
            flow.request.method,
            flow.request.pretty_url,
            headers=[(k, v) for k, v in flow.request.headers.fields if k.lower() not in _HOP],
            content=flow.request.raw_content or b"",
        )
        loop = asyncio.get_running_loop()
        start = loop.time()
        try:
            resp = await self._http().send(outgoing, stream=True)
        except httpx.HTTPError as e:
            failure = RecordedError(message=_describe(e), after_ms=_ms(start, loop.time()))
            self.session.add(Captured(request, None, failure, Timing()))
            flow.kill()
            return
        ttfb = _ms(start, loop.time())
        if is_streamed(resp.headers, resp.status_code, flow.request.method):
            relay = _Relay(resp, request, start, ttfb, self.session.add)
            task = loop.create_task(relay.pump())
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)
            route_to_tapeserver(flow, self.tapeserver, relay)
            return
        await self._read_whole(flow, request, resp, start, ttfb)

    async def _read_whole(
        self, flow: http.HTTPFlow, request: Request, resp: httpx.Response, start: float, ttfb: float
    ) -> None:
        loop = asyncio.get_running_loop()
        raw = bytearray()
        error: RecordedError | None = None
        try:
            async for piece in resp.aiter_raw():
                raw += piece
        except httpx.HTTPError as e:
            error = RecordedError(message=_describe(e), after_ms=_ms(start, loop.time()))
        finally:
            await resp.aclose()
        total = _ms(start, loop.time())
        recorded = to_response(resp, bytes(raw), None)
        self.session.add(Captured(request, recorded, error, Timing(ttfb_ms=ttfb, total_ms=total)))
        if error is not None:
            flow.kill()
            return
        # The client gets the bytes as they came, in their content-encoding.
        fields = [(k, v) for k, v in resp.headers.raw if k.lower() != b"content-length"]
        if resp.status_code not in (204, 304) and flow.request.method != "HEAD":
            fields.append((b"content-length", str(len(raw)).encode()))
        reason = resp.reason_phrase.encode("latin-1")
        flow.response = WireResponse(resp.status_code, reason, tuple(fields), bytes(raw)).make()

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        """Stream relayed answers, and passed-through ones, as they arrive."""
        stream_if_routed(flow)

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = self._client_factory()
        return self._client

    async def done(self) -> None:
        """Let relays still reading finish (bounded), then close the client."""
        if self._pending:
            await asyncio.wait(self._pending, timeout=30)
        if self._client is not None:
            await self._client.aclose()


_HOP = {h.encode() for h in HOP_BY_HOP}


def _describe(e: Exception) -> str:
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__


class _Relay:
    """Reads a live streamed response to its end, independently of the client, while handing
    each piece to the tape server as it arrives."""

    def __init__(
        self,
        resp: httpx.Response,
        request: Request,
        start: float,
        ttfb: float,
        keep: Callable[[Captured], None],
    ) -> None:
        self.resp = resp
        self.request = request
        self._start = start
        self._ttfb = ttfb
        self._keep = keep
        self._queue: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue()

    async def pump(self) -> None:
        loop = asyncio.get_running_loop()
        raw = bytearray()
        pieces: list[tuple[float, int]] = []
        error: RecordedError | None = None
        try:
            async for piece in self.resp.aiter_raw():
                if piece:
                    pieces.append((_ms(self._start, loop.time()), len(piece)))
                    raw += piece
                    self._queue.put_nowait(piece)
        except httpx.HTTPError as e:
            error = RecordedError(message=_describe(e), after_ms=_ms(self._start, loop.time()))
            self._queue.put_nowait(ConnectionAbortedError(error.message))
        finally:
            await self.resp.aclose()
            self._queue.put_nowait(None)
        total = _ms(self._start, loop.time())
        recorded = to_response(self.resp, bytes(raw), pieces)
        self._keep(
            Captured(self.request, recorded, error, Timing(ttfb_ms=self._ttfb, total_ms=total))
        )

    async def head(self) -> Head:
        headers = [
            (k.decode("latin-1"), v.decode("latin-1"))
            for k, v in self.resp.headers.raw
            if k.lower() not in (b"content-length", b"transfer-encoding")
        ]
        return self.resp.status_code, self.resp.reason_phrase, headers

    async def chunks(self) -> AsyncIterator[bytes]:
        while True:
            item = await self._queue.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
