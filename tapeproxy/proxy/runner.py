"""Starting and stopping the proxy: a lean mitmproxy Master, with only the addons tapeproxy
needs, running its own event loop in a background thread.

The lean Master skips mitmproxy's ~37 default addons (measured: ~1,800 replayed requests/s
against ~810 for mitmdump). Connections are lazy and certificates are minted without asking
the upstream, so a replay never opens a connection to the network.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from mitmproxy import options

from tapeproxy.cassettes import store
from tapeproxy.cassettes.index import RepeatPolicy
from tapeproxy.cassettes.model import JournalMeta, MatchRules
from tapeproxy.errors import BadInputError, TapeproxyError
from tapeproxy.modes import Mode
from tapeproxy.providers.stubs import Stubs
from tapeproxy.proxy.access import Access
from tapeproxy.proxy.ca import tls_config
from tapeproxy.proxy.control import CONTROL_PATH, Control
from tapeproxy.proxy.diagnostics import Diagnostics
from tapeproxy.proxy.expiry import Expiry
from tapeproxy.proxy.fastroutes import FastRoutes
from tapeproxy.proxy.faults import Faults
from tapeproxy.proxy.latency import Latency
from tapeproxy.proxy.lean import HookTable, lean_mitmproxy
from tapeproxy.proxy.replay import Replayer
from tapeproxy.proxy.resolve import Resolver
from tapeproxy.proxy.routes import DEFAULT_ROUTES, Route, Routes, route_env
from tapeproxy.proxy.session import Miss, TapeSession
from tapeproxy.proxy.tapeserver import TapeServer
from tapeproxy.proxy.wsreplay import WsMatch
from tapeproxy.redaction import Redactor

if TYPE_CHECKING:
    from tapeproxy.proxy.journal import Journal
    from tapeproxy.proxy.record import Recorder

__all__ = ["ProxyConfig", "ProxyRunner", "default_confdir"]

logger = logging.getLogger(__name__)

_START_TIMEOUT = 30.0


def default_confdir() -> Path:
    """Where the proxy's CA lives unless told otherwise (per user)."""
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(Path.home(), ".config")
    return Path(base) / "tapeproxy"


@dataclass(frozen=True)
class ProxyConfig:
    """Everything one proxy run needs to know."""

    cassette: Path
    mode: Mode
    listen_host: str = "127.0.0.1"
    listen_port: int = 0
    confdir: Path = field(default_factory=default_confdir)
    latency: Latency = field(default_factory=Latency)
    upstream_ca: Path | None = None
    insecure_upstream: bool = False
    hosts: frozenset[str] | None = None
    rules: MatchRules | None = None
    redactor: Redactor | None = None
    repeat: RepeatPolicy = "last"
    on_event: Callable[[str], None] | None = None
    verbose: bool = False
    proxy_auth: str | None = field(default=None, repr=False)
    max_connections: int | None = None
    idle_timeout: int = 600
    handshake_timeout: int = 30
    allow_open_proxy: bool = False
    stubs: Stubs | None = None
    faults: Faults | None = None
    journal: Path | None = None
    report: Path | None = None
    routes: tuple[Route, ...] = DEFAULT_ROUTES
    resolve: Mapping[tuple[str, int], tuple[str, int]] = field(default_factory=dict)
    cassette_dir: Path | None = None
    """Where control API cassette names resolve (None: the cassette's folder)."""
    expiry: Expiry | None = None
    ws_match: WsMatch = "position"
    """How replayed WebSocket sessions match client messages: position or json."""
    fast_routes: bool = True
    """Answer routed cassette hits on a listener of their own (`proxy.fastroutes`), where the
    run needs no addon to see every request."""
    routes_port: int = 0
    """The port of that listener (0: a free one)."""

    def wants_fast_routes(self) -> bool:
        """Whether the proxy has a front (`proxy.fastroutes`): not when a journal or report,
        proxy authentication or expiry must see every request."""
        return self.fast_routes and not (
            self.journal or self.report or self.proxy_auth or self.expiry
        )  # fmt: skip

    def ca_cert(self) -> Path:
        """The CA certificate clients must trust (mitmproxy's layout in `confdir`)."""
        return self.confdir / "mitmproxy-ca-cert.pem"


