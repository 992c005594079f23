"""TLS ended by the front listener itself (`proxy.fastroutes`): the client's first bytes read
for its name and protocols, certificates minted from the proxy's CA, and a TLS stream over
asyncio's streams.

A client that tunnels through `CONNECT` and offers HTTP/1.1 can have its cassette hits
answered without mitmproxy's engine, whose layers cost a few milliseconds per fresh connection
(`bench/RESULTS-pytest-suite.md`). What the front cannot answer it hands to mitmproxy
re-encrypted, so the TLS ended here is only ever a client's first hop.

The ClientHello is read here, not by mitmproxy's parser, so that a run that only replays never
imports mitmproxy's protocol layers; a hello this module cannot read (fragmented across records,
not TLS at all) is left to mitmproxy whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import shutil
import ssl
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mitmproxy.certs import CertStore

__all__ = ["Hello", "ServerCerts", "TlsStream", "read_hello"]

_HANDSHAKE = 0x16
_CLIENT_HELLO = 0x01
_SNI = 0x0000
_ALPN = 0x0010


@dataclass(frozen=True)
class Hello:
    """What a ClientHello asks for: the server name (None: none sent) and the ALPN protocols
    offered, in the client's order."""

    sni: str | None
    alpn: tuple[str, ...]

    @property
    def wants_http1(self) -> bool:
        """Whether mitmproxy would speak HTTP/1.1 to this client, so the front may: it offers
        no protocols, or http/1.1 is the first HTTP protocol it offers (mitmproxy takes the
        client's first of h3, h2, http/1.1, http/1.0, http/0.9 when it has no upstream
        connection to ask, as with its lazy connections: `tlsconfig.alpn_select_callback`)."""
        chosen = next((p for p in self.alpn if p in _HTTP_ALPNS), None)
        return not self.alpn or chosen == "http/1.1"


_HTTP_ALPNS = frozenset({"h3", "h2", "http/1.1", "http/1.0", "http/0.9"})


async def read_hello(reader: asyncio.StreamReader, timeout: float) -> tuple[bytes, Hello | None]:
    """The first TLS record a client sends, and what its ClientHello asks for (None when the
    bytes are not one whole ClientHello: the caller hands them on as they are).

    Raises:
        TimeoutError: nothing came within `timeout` seconds.
    """
    head = await asyncio.wait_for(reader.read(5), timeout)
    while 0 < len(head) < 5:
        more = await asyncio.wait_for(reader.read(5 - len(head)), timeout)
        if not more:
            break
        head += more
    if len(head) < 5 or head[0] != _HANDSHAKE:
        return head, None
    (length,) = struct.unpack("!H", head[3:5])
    try:
        body = await asyncio.wait_for(reader.readexactly(length), timeout)
    except asyncio.IncompleteReadError as e:
        return head + e.partial, None
    return head + body, _parse_hello(body)


def _parse_hello(body: bytes) -> Hello | None:
    """SNI and ALPN of a ClientHello handshake message (RFC 8446 4.1.2), or None."""
    try:
        if body[0] != _CLIENT_HELLO or int.from_bytes(body[1:4]) != len(body) - 4:
            return None  # not a hello, or one split over several records
        at = 4 + 2 + 32  # type and length, legacy version, random
        at += 1 + body[at]  # session id
        at += 2 + int.from_bytes(body[at : at + 2])  # cipher suites
        at += 1 + body[at]  # compression methods
        if at == len(body):
            return Hello(None, ())
        end = at + 2 + int.from_bytes(body[at : at + 2])
        if end != len(body):
            return None
        at += 2
        sni: str | None = None
        alpn: list[str] = []
        while at < end:
            kind, size = struct.unpack("!HH", body[at : at + 4])
            data = body[at + 4 : at + 4 + size]
            if len(data) != size:
                return None
            at += 4 + size
            if kind == _SNI:
                sni = _server_name(data)
            elif kind == _ALPN:
                alpn = _protocols(data)
        return Hello(sni, tuple(alpn))
    except (IndexError, struct.error, UnicodeDecodeError):
        return None


def _server_name(data: bytes) -> str | None:
    at, end = 2, 2 + int.from_bytes(data[:2])
    while at < end:
        kind, size = data[at], int.from_bytes(data[at + 1 : at + 3])
        if kind == 0:  # host_name
            return data[at + 3 : at + 3 + size].decode("ascii")
        at += 3 + size
    return None


def _protocols(data: bytes) -> list[str]:
    at, end, found = 2, 2 + int.from_bytes(data[:2]), []
    while at < end:
        size = data[at]
        found.append(data[at + 1 : at + 1 + size].decode("ascii"))
        at += 1 + size
    return found


