"""The record addon: have each request answered by the real upstream, pass the answer on to the
client as it arrives, and keep every exchange (with its timing) in the session's cassette.

The path is chosen when the request arrives. A request that asks for a stream
(`upstream.asks_for_stream`: `"stream": true`, Gemini `:streamGenerateContent` or `alt=sse`,
`Accept: text/event-stream`) is fetched by the recorder's own httpx client: a `_Relay` reads
the answer to its end independently of the client, which gets it piece by piece through the
tape server; so a client that hangs up at `data: [DONE]` still leaves the whole stream on tape.
Every other request is forwarded by mitmproxy itself and captured in the `response` hook, or in
the `error` hook when the upstream refused, reset or timed out, or the client gave up first
(recorded as the failure it was, after the time it took; the client's connection is then
killed, as replay will do). An answer that turns out streamed anyway (an event stream, or no
Content-Length) is passed on by a stream callable that keeps each piece and its arrival offset;
such an unpredicted stream is tied to the client, so a client hanging up early cuts it short,
and it is recorded as cut, with the error.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping

import httpx
from mitmproxy import http
from mitmproxy.connection import ConnectionState
from mitmproxy.proxy import server_hooks
from mitmproxy.websocket import WebSocketMessage

from tapeproxy.cassettes.model import Body, RecordedError, Request, Timing, WsClose, WsMessage
from tapeproxy.proxy.flows import (
    HOP_BY_HOP,
    SOURCE_HEADER,
    WireResponse,
    capture_request,
    is_handled,
    mark_handled,
    route_to_tapeserver,
    stream_if_routed,
    take_keyed,
)
from tapeproxy.proxy.session import Captured, Keyed, TapeSession
from tapeproxy.proxy.tapeserver import Head, TapeServer
from tapeproxy.proxy.upstream import asks_for_stream, from_mitmproxy, is_streamed, to_response

__all__ = ["Recorder"]

logger = logging.getLogger(__name__)

_NATIVE = "tapeproxy_native"
_SESSION = "tapeproxy_websocket"
_PROXY_ONLY = ("proxy-connection", "proxy-authorization")
"""Request headers meant for the proxy: never forwarded on the native path."""


def _ms(start: float, now: float) -> float:
    return round((now - start) * 1000.0, 3)


class Recorder:
    """Records what the upstream answers for the requests the replayer did not answer.

    Args:
        session: the cassette being written and its counters.
        tapeserver: where streamed answers are relayed through, piece by piece.
        client_factory: makes the upstream HTTP client for requests that ask for a stream
            (called once the loop runs, on the first such request).
        hosts: record only these hosts (None: every host); others pass through untouched.
        resolve: (host, port) -> the address to reach it at (`--resolve`).
    """

    def __init__(
        self,
        session: TapeSession,
        tapeserver: TapeServer,
        client_factory: Callable[[], httpx.AsyncClient],
        hosts: frozenset[str] | None = None,
        resolve: Mapping[tuple[str, int], tuple[str, int]] | None = None,
    ) -> None:
        self.session = session
        self._resolve = dict(resolve or {})
        self.tapeserver = tapeserver
        self._client_factory = client_factory
        self._client: httpx.AsyncClient | None = None
        self._hosts = hosts
        self._pending: set[asyncio.Task[None]] = set()

    async def request(self, flow: http.HTTPFlow) -> None:
        """Fetch a request that asks for a stream; leave any other to mitmproxy, to capture."""
        if is_handled(flow, self.tapeserver) or not self.session.records:
            return
        req = flow.request
        if self._hosts is not None and req.pretty_host not in self._hosts:
            self.session.count_passthrough()
            return
        mark_handled(flow, "live")
        keyed: Keyed | None = take_keyed(flow)  # captured whole and keyed by the replayer
        request = keyed.request if keyed is not None else capture_request(flow)
        key = keyed.key if keyed is not None else None
        if asks_for_stream(req):
            await self._fetch(flow, request, key)
            return
        start = req.timestamp_end or req.timestamp_start
        flow.metadata[_NATIVE] = _Native(request, key, start, self.session.add)
        for name in _PROXY_ONLY:
            if name in req.headers:
                del req.headers[name]

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        """Stream relayed and passed-through answers; have a natively forwarded answer that
        turns out streamed passed on piece by piece, each piece kept with its offset."""
        stream_if_routed(flow)
        native = flow.metadata.get(_NATIVE)
        resp = flow.response
        if native is None or resp is None:
            return
        if is_streamed(resp.headers, resp.status_code, flow.request.method):
            native.streamed = True
            resp.stream = native
        resp.headers[SOURCE_HEADER] = "live"  # for the client only: `keep` leaves it out

    def response(self, flow: http.HTTPFlow) -> None:
        """Keep a natively forwarded answer (a WebSocket handshake's once its session ends)."""
        native: _Native | None = flow.metadata.pop(_NATIVE, None)
        if native is not None and flow.response is not None:
            if flow.websocket is not None:
                flow.metadata[_SESSION] = native
                return
            native.keep(flow.response, None)

    def websocket_end(self, flow: http.HTTPFlow) -> None:
        """Keep a WebSocket session: its handshake, every message and how it closed."""
        native: _Native | None = flow.metadata.pop(_SESSION, None)
        if native is None or flow.response is None or flow.websocket is None:
            return
        ws = flow.websocket
        start = flow.response.timestamp_end or flow.response.timestamp_start
        messages: tuple[WsMessage, ...] = tuple(_message(start, m) for m in ws.messages)
        by = None if ws.closed_by_client is None else "client" if ws.closed_by_client else "server"
        close = WsClose(code=ws.close_code, reason=ws.close_reason or "", by=by)
        native.keep(flow.response, None, (messages, close))

    def error(self, flow: http.HTTPFlow) -> None:
        """Keep a natively forwarded request that failed (refused, reset, timed out, cut
        short), with what came before the failure; then reset the client's connection."""
        native: _Native | None = flow.metadata.pop(_NATIVE, None)
        if native is None:
            return
        failure = flow.error
        message = failure.msg if failure is not None else "upstream failure"
        at = failure.timestamp if failure is not None else time.time()
        by = "client" if message == _CLIENT_LEFT or _client_left(flow) else "upstream"
        native.keep(
            flow.response, RecordedError(message=message, after_ms=_ms(native.start, at), by=by)
        )
        if flow.killable:
            flow.kill()

    def server_connect(self, data: server_hooks.ServerConnectionHookData) -> None:
        """Talk HTTP/1.1 to recorded upstreams, as the httpx path does, so that an answer is
        stored the same way (header case, http_version) whichever path fetched it."""
        server = data.server
        if not self.session.records or server.alpn_offers or server.address is None:
            return
        if self._hosts is None or server.address[0] in self._hosts:
            server.alpn_offers = (b"http/1.1",)

    async def _fetch(self, flow: http.HTTPFlow, request: Request, key: str | None) -> None:
        req = flow.request
        url, extensions = req.pretty_url, {}
        target = self._resolve.get((req.host.lower(), req.port))
        if target is not None:  # reach the host at its given address, under its own name
            url = str(httpx.URL(url).copy_with(host=target[0], port=target[1]))
            if req.scheme == "https":
                extensions["sni_hostname"] = req.host
        outgoing = httpx.Request(
            req.method,
            url,
            headers=[(k, v) for k, v in req.headers.fields if k.lower() not in _HOP],
            content=req.raw_content or b"",
            extensions=extensions,
        )
        loop = asyncio.get_running_loop()
        start = loop.time()
        sending = asyncio.ensure_future(self._http().send(outgoing, stream=True))
        try:
            resp = await _unless_client_leaves(flow, sending)
        except asyncio.CancelledError:  # the proxy stops: keep what is known, then stop too
            sending.cancel()
            failure = _unanswered(flow, _ms(start, loop.time()), None)
            self.session.add(Captured(request, None, failure, Timing(), key))
            raise
        except (httpx.HTTPError, _ClientLeft) as e:
            failure = _unanswered(flow, _ms(start, loop.time()), _describe(e))
            self.session.add(Captured(request, None, failure, Timing(), key))
            flow.kill()
            return
        ttfb = _ms(start, loop.time())
        if is_streamed(resp.headers, resp.status_code, flow.request.method):
            relay = _Relay(resp, request, key, start, ttfb, self.session.add)
            task = loop.create_task(relay.pump())
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)
            route_to_tapeserver(flow, self.tapeserver, relay, "live")
            return
        await self._read_whole(flow, request, key, resp, (start, ttfb))

    async def _read_whole(
        self,
        flow: http.HTTPFlow,
        request: Request,
        key: str | None,
        resp: httpx.Response,
        times: tuple[float, float],
    ) -> None:
        start, ttfb = times
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
        body = bytes(raw)  # one copy, which the cassette and the client share
        del raw
        recorded = to_response(resp, body, None)
        timing = Timing(ttfb_ms=ttfb, total_ms=total)
        self.session.add(Captured(request, recorded, error, timing, key))
        if error is not None:
            flow.kill()
            return
        # The client gets the bytes as they came, in their content-encoding.
        fields = [(k, v) for k, v in resp.headers.raw if k.lower() != b"content-length"]
        fields.append(_LIVE)
        if resp.status_code not in (204, 304) and flow.request.method != "HEAD":
            fields.append((b"content-length", str(len(body)).encode()))
        reason = resp.reason_phrase.encode("latin-1")
        flow.response = WireResponse(resp.status_code, reason, tuple(fields), body).make()

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
_LIVE = (SOURCE_HEADER.encode(), b"live")


