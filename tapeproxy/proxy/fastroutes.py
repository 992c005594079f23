"""A listener of its own for base-URL routes, that answers cassette hits without mitmproxy.

A request made straight to a route (`http://127.0.0.1:PORT/openai/chat/completions`) needs no
CONNECT, no TLS and none of mitmproxy's layers, whose engine costs about ten times a bare
Python server per request (../shared/MITMPROXY_NOTES.md). So the SDK base-URL variables that
`record`, `replay` and the pytest plugin set point here, and this server answers what it can
as the replayer would, byte for byte: a request whose key the cassette holds and whose answer
is whole (not a recorded failure, not a WebSocket session, not a stream that keeps its timing).

Clients from public addresses are refused, as the proxy refuses them, and a request in a
proxy's form (absolute URL, CONNECT) is answered 400. Everything else (a miss, a stub, anything
recorded, an upgrade, an unusual request) is handed to the proxy's own listener, which routes
it as usual: the bytes read so far are sent on and the rest of the connection is relayed both
ways as it is, so misses are explained, stubs and the recorder answer, and a WebSocket
handshake is upgraded by the same code as ever. The proxy's listener takes requests addressed
to this server's port as routed ones.

Runs that need every request to pass the proxy's addons (faults, a journal or report, proxy
authentication, a connection limit, expiry) do not start it: their routes are the proxy's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

from tapeproxy.cassettes.model import Interaction, Request
from tapeproxy.proxy.access import peer_address
from tapeproxy.proxy.flows import WireResponse, body_of
from tapeproxy.proxy.latency import Latency
from tapeproxy.proxy.routes import Route
from tapeproxy.proxy.session import TapeSession

__all__ = ["FastRoutes"]

logger = logging.getLogger(__name__)

_MAX_HEAD = 64 * 1024
_HANDED_ON = frozenset({b"transfer-encoding", b"expect", b"upgrade", b"content-encoding"})
"""Request headers this server leaves to the proxy (chunked or compressed bodies, 100-continue,
WebSocket)."""


class FastRoutes:
    """Answers routed cassette hits itself; relays the rest to the proxy's listener.

    Args:
        routes: the run's routes.
        session: the session in use (asked per request: the control API switches it).
        latency: how recorded timing is reproduced.
        hosts: the hosts the cassette covers (None: every host).
    """

    def __init__(
        self,
        routes: Iterable[Route],
        session: Callable[[], TapeSession],
        latency: Latency,
        hosts: frozenset[str] | None,
    ) -> None:
        self._by_name = {r.name: r for r in routes}
        self._session = session
        self._latency = latency
        self._hosts = hosts
        self.proxy_port = 0
        """The proxy's own listening port (set once it listens); it is reached on the address
        the client reached this server on, where it listens too."""
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()
        self.address: tuple[str, int] | None = None
        self.served = 0
        """Requests answered here (the rest were handed to the proxy)."""

    async def start(self, host: str, port: int = 0) -> None:
        """Listen on `host` (the proxy's listening host) at `port` (0: a free one)."""
        self._server = await asyncio.start_server(self._handle, host, port, limit=_MAX_HEAD)
        self.address = (host, self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """Stop listening and close open connections."""
        if self._server is not None:
            self._server.close()
            for writer in list(self._open):
                writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        address = peer_address(writer.get_extra_info("peername"))
        if address is not None and address.is_global:  # as the proxy's Access refuses them
            logger.warning("tapeproxy: refused a client from the public address %s", address)
            writer.close()
            return
        self._open.add(writer)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError as e:
                    if e.partial:
                        await self._hand_on(e.partial, reader, writer)
                    return
                if not _origin_form(head):
                    writer.write(_NOT_A_PROXY)  # a proxy's request form: not for this listener
                    await writer.drain()
                    return
                parsed = _parse(head)
                if parsed is None:
                    await self._hand_on(head, reader, writer)
                    return
                method, target, fields, length, close = parsed
                body = await reader.readexactly(length) if length else b""
                answer = self._answer(method, target, fields, body)
                if answer is None:
                    await self._hand_on(head + body, reader, writer)
                    return
                delay, wire = answer
                if delay > 0:
                    await asyncio.sleep(delay)
                writer.write(wire)
                await writer.drain()
                if close:
                    return
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            return
        except asyncio.CancelledError:  # the proxy stops: the connection ends with it
            return
        except Exception:
            logger.exception("tapeproxy fast routes: error")
        finally:
            self._open.discard(writer)
            writer.close()

    def _answer(
        self, method: str, target: str, fields: list[tuple[bytes, bytes]], body: bytes
    ) -> tuple[float, bytes] | None:
        """The delay and bytes of a cassette hit, or None to leave the request to the proxy."""
        session = self._session()
        if not session.serves_from_cassette:
            return None
        path, sep, query = target.partition("?")
        name, _, rest = path[1:].partition("/")
        route = self._by_name.get(name)
        if route is None:
            return None
        url = f"{route.upstream}/{rest}" + (f"{sep}{query}" if sep else "")
        if self._hosts is not None and urlsplit(url).hostname not in self._hosts:
            return None
        keep = session.keyed_headers
        headers = tuple(
            [(k.decode("latin-1"), v.decode("latin-1")) for k, v in fields if k.lower() in keep]
        )
        if b"host" in keep:  # as the proxy keys a routed request: Host is the upstream's
            netloc = urlsplit(url).netloc
            headers = tuple([(k, netloc if k == "host" else v) for k, v in headers])
        request = Request.model_construct(
            method=method, url=url, headers=headers, body=body_of(body)
        )
        keyed = session.keyed(request)
        found = session.peek(keyed.key)
        if found is None or not _whole(found, self._latency):
            return None
        session.lookup(keyed.key)  # the one peeked at: nothing ran in between
        session.count_hit(request)
        self.served += 1
        recorded = found.response
        assert recorded is not None
        latency = self._latency.for_answer(keyed.key, found.timing.total_ms)
        return latency.delay(found.timing.total_ms), _serialise(WireResponse.of(recorded))

    async def _hand_on(
        self, read: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Send what was read to the proxy's listener and relay the connection both ways
        until either side closes it."""
        host, port = writer.get_extra_info("sockname")[0], self.proxy_port
        try:
            up_reader, up_writer = await asyncio.open_connection(host, port)
        except OSError as e:
            logger.warning(
                "tapeproxy fast routes: cannot reach the proxy (%s:%d): %s", host, port, e
            )
            return
        up_writer.write(read)
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            up_writer.close()


_NOT_A_PROXY = (
    b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\nconnection: close\r\n"
    b"content-length: 86\r\n\r\n"
    b"tapeproxy: this is the routes' listener (http://HOST:PORT/<route>/...), not the proxy\n"
)


def _origin_form(head: bytes) -> bool:
    """Whether a request line's target is a path (not a proxy's absolute URL or authority)."""
    parts = head.split(b" ", 2)
    return len(parts) > 1 and parts[1].startswith(b"/")


def _whole(found: Interaction, latency: Latency) -> bool:
    """Whether an answer is sent in one piece by the replayer (so it can be sent here)."""
    r = found.response
    if r is None or found.error is not None or r.messages is not None:
        return False
    return r.chunks is None or len(r.chunks) <= 1 or latency.is_none


def _parse(
    head: bytes,
) -> tuple[str, str, list[tuple[bytes, bytes]], int, bool] | None:
    """Method, target, header fields, body length and whether the client closes after this
    request; None for what is left to the proxy."""
    lines = head[:-4].split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or parts[2] != b"HTTP/1.1":
        return None
    fields: list[tuple[bytes, bytes]] = []
    length, close = 0, False
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep:
            return None
        low = name.strip().lower()
        value = value.strip()
        if low in _HANDED_ON:
            return None
        if low == b"content-length":
            if not value.isdigit():
                return None
            length = int(value)
        elif low == b"connection" and b"close" in value.lower():
            close = True
        fields.append((low, value))
    try:
        return parts[0].decode("ascii"), parts[1].decode("ascii"), fields, length, close
    except UnicodeDecodeError:
        return None


def _serialise(wire: WireResponse) -> bytes:
    lines = [b"HTTP/1.1 %d %s" % (wire.status, wire.reason or b"")]
    lines += [k + b": " + v for k, v in wire.fields]
    return b"\r\n".join(lines) + b"\r\n\r\n" + wire.body


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.write_eof()
