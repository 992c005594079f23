"""The pytest plugin: per-test cassettes recorded and replayed through one tapeproxy proxy.

A test marked ``@pytest.mark.tape`` (or asking for the ``tape`` fixture) runs with
``HTTPS_PROXY``, ``HTTP_PROXY`` (and lower-case twins), ``NO_PROXY``, the CA variables
(``SSL_CERT_FILE``, ``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE``, ``NODE_EXTRA_CA_CERTS``) and
``TAPEPROXY_MODE`` (``record`` or ``replay``) set, so SDK clients it creates and subprocesses
it starts all go through the proxy; the variables are restored when the test ends. The proxy
is started once per session (once per pytest-xdist worker; again only for a test whose proxy
settings differ) and switches cassettes per test:
``<test dir>/cassettes/<module>/<test name>.json.zst``. A request with no recorded answer
fails the test that made it, with the nearest recorded request and what differs.

Where each setting comes from, the first found winning:

1. the command line: ``--record-mode``, ``--tape-latency``;
2. the test's marker: ``@pytest.mark.tape("name", record_mode="once", latency="none")``;
3. the ``tape_config`` fixture (a dict of the same keys) and the ``tape_cassette_dir`` fixture;
4. the environment (``TAPEPROXY_<KEY>``), then ``[tool.tapeproxy]`` (or ``tapeproxy.toml``);
5. the default: record mode ``none``, so a run without the flag never reaches the network.

Keys of the marker and ``tape_config``: ``record_mode``, ``latency``, ``no_proxy``,
``upstream_ca``, ``confdir``, ``insecure_upstream``, ``hosts``, ``match_headers``,
``ignore_query``, ``ignore_json_paths``, ``repeat``. In ``[tool.tapeproxy]`` the record mode
is ``record_mode`` (``TAPEPROXY_RECORD_MODE``), and ``cassette_dir`` moves the cassettes to
``<rootdir>/<cassette_dir>/<module>/``. Drift: ``@pytest.mark.llm_drift_threshold(0.7)`` sets
the text-similarity threshold of the ``llm_drift`` helper and of the drift list printed after
``--record-mode=all`` re-records (default ``text_threshold`` or 0.85).

Heavy modules (mitmproxy, zstandard, the review engine) are imported only when a test uses a
tape, so having the plugin installed costs nothing to runs that do not.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Generator, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tapeproxy.config import load_config, setting
from tapeproxy.errors import ConfigError

if TYPE_CHECKING:
    from tapeproxy.cassettes.model import Cassette
    from tapeproxy.proxy.runner import ProxyConfig, ProxyRunner
    from tapeproxy.proxy.session import Miss, TapeSession
    from tapeproxy.review.assertions import DriftCheck

__all__ = [
    "MODES",
    "Tape",
    "cassette_name",
    "llm_drift",
    "tape",
    "tape_cassette_dir",
    "tape_config",
]

MODES = ("none", "once", "new_episodes", "all")
_PROXY_KEYS = (
    "latency",
    "upstream_ca",
    "confdir",
    "insecure_upstream",
    "hosts",
    "match_headers",
    "ignore_query",
    "ignore_json_paths",
    "repeat",
)
_KEYS = frozenset({"record_mode", "no_proxy", *_PROXY_KEYS})
_UNSAFE = re.compile(r'[\x00-\x1f<>:"/\\|?*\s]+')


@dataclass(frozen=True)
class Tape:
    """What the ``tape`` fixture gives a test: its cassette, mode and proxy."""

    cassette: Path
    mode: str
    proxy_url: str
    ca_cert: Path
    env: Mapping[str, str]
    session: TapeSession = field(repr=False)

    @property
    def recording(self) -> bool:
        """Whether requests without a recorded answer go upstream (``TAPEPROXY_MODE=record``)."""
        return self.session.records

    @property
    def misses(self) -> list[Miss]:
        """Requests of this test that had no recorded answer, so far."""
        return self.session.misses


def cassette_name(item: pytest.Item) -> str:
    """The file name of a test's cassette: its name (``Class.test[id]``), made safe."""
    cls = getattr(item, "cls", None)
    name = f"{cls.__name__}.{item.name}" if cls is not None else item.name
    safe = _UNSAFE.sub("_", name).strip(". ")
    if safe != name or len(safe) > 120:
        safe = f"{safe[:100]}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"
    return safe + ".json.zst"


