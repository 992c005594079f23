"""Running a command under the proxy (`record -- CMD`, `replay -- CMD`) or serving until told
to stop (`serve`), and what each prints when it ends.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import quote

from tapeproxy.cassettes import store
from tapeproxy.cassettes.model import Interaction
from tapeproxy.errors import BadInputError, TapeproxyError
from tapeproxy.proxy.access import is_loopback
from tapeproxy.proxy.runner import ProxyConfig, ProxyRunner
from tapeproxy.proxy.settings import child_env

__all__ = [
    "MISS_EXIT",
    "SAVE_EVERY_S",
    "STOP_SIGNALS",
    "preflight",
    "run_command",
    "run_live",
    "serve_forever",
]

MISS_EXIT = 3
"""Exit code of `replay` when CMD passed but some requests had no recorded answer."""

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
"""What CI cancellation, `timeout`, `docker stop` and a closed terminal send: each is handled
like Ctrl-C, so CMD is stopped and what was recorded is saved."""

_CMD_GRACE_S = 10.0

SAVE_EVERY_S = 2.0
"""How often `serve` in a recording mode saves what it recorded: a `docker kill`, an OOM or a
crash loses at most the exchanges of the last two seconds."""


class _Stopped(BaseException):
    """A stop signal arrived while CMD ran (raised in the main thread by the handler)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class _StopSignals:
    """Stop signals for the whole run: the first one raises `_Stopped` while CMD is waited
    for (`armed`), and is only noted at any other moment (starting the proxy, saving the
    cassette), so those are never cut short; later ones are ignored."""

    def __init__(self) -> None:
        self.received: int | None = None
        self.armed = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _StopSignals:
        self._previous = {sig: signal.signal(sig, self._handle) for sig in STOP_SIGNALS}
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._previous.items():
            signal.signal(sig, old)

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if self.received is None:
            self.received = signum
            if self.armed:
                raise _Stopped(signum)