class ServerCerts:
    """Server-side TLS contexts per host name, with certificates minted by the proxy's CA as
    mitmproxy mints them (its `CertStore`, from the confdir mitmproxy uses too).

    Python's `ssl` loads certificates from files only: each host's chain and key are written,
    mode 0600, in a private folder removed by `close()`, and removed once loaded. At most
    `max_hosts` contexts are kept (the oldest made goes first), so clients that ask for ever
    new names cannot grow the proxy without bound; mitmproxy's store keeps its own 100.
    """

    def __init__(self, confdir: Path, max_hosts: int = 256) -> None:
        self._confdir = confdir
        self._max_hosts = max_hosts
        self._store: CertStore | None = None
        self._contexts: dict[tuple[str, bool], ssl.SSLContext] = {}
        self._folder: Path | None = None
        self._made = 0

    def context(self, host: str, http1: bool) -> ssl.SSLContext:
        """The context that serves `host` (SNI, else the CONNECT host), offering http/1.1 by
        ALPN when the client offered it."""
        found = self._contexts.get((host, http1))
        if found is None:
            if len(self._contexts) >= self._max_hosts:
                del self._contexts[next(iter(self._contexts))]
            found = self._contexts[(host, http1)] = self._make(host, http1)
        return found

    def __len__(self) -> int:
        """How many contexts are kept."""
        return len(self._contexts)

    def _make(self, host: str, http1: bool) -> ssl.SSLContext:
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization

        from tapeproxy.proxy.ca import load_store

        if self._store is None:
            self._store = load_store(self._confdir)
        if self._folder is None:
            self._folder = Path(tempfile.mkdtemp(prefix="tapeproxy-certs-"))
        try:
            name: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
        except ValueError:
            name = x509.DNSName(host.encode("idna").decode())
        entry = self._store.get_cert(str(name.value), [name])
        chain = entry.cert.to_pem() + b"".join(c.to_pem() for c in entry.chain_certs)
        key = entry.privatekey.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        self._made += 1
        pem = self._folder / f"{self._made}.pem"
        fd = os.open(pem, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(chain + key)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(pem)
        pem.unlink()  # loaded: the key need not stay on disk
        if http1:
            ctx.set_alpn_protocols(["http/1.1"])
        return ctx

    def close(self) -> None:
        """Remove the private folder."""
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None


class TlsStream:
    """The server side of a TLS connection over an asyncio stream pair, by memory BIOs (as
    asyncio's own TLS transport works), after the ClientHello was read from the stream.

    `reader` is a StreamReader of the decrypted bytes; `write`, `drain`, `write_eof` and
    `close` encrypt and send, so the pair serves where a plain stream pair does.
    """

    def __init__(
        self, raw: tuple[asyncio.StreamReader, asyncio.StreamWriter], context: ssl.SSLContext
    ) -> None:
        self._raw_reader, self._raw = raw
        self._in, self._out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._in, self._out, server_side=True)
        self.reader = asyncio.StreamReader(limit=64 * 1024)
        self._pump: asyncio.Task[None] | None = None

    async def handshake(self, hello: bytes, timeout: float) -> None:
        """Complete the handshake that `hello` began, then decrypt in the background.

        Raises:
            ssl.SSLError: the handshake failed (the client's alert names why).
            ConnectionError: the client closed the connection during the handshake.
            TimeoutError: the client stalled for `timeout` seconds.
        """
        self._in.write(hello)
        while True:
            try:
                self._tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._flush()
                await self._raw.drain()
                data = await asyncio.wait_for(self._raw_reader.read(65536), timeout)
                if not data:
                    raise ConnectionError("connection closed") from None
                self._in.write(data)
        self._flush()
        self._pump = asyncio.create_task(self._decrypt())

    async def _decrypt(self) -> None:
        try:
            while True:
                while True:
                    try:
                        chunk = self._tls.read(65536)
                    except ssl.SSLWantReadError:
                        break
                    if not chunk:  # close_notify
                        return
                    self.reader.feed_data(chunk)
                self._flush()  # post-handshake messages (key updates) answered
                data = await self._raw_reader.read(65536)
                if not data:
                    return
                self._in.write(data)
        except (ssl.SSLError, ConnectionError):
            return
        finally:
            self.reader.feed_eof()

    def _flush(self) -> None:
        if pending := self._out.read():
            self._raw.write(pending)

    def write(self, data: bytes) -> None:
        self._tls.write(data)
        self._flush()

    async def drain(self) -> None:
        await self._raw.drain()

    def write_eof(self) -> None:
        """Send close_notify: nothing more comes from this side."""
        with contextlib.suppress(ssl.SSLError):  # the client's close_notify is not awaited
            self._tls.unwrap()
        self._flush()

    def get_extra_info(self, name: str) -> object:
        return self._raw.get_extra_info(name)

    def close(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
        self._raw.close()