# --- hooks -------------------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    """All flags in one group."""
    group = parser.getgroup("tapeproxy", "tapeproxy: record and replay HTTP(S) per test")
    group.addoption(
        "--record-mode",
        choices=MODES,
        default=None,
        help="none (default: replay only, a miss fails the test), once (record cassettes "
        "that do not exist), new_episodes (record what is missing), all (re-record).",
    )
    group.addoption(
        "--tape-latency",
        default=None,
        metavar="recorded|none|xFACTOR",
        help="replay timing: as recorded (default), at once, or scaled (x0.5).",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Register the markers and the session state."""
    config.addinivalue_line(
        "markers",
        "tape(cassette=None, **settings): run through tapeproxy with a per-test cassette; "
        "settings: " + ", ".join(sorted(_KEYS)),
    )
    config.addinivalue_line(
        "markers", "llm_drift_threshold(ratio): lowest text similarity accepted as no drift"
    )
    config.stash[_STATE] = _State(config)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Fail a test whose requests had no recorded answer, with the nearest-request diff."""
    report = yield
    active = item.stash.get(_ACTIVE, None)
    if report.when == "call" and active is not None and active.tape.misses:
        text = _miss_text(active, item.config)
        if report.passed:
            report.outcome = "failed"
            report.longrepr = text
        elif report.failed:
            report.sections.append(("tapeproxy misses", text))
    return report


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """Stop the proxy; an xdist worker hands its results to the controller."""
    state = session.config.stash.get(_STATE, None)
    if state is None:
        return
    state.stop()
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["tapeproxy"] = json.dumps(state.results)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """pytest-xdist controller: collect a finished worker's results."""
    data = getattr(node, "workeroutput", {}).get("tapeproxy")
    state = node.config.stash.get(_STATE, None)
    if data and state is not None:
        state.results.extend(json.loads(data))


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """Cassettes replayed and recorded, misses, unused interactions, drift."""
    state = config.stash.get(_STATE, None)
    if state is None or not state.results or hasattr(config, "workerinput"):
        return
    terminalreporter.write_sep("-", "tapeproxy")
    for line in _summary(state.results, config.rootpath):
        terminalreporter.write_line(line)


# --- fixtures ----------------------------------------------------------------------------


@pytest.fixture
def tape_cassette_dir(request: pytest.FixtureRequest) -> Path:
    """Where this module's cassettes live: ``<test dir>/cassettes/<module>/`` (override me)."""
    state = request.config.stash[_STATE]
    module = request.path
    configured = setting("cassette_dir", None, state.table, None, state.env)
    if configured:
        return request.config.rootpath / str(configured) / module.stem
    return module.parent / "cassettes" / module.stem


@pytest.fixture
def tape_config() -> dict[str, Any]:
    """Settings for this scope's tapes (override me): the keys the ``tape`` marker takes."""
    return {}


@pytest.fixture
def tape(
    request: pytest.FixtureRequest, tape_cassette_dir: Path, tape_config: dict[str, Any]
) -> Iterator[Tape]:
    """Route this test through the session's proxy with its own cassette."""
    state: _State = request.config.stash[_STATE]
    item = request.node
    marker = item.get_closest_marker("tape")
    args, kwargs = (marker.args, dict(marker.kwargs)) if marker else ((), {})
    if len(args) > 1 or set(kwargs) - _KEYS or set(tape_config) - _KEYS:
        raise ConfigError(
            f"tape marker / tape_config of {item.nodeid}: expected one cassette name and "
            f"keys among {', '.join(sorted(_KEYS))}, got {args} {sorted({*kwargs, *tape_config})}"
        )
    flags = {
        "record_mode": request.config.getoption("record_mode"),
        "latency": request.config.getoption("tape_latency"),
    }
    overrides = {**tape_config, **kwargs, **{k: v for k, v in flags.items() if v is not None}}
    cassette = _cassette_path(tape_cassette_dir, item, args[0] if args else None)
    active = state.begin(cassette, overrides, _threshold(item, state, cassette))
    item.stash[_ACTIVE] = active
    try:
        yield active.tape
    finally:
        state.end(item.nodeid, active)


@pytest.fixture(autouse=True)
def _tape_marker(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("tape") is not None:
        request.getfixturevalue("tape")


@pytest.fixture
def llm_drift(request: pytest.FixtureRequest) -> DriftCheck:
    """The drift assertion helper, with this test's ``llm_drift_threshold``."""
    from tapeproxy.review.assertions import DriftCheck

    state: _State = request.config.stash[_STATE]
    return DriftCheck(_threshold(request.node, state, None))


def _threshold(item: pytest.Item, state: _State, cassette: Path | None) -> float:
    marker = item.get_closest_marker("llm_drift_threshold")
    from tapeproxy.review.diff import Thresholds

    if marker is not None:
        value = marker.args[0] if marker.args else marker.kwargs.get("ratio")
        return Thresholds.from_config({"text_threshold": value}).default
    thresholds = Thresholds.from_config(state.table)
    if cassette is None:
        return thresholds.default
    return thresholds.for_path(_relative(cassette, state.rootpath))


def _cassette_path(directory: Path, item: pytest.Item, name: Any) -> Path:
    if name is None:
        return directory / cassette_name(item)
    path = Path(str(name))
    if not path.name.endswith(".json.zst"):
        path = path.with_name(path.name + ".json.zst")
    return path if path.is_absolute() else directory / path


# --- session state -----------------------------------------------------------------------


@dataclass
class _Active:
    tape: Tape
    saved_env: dict[str, str | None]
    old: Cassette | None
    threshold: float


class _State:
    """The session's proxy (started at the first tape) and what each test's tape did."""

    def __init__(self, config: pytest.Config) -> None:
        self.env = dict(os.environ)
        self.rootpath = config.rootpath
        self.results: list[dict[str, Any]] = []
        self.runner: ProxyRunner | None = None
        self._proxy_key: tuple[Any, ...] = ()
        self._table: dict[str, Any] | None = None
        self._idle = Path(tempfile.gettempdir()) / f"tapeproxy-idle-{os.getpid()}.json.zst"

    @property
    def table(self) -> dict[str, Any]:
        """``[tool.tapeproxy]`` of the nearest config file, read once."""
        if self._table is None:
            self._table = load_config(start=self.rootpath)
        return self._table

    def begin(self, cassette: Path, overrides: Mapping[str, Any], threshold: float) -> _Active:
        """Switch the proxy to a test's cassette and set the environment."""
        from tapeproxy.cassettes import store
        from tapeproxy.proxy.settings import DEFAULT_NO_PROXY, child_env

        mode = setting("record_mode", overrides.get("record_mode"), self.table, "none", self.env)
        if mode not in MODES:
            raise ConfigError(f"record_mode {mode!r}: expected one of {', '.join(MODES)}")
        no_proxy = setting("no_proxy", overrides.get("no_proxy"), self.table, None, self.env)
        runner = self._proxy(self._config(cassette, mode, overrides))
        old = store.load(cassette) if mode == "all" and cassette.exists() else None
        session = runner.switch(cassette, mode)
        label = "record" if session.records else "replay"
        no_proxy = DEFAULT_NO_PROXY if no_proxy is None else str(no_proxy)
        env = child_env({}, runner.url, runner.config.ca_cert(), no_proxy, label)
        saved = {name: os.environ.get(name) for name in env}
        os.environ.update(env)
        tape = Tape(cassette, mode, runner.url, runner.config.ca_cert(), env, session)
        return _Active(tape, saved, old, threshold)

    def end(self, nodeid: str, active: _Active) -> None:
        """Restore the environment, save the cassette, and note what happened."""
        for name, value in active.saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        session = active.tape.session
        wrote = session.save()
        assert self.runner is not None
        self.runner.switch(self._idle, "none")
        counts = session.tally()
        self.results.append(
            {
                "test": nodeid,
                "cassette": str(active.tape.cassette),
                "mode": active.tape.mode,
                "recorded": wrote,
                "replayed": counts["hits"] > 0,
                "misses": [m.describe() for m in session.misses],
                "unused": len(session.index.unused()) if session.serves_from_cassette else 0,
                "drift": _drift(active) if wrote and active.tape.mode == "all" else [],
            }
        )

    def _config(self, cassette: Path, mode: str, overrides: Mapping[str, Any]) -> ProxyConfig:
        from tapeproxy.proxy.settings import build_config

        flags = {k: overrides.get(k) for k in _PROXY_KEYS}
        flags.update(cassette=str(cassette), mode=mode, listen="127.0.0.1:0")
        return build_config(flags, self.table, "none", self.env)

    def _proxy(self, config: ProxyConfig) -> ProxyRunner:
        from tapeproxy.proxy.runner import ProxyRunner

        c = config
        key = (c.confdir, c.latency, c.upstream_ca, c.insecure_upstream, c.hosts, c.rules, c.repeat)
        if self.runner is not None and key == self._proxy_key:
            return self.runner
        self.stop()
        _ensure_ca(c.confdir)
        runner = ProxyRunner(replace(c, cassette=self._idle, mode="none"))
        runner.start()
        self.runner, self._proxy_key = runner, key
        return runner

    def stop(self) -> None:
        """Stop the proxy if it runs."""
        if self.runner is not None:
            runner, self.runner = self.runner, None
            runner.stop()


def _ensure_ca(confdir: Path) -> None:
    """Create the proxy CA once, even when xdist workers start together on a fresh confdir."""
    from tapeproxy.proxy.ca import ensure_ca

    confdir.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; the CA is created on first use
        ensure_ca(confdir)
        return
    with (confdir / ".ca.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        ensure_ca(confdir)


def _drift(active: _Active) -> list[str]:
    from tapeproxy.cassettes import store
    from tapeproxy.review.diff import diff_cassettes

    path = active.tape.cassette
    found = diff_cassettes(str(path), active.old, store.load(path), active.threshold)
    lines = []
    for entry in found.interactions:
        for c in entry.changes:
            if c.drift:
                what = (
                    f"similarity {c.ratio:.2f} < {found.threshold:.2f}"
                    if c.ratio is not None
                    else "changed"
                )
                lines.append(f"{entry.method} {entry.url}: {c.field} {what}")
    return lines


def _miss_text(active: _Active, config: pytest.Config) -> str:
    tape = active.tape
    misses = tape.misses
    where = _relative(tape.cassette, config.rootpath)
    if not tape.session.existed:
        where += ", which does not exist yet"
    lines = [
        f"tapeproxy: {len(misses)} request(s) had no recorded answer in {where} "
        f"(record mode {tape.mode})"
    ]
    lines += [m.describe() for m in misses[:5]]
    if len(misses) > 5:
        lines.append(f"... and {len(misses) - 5} more")
    hint = "once" if not tape.session.existed else "new_episodes (or all to re-record)"
    lines.append(f"to record them: pytest --record-mode={hint}")
    return "\n".join(lines)


def _summary(results: list[dict[str, Any]], root: Path) -> list[str]:
    replayed = sum(1 for r in results if r["replayed"] and not r["recorded"])
    recorded = sum(1 for r in results if r["recorded"])
    missed = [r for r in results if r["misses"]]
    unused = [r for r in results if r["unused"]]
    drifted = [r for r in results if r["drift"]]
    lines = [
        f"cassettes: {len(results)} used, {replayed} replayed, {recorded} recorded; "
        f"tests with misses: {len(missed)}; with unused interactions: {len(unused)}; "
        f"drifted: {len(drifted)}"
    ]
    for r in missed:
        lines.append(f"MISS {r['test']} ({_relative(Path(r['cassette']), root)})")
        lines += ["  " + line for m in r["misses"][:3] for line in m.splitlines()]
    for r in unused:
        lines.append(f"UNUSED {r['test']}: {r['unused']} recorded interaction(s) not requested")
    for r in drifted:
        lines.append(f"DRIFT {r['test']} ({_relative(Path(r['cassette']), root)})")
        lines += [f"  {line}" for line in r["drift"]]
    return lines


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


_STATE = pytest.StashKey[_State]()
_ACTIVE = pytest.StashKey[_Active]()