def _message(start: float, m: WebSocketMessage) -> WsMessage:
    body = Body.from_bytes(m.content) or Body(text="")
    return (
        _ms(start, m.timestamp),
        "client" if m.from_client else "server",
        "text" if m.is_text else "binary",
        body,
    )


def _describe(e: Exception) -> str:
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__


_CLIENT_LEFT = "Client disconnected."  # mitmproxy's words when the client hangs up
_CLIENT_POLL_S = 0.25


class _ClientLeft(Exception):
    """The client hung up while the upstream had not answered yet."""


def _client_left(flow: http.HTTPFlow) -> bool:
    """Whether the client has closed its side of the connection (mitmproxy notes it even
    while a hook runs)."""
    return not flow.client_conn.state & ConnectionState.CAN_READ


def _unanswered(flow: http.HTTPFlow, after_ms: float, cause: str | None) -> RecordedError:
    """Why a fetched request got no answer, and who ended it: the client when it hung up
    first, else the upstream (`cause`), or nobody when the proxy stopped (`cause` None)."""
    if _client_left(flow):
        detail = f" ({cause})" if cause else ""
        message = f"the client hung up before the upstream answered{detail}"
        return RecordedError(message=message, after_ms=after_ms, by="client")
    if cause is None:
        return RecordedError(
            message="the proxy stopped before the upstream answered", after_ms=after_ms
        )
    return RecordedError(message=cause, after_ms=after_ms, by="upstream")