def _why_not_listening(host: str, port: int) -> OSError:
    """Why the proxy server got no listening socket (mitmproxy only logs it): bind it here."""
    import errno
    import socket

    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM)
    except OSError as e:
        return OSError(f"cannot resolve {host!r} ({e})")
    for family, kind, proto, _, addr in infos:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(addr)
            except OSError as e:
                if e.errno == errno.EADDRINUSE:
                    return OSError(
                        f"address already in use: port {port} on {host or 'all addresses'} is "
                        "taken by another program (another tapeproxy?); choose another --listen"
                    )
                return OSError(f"{e.strerror or e} (binding {host}:{port})")
    return OSError("the proxy server reported no listening address")


class _Ready:
    """Reports the listening address once the proxy server is up."""

    def __init__(self, runner: ProxyRunner) -> None:
        self._runner = runner

    def running(self) -> None:
        from mitmproxy import ctx

        server = ctx.master.addons.get("proxyserver")
        self._runner._listening(server.listen_addrs() if server else [])


class _Chain:
    """tapeproxy's addons as one entry of mitmproxy's addon chain, their hooks run in the
    order given; the recorder is inserted after the replayer when a session first records."""

    def __init__(self, *addons: object) -> None:
        self.addons = list(addons)


class ProxyRunner:
    """One proxy run: `start()` returns once it listens, `stop()` saves the cassette.

    Use as a context manager, or call `start()` and `stop()`.
    """

    def __init__(self, config: ProxyConfig) -> None:
        self.config = config
        self.session = self._new_session(config.cassette, config.mode)
        self.address: tuple[str, int] | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._master: Any = None
        self._master_task: asyncio.Task[None] | None = None
        self._server: Any = None
        self._stopping = asyncio.Event()
        self._proxy_started: asyncio.Future[int] | None = None
        self._proxy_listening: asyncio.Future[list[tuple[str, int]]] | None = None
        self._tapeserver: TapeServer | None = None
        self._chain: _Chain | None = None
        self._hooks: HookTable | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self.replayer: Replayer | None = None
        self.diagnostics: Diagnostics | None = None
        self.recorder: Recorder | None = None
        self.journal: Journal | None = None
        self.fast_routes: FastRoutes | None = None
        self._earlier_misses: list[Miss] = []
        self.switched: list[tuple[Path, dict[str, int]]] = []
        """The cassettes used before the current one, with their counts."""
        if config.journal is not None or config.report is not None:
            from tapeproxy.proxy.journal import Journal

            self.journal = Journal(self.session, keep=config.journal is not None)

    def _new_session(self, cassette: Path, mode: Mode) -> TapeSession:
        """Load the cassette with the cyclic garbage collector off, then freeze what it loaded.

        A loaded cassette is millions of objects that live as long as the session and hold no
        cycles; left to the collector, every full pass walks them all again (10,000
        interactions: ~0.15 s at start-up, and again now and then while serving).
        """
        c = self.config
        with store.gc_paused():
            session = TapeSession(
                cassette, mode, c.rules, c.redactor, c.repeat, c.on_event, c.verbose
            )
        gc.freeze()
        session.expiry = c.expiry
        return session

    def route_env(self) -> dict[str, str]:
        """The SDK base-URL variables pointed at this proxy's routes (once it listens): on
        the fast routes' listener when there is one."""
        assert self.address is not None, "the proxy is not running"
        fast = self.fast_routes
        address = self.address
        if fast is not None and fast.address is not None:
            address = (self.address[0], fast.address[1])
        return route_env(self.config.routes, address)

    def client_env(self, no_proxy: str) -> dict[str, str]:
        """What CMD gets beyond the proxy and CA variables: the SDKs' base URLs on the
        routes, and the wiring Node and Java need (`proxy.runtimes`)."""
        from tapeproxy.proxy.runtimes import runtime_env

        assert self.address is not None, "the proxy is not running"
        wiring = runtime_env(self.address, self.config.ca_cert(), no_proxy, os.environ)
        host, port = self.address
        host = f"[{host}]" if ":" in host else host
        control = {"TAPEPROXY_CONTROL_URL": f"http://{host}:{port}{CONTROL_PATH}"}
        return {**self.route_env(), **wiring, **control}

    @property
    def url(self) -> str:
        """The proxy URL for HTTPS_PROXY and HTTP_PROXY (with the credentials clients need)."""
        assert self.address is not None, "the proxy is not running"
        host, port = self.address
        host = f"[{host}]" if ":" in host else host
        auth = self.config.proxy_auth
        if auth is None:
            return f"http://{host}:{port}"
        user, _, password = auth.partition(":")
        return f"http://{quote(user, safe='')}:{quote(password, safe='')}@{host}:{port}"

    def __enter__(self) -> ProxyRunner:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Start the proxy thread and wait until it listens.

        Raises:
            BadInputError: the proxy could not listen or its CA could not be created.
        """
        self.config.confdir.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._run, name="tapeproxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(_START_TIMEOUT):
            raise TapeproxyError("the proxy did not start within 30 s")
        if self._failure is not None or self.address is None:
            loop = self._loop
            if loop is not None and self._thread.is_alive():  # mitmproxy runs on, unlistening
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(self._stopping.set)
            self._thread.join(5)
            c = self.config
            raise BadInputError(
                f"cannot start the proxy on {c.listen_host}:{c.listen_port}: {self._failure}"
            ) from self._failure

    @property
    def mitmproxy_started(self) -> bool:
        """Whether mitmproxy's Master runs: always without the front, and behind it once the
        front first handed a connection on."""
        return self._master is not None

    @property
    def cassette_dir(self) -> Path:
        """Where control API cassette names resolve."""
        return self.config.cassette_dir or self.config.cassette.parent

    def misses(self) -> list[Miss]:
        """Every miss of the run: of the cassettes used before (`switch`) and the current."""
        return [*self._earlier_misses, *self.session.misses]

    def switch(self, cassette: Path, mode: Mode) -> TapeSession:
        """Save the current cassette and continue with another (for per-test cassettes)."""
        self.session.save()
        self._earlier_misses += self.session.misses
        self.switched.append((self.session.path, self.session.tally()))
        self.session = self._new_session(cassette, mode)
        for addon in (self.replayer, self.recorder, self.diagnostics, self.journal):
            if addon is not None:
                addon.session = self.session
        if self.session.records and self.recorder is None and self._loop is not None:
            asyncio.run_coroutine_threadsafe(self._ensure_recorder(), self._loop).result(
                _START_TIMEOUT
            )
        return self.session

    def use_stubs(self, stubs: Stubs | None) -> None:
        """Answer from these stub rules from now on (None: from none)."""
        self.config = replace(self.config, stubs=stubs)
        if self.replayer is not None:
            self.replayer.use_stubs(stubs)

    def use_latency(self, latency: Latency) -> None:
        """Time answers this way from now on (a test's profile; `config.latency` again after)."""
        if self.replayer is not None:
            self.replayer.latency = latency

    def use_faults(self, faults: Faults | None) -> None:
        """Draw these faults from now on (None: none)."""
        self.config = replace(self.config, faults=faults)
        if self.replayer is not None:
            self.replayer.faults = faults

    def stop(self) -> None:
        """Stop the proxy, wait for recordings in flight, then write the cassette.

        Raises:
            CassetteWriteError: the cassette could not be written.
        """
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None and thread.is_alive():
            with contextlib.suppress(RuntimeError):  # the loop ended already
                loop.call_soon_threadsafe(self._stopping.set)
            thread.join(60)
        self._master = None
        self.session.save()
        self.save_journal()

    def save_journal(self) -> None:
        """Write the journal and the client report, when they were asked for.

        Raises:
            CassetteWriteError: the journal could not be written.
            BadInputError: the report could not be written.
        """
        c, journal = self.config, self.journal
        if journal is None:
            return
        if c.journal is not None:
            faults = c.faults.describe() if c.faults is not None else None
            seed = c.faults.seed if c.faults is not None else None
            meta = JournalMeta(cassette=str(c.cassette), mode=c.mode, faults=faults, seed=seed)
            journal.save(c.journal, meta)
        if c.report is not None:
            from tapeproxy.proxy.verdicts import write_report

            write_report(c.report, journal.exchanges())

    async def _ensure_recorder(self) -> None:
        """The Master running (behind the front, it may not be yet) and the recorder in it."""
        if self.fast_routes is not None:
            await self._proxy_port()
        if self.recorder is None:
            await self._add_recorder()

    async def _add_recorder(self) -> None:
        """Add the record addon, in the proxy's loop, for the first session that records.

        Runs that only replay never load it, nor the HTTP client it forwards streams with
        (about 0.1 s of start-up).
        """
        from tapeproxy.proxy.record import Recorder
        from tapeproxy.proxy.upstream import make_client, trust_bundle

        c = self.config
        assert self._tapeserver is not None, "the proxy loop starts the tape server first"
        self.recorder = Recorder(
            self.session,
            self._tapeserver,
            lambda: make_client(c.upstream_ca, c.insecure_upstream),
            c.hosts,
            c.resolve,
        )
        assert self._chain is not None, "the proxy loop builds the chain first"
        self._chain.addons.insert(self._chain.addons.index(self.replayer) + 1, self.recorder)
        self._master.addons.register(self.recorder)
        assert self._hooks is not None, "the proxy loop makes the hook table with the chain"
        self._hooks.clear()
        self._master.options.update(
            ssl_insecure=c.insecure_upstream,
            # mitmproxy forwards what is not a stream: it trusts what the httpx client trusts
            ssl_verify_upstream_trusted_ca=(
                str(trust_bundle(c.upstream_ca, c.confdir)) if c.upstream_ca else None
            ),
        )

    def _listening(self, addrs: list[tuple[str, int]]) -> None:
        """mitmproxy's server is up, on these addresses (none: it could not listen)."""
        if self.fast_routes is not None:  # behind the front
            if self._proxy_listening is not None and not self._proxy_listening.done():
                self._proxy_listening.set_result(addrs)
            return
        if addrs:
            host, port = addrs[0][:2]
            self.address = (self.config.listen_host or host, port)
        else:
            c = self.config
            self._failure = self._failure or _why_not_listening(c.listen_host, c.listen_port)
        self._ready.set()

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as e:
            self._failure = e
        finally:
            self._ready.set()

    async def _main(self) -> None:
        c = self.config
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        tapeserver = self._tapeserver = TapeServer()
        await tapeserver.start()
        self.replayer = Replayer(
            self.session, tapeserver, c.latency, c.hosts, c.stubs, c.faults, c.ws_match
        )
        self.diagnostics = Diagnostics(self.session)
        try:
            if c.wants_fast_routes():
                await self._start_front()
                if self.session.records:  # the recorder is mitmproxy's addon
                    await self._proxy_port()
                self._ready.set()
            else:
                await self._start_master(c.listen_host, c.listen_port)
            await self._stopping.wait()
        finally:
            master, task = self._master, self._master_task
            if master is not None and task is not None:
                master.shutdown()
                with contextlib.suppress(Exception):
                    await task
            if self._server is not None:
                await self._server.servers.update([])  # mitmproxy leaves its sockets open
            if self.fast_routes is not None:
                await self.fast_routes.stop()
            await tapeserver.stop()

    async def _start_front(self) -> None:
        """Listen on the proxy's address and the routes' port with `FastRoutes`; mitmproxy
        starts when the front first hands a connection on (`_proxy_port`)."""
        from tapeproxy.proxy.ca import ensure_ca
        from tapeproxy.proxy.tlsterm import ServerCerts

        c = self.config
        assert self.replayer is not None
        ensure_ca(c.confdir)  # clients are told to trust it before anything is handed on
        fast = self.fast_routes = FastRoutes(
            c.routes,
            self.replayer,
            c.hosts,
            ServerCerts(c.confdir),
            # a client silent for the idle timeout is closed, even before its first request
            (min(c.handshake_timeout, c.idle_timeout), c.idle_timeout),
            c.max_connections,
        )
        fast.proxy = self._proxy_port
        try:
            await fast.start_front(c.listen_host, c.listen_port)
        except OSError as e:
            self._failure = _why_not_listening(c.listen_host, c.listen_port)
            raise self._failure from e
        try:
            await fast.start(c.listen_host or "127.0.0.1", c.routes_port)
        except OSError as e:
            raise OSError(f"the routes' listener (port {c.routes_port}): {e}") from e
        assert fast.front is not None
        self.address = (c.listen_host or fast.front[0] or "0.0.0.0", fast.front[1])

    async def _proxy_port(self) -> int:
        """mitmproxy's listening port behind the front, its Master started on first need.

        Raises:
            OSError: mitmproxy could not listen.
        """
        if self._proxy_started is None:
            self._proxy_started = asyncio.ensure_future(
                self._start_master(self.config.listen_host, 0)
            )
        return await asyncio.shield(self._proxy_started)

    async def _start_master(self, host: str, port: int) -> int:
        """Build the lean Master, start it and return its listening port once it listens.

        Raises:
            OSError: it could not listen.
        """
        c = self.config
        tapeserver, fast = self._tapeserver, self.fast_routes
        assert tapeserver is not None and self.replayer is not None
        assert self.diagnostics is not None
        opts = options.Options(
            listen_host=host,
            listen_port=port,
            confdir=str(c.confdir),
            tcp_timeout=c.idle_timeout,  # a connection with no traffic this long is closed
        )
        mitm = lean_mitmproxy()
        master = mitm["mitmproxy.master"].Master(opts)
        server = self._server = mitm["mitmproxy.addons.proxyserver"].Proxyserver()
        ports = fast.ports if fast is not None else frozenset()
        journal = self.journal
        self._chain = _Chain(
            # first: refused ones go no further
            Access(c.proxy_auth, c.max_connections, c.handshake_timeout, server),
            self.diagnostics,
            mitm["mitmproxy.addons.next_layer"].NextLayer(),
            # before anything reads a request: routed ones are rewritten
            Routes(
                c.routes,
                Control(self.switch, lambda: self.session, self.cassette_dir, c.mode),
                ports,
            ),
            *([journal] if journal is not None else []),  # takes requests as they arrived
            self.replayer,
            # the recorder goes here, when a session records (`_add_recorder`)
            # After the replayer: its CRL check returns at once for answered flows.
            tls_config(mitm["mitmproxy.addons.tlsconfig"].TlsConfig),
            *([journal.tail] if journal is not None else []),  # sees answers as sent
            *([Resolver(c.resolve)] if c.resolve else []),  # after the recorder's host checks
            _Ready(self),
        )
        master.addons.add(
            server,  # first: its hooks run before tapeproxy's
            self._chain,
        )
        self._hooks = HookTable(master.addons)
        opts.update(connection_strategy="lazy", upstream_cert=False)
        self._master = master
        if self.session.records:
            await self._add_recorder()
        listening = self._proxy_listening = asyncio.get_running_loop().create_future()
        task = self._master_task = asyncio.create_task(master.run())
        if fast is None:
            return 0  # `_listening` reports the address
        await asyncio.wait({listening, task}, return_when=asyncio.FIRST_COMPLETED)
        addrs = listening.result() if listening.done() else []
        if not addrs:
            raise _why_not_listening(host, port)
        return int(addrs[0][1])
