"""Replaying a recorded WebSocket session (DESIGN "WebSocket").

The handshake is matched by key like any request; its flow is then pointed at the tape server,
which answers the handshake itself and speaks WebSocket (wsproto) while mitmproxy relays the
frames between it and the client. The recording is played as turns:

- server messages before the first client message go out at their offsets from the
  handshake's answer;
- each client message is matched to a recorded client message (`WS_MATCHES`); the server
  messages recorded after that one (up to the next client message) go out at their offsets
  from it (scaled by `--latency`), counted from when the client's message arrived;
- a client message with no recorded counterpart is a miss: the session is closed with 1008 and
  a reason that says so, and the miss is counted like an HTTP miss (replay exits 3);
- the recorded close ends the session: the server's close is sent after its last message, a
  client's close is answered.

Matching (`--ws-match`):

- `position` (the default): the n-th client message is answered as the n-th recorded one was,
  whatever it says;
- `json`: a client message is answered as the first unanswered recorded one that is equal to
  it, compared as the cassette stores them (redacted; JSON with sorted keys, without
  `VOLATILE_PATHS` and the cassette's `ignore_json_paths`; binary by bytes). Ids a client
  makes afresh on every run, or messages sent in another order, do not break replay; a
  changed message is a miss.

Faults drawn for the handshake's key act on the session (`SESSION_FAULTS`): `reset` breaks the
connection before a seeded server message (`truncate` likewise), `stall` pauses before one,
`slow` makes every server message late, `malformed` cuts one server JSON message short.

Nothing here opens a connection anywhere.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Ping, TextMessage

from tapeproxy.cassettes.key import drop_path
from tapeproxy.cassettes.model import Body, Response, WsMessage
from tapeproxy.proxy.latency import Latency
from tapeproxy.redaction import Redactor

__all__ = [
    "SESSION_FAULTS",
    "VOLATILE_PATHS",
    "WEBSOCKET_HEADERS",
    "WS_MATCHES",
    "SessionFault",
    "WsMatch",
    "WsReplay",
]

logger = logging.getLogger(__name__)

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
WEBSOCKET_HEADERS = frozenset(
    {"upgrade", "connection", "sec-websocket-key", "sec-websocket-version",
     "sec-websocket-protocol"}
)  # fmt: skip
"""The handshake headers the tape server needs (extensions are not offered: frames are
replayed as recorded, uncompressed)."""
_OWN = frozenset({*WEBSOCKET_HEADERS, "sec-websocket-accept", "sec-websocket-extensions",
                  "content-length", "transfer-encoding", "content-encoding"})  # fmt: skip
_MISS_CODE = 1008
_Incoming = TextMessage | BytesMessage | CloseConnection

WsMatch = Literal["position", "json"]
WS_MATCHES: tuple[WsMatch, ...] = ("position", "json")
VOLATILE_PATHS = ("event_id", "item.id", "previous_item_id")
"""JSON paths `json` matching ignores in client messages: the ids Realtime clients make afresh
(a client event's `event_id`, the id of an item it creates and of the item it follows)."""
SESSION_FAULTS = frozenset({"reset", "truncate", "stall", "slow", "malformed"})
"""Fault kinds that act on a replayed session; the others answer its handshake."""


@dataclass(frozen=True)
class SessionFault:
    """A fault drawn for a session: its kind, where it strikes (`unit` in [0, 1) picks the
    server message) and the seconds a `stall` or `slow` adds."""

    kind: str
    unit: float
    delay: float


@dataclass(frozen=True)
class _Turn:
    """A recorded client message (None: the session's start) and the server messages that
    followed it, up to the next client message."""

    at: float
    message: WsMessage | None
    answers: tuple[WsMessage, ...]


def _turns(messages: tuple[WsMessage, ...]) -> list[_Turn]:
    starts: list[tuple[float, WsMessage | None]] = [(0.0, None)]
    answers: list[list[WsMessage]] = [[]]
    for message in messages:
        if message[1] == "client":
            starts.append((message[0], message))
            answers.append([])
        else:
            answers[-1].append(message)
    return [_Turn(at, m, tuple(a)) for (at, m), a in zip(starts, answers, strict=True)]


class WsReplay:
    """One recorded session, served to one client.

    Args:
        recorded: the handshake's recorded answer, with its `messages` and `close`.
        latency: how recorded offsets are scaled.
        on_miss: called with why, when a client message has no recorded counterpart.
        match: how client messages find their recorded counterparts.
        redactor: redacts client messages before `json` matching compares them.
        ignore_paths: JSON paths `json` matching ignores besides `VOLATILE_PATHS`.
        fault: a fault drawn for this session, if any.
    """

    def __init__(
        self,
        recorded: Response,
        latency: Latency,
        on_miss: Callable[[str], None],
        match: WsMatch = "position",
        redactor: Redactor | None = None,
        ignore_paths: tuple[str, ...] = (),
        fault: SessionFault | None = None,
    ) -> None:
        assert recorded.messages is not None
        self._recorded = recorded
        self._turns = _turns(recorded.messages)
        self._latency = latency
        self._on_miss = on_miss
        self._match = match
        self._redactor = redactor
        self._ignore = (*VOLATILE_PATHS, *ignore_paths)
        self._fault = fault
        self._sent = 0
        self._strikes = _strike_at(fault, [m for m in recorded.messages if m[1] == "server"])

    def handshake(self, key: str, protocol: str | None) -> bytes:
        """The 101 answer to a client's handshake, with the recorded headers beside it."""
        accept = base64.b64encode(hashlib.sha1(key.encode() + _GUID).digest()).decode()
        lines = [
            "HTTP/1.1 101 Switching Protocols",
            "upgrade: websocket",
            "connection: Upgrade",
            f"sec-websocket-accept: {accept}",
        ]
        lines += [f"{k}: {v}" for k, v in self._recorded.headers if k.lower() not in _OWN]
        if protocol:
            lines.append(f"sec-websocket-protocol: {protocol.split(',')[0].strip()}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Play the session after the handshake was written."""
        conn = Connection(ConnectionType.SERVER)
        incoming: asyncio.Queue[tuple[float, _Incoming]] = asyncio.Queue()
        reading = asyncio.create_task(self._read(conn, reader, writer, incoming))
        try:
            await self._play(conn, writer, incoming)
        except _Broken:
            writer.transport.abort()
        finally:
            reading.cancel()

    async def _read(
        self,
        conn: Connection,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        incoming: asyncio.Queue[tuple[float, _Incoming]],
    ) -> None:
        loop = asyncio.get_running_loop()
        text: list[str] = []
        binary: list[bytes] = []
        while True:
            data = await reader.read(65536)
            conn.receive_data(data or None)
            arrived = loop.time()
            for event in conn.events():
                if isinstance(event, Ping):
                    writer.write(conn.send(event.response()))
                elif isinstance(event, CloseConnection):
                    await incoming.put((arrived, event))
                elif isinstance(event, TextMessage):  # a message may come in fragments
                    text.append(event.data)
                    if event.message_finished:
                        await incoming.put((arrived, TextMessage(data="".join(text))))
                        text = []
                elif isinstance(event, BytesMessage):
                    binary.append(bytes(event.data))
                    if event.message_finished:
                        await incoming.put((arrived, BytesMessage(data=b"".join(binary))))
                        binary = []
            if not data:
                return

    async def _play(
        self,
        conn: Connection,
        writer: asyncio.StreamWriter,
        incoming: asyncio.Queue[tuple[float, _Incoming]],
    ) -> None:
        start, *turns = self._turns
        await self._answer(conn, writer, start.answers, asyncio.get_running_loop().time(), 0.0)
        unanswered = list(range(len(turns)))
        while unanswered:
            arrived, got = await incoming.get()
            if isinstance(got, CloseConnection):
                self._answer_close(conn, writer, got)
                return
            found = self._counterpart(got, unanswered)
            if found is None:
                await self._refuse(conn, writer, self._why(got, unanswered))
                return
            unanswered.remove(found)
            logger.debug("tapeproxy websocket: client message matched recorded turn %d", found)
            turn = turns[found]
            await self._answer(conn, writer, turn.answers, arrived, turn.at)
        await self._end(conn, writer, incoming)

    def _counterpart(self, got: TextMessage | BytesMessage, unanswered: list[int]) -> int | None:
        """Which recorded turn answers this client message (None: none does)."""
        if self._match == "position":
            return unanswered[0]
        wanted = self._form(self._as_stored(got))
        forms = self._recorded_forms
        return next((i for i in unanswered if forms[i] == wanted), None)

    @functools.cached_property
    def _recorded_forms(self) -> list[Any]:
        """The compared form of each recorded client message, in turn order (made once)."""
        return [self._form(t.message) for t in self._turns[1:] if t.message is not None]

    def _as_stored(self, got: TextMessage | BytesMessage) -> WsMessage:
        """A client's message as the cassette would store it (redacted)."""
        if isinstance(got, TextMessage):
            body = Body.from_bytes(got.data.encode("utf-8", "surrogatepass"))
            live: WsMessage = (0.0, "client", "text", body or Body(text=""))
        else:  # as the recorder stores one
            live = (0.0, "client", "binary", Body.from_bytes(bytes(got.data)) or Body(text=""))
        return live if self._redactor is None else self._redactor.redact_message(live)

    def _form(self, message: WsMessage) -> Any:
        """What `json` matching compares: (kind, value)."""
        _, _, kind, body = message
        if kind == "binary":
            return ("binary", hashlib.sha256(body.to_bytes()).hexdigest())
        text = body.text or ""
        try:
            value = json.loads(text) if text.lstrip()[:1] in ("{", "[") else None
        except ValueError:
            value = None
        if value is None:
            return ("text", text)
        for path in self._ignore:
            value = drop_path(value, path.split("."))
        return ("json", value)

    def _why(self, got: TextMessage | BytesMessage, unanswered: list[int]) -> str:
        recorded = len(self._turns) - 1
        if not unanswered:
            return (
                "a WebSocket message from the client has no recorded counterpart (the recorded "
                f"session has {recorded} client messages, all answered)"
            )
        kind, value = self._form(self._as_stored(got))
        shown = _preview(kind, value)
        why = (
            f"a WebSocket message from the client has no recorded counterpart under json "
            f"matching ({len(unanswered)} of {recorded} recorded client messages unanswered, "
            f"none equal to {shown}"
        )
        nearest: tuple[int, list[str]] | None = None
        for i in unanswered:
            other_kind, other = self._recorded_forms[i]
            if kind == other_kind == "json":
                differ = _differences(other, value)
                if nearest is None or len(differ) < len(nearest[1]):
                    nearest = (i, differ)
        if nearest is not None:
            i, differ = nearest
            at = ", ".join(differ[:3]) + (", ..." if len(differ) > 3 else "")
            why += f"; the nearest, recorded client message {i + 1}, differs at {at}"
        return why + ")"

    async def _answer(
        self,
        conn: Connection,
        writer: asyncio.StreamWriter,
        answers: tuple[WsMessage, ...],
        anchor: float,
        anchor_ms: float,
    ) -> None:
        """Send server messages at their offsets from `anchor_ms`, counted from `anchor`."""
        added = 0.0  # a stall delays the message it strikes and the rest of its turn
        for at, _, kind, body in answers:
            late, data = self._struck(body.to_bytes(), kind)
            added = max(added, late)
            await self._latency.until(anchor, at - anchor_ms, added)
            event = (
                TextMessage(data=data.decode("utf-8", "replace"))
                if kind == "text"
                else BytesMessage(data=data)
            )
            writer.write(conn.send(event))
            await writer.drain()

    def _struck(self, data: bytes, kind: str) -> tuple[float, bytes]:
        """The seconds added before the next server message and its bytes, after the fault;
        raises `_Broken` where the fault breaks the connection."""
        index, self._sent = self._sent, self._sent + 1
        fault = self._fault
        if fault is None:
            return 0.0, data
        if fault.kind == "slow":
            return fault.delay, data
        if index != self._strikes:
            return 0.0, data
        if fault.kind in ("reset", "truncate"):
            raise _Broken
        if fault.kind == "stall":
            return fault.delay, data
        return 0.0, data[: max(1, len(data) // 2)].rstrip(b"}]")  # malformed: JSON cut short

    async def _end(
        self,
        conn: Connection,
        writer: asyncio.StreamWriter,
        incoming: asyncio.Queue[tuple[float, _Incoming]],
    ) -> None:
        if self._fault is not None and self._fault.kind in ("reset", "truncate"):
            raise _Broken  # a session with no server message to break before breaks at its end
        close = self._recorded.close
        if close is not None and close.by == "server":
            writer.write(conn.send(CloseConnection(code=close.code or 1000, reason=close.reason)))
            await writer.drain()
            return
        _, got = await incoming.get()  # the client's close, or a message nothing answers
        if isinstance(got, CloseConnection):
            self._answer_close(conn, writer, got)
            return
        await self._refuse(conn, writer, self._why(got, []))

    async def _refuse(self, conn: Connection, writer: asyncio.StreamWriter, why: str) -> None:
        self._on_miss(why)
        reason = f"tapeproxy: {why}".encode()[:120].decode("utf-8", "ignore")
        writer.write(conn.send(CloseConnection(code=_MISS_CODE, reason=reason)))
        await writer.drain()

    def _answer_close(
        self, conn: Connection, writer: asyncio.StreamWriter, got: CloseConnection
    ) -> None:
        if conn.state is ConnectionState.REMOTE_CLOSING:
            writer.write(conn.send(got.response()))


class _Broken(Exception):
    """A fault breaks the session's connection here."""


def _strike_at(fault: SessionFault | None, served: list[WsMessage]) -> int:
    """The index among the server messages of the one a fault strikes (before it, for reset
    and stall; a JSON one, for malformed): never the first when there are several, so a
    session starts before it breaks. `len(served)` strikes none (reset then breaks at the
    end)."""
    if fault is None:
        return len(served)
    if fault.kind == "malformed":
        json_ones = [i for i, m in enumerate(served) if m[2] == "text" and _is_json(m[3])]
        return json_ones[int(fault.unit * len(json_ones))] if json_ones else len(served)
    if len(served) <= 1:
        return 0
    return 1 + int(fault.unit * (len(served) - 1))


def _is_json(body: Body) -> bool:
    return (body.text or "").lstrip()[:1] in ("{", "[")


def _preview(kind: str, value: Any) -> str:
    """A message as matching compared it, shortened."""
    if kind == "binary":
        return "a binary message"
    text = json.dumps(value, sort_keys=True) if kind == "json" else str(value)
    return repr(text if len(text) <= 100 else text[:97] + "...")


def _differences(recorded: Any, got: Any, path: str = "") -> list[str]:
    """The JSON paths where two values differ (a path whose value is missing on one side
    counts)."""
    if isinstance(recorded, dict) and isinstance(got, dict):
        out: list[str] = []
        for name in sorted({*recorded, *got}):
            where = f"{path}.{name}" if path else str(name)
            if name not in recorded or name not in got:
                out.append(where)
            else:
                out += _differences(recorded[name], got[name], where)
        return out
    if isinstance(recorded, list) and isinstance(got, list) and len(recorded) == len(got):
        return [
            d
            for i, (a, b) in enumerate(zip(recorded, got, strict=True))
            for d in _differences(a, b, f"{path}.{i}" if path else str(i))
        ]
    return [] if recorded == got else [path or "(the whole message)"]
