"""The proxy's front: listeners of its own that answer whole cassette hits without mitmproxy,
and hand everything else to mitmproxy, which starts only when something is handed on.

mitmproxy's engine costs about ten times a bare Python server per request, and a few
milliseconds per fresh connection (../shared/MITMPROXY_NOTES.md, bench/RESULTS-pytest-suite.md);
its layers take 0.14-0.19 s to import. A replay whose requests all hit needs none of it. So:

- the routes' listener (`start`): a request made straight to a route
  (`http://127.0.0.1:PORT/openai/chat/completions`) needs no CONNECT and no TLS; the SDK
  base-URL variables that `record`, `replay` and the pytest plugin set point here. A request in
  a proxy's form is answered 400.
- the front (`start_front`), on the proxy's address: a CONNECT whose client speaks TLS with
  HTTP/1.1 (as mitmproxy would choose) while the session serves from its cassette has its TLS
  ended here (`proxy.tlsterm`), with certificates from the proxy's CA. Its requests, plain
  proxied ones and routed ones are answered as on the routes' listener.

A hit is answered as the replayer would, byte for byte: a request whose key the cassette holds
and whose answer is whole (not a recorded failure, not a WebSocket session, not a stream that
keeps its timing); so is a stub's answer that would be sent whole and at once
(`Replayer.stub_at_once`). With faults, only requests that draw none are answered here, and
the draw is the replayer's own (`Faults.draw_clean`), so the same requests fail either way.
Clients from public addresses are refused, as the proxy refuses them.

Everything else (a miss, a timed stub, a fault, anything recorded, an upgrade, h2, an unusual
request) is handed to mitmproxy's listener: the bytes read so far are sent on and the rest of
the connection is relayed both ways, so misses are explained, stubs, faults and the recorder
answer, and a WebSocket handshake is upgraded by the same code as ever. A tunnel whose TLS was
ended here is handed on through a CONNECT and a TLS connection of its own that asks for the
client's server name and protocols; mitmproxy takes requests addressed to the front's ports as
routed ones.

Like the proxy, the front refuses clients beyond `max_connections` and closes those that stay
silent past the handshake or idle timeout. Runs that need every request to pass the proxy's
addons (a journal or report, proxy authentication, expiry) have no front: mitmproxy listens on
the proxy's address itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from mitmproxy.net.http import url

from tapeproxy.cassettes.model import Body, Interaction, Request
from tapeproxy.proxy.access import Refusals, default_max_connections, peer_address
from tapeproxy.proxy.flows import WireResponse, pretty_authority
from tapeproxy.proxy.latency import Latency
from tapeproxy.proxy.routes import Route
from tapeproxy.proxy.tlsterm import Hello, ServerCerts, TlsStream, read_hello

if TYPE_CHECKING:
    from tapeproxy.proxy.replay import Replayer

__all__ = ["FastRoutes"]

logger = logging.getLogger(__name__)

_MAX_HEAD = 64 * 1024
_HANDED_ON = frozenset({b"transfer-encoding", b"expect", b"upgrade", b"content-encoding"})
"""Request headers this server leaves to the proxy (chunked or compressed bodies, 100-continue,
WebSocket)."""


class FastRoutes:
    """Answers cassette hits itself, routed or tunnelled; hands the rest to mitmproxy.

    Two listeners share the code: the routes' own (`start`: plain requests to routes only, a
    proxy's request form is answered 400), and the front (`start_front`: the proxy's address,
    where CONNECT tunnels are ended here when they can be, and anything else is relayed).

    Args:
        routes: the run's routes.
        replayer: the run's replayer, asked per request for its session (the control API and
            the pytest plugin switch it), latency, stubs and faults.
        hosts: the hosts the cassette covers (None: every host).
        certs: the certificates for tunnels ended here (None: every tunnel is relayed).
        timeouts: seconds a client may take to send its first request or finish its TLS
            handshake, and to stay idle between requests.
        max_connections: clients served at once, more refused with a log line (None: half
            of `access.default_max_connections`, as a relayed client holds twice the files).
    """

    def __init__(
        self,
        routes: Iterable[Route],
        replayer: Replayer,
        hosts: frozenset[str] | None,
        certs: ServerCerts | None = None,
        timeouts: tuple[float, float] = (30.0, 600.0),
        max_connections: int | None = None,
    ) -> None:
        self._by_name = {r.name: r for r in routes}
        self._replayer = replayer
        self._hosts = hosts
        self._certs = certs
        self._handshake_timeout, self._idle_timeout = timeouts
        self._cap = max_connections or max(64, default_max_connections() // 2)
        self._refused = Refusals()
        self.proxy: Callable[[], Awaitable[int]] = _no_proxy
        """The proxy's own listening port, started on first need; it is reached on the address
        the client reached this server on, where it listens too."""
        self._servers: list[asyncio.Server] = []
        self._open: set[asyncio.StreamWriter] = set()
        self.address: tuple[str, int] | None = None
        """The routes' listener."""
        self.front: tuple[str, int] | None = None
        """The front: the proxy's address as clients know it."""
        self.served = 0
        """Requests answered here (the rest were handed to the proxy)."""

    @property
    def ports(self) -> frozenset[int]:
        """The ports it listens on: requests to them are the proxy's own (routed, control)."""
        return frozenset(a[1] for a in (self.address, self.front) if a is not None)

    async def start(self, host: str, port: int = 0) -> None:
        """Listen for routed requests on `host` (the proxy's listening host) at `port` (0: a
        free one)."""
        server = await asyncio.start_server(self._routed, host, port, limit=_MAX_HEAD)
        self._servers.append(server)
        self.address = (host, server.sockets[0].getsockname()[1])

    async def start_front(self, host: str, port: int = 0) -> None:
        """Listen as the proxy on `host` at `port` (0: a free one)."""
        server = await asyncio.start_server(self._fronted, host or None, port, limit=_MAX_HEAD)
        self._servers.append(server)
        self.front = (host, server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """Stop listening and close open connections."""
        for server in self._servers:
            server.close()
        for writer in list(self._open):
            writer.close()
        for server in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 1)
        if self._certs is not None:
            self._certs.close()

    async def _routed(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self._handle(reader, writer, front=False)

    async def _fronted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self._handle(reader, writer, front=True)

    async def _handle(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, front: bool
    ) -> None:
        address = peer_address(writer.get_extra_info("peername"))
        if address is not None and address.is_global:  # as the proxy's Access refuses them
            logger.warning("tapeproxy: refused a client from the public address %s", address)
            writer.close()
            return
        if len(self._open) >= self._cap:
            self._refused.note(len(self._open))
            writer.close()
            return
        self._open.add(writer)
        try:
            head = await self._head(reader, self._handshake_timeout)
            if head is None:
                return
            if front and head[:8].upper() == b"CONNECT ":
                await self._tunnel(head, reader, writer)
            elif front:
                await self._serve(head, reader, writer, self._front_url, None)
            elif not _origin_form(head):  # a proxy's request form: not for this listener
                writer.write(_NOT_A_PROXY)
                await writer.drain()
            else:
                await self._serve(head, reader, writer, self._routed_url, None)
        except (
            ConnectionError,
            TimeoutError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
        ):
            return
        except asyncio.CancelledError:  # the proxy stops: the connection ends with it
            return
        except Exception:
            logger.exception("tapeproxy fast routes: error")
        finally:
            self._open.discard(writer)
            writer.close()

    async def _head(self, reader: asyncio.StreamReader, timeout: float) -> bytes | None:
        """A request head; None when the client closed the connection first."""
        try:
            return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        except asyncio.IncompleteReadError as e:
            if e.partial:
                raise
            return None

    async def _serve(
        self,
        head: bytes,
        reader: asyncio.StreamReader,
        writer: _Writer,
        url_of: _UrlOf,
        tunnel: _Tunnel | None,
    ) -> None:
        """Answer requests on a connection while they are whole hits; hand the connection on
        at the first that is not."""
        while True:
            parsed = _parse(head)
            body = b""
            if parsed is not None:
                method, target, fields, length, close = parsed
                if length:
                    body = await asyncio.wait_for(reader.readexactly(length), self._idle_timeout)
                found = url_of(target, fields)
                answer = None
                if found is not None:
                    try:
                        answer = self._answer(method, *found, fields, body)
                    except Exception:  # the replayer meets it too, and answers it as an error
                        logger.debug("tapeproxy fast routes: left to the proxy", exc_info=True)
            if parsed is None or answer is None:
                if tunnel is None:
                    await self._hand_on(head + body, reader, writer)
                else:
                    await self._hand_on(head + body, reader, writer, tunnel.head, tunnel.hello)
                return
            delay, wire = answer
            if delay > 0:
                await asyncio.sleep(delay)
            writer.write(wire)
            await writer.drain()
            if close:
                return
            next_head = await self._head(reader, self._idle_timeout)
            if next_head is None:
                return
            head = next_head

    def _routed_url(
        self, target: str, fields: list[tuple[bytes, bytes]]
    ) -> tuple[str, bool] | None:
        """A request to a route: its upstream's URL (keyed with the upstream's Host)."""
        if not target.startswith("/"):
            return None
        path, sep, query = target.partition("?")
        name, _, rest = path[1:].partition("/")
        route = self._by_name.get(name)
        if route is None:
            return None
        return f"{route.upstream}/{rest}" + (f"{sep}{query}" if sep else ""), True

    def _front_url(self, target: str, fields: list[tuple[bytes, bytes]]) -> tuple[str, bool] | None:
        """A request to the front: routed (a path), or proxied over plain HTTP (an absolute
        URL, captured as mitmproxy captures it: the authority from the Host header). One to
        this proxy's own ports is mitmproxy's to route."""
        if target.startswith("/"):
            return self._routed_url(target, fields)
        if not target.startswith("http://"):
            return None
        slash = target.find("/", len("http://"))
        parts = urlsplit(target)
        if slash < 0 or not parts.hostname or (parts.port or 80) in self.ports:
            return None
        authority = _keyed_authority("http", fields, parts.netloc)
        return None if authority is None else (f"http://{authority}{target[slash:]}", False)

    def _answer(
        self, method: str, url: str, routed: bool, fields: list[tuple[bytes, bytes]], body: bytes
    ) -> tuple[float, bytes] | None:
        """The delay and bytes of a cassette hit, or of a stub's answer to a request the
        cassette does not hold, when the replayer would send it whole and draw no fault; None
        to leave the request to the proxy. A routed request is keyed as the proxy keys it:
        with the upstream's Host."""
        replayer = self._replayer
        session = replayer.session
        if not session.serves_from_cassette:
            return None
        parts = urlsplit(url)
        if self._hosts is not None and parts.hostname not in self._hosts:
            return None
        if routed:
            netloc = parts.netloc.encode("latin-1")
            fields = [(k, netloc if k == b"host" else v) for k, v in fields]
        keep = session.keyed_headers
        headers = tuple(
            [(k.decode("latin-1"), v.decode("latin-1")) for k, v in fields if k in keep]
        )
        request = Request.model_construct(
            method=method, url=url, headers=headers, body=Body.from_bytes(body)
        )
        keyed = session.keyed(request)
        found = session.peek(keyed.key)
        latency = replayer.latency
        if found is None:
            wire = replayer.stub_at_once(keyed, _by_name(fields))
            if wire is None:
                return None
            self.served += 1
            return 0.0, _serialise(wire)
        if not _whole(found, latency):
            return None
        faults = replayer.faults
        if faults is not None and not faults.draw_clean(keyed.key):
            return None
        session.lookup(keyed.key)  # the one peeked at: nothing ran in between
        session.count_hit(request)
        self.served += 1
        recorded = found.response
        assert recorded is not None
        timing = latency.for_answer(keyed.key, found.timing.total_ms)
        return timing.delay(found.timing.total_ms), _serialise(WireResponse.of(recorded))

    async def _tunnel(
        self, head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """A CONNECT: ended here when the client speaks TLS with HTTP/1.1 and the session
        serves from its cassette; else relayed to the proxy as it is."""
        authority = _authority(head)
        replayer = self._replayer
        if (
            self._certs is None
            or authority is None
            or not replayer.session.serves_from_cassette
            or (self._hosts is not None and authority[0] not in self._hosts)
        ):
            await self._hand_on(head, reader, writer)
            return
        writer.write(_ESTABLISHED)
        await writer.drain()
        first, hello = await read_hello(reader, self._handshake_timeout)
        if hello is None or not hello.wants_http1:
            await self._hand_on(first, reader, writer, connect=head)
            return
        name = hello.sni or authority[0]
        tls = TlsStream((reader, writer), self._certs.context(name, "http/1.1" in hello.alpn))
        try:
            await tls.handshake(first, self._handshake_timeout)
        except (ssl.SSLError, ConnectionError) as e:
            replayer.session.note_client_tls_failure(_handshake_error(e, authority))
            return
        tunnel = _Tunnel(head, hello, authority)
        try:
            request = await self._head(tls.reader, self._idle_timeout)
            if request is not None:
                await self._serve(request, tls.reader, tls, tunnel.url, tunnel)
        finally:
            tls.close()

    async def _open_proxy(
        self, writer: _Writer
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        """A connection to the proxy's listener, on the address the client reached."""
        host = writer.get_extra_info("sockname")[0]
        try:
            port = await self.proxy()
            return await asyncio.open_connection(host, port)
        except OSError as e:
            logger.warning("tapeproxy fast routes: cannot reach the proxy (%s): %s", host, e)
            return None

    async def _hand_on(
        self,
        read: bytes,
        reader: asyncio.StreamReader,
        writer: _Writer,
        connect: bytes | None = None,
        hello: Hello | None = None,
    ) -> None:
        """Send what was read to the proxy's listener and relay the connection both ways
        until either side closes it. A tunnel already answered here goes through a CONNECT of
        its own (`connect`, the client's); one whose TLS was ended here, in a TLS connection of
        its own that asks for what the client asked (`hello`: server name, protocols)."""
        if connect is None:
            opened = await self._open_proxy(writer)
        else:
            opened = await self._connect_proxy(connect, writer)
        if opened is None:
            return
        up_reader, up_writer = opened
        if hello is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False  # the proxy's own certificate, on this host
            context.verify_mode = ssl.CERT_NONE
            if hello.alpn:
                context.set_alpn_protocols(list(hello.alpn))
            await up_writer.start_tls(context, server_hostname=hello.sni)
        up_writer.write(read)
        await _relay(reader, writer, up_reader, up_writer)

    async def _connect_proxy(
        self, head: bytes, writer: _Writer
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        """The proxy's listener with the client's CONNECT sent and answered."""
        opened = await self._open_proxy(writer)
        if opened is None:
            return None
        up_reader, up_writer = opened
        up_writer.write(head)
        answer = await asyncio.wait_for(up_reader.readuntil(b"\r\n\r\n"), _PROXY_TIMEOUT)
        if not answer.startswith(b"HTTP/1.1 200"):
            logger.warning("tapeproxy: the proxy refused a tunnel: %r", answer[:80])
            up_writer.close()
            return None
        return up_reader, up_writer


class _Writer(Protocol):
    def write(self, data: bytes) -> None: ...
    async def drain(self) -> None: ...
    def write_eof(self) -> None: ...
    def get_extra_info(self, name: str) -> Any: ...


@dataclass(frozen=True)
class _Tunnel:
    """A CONNECT whose TLS is ended here: what was asked, and where."""

    head: bytes
    hello: Hello
    authority: tuple[str, int]

    def url(self, target: str, fields: list[tuple[bytes, bytes]]) -> tuple[str, bool] | None:
        """A request's URL as the proxy captures it: from its Host header, else from the
        CONNECT."""
        if not target.startswith("/"):
            return None
        authority = _keyed_authority("https", fields, _hostport(*self.authority))
        return None if authority is None else (f"https://{authority}{target}", False)


_UrlOf = Callable[[str, list[tuple[bytes, bytes]]], tuple[str, bool] | None]
"""A request target and header fields to the URL it is keyed by and whether it was routed
(keyed with its upstream's Host), or None to leave it to the proxy."""


async def _no_proxy() -> int:
    raise OSError("the proxy is not running")


_PROXY_TIMEOUT = 30.0
_ESTABLISHED = b"HTTP/1.1 200 Connection established\r\n\r\n"


def _authority(head: bytes) -> tuple[str, int] | None:
    """Host and port of a CONNECT request line (as mitmproxy parses an authority), or None
    when it does not give both."""
    parts = head.split(b"\r\n", 1)[0].split(b" ")
    if len(parts) != 3:
        return None
    try:
        host, port = url.parse_authority(parts[1], check=True)
    except ValueError:
        return None
    return None if port is None else (host, port)


def _keyed_authority(scheme: str, fields: list[tuple[bytes, bytes]], otherwise: str) -> str | None:
    """The authority of a request's URL as the proxy captures it (`flows.capture_request`):
    from its Host header, else `otherwise` (the CONNECT's, the absolute URL's)."""
    host = next((v for k, v in fields if k == b"host"), None)
    try:
        return pretty_authority(scheme, host.decode("ascii") if host is not None else otherwise)
    except UnicodeDecodeError:
        return None


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _handshake_error(error: Exception, authority: tuple[str, int]) -> str:
    """A client's failed handshake, worded as mitmproxy words it (`layers.tls`)."""
    dest = _hostport(*authority)
    err = str(error) or type(error).__name__
    if any(s in err for s in ("unknown ca", "bad certificate", "certificate unknown")):
        return f"The client does not trust the proxy's certificate for {dest} ({err})"
    if isinstance(error, ConnectionError):
        return (
            f"The client disconnected during the handshake. If this happens consistently for "
            f"{dest}, this may indicate that the client does not trust the proxy's certificate."
        )
    return f"The client may not trust the proxy's certificate for {dest} ({err})"


_NOT_A_PROXY = (
    b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\nconnection: close\r\n"
    b"content-length: 86\r\n\r\n"
    b"tapeproxy: this is the routes' listener (http://HOST:PORT/<route>/...), not the proxy\n"
)


def _origin_form(head: bytes) -> bool:
    """Whether a request line's target is a path (not a proxy's absolute URL or authority)."""
    parts = head.split(b" ", 2)
    return len(parts) > 1 and parts[1].startswith(b"/")


def _by_name(fields: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """Header values by lower-case name, repeated ones joined as mitmproxy's `Headers` join
    them (what stub rules match on)."""
    found: dict[str, str] = {}
    for k, v in fields:
        name, value = k.decode("latin-1"), v.decode("latin-1")
        found[name] = f"{found[name]}, {value}" if name in found else value
    return found


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


async def _relay(
    reader: asyncio.StreamReader,
    writer: _Writer,
    up_reader: asyncio.StreamReader,
    up_writer: asyncio.StreamWriter,
) -> None:
    """Relay both ways until either side closes, then close both: a client that gives up
    (its end of the connection closed) frees the proxy's connection at once, as a client of
    mitmproxy's own does, where a half-close would leave it held (a `timeout` fault)."""
    pipes = [
        asyncio.ensure_future(_pipe(reader, up_writer)),
        asyncio.ensure_future(_pipe(up_reader, writer)),
    ]
    try:
        await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for pipe in pipes:
            pipe.cancel()
        up_writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: _Writer) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.write_eof()
