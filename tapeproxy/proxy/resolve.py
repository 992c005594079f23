"""`--resolve HOST:PORT=ADDR:PORT` (curl's word): the proxy reaches HOST:PORT at ADDR:PORT,
keeping HOST for the Host header, TLS SNI and certificate checks.

Java and Go never send loopback hosts through a proxy, so a test (or a user pointing a real
provider's name at a local fake) addresses `api.openai.com` and lets tapeproxy reach it on
127.0.0.1. Requests are keyed by the name the client used, never the address.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from mitmproxy.proxy import server_hooks

from tapeproxy.errors import ConfigError

__all__ = ["Resolver", "parse_resolve"]

Address = tuple[str, int]


def _address(text: str, where: str) -> Address:
    host, sep, port = text.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{where}: {text.strip()!r} is not HOST:PORT")
    return host.lower(), int(port)


def parse_resolve(given: object) -> dict[Address, Address]:
    """`HOST:PORT=ADDR:PORT` entries (a list or a comma-separated string) as a table.

    Raises:
        ConfigError: an entry is not of that shape.
    """
    if given is None or given == "":
        return {}
    items: Iterable[object] = given.split(",") if isinstance(given, str) else given  # type: ignore[assignment]
    table = {}
    for item in (str(i).strip() for i in items if str(i).strip()):
        name, sep, target = item.partition("=")
        where = f"resolve {item!r}"
        if not sep:
            raise ConfigError(f"{where}: expected HOST:PORT=ADDR:PORT (curl's --resolve)")
        table[_address(name, where)] = _address(target, where)
    return table


class Resolver:
    """Connects to the address given for a host (mitmproxy keeps the host as the TLS SNI).

    Args:
        table: (host, port) -> (address, port).
    """

    def __init__(self, table: Mapping[Address, Address]) -> None:
        self.table = dict(table)

    def server_connect(self, data: server_hooks.ServerConnectionHookData) -> None:
        """Point the upstream connection at the address given for its host."""
        address = data.server.address
        if address is None:
            return
        target = self.table.get((address[0].lower(), address[1]))
        if target is not None:
            data.server.sni = data.server.sni or address[0]
            data.server.address = target
