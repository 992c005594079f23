"""The replay addon: decide who answers each request (cassette, stub, upstream or miss) and
answer from the cassette, with recorded timing, or from a stub rule, or with the fault drawn
for that answer; never go upstream.

Fail closed (STYLE rule 2): for the flows it owns, the request hook always ends with an answer
set (a hit, the miss response, or an error response) and catches its own errors to do so; and
while replay is the only thing the run does, every upstream connection attempt is refused.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Mapping
from itertools import accumulate

from mitmproxy import http
from mitmproxy.proxy import server_hooks

from tapeproxy.cassettes.model import Interaction, Response, body_bytes
from tapeproxy.providers.answer import RequestFacts, Written
from tapeproxy.providers.stubs import Stubs
from tapeproxy.proxy.faults import Drawn, Faults, Reply, apply_fault
from tapeproxy.proxy.flows import (
    SOURCE_HEADER,
    Source,
    WireResponse,
    capture_request,
    framing_free,
    is_handled,
    keep_keyed,
    mark_handled,
    recorded_pieces,
    route_to_tapeserver,
    stream_if_routed,
)
from tapeproxy.proxy.latency import Latency
from tapeproxy.proxy.sampled import Occurrences
from tapeproxy.proxy.session import Keyed, Miss, TapeSession
from tapeproxy.proxy.tapeserver import Head, TapeServer
from tapeproxy.proxy.wsreplay import (
    SESSION_FAULTS,
    WEBSOCKET_HEADERS,
    SessionFault,
    WsMatch,
    WsReplay,
)

__all__ = ["MISS_STATUS", "Replayer"]

logger = logging.getLogger(__name__)

MISS_STATUS = 599


class Replayer:
    """Serves recorded answers from a `TapeSession`.

    Args:
        session: the cassette in use and its counters.
        tapeserver: where streamed answers are written chunk by chunk.
        latency: how recorded timing is reproduced.
        hosts: the hosts the cassette covers (None: every host).
        stubs: rules that answer what the cassette does not (after it, before a miss).
        faults: the faults drawn for answers from the cassette and the stubs (None: none).
        ws_match: how replayed WebSocket sessions match client messages (`proxy.wsreplay`).
    """

    def __init__(
        self,
        session: TapeSession,
        tapeserver: TapeServer,
        latency: Latency,
        hosts: frozenset[str] | None = None,
        stubs: Stubs | None = None,
        faults: Faults | None = None,
        ws_match: WsMatch = "position",
    ) -> None:
        self.session = session
        self.ws_match: WsMatch = ws_match
        self.tapeserver = tapeserver
        self.latency = latency
        self._hosts = hosts
        self.stubs = stubs if stubs is not None else Stubs(())
        self.faults = faults
        self._stub_seen = Occurrences()

    def use_stubs(self, stubs: Stubs | None) -> None:
        """Answer from these stub rules from now on (the pytest plugin's per-test rules)."""
        self.stubs = stubs if stubs is not None else Stubs(())
        self._stub_seen.clear()

    def _covers(self, flow: http.HTTPFlow) -> bool:
        return self._hosts is None or flow.request.pretty_host in self._hosts

    async def request(self, flow: http.HTTPFlow) -> None:
        """Decide who answers: the cassette, else a stub rule, else the upstream (left to the
        recorder, while recording; or passed through, for hosts the cassette does not cover),
        else a miss. The decision is noted on the flow (`flows.source_of`)."""
        if is_handled(flow, self.tapeserver):
            return
        session = self.session
        started = asyncio.get_running_loop().time()
        try:
            keyed: Keyed | None = None
            if self._covers(flow) and session.serves_from_cassette:
                keyed = self._keyed(flow)
                found = session.lookup(keyed.key)
                if found is not None and session.expiry is not None:
                    found = self._unless_expired(flow, keyed, found)
                    if flow.response is not None:
                        return
                if found is not None:
                    drawn = None if self.faults is None else self.faults.draw(keyed.key)
                    if drawn is not None and _is_session(found) and drawn.kind in SESSION_FAULTS:
                        mark_handled(flow, "fault", drawn.kind)
                        session.count_fault(drawn.kind, keyed.request)
                        await self._serve(flow, found, started, keyed.key, drawn)
                        return
                    if drawn is not None and (reply := Reply.of_interaction(found)) is not None:
                        await self._fault(flow, keyed, drawn, reply, started)
                        return
                    mark_handled(flow, "cassette")
                    session.count_hit(keyed.request)
                    await self._serve(flow, found, started, keyed.key)
                    return
            if self.stubs:
                keyed = keyed or self._keyed(flow)
                if await self._stub(flow, keyed, started):
                    return
            if not session.records:
                self._answer_miss(flow, keyed or self._keyed(flow))
            elif keyed is not None:
                keep_keyed(flow, keyed)  # the recorder takes the request as it was keyed
        except Exception as e:  # fail closed: never let the flow go upstream
            logger.exception("tapeproxy replay error")
            session.count_error()
            mark_handled(flow, "error")
            flow.response = _json_response(
                MISS_STATUS,
                {"error": f"tapeproxy: replay failed: {type(e).__name__}: {e}"},
                [("x-tapeproxy-error", type(e).__name__)],
            )

    def _unless_expired(
        self, flow: http.HTTPFlow, keyed: Keyed, found: Interaction
    ) -> Interaction | None:
        """The recorded answer, unless it is past `--max-age`: then, as configured, it is
        still served (`warn`, counted), left to the recorder (`rerecord` while recording:
        None), or refused like a miss (`fail`; `rerecord` in replay)."""
        session = self.session
        days = session.expired(found)
        if days is None:
            return found
        assert session.expiry is not None
        action = session.expiry.on_expiry
        if action == "warn":
            session.count_expired(days)
            return found
        if action == "rerecord" and session.records:
            session.rerecord(keyed.key)
            return None
        self._answer(flow, session.refuse_expired(keyed, days))
        return None

    def _keyed(self, flow: http.HTTPFlow) -> Keyed:
        """The request captured and keyed, once. While the run also records, it is captured
        whole (the recorder stores it); else only the headers the key may depend on, which
        are also those a miss is explained by."""
        session = self.session
        keep = None if session.records else session.keyed_headers
        return session.keyed(capture_request(flow, keep))

    def stub_at_once(self, keyed: Keyed, headers: Mapping[str, str]) -> WireResponse | None:
        """The stub answer to a request the cassette does not hold, when `_stub` would send it
        whole and at once and no fault is drawn: the proxy front sends it without a flow.
        None leaves the request to `request`, with nothing counted or drawn for it, so that
        the replayer's draws and scripted answers come out as they would have.

        Args:
            headers: the request's headers by lower-case name.
        """
        stubs, latency, faults = self.stubs, self.latency, self.faults
        if not stubs or latency.sampled is not None:
            return None
        facts = keyed.facts()
        if facts is None:
            return None
        found = stubs.find(facts, headers)
        if found is None or not (latency.is_none or found[1].stream is None):
            return None  # no rule, or one whose stream keeps timing (the tape server's)
        if faults is not None and not faults.draw_clean(keyed.key):
            return None
        answer = stubs.answer(facts, headers, keyed.key, self._stub_seen.next(keyed.key))
        if answer is None:  # the rules changed in between (a test added one)
            return None
        self.session.count_stub(answer, facts.model, keyed.request)
        return WireResponse.of_written(answer.written, "stub")

    async def _stub(self, flow: http.HTTPFlow, keyed: Keyed, started: float) -> bool:
        """Answer from the first stub rule that matches, if one does."""
        request, key = keyed.request, keyed.key
        facts = keyed.facts()
        if facts is None:
            return False
        headers = flow.request.headers  # case-insensitive: rules look names up as they like
        found = self.stubs.answer(facts, headers, key, self._stub_seen.next(key))
        if found is None:
            return False
        written = found.written
        if self.faults is not None and (drawn := self.faults.draw(key)) is not None:
            self.stubs.give_back(found)  # a scripted answer the client never got comes again
            reply = Reply.of_written(written, found.offsets_ms)
            await self._fault(flow, keyed, drawn, reply, started, facts=facts)
            return True
        self.session.count_stub(found, facts.model, request)
        mark_handled(flow, "stub", found.rule)
        offsets, latency = found.offsets_ms, self.latency
        if offsets is None and latency.sampled is not None:  # timing drawn from a profile
            timing = latency.sampled.draw(key, len(written.events) if written.streamed else 1)
            if not written.streamed:
                await _pause(timing.total_ms / 1000)
            else:
                offsets = tuple(accumulate(timing.gaps_ms, initial=timing.ttfb_ms))
                latency = Latency(1.0)
        if offsets is not None and not latency.is_none:
            route_to_tapeserver(
                flow, self.tapeserver, _StubSource(written, offsets, started, latency), "stub"
            )
            return True
        flow.response = WireResponse.of_written(written, "stub").make()
        return True

    async def _fault(
        self,
        flow: http.HTTPFlow,
        keyed: Keyed,
        drawn: Drawn,
        reply: Reply,
        started: float,
        facts: RequestFacts | None = None,
    ) -> None:
        """Answer with the fault drawn instead of `reply` (what the cassette or a stub gave);
        `facts` when the request was read already."""
        assert self.faults is not None
        request = keyed.request
        mark_handled(flow, "fault", drawn.kind)
        self.session.count_fault(drawn.kind, request)
        if facts is None:
            facts = keyed.facts()
        await apply_fault(
            drawn, self.faults, flow, reply, facts, self.tapeserver, self.latency, started
        )

    def _answer_miss(self, flow: http.HTTPFlow, keyed: Keyed) -> None:
        self._answer(flow, self.session.miss(keyed))

    def _answer(self, flow: http.HTTPFlow, miss: Miss) -> None:
        """Answer a miss (or a refused expired answer) with the 599 that explains it."""
        logger.warning("tapeproxy %s", miss.describe())
        mark_handled(flow, "miss")
        flow.response = _json_response(
            MISS_STATUS,
            miss.to_json(self.session.path, self.session.mode),
            # SDKs (openai, anthropic) retry 5xx answers unless told not to: a miss stays a miss.
            [("x-tapeproxy-miss", miss.key), ("x-should-retry", "false")],
        )

    async def _serve(
        self,
        flow: http.HTTPFlow,
        found: Interaction,
        started: float,
        key: str,
        drawn: Drawn | None = None,
    ) -> None:
        recorded = found.response
        latency = self.latency.for_answer(key, found.timing.total_ms)
        if recorded is not None and recorded.messages is not None:  # a WebSocket session
            self._serve_session(flow, recorded, latency, key, drawn)
            return
        if recorded is None or (
            found.error is not None and not body_bytes(recorded.body) and recorded.chunks is None
        ):
            await _pause(latency.delay(found.error.after_ms if found.error else 0.0))
            flow.kill()
            return
        if found.error is not None or (
            recorded.chunks is not None and len(recorded.chunks) > 1 and not latency.is_none
        ):
            route_to_tapeserver(
                flow, self.tapeserver, _ScheduledSource(found, started, latency), "cassette"
            )
            return
        await _pause(latency.delay(found.timing.total_ms))
        flow.response = WireResponse.of(recorded).make()

    def _serve_session(
        self,
        flow: http.HTTPFlow,
        recorded: Response,
        latency: Latency,
        key: str,
        drawn: Drawn | None,
    ) -> None:
        """Play a recorded WebSocket session on the tape server (with a fault, if drawn)."""
        request = flow.request
        method, url = request.method, request.pretty_url
        session = self.session

        def miss(why: str) -> None:
            session.refuse_message(key, method, url, why)

        fault = None
        if drawn is not None and self.faults is not None:
            fault = SessionFault(drawn.kind, drawn.ids.unit(), self.faults.delay)
        ws = WsReplay(
            recorded,
            latency,
            miss,
            self.ws_match,
            session.redactor,
            session.rules.ignore_json_paths,
            fault,
        )
        source: Source = "cassette" if fault is None else "fault"
        route_to_tapeserver(flow, self.tapeserver, ws, source, WEBSOCKET_HEADERS)

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        """Stream what the tape server writes, piece by piece."""
        stream_if_routed(flow)

    def server_connect(self, data: server_hooks.ServerConnectionHookData) -> None:
        """Refuse every upstream connection while the run only replays."""
        if self.session.records:
            return
        address = data.server.address
        if address == self.tapeserver.address:
            return
        data.server.error = (
            f"tapeproxy replay: refusing to connect to {address} (replay never goes upstream)"
        )


async def _pause(seconds: float) -> None:
    """Sleep, but never for nothing: a sleep(0) would suspend the hook for a loop turn, where a
    hook that does not suspend completes at once (mitmproxy runs hooks as eager tasks)."""
    if seconds > 0:
        await asyncio.sleep(seconds)


class _Timed:
    """Waits for offsets from the request's arrival, scaled by the latency setting."""

    def __init__(self, started: float, latency: Latency) -> None:
        self._started = started
        self._latency = latency

    async def _until(self, offset_ms: float) -> None:
        await self._latency.until(self._started, offset_ms)


class _ScheduledSource(_Timed):
    """A recorded answer written at its recorded offsets (scaled by the latency setting)."""

    def __init__(self, interaction: Interaction, started: float, latency: Latency) -> None:
        assert interaction.response is not None
        super().__init__(started, latency)
        self._it = interaction
        self._response = interaction.response

    async def head(self) -> Head:
        await self._until(self._it.timing.ttfb_ms)
        r = self._response
        return r.status, r.reason, [*framing_free(r.headers), (SOURCE_HEADER, "cassette")]

    async def chunks(self) -> AsyncIterator[bytes]:
        for offset, piece in recorded_pieces(self._it):
            await self._until(offset)
            yield piece
        if self._it.error is not None:
            await self._until(self._it.error.after_ms)
            raise ConnectionAbortedError(self._it.error.message)


class _StubSource(_Timed):
    """A streamed stub answer written event by event at its rule's `stream` offsets."""

    def __init__(
        self, written: Written, offsets_ms: tuple[float, ...], started: float, latency: Latency
    ) -> None:
        super().__init__(started, latency)
        self._written = written
        self._offsets = offsets_ms

    async def head(self) -> Head:
        w = self._written
        return w.status, w.reason, [*w.headers, (SOURCE_HEADER, "stub")]

    async def chunks(self) -> AsyncIterator[bytes]:
        for offset, event in zip(self._offsets, self._written.events, strict=True):
            await self._until(offset)
            yield event


def _json_response(status: int, doc: object, extra: list[tuple[str, str]]) -> http.Response:
    body = json.dumps(doc, indent=2).encode() + b"\n"
    headers = [(b"content-type", b"application/json")]
    headers += [(k.encode(), v.encode("latin-1", "replace")) for k, v in extra]
    response = http.Response.make(status, body, headers)
    response.reason = "tapeproxy miss" if status == MISS_STATUS else response.reason
    return response


def _is_session(found: Interaction) -> bool:
    return found.response is not None and found.response.messages is not None