def _spawn(cmd: Sequence[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Start CMD; in its own process group unless it runs at a terminal.

    Its own group lets a stop reach everything CMD started (`sh -c`, test workers) instead of
    leaving them running against a proxy that is gone. At a terminal it stays in the
    foreground group, where it gets Ctrl-C itself and may read the terminal (pytest --pdb).
    """
    interactive = sys.stdin is not None and sys.stdin.isatty()
    try:
        return subprocess.Popen(list(cmd), env=env, process_group=None if interactive else 0)
    except OSError as e:
        raise BadInputError(f"cannot run {cmd[0]!r}: {e.strerror or e}") from e


def _stop(proc: subprocess.Popen[bytes], signum: int) -> int:
    """Pass `signum` on to CMD, wait for it, kill it if it lingers; its exit code.

    CMD in its own group gets the signal group-wide. CMD in ours (at a terminal) already got
    a Ctrl-C from the terminal, so SIGINT is not sent twice; other signals are passed on.
    """
    own_group = proc.poll() is None and os.getpgid(proc.pid) != os.getpgrp()
    first = signum if own_group or signum != signal.SIGINT else None
    for sig, wait in ((first, _CMD_GRACE_S), (signal.SIGKILL, None)):
        with contextlib.suppress(ProcessLookupError):
            if sig is not None and own_group:
                os.killpg(proc.pid, sig)
            elif sig is not None and proc.poll() is None:
                proc.send_signal(sig)
        try:
            return proc.wait(wait)
        except subprocess.TimeoutExpired:
            name = signal.Signals(signum).name
            print(
                f"tapeproxy: CMD still runs {wait:.0f} s after {name}; killing it", file=sys.stderr
            )
    return proc.wait()


def preflight(config: ProxyConfig) -> None:
    """Refuse a run that cannot end well before CMD spends anything.

    Replay of a cassette that does not exist would turn every request into a miss (or, with
    no requests, into a silent pass): a typo in a path. A recording whose cassette cannot be
    saved would be thrown away at the end.

    Raises:
        BadInputError: the cassette is missing in replay (with no stubs to answer instead),
            or its destination is not writable.
    """
    switches = config.cassette_dir is not None  # the control API names the cassettes
    if config.mode == "none" and not config.cassette.exists() and not config.stubs and not switches:
        raise BadInputError(
            f"{config.cassette}: no such cassette, so nothing can be replayed; check the path, "
            f"or record it first: tapeproxy record --cassette {config.cassette} -- CMD"
        )
    if config.mode != "none":
        store.check_writable(config.cassette)
    for path in (config.journal, config.report):
        if path is not None:
            store.check_writable(path)


def run_command(config: ProxyConfig, cmd: Sequence[str], no_proxy: str) -> int:
    """Run CMD with the proxy's environment; returns the exit code to leave with.

    That is CMD's own code, or `MISS_EXIT` when CMD passed but there were misses.

    Raises:
        BadInputError: CMD cannot be started.
    """
    if not cmd:
        raise BadInputError("no command given: put it after --, e.g. tapeproxy replay -- pytest")
    label = "replay" if config.mode == "none" else "record"
    code, runner = _run(config, cmd, no_proxy, label)
    if code == 0 and runner.misses():
        return MISS_EXIT
    return code


def _run(
    config: ProxyConfig, cmd: Sequence[str], no_proxy: str, label: str, summary: bool = True
) -> tuple[int, ProxyRunner]:
    """CMD under the proxy until it ends or a stop signal; its code and the runner used."""
    preflight(config)
    with _StopSignals() as signals, ProxyRunner(config) as runner:
        wiring = runner.client_env(no_proxy)
        env = child_env(os.environ, runner.url, config.ca_cert(), no_proxy, label, wiring)
        proc = _spawn(cmd, env)
        signals.armed = signals.received is None
        try:
            code = proc.wait()
        except _Stopped:
            code = _stop(proc, signals.received or signal.SIGTERM)
        signals.armed = False
        if signals.received is not None and proc.poll() is None:
            code = _stop(proc, signals.received)
    if summary:
        print(_summary(runner), file=sys.stderr)
    if not any(runner.session.tally().values()):
        print(_nothing_reached(no_proxy, runner.route_env()), file=sys.stderr)
    stopped = signals.received
    if stopped is not None:
        name = signal.Signals(stopped).name
        print(
            f"tapeproxy: stopped by {name}; CMD was stopped and the cassette saved", file=sys.stderr
        )
        return 128 + stopped, runner
    return (128 - code if code < 0 else code), runner


def _save_now(runner: ProxyRunner) -> None:
    """Save what was recorded so far (and the journal); a failure is printed and retried at
    the next turn."""
    try:
        if runner.session.records:
            runner.session.save()
        runner.save_journal()
    except TapeproxyError as e:
        _log_line(f"cannot save yet, will retry: {e}")


def _summary(runner: ProxyRunner) -> str:
    """The session's summary, with the clients' behaviour and where the journal and the
    report went, when they were asked for."""
    lines = [runner.session.summary()]
    if runner.switched:  # the control API switched cassettes: each one's counts
        earlier = [
            f"    {path}: served {t['hits']}, recorded {t['recorded']}, misses {t['misses']}"
            for path, t in runner.switched[-10:]
        ]
        lines += [f"  cassettes used before this one: {len(runner.switched)}", *earlier]
    if runner.journal is not None:
        from tapeproxy.proxy.verdicts import summary_lines

        exchanges = runner.journal.exchanges()
        lines += summary_lines(exchanges)
        c = runner.config
        if c.journal is not None:
            lines.append(f"  journal: {c.journal} ({len(exchanges)} exchanges)")
        if c.report is not None:
            lines.append(f"  report: {c.report}")
    return "\n".join(lines)


def _nothing_reached(no_proxy: str, routes: dict[str, str]) -> str:
    """Why a run whose CMD sent nothing through the proxy may have done so, and the fix."""
    example = next(iter(routes.items()), None)
    fix = (
        f"  The fix that needs no proxy support: a base URL on a route, e.g. "
        f"{example[0]}={example[1]}\n  (CMD had {', '.join(routes)} set that way; a client "
        "given its base URL in code must be given the route instead).\n"
        if example
        else ""
    )
    return (
        "tapeproxy: nothing reached the proxy: CMD made no request through it. If it did make\n"
        f"  requests, they went around it: to a host in NO_PROXY ({no_proxy or 'none'}: loopback\n"
        "  by default, so a local server is only recorded with --no-proxy ''), or from a client\n"
        "  that ignores HTTPS_PROXY (Node's fetch before Node 24 without NODE_USE_ENV_PROXY=1,\n"
        "  a client built with trust_env=False or its own transport).\n" + fix
    ).rstrip("\n")


def _shown_url(runner: ProxyRunner) -> str:
    """The proxy URL to print: the password is left out (logs outlive the proxy)."""
    auth = runner.config.proxy_auth
    if auth is None:
        return runner.url
    return runner.url.replace(f":{quote(auth.partition(':')[2], safe='')}@", ":PASSWORD@", 1)


def _exposure_warning(config: ProxyConfig) -> str:
    where = f"{config.listen_host or 'every address'}:{config.listen_port}"
    if config.proxy_auth is not None:
        return f"WARNING: listening on {where}, reachable from other machines (auth required)"
    what = "forwards anyone's requests" if config.mode != "none" else "serves the cassette"
    return (
        f"WARNING: listening on {where} with no --proxy-auth: it {what} to any client on "
        "this network (public addresses are refused)"
    )


def _log_line(line: str) -> None:
    print(f"tapeproxy: {line}", file=sys.stderr, flush=True)


def run_live(
    config: ProxyConfig, cmd: Sequence[str], no_proxy: str, journal: Path | None
) -> tuple[int, tuple[Interaction, ...]]:
    """Run CMD with every request passed through to the providers.

    Returns:
        CMD's exit code (128+N when stopped by signal N) and the exchanges forwarded
        (redacted), which are also saved to `journal` when one is given.

    Raises:
        BadInputError: no CMD, or the journal exists already.
    """
    if not cmd:
        raise BadInputError("no command given: put it after --, e.g. tapeproxy live -- pytest")
    if journal is not None and journal.exists():
        raise BadInputError(f"{journal}: the journal exists already; name a new file")
    with tempfile.TemporaryDirectory(prefix="tapeproxy-live-") as scratch:
        target = journal or Path(scratch) / "live.json.zst"
        config = dataclasses.replace(config, cassette=target, mode="all")
        code, runner = _run(config, cmd, no_proxy, "live", summary=False)
        return code, runner.session.recorded()


def serve_forever(config: ProxyConfig, no_proxy: str, verbose: bool = False) -> int:
    """Serve until SIGINT, SIGTERM or SIGHUP; returns 0, or `MISS_EXIT` if there were misses.

    Each miss is printed as it happens (and, with `verbose`, each recorded exchange), so a
    proxy in a container can be followed with `docker logs`.
    """
    config = dataclasses.replace(config, on_event=_log_line, verbose=verbose)
    preflight(config)
    stop = threading.Event()
    for sig in STOP_SIGNALS:
        signal.signal(sig, lambda *_: stop.set())
    with ProxyRunner(config) as runner:
        ca = config.ca_cert()
        url = _shown_url(runner)
        routes = " ".join(f"{k}={v}" for k, v in runner.route_env().items())
        print(
            f"tapeproxy serving ({config.mode}) on {url} with cassette {config.cassette}\n"
            f"  export HTTPS_PROXY={url} HTTP_PROXY={url} NO_PROXY={no_proxy}\n"
            f"  export SSL_CERT_FILE={ca} REQUESTS_CA_BUNDLE={ca} CURL_CA_BUNDLE={ca} "
            f"NODE_EXTRA_CA_CERTS={ca}\n"
            f"  or by base URL, no proxy nor CA needed: export {routes}\n"
            "  stop with Ctrl-C",
            file=sys.stderr,
            flush=True,
        )
        if not is_loopback(config.listen_host):
            _log_line(_exposure_warning(config))
        last_save = time.monotonic()
        while not stop.wait(0.5):
            saves = runner.session.records or runner.journal is not None
            if saves and time.monotonic() - last_save >= SAVE_EVERY_S:
                last_save = time.monotonic()
                _save_now(runner)
    print(_summary(runner), file=sys.stderr)
    return MISS_EXIT if runner.misses() else 0
