"""Replaying a recorded WebSocket session (DESIGN "WebSocket").

The handshake is matched by key like any request; its flow is then pointed at the tape server,
which answers the handshake itself and speaks WebSocket (wsproto) while mitmproxy relays the
frames between it and the client. The recorded messages are played in order:

- server messages before the first client message go out at their offsets from the
  handshake's answer;
- each client message is matched by position to the next recorded client message; the server
  messages recorded after that one go out at their offsets from it (scaled by `--latency`),
  counted from when the client's message actually arrived;
- a client message with no recorded counterpart is a miss: the session is closed with 1008 and
  a reason that says so, and the miss is counted like an HTTP miss (replay exits 3);
- the recorded close ends the session: the server's close is sent after its last message, a
  client's close is answered.

Nothing here opens a connection anywhere.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
from collections.abc import Callable

from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Ping, TextMessage

from tapeproxy.cassettes.model import Response, WsMessage
from tapeproxy.proxy.latency import Latency

__all__ = ["WEBSOCKET_HEADERS", "WsReplay"]

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


class WsReplay:
    """One recorded session, served to one client.

    Args:
        recorded: the handshake's recorded answer, with its `messages` and `close`.
        latency: how recorded offsets are scaled.
        on_miss: called with why, when a client message has no recorded counterpart.
    """

    def __init__(
        self, recorded: Response, latency: Latency, on_miss: Callable[[str], None]
    ) -> None:
        assert recorded.messages is not None
        self._recorded = recorded
        self._messages: tuple[WsMessage, ...] = recorded.messages
        self._latency = latency
        self._on_miss = on_miss

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
        incoming: asyncio.Queue[_Incoming] = asyncio.Queue()
        reading = asyncio.create_task(self._read(conn, reader, writer, incoming))
        try:
            await self._play(conn, writer, incoming)
        finally:
            reading.cancel()

    async def _read(
        self,
        conn: Connection,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        incoming: asyncio.Queue[_Incoming],
    ) -> None:
        text: list[str] = []
        binary: list[bytes] = []
        while True:
            data = await reader.read(65536)
            conn.receive_data(data or None)
            for event in conn.events():
                if isinstance(event, Ping):
                    writer.write(conn.send(event.response()))
                elif isinstance(event, CloseConnection):
                    await incoming.put(event)
                elif isinstance(event, TextMessage):  # a message may come in fragments
                    text.append(event.data)
                    if event.message_finished:
                        await incoming.put(TextMessage(data="".join(text)))
                        text = []
                elif isinstance(event, BytesMessage):
                    binary.append(bytes(event.data))
                    if event.message_finished:
                        await incoming.put(BytesMessage(data=b"".join(binary)))
                        binary = []
            if not data:
                return

    async def _play(
        self,
        conn: Connection,
        writer: asyncio.StreamWriter,
        incoming: asyncio.Queue[_Incoming],
    ) -> None:
        loop = asyncio.get_running_loop()
        anchor, anchor_ms = loop.time(), 0.0
        for index, (at, who, kind, body) in enumerate(self._messages):
            if who == "server":
                await self._latency.until(anchor, at - anchor_ms)
                data = body.to_bytes()
                event = (
                    TextMessage(data=data.decode("utf-8"))
                    if kind == "text"
                    else BytesMessage(data=data)
                )
                writer.write(conn.send(event))
                await writer.drain()
                continue
            got = await incoming.get()
            if isinstance(got, CloseConnection):
                self._answer_close(conn, writer, got)
                return
            anchor, anchor_ms = loop.time(), at
            logger.debug("tapeproxy websocket: client message %d matched", index)
        await self._end(conn, writer, incoming)

    async def _end(
        self,
        conn: Connection,
        writer: asyncio.StreamWriter,
        incoming: asyncio.Queue[_Incoming],
    ) -> None:
        close = self._recorded.close
        if close is not None and close.by == "server":
            writer.write(conn.send(CloseConnection(code=close.code or 1000, reason=close.reason)))
            await writer.drain()
            return
        got = await incoming.get()  # the client's close, or a message nothing answers
        if isinstance(got, CloseConnection):
            self._answer_close(conn, writer, got)
            return
        why = "a WebSocket message from the client has no recorded counterpart (the recorded "
        why += f"session has {sum(m[1] == 'client' for m in self._messages)} client messages)"
        self._on_miss(why)
        writer.write(conn.send(CloseConnection(code=_MISS_CODE, reason=f"tapeproxy: {why}"[:120])))
        await writer.drain()

    def _answer_close(
        self, conn: Connection, writer: asyncio.StreamWriter, got: CloseConnection
    ) -> None:
        if conn.state is ConnectionState.REMOTE_CLOSING:
            writer.write(conn.send(got.response()))