async def _unless_client_leaves(
    flow: http.HTTPFlow, sending: asyncio.Future[httpx.Response]
) -> httpx.Response:
    """The upstream's answer, or `_ClientLeft` as soon as the client hangs up first (the
    request to the upstream is then cancelled: nobody waits for it any more)."""
    while True:
        done, _ = await asyncio.wait({sending}, timeout=_CLIENT_POLL_S)
        if done:
            return sending.result()
        if _client_left(flow):
            sending.cancel()
            raise _ClientLeft("the client closed the connection")


class _Native:
    """What is captured of one request mitmproxy forwards; as a response's `stream` callable,
    it keeps each piece of the body and its arrival offset, and passes the piece on."""

    __slots__ = ("_add", "key", "pieces", "raw", "request", "start", "streamed")

    def __init__(
        self, request: Request, key: str | None, start: float, add: Callable[[Captured], None]
    ) -> None:
        self.request = request
        self.key = key
        self.start = start
        self._add = add
        self.streamed = False
        self.raw = bytearray()
        self.pieces: list[tuple[float, int]] = []

    def __call__(self, data: bytes) -> bytes:
        if data:
            self.pieces.append((_ms(self.start, time.time()), len(data)))
            self.raw += data
        return data

    def keep(
        self,
        resp: http.Response | None,
        error: RecordedError | None,
        session: tuple[tuple[WsMessage, ...], WsClose] | None = None,
    ) -> None:
        """Add the exchange to the session: the answer (if its head arrived), the failure, and
        for a WebSocket handshake the session's messages and close."""
        if resp is None:
            self._add(Captured(self.request, None, error, Timing(), self.key))
            return
        if self.streamed:
            recorded = from_mitmproxy(resp, bytes(self.raw), self.pieces)
        else:
            recorded = from_mitmproxy(resp, resp.raw_content or b"", None)
        if session is not None:
            messages, close = session
            recorded = recorded.model_copy(update={"messages": messages, "close": close})
        end = resp.timestamp_end or time.time()
        ttfb = _ms(self.start, resp.timestamp_start)
        timing = Timing(ttfb_ms=ttfb, total_ms=_ms(self.start, end))
        self._add(Captured(self.request, recorded, error, timing, self.key))


class _Relay:
    """Reads a live streamed response to its end, independently of the client, while handing
    each piece to the tape server as it arrives."""

    def __init__(
        self,
        resp: httpx.Response,
        request: Request,
        key: str | None,
        start: float,
        ttfb: float,
        keep: Callable[[Captured], None],
    ) -> None:
        self.resp = resp
        self.request = request
        self.key = key
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
            Captured(
                self.request, recorded, error, Timing(ttfb_ms=self._ttfb, total_ms=total), self.key
            )
        )

    async def head(self) -> Head:
        headers = [
            (k.decode("latin-1"), v.decode("latin-1"))
            for k, v in self.resp.headers.raw
            if k.lower() not in (b"content-length", b"transfer-encoding")
        ]
        headers.append((SOURCE_HEADER, "live"))
        return self.resp.status_code, self.resp.reason_phrase, headers

    async def chunks(self) -> AsyncIterator[bytes]:
        while True:
            item = await self._queue.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
