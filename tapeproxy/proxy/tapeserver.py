"""A loopback HTTP/1.1 server inside the proxy's event loop that writes response bodies chunk by
chunk, on schedule.

mitmproxy sends a response set by an addon in one piece; it streams only what it reads from a
server. So a flow whose answer must arrive piece by piece (a replayed SSE stream at its recorded
offsets, or a live stream relayed while it is recorded) is pointed at this server, and
mitmproxy streams what it writes. Each flow gets a one-time token; the server never forwards
anything anywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator
from typing import Protocol

__all__ = ["TOKEN_PATH", "BodySource", "Head", "SessionSource", "TapeServer"]

logger = logging.getLogger(__name__)

TOKEN_PATH = "/_tapeproxy/"
_NO_BODY_STATUS = frozenset({204, 304})
_MAX_HEAD = 64 * 1024

Head = tuple[int, str, list[tuple[str, str]]]
"""Status, reason and headers (without framing headers: the server adds its own)."""


class BodySource(Protocol):
    """What the server asks of a response it writes."""

    async def head(self) -> Head:
        """Wait until the headers are due and return them."""
        ...

    def chunks(self) -> AsyncIterator[bytes]:
        """The body, piece by piece, each yielded when it is due; raising aborts the stream."""
        ...


class SessionSource(Protocol):
    """A WebSocket session the server plays itself (`proxy.wsreplay.WsReplay`)."""

    def handshake(self, key: str, protocol: str | None) -> bytes:
        """The 101 answer to the client's handshake."""
        ...

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Play the session after the handshake."""
        ...


class TapeServer:
    """Serves registered `BodySource`s (and WebSocket `SessionSource`s) to the proxy on
    127.0.0.1, one per token."""

    def __init__(self) -> None:
        self._sources: dict[str, BodySource | SessionSource] = {}
        self._server: asyncio.Server | None = None
        self.port = 0

    @property
    def address(self) -> tuple[str, int]:
        """Where the proxy reaches it."""
        return "127.0.0.1", self.port

    async def start(self) -> None:
        """Listen on a free loopback port."""
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening and close open connections."""
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1)
            self._server = None

    def register(self, source: BodySource | SessionSource) -> str:
        """Keep a source for one request; returns the path the proxy should request."""
        token = secrets.token_hex(12)
        self._sources[token] = source
        return TOKEN_PATH + token

    def discard(self, path: str) -> None:
        """Forget a registered source that will not be requested."""
        self._sources.pop(path.removeprefix(TOKEN_PATH), None)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                source, headers = await self._read_request(reader)
                if source is None:
                    break
                if not hasattr(source, "chunks"):  # a WebSocket session: it has the line now
                    session: SessionSource = source
                    key = headers.get("sec-websocket-key", "")
                    writer.write(session.handshake(key, headers.get("sec-websocket-protocol")))
                    await writer.drain()
                    await session.serve(reader, writer)
                    break
                body: BodySource = source  # type: ignore[assignment]
                if not await self._write_response(body, writer):
                    break
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    async def _read_request(
        self, reader: asyncio.StreamReader
    ) -> tuple[BodySource | SessionSource | None, dict[str, str]]:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return None, {}
        if len(head) > _MAX_HEAD:
            return None, {}
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip():
                headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length") or 0)
        if length:
            await reader.readexactly(length)
        token = parts[1].removeprefix(TOKEN_PATH) if len(parts) > 1 else ""
        source = self._sources.pop(token, None)
        if source is None:
            logger.error("tapeproxy: loopback request for an unknown token %r", token)
        return source, headers

    async def _write_response(self, source: BodySource, writer: asyncio.StreamWriter) -> bool:
        status, reason, headers = await source.head()
        out = [f"HTTP/1.1 {status} {reason}\r\n".encode("latin-1")]
        out.extend(f"{k}: {v}\r\n".encode("latin-1") for k, v in headers)
        has_body = status not in _NO_BODY_STATUS and status >= 200
        if has_body:
            out.append(b"transfer-encoding: chunked\r\n")
        else:
            out.append(b"content-length: 0\r\n")
        out.append(b"\r\n")
        writer.write(b"".join(out))
        await writer.drain()
        try:
            async for chunk in source.chunks():
                if chunk and has_body:
                    writer.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
                    await writer.drain()
        except Exception as e:  # the recorded stream broke here: break it the same way
            logger.info("tapeproxy: ending stream early as recorded (%s)", e)
            writer.transport.abort()
            return False
        if has_body:
            writer.write(b"0\r\n\r\n")
            await writer.drain()
        return True
