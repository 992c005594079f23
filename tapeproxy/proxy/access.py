"""Who may use the proxy: clients from public addresses are refused (as mitmproxy's own
`block_global` does), at most `max_connections` clients at once (each costs file
descriptors: past the process's limit the proxy would answer no one), and with
`--proxy-auth USER:PASS` every client must authenticate.

A recording proxy forwards whatever it is asked to, the host's own loopback services
included: on an address other machines reach, it is an open proxy unless it asks for
credentials. `check_exposure` refuses that set-up before the proxy starts.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import ipaddress
import logging
import weakref
from typing import TYPE_CHECKING

from mitmproxy import connection, http
from mitmproxy.utils import asyncio_utils

from tapeproxy.errors import ConfigError
from tapeproxy.proxy.flows import mark_handled

if TYPE_CHECKING:
    from mitmproxy.addons.proxyserver import Proxyserver

__all__ = [
    "Access",
    "check_exposure",
    "default_max_connections",
    "is_loopback",
    "parse_credentials",
    "peer_address",
]

logger = logging.getLogger(__name__)

_REALM = "tapeproxy"


def default_max_connections() -> int:
    """Half the open files the process may have (a client and its upstream each take one),
    less a margin for cassettes and the tape server; at least 64."""
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ImportError, ValueError, OSError):
        return 512
    if soft == resource.RLIM_INFINITY:
        return 4096
    return max(64, (soft - 64) // 2)


class Refusals:
    """Clients refused at the connection limit, logged the first time and every 100th (a
    flood must not flood the log too)."""

    def __init__(self) -> None:
        self.count = 0

    def note(self, connected: int) -> None:
        """One more refused while `connected` clients are served."""
        self.count += 1
        if self.count == 1 or self.count % 100 == 0:
            logger.warning(
                "tapeproxy: %d clients connected, the limit (max_connections): refused %d so far",
                connected,
                self.count,
            )


def peer_address(peer: object) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """A client's address from its peername (IPv6 scope dropped, an IPv4-mapped IPv6 address
    as the IPv4 one); None when it is not an IP address."""
    if not isinstance(peer, tuple) or not peer:
        return None
    try:
        address = ipaddress.ip_address(str(peer[0]).rsplit("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_loopback(host: str) -> bool:
    """Whether a listen host is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name or '' (every address): assume others can reach it


def parse_credentials(value: str) -> tuple[str, str]:
    """`USER:PASS` as a pair.

    Raises:
        ConfigError: not of that shape, or an empty user or password.
    """
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        raise ConfigError("proxy_auth: expected USER:PASSWORD, both non-empty")
    return user, password


def check_exposure(host: str, records: bool, credentials: str | None, allow_open: bool) -> None:
    """Refuse a recording proxy that other machines could use without credentials.

    Raises:
        ConfigError: `host` is not loopback, the run records, and neither credentials nor
            `allow_open` were given.
    """
    if records and not is_loopback(host) and credentials is None and not allow_open:
        shown = host or "every address"
        raise ConfigError(
            f"listen {shown!r}: a recording proxy on an address other machines reach would "
            "forward anyone's requests, to this host's own services too; add --proxy-auth "
            "USER:PASS (TAPEPROXY_PROXY_AUTH), listen on 127.0.0.1, or pass --allow-open-proxy "
            "if the network is yours alone"
        )


class Access:
    """Refuses public clients; with credentials, answers 407 to any request without them;
    closes a client that has sent no request `handshake_timeout` seconds after connecting.

    Args:
        credentials: ``USER:PASS`` clients must send as Basic `Proxy-Authorization`, or None.
        max_connections: clients served at once; more are refused (None: the default).
        handshake_timeout: seconds from connect to a first request (a CONNECT's tunnel and
            TLS handshake included); None: only the idle timeout closes a stalled client.
        server: mitmproxy's Proxyserver addon, whose connection handlers close clients.
    """

    def __init__(
        self,
        credentials: str | None = None,
        max_connections: int | None = None,
        handshake_timeout: float | None = None,
        server: Proxyserver | None = None,
    ) -> None:
        self._handshake_timeout = handshake_timeout
        self._server = server
        self._started: weakref.WeakSet[connection.Client] = weakref.WeakSet()
        self._expected = None if credentials is None else parse_credentials(credentials)
        self._tunnels: weakref.WeakKeyDictionary[connection.Client, bool] = (
            weakref.WeakKeyDictionary()
        )
        self.max_connections = max_connections or default_max_connections()
        self._open: weakref.WeakSet[connection.Client] = weakref.WeakSet()
        self._refused = Refusals()

    def client_connected(self, client: connection.Client) -> None:
        """Close connections from public addresses (private networks and loopback may come)."""
        address = peer_address(client.peername)
        if address is None:
            return
        host = client.peername[0].rsplit("%", 1)[0]  # as the client named itself, for the log
        if address.is_global:
            logger.warning("tapeproxy: refused a client from the public address %s", host)
            client.error = "tapeproxy refuses clients from public addresses"
            return
        if len(self._open) >= self.max_connections:
            self._refused.note(len(self._open))
            client.error = "tapeproxy: too many connections"
            return
        self._open.add(client)
        if self._handshake_timeout is not None and self._server is not None:
            loop = asyncio.get_running_loop()
            loop.call_later(self._handshake_timeout, self._handshake_over, weakref.ref(client))

    def _handshake_over(self, ref: weakref.ref[connection.Client]) -> None:
        """Close the client if it is still connected and has sent no request yet."""
        client = ref()
        if client is None or client in self._started or client not in self._open:
            return
        assert self._server is not None, "the timer is only set with a server"
        handler = self._server.connections.get(client.id)
        if handler is None:
            return
        logger.warning(
            "tapeproxy: closed a client that sent no request within %s s of connecting "
            "(handshake_timeout)",
            self._handshake_timeout,
        )
        # what mitmproxy itself does when tcp_timeout runs out on a connection
        asyncio_utils.create_task(
            handler.on_timeout(), name="tapeproxy handshake timeout", keep_ref=True
        )

    def client_disconnected(self, client: connection.Client) -> None:
        """A connection that counted against the limit is gone."""
        self._open.discard(client)

    def http_connect(self, flow: http.HTTPFlow) -> None:
        """A CONNECT must authenticate; the tunnel it opens is then trusted."""
        if self._expected is not None and self._check(flow):
            self._tunnels[flow.client_conn] = True

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        """A request outside an authenticated tunnel must authenticate itself."""
        if flow.request.method != "CONNECT":
            self._started.add(flow.client_conn)  # through the handshake: idle rules now
        if self._expected is None or flow.client_conn in self._tunnels:
            return
        self._check(flow)

    def _check(self, flow: http.HTTPFlow) -> bool:
        if self._valid(flow.request.headers.get("proxy-authorization", "")):
            del flow.request.headers["proxy-authorization"]
            return True
        mark_handled(flow, "error")
        flow.response = http.Response.make(
            407,
            b"tapeproxy: proxy authentication required\n",
            {"Proxy-Authenticate": f'Basic realm="{_REALM}"', "Content-Type": "text/plain"},
        )
        return False

    def _valid(self, header: str) -> bool:
        assert self._expected is not None
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, sep, password = (
                base64.b64decode(token.strip(), validate=True).decode().partition(":")
            )
        except (binascii.Error, UnicodeDecodeError):
            return False
        want_user, want_password = self._expected
        return bool(sep) and (
            hmac.compare_digest(user.encode(), want_user.encode())
            & hmac.compare_digest(password.encode(), want_password.encode())
        )
