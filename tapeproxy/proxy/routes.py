"""Base-URL routes: the proxy's own listener answers plain HTTP requests made straight to it
under `/<route>/...`, so a client configured by base URL needs neither proxy support nor the
CA (Node's fetch, a client built with `trust_env=False`, anything in a container).

A routed request is rewritten to its upstream (`/openai/chat/completions` ->
`https://api.openai.com/v1/chat/completions`) before anything else reads it, so it is keyed,
journaled, replayed and recorded exactly as the same request sent through `HTTPS_PROXY`: one
cassette serves both.

`record`, `replay`, `live` and the pytest plugin point each SDK's base-URL variable at its
route; when the user had set one, that route forwards to the user's value.
"""

from __future__ import annotations

import functools
import json
import re
import socket
from collections.abc import Awaitable, Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from mitmproxy import connection, http

from tapeproxy.errors import ConfigError
from tapeproxy.proxy.control import CONTROL_PATH, Control
from tapeproxy.proxy.flows import mark_handled

__all__ = ["DEFAULT_ROUTES", "Route", "Routes", "parse_routes", "route_env"]


@dataclass(frozen=True)
class Route:
    """`/<name>/REST` is answered as `<upstream>/REST`; `variable` is the SDKs' base-URL
    environment variable pointed at the route (None: none)."""

    name: str
    upstream: str
    variable: str | None = None


DEFAULT_ROUTES = (
    # openai-python (lib/_client_auth.py) and openai-node read OPENAI_BASE_URL; it holds /v1.
    Route("openai", "https://api.openai.com/v1", "OPENAI_BASE_URL"),
    # anthropic-sdk-python (_client.py) and anthropic-sdk-typescript: ANTHROPIC_BASE_URL.
    Route("anthropic", "https://api.anthropic.com", "ANTHROPIC_BASE_URL"),
    # google-genai (python-genai _base_url.py, js-genai): GOOGLE_GEMINI_BASE_URL.
    Route("gemini", "https://generativelanguage.googleapis.com", "GOOGLE_GEMINI_BASE_URL"),
)
"""One route per provider whose official SDKs read a base-URL variable."""

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


def _upstream(url: str, where: str) -> str:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{where}: {url!r} is not an http(s) URL")
    return url.strip().rstrip("/")


def _is_a_route(url: str, name: str) -> bool:
    """Whether a variable's value is a tapeproxy route already (set for an earlier run in
    this environment): following it would loop."""
    parts = urlsplit(url)
    return (
        parts.scheme == "http"
        and (parts.hostname or "") in _LOOPBACK
        and parts.path.rstrip("/") == f"/{name}"
    )


def parse_routes(given: object, environ: Mapping[str, str]) -> tuple[Route, ...]:
    """The routes of a run: the defaults, each forwarding to the user's own base URL when its
    variable is set in `environ`, and the user's `NAME=UPSTREAM_URL` routes (a list, a
    comma-separated string, or a table), which replace a default of the same name.

    Raises:
        ConfigError: a route is not NAME=URL, its name is not lower-case letters, digits,
            `-` and `_`, or its URL is not http(s).
    """
    routes = {}
    for r in DEFAULT_ROUTES:
        own = environ.get(r.variable or "", "").strip()
        upstream = r.upstream
        if own and not _is_a_route(own, r.name):
            upstream = _upstream(own, f"{r.variable} (route {r.name})")
        routes[r.name] = Route(r.name, upstream, r.variable)
    pairs: Iterable[tuple[str, str]]
    if given is None or given == "":
        pairs = ()
    elif isinstance(given, Mapping):
        pairs = [(str(k), str(v)) for k, v in given.items()]
    else:
        items = given.split(",") if isinstance(given, str) else list(given)  # type: ignore[call-overload]
        pairs = []
        for item in (str(i).strip() for i in items if str(i).strip()):
            name, sep, url = item.partition("=")
            if not sep:
                raise ConfigError(f"route {item!r}: expected NAME=UPSTREAM_URL")
            pairs.append((name, url))
    for name, url in pairs:
        name = name.strip()
        if not _NAME.match(name):
            raise ConfigError(f"route {name!r}: a name is lower-case letters, digits, '-' and '_'")
        variable = routes[name].variable if name in routes else None
        routes[name] = Route(name, _upstream(url, f"route {name}"), variable)
    return tuple(routes.values())


@functools.lru_cache(maxsize=64)
def _resolves_to(host: str, address: str) -> bool:
    try:
        found = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return False
    return any(info[4][0] == address for info in found)


def route_env(routes: Iterable[Route], address: tuple[str, int]) -> dict[str, str]:
    """The SDK base-URL variables pointed at the routes of a proxy listening at `address`."""
    host, port = address
    host = f"[{host}]" if ":" in host else host
    return {r.variable: f"http://{host}:{port}/{r.name}" for r in routes if r.variable}


class Routes:
    """Rewrites requests made straight to the listener (not through it) to their route's
    upstream; a path that names no route is answered 404, listing the routes.

    Args:
        routes: the run's routes.
    """

    def __init__(
        self,
        routes: Iterable[Route],
        control: Control | None = None,
        ports: frozenset[int] = frozenset(),
    ) -> None:
        self._by_name = {r.name: r for r in routes}
        self._tunnels: set[str] = set()
        self._control = control
        self._ports = ports
        """Other ports of this proxy whose requests are routed too (`proxy.fastroutes`)."""

    def http_connect(self, flow: http.HTTPFlow) -> None:
        """Requests inside a CONNECT tunnel are proxied, never routed."""
        self._tunnels.add(flow.client_conn.id)

    def client_disconnected(self, client: connection.Client) -> None:
        self._tunnels.discard(client.id)

    def _to_me(self, flow: http.HTTPFlow) -> bool:
        """Whether a request is addressed to the listener itself: not inside a CONNECT
        tunnel, and its host and port are where the client reached the proxy (a loopback
        name, the listening address, or a name that resolves to it, as `tapeproxy:8080` does
        in docker-compose). mitmproxy turns a proxied request's absolute form into origin
        form before any hook runs, so the form cannot tell."""
        conn = flow.client_conn
        local = conn.sockname
        req = flow.request
        if conn.id in self._tunnels or not local:
            return False
        if req.port != local[1] and req.port not in self._ports:
            return False
        return req.host in _LOOPBACK or req.host == local[0] or _resolves_to(req.host, local[0])

    def request(self, flow: http.HTTPFlow) -> Awaitable[None] | None:
        """Point a routed request at its upstream, as if it had come through the proxy; hand
        a control API request to the control API (awaited by the hook table)."""
        if flow.response is not None or not self._to_me(flow):
            return None
        req = flow.request
        path, _, query = req.path.partition("?")
        if self._control is not None and (
            path == CONTROL_PATH or path.startswith(CONTROL_PATH + "/")
        ):
            return self._control.handle(flow, path[len(CONTROL_PATH) :])
        name, _, rest = path.lstrip("/").partition("/")
        route = self._by_name.get(name)
        if route is None:
            mark_handled(flow, "error")
            listed = {f"/{r.name}": r.upstream for r in self._by_name.values()}
            doc = {
                "error": f"tapeproxy: no route {('/' + name)!r} on this proxy; a base URL is "
                "http://HOST:PORT/<route>",
                "routes": listed,
            }
            flow.response = http.Response.make(
                404, json.dumps(doc, indent=2) + "\n", {"content-type": "application/json"}
            )
            return None
        target = f"{route.upstream}/{rest}" + (f"?{query}" if query else "")
        req.url = target
        req.host_header = urlsplit(target).netloc
        return None
