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

1. the command line: ``--record-mode`` (also ``--tape-record-mode``), ``--tape-latency``;
2. the test's marker: ``@pytest.mark.tape("name", record_mode="once", latency="none")``;
3. the ``tape_config`` fixture (a dict of the same keys) and the ``tape_cassette_dir`` fixture;
4. the environment (``TAPEPROXY_<KEY>``), then ``[tool.tapeproxy]`` (or ``tapeproxy.toml``);
5. the default: record mode ``none``, so a run without the flag never reaches the network,
   and latency ``none``: a replayed suite runs as fast as it can (timing is opt-in, per test
   with the marker's ``latency="recorded"`` or for the run with ``--tape-latency=recorded``).

With pytest-recording installed too (both plugins in one environment while migrating), its
``--record-mode`` is the one option of both: tapeproxy reads the same value, so one flag sets
the record mode of vcr cassettes and tapes alike. ``--tape-record-mode`` sets tapes only.

Keys of the marker and ``tape_config``: ``record_mode``, ``latency``, ``no_proxy``,
``upstream_ca``, ``confdir``, ``insecure_upstream``, ``hosts``, ``match_headers``,
``ignore_query``, ``ignore_json_paths``, ``repeat``, ``ws_match`` (``position`` or ``json``),
``stubs`` (stubs files, from the rootdir; also ``[tool.tapeproxy] stubs``), ``seed``,
``faults``, ``fault_retry_after``, ``fault_delay`` and ``profile`` (a profile file from the
rootdir: its faults, its timing unless ``latency`` is set, its token usage for stub answers;
per test). ``tape.stub(match=..., answer=...)`` adds a
rule for one test, ahead of the files' rules; ``tape.calls`` lists what the test sent and
what answered each request. In ``[tool.tapeproxy]`` the record mode
is ``record_mode`` (``TAPEPROXY_RECORD_MODE``), and ``cassette_dir`` moves the cassettes to
``<rootdir>/<cassette_dir>/<module>/``. Drift: ``@pytest.mark.llm_drift_threshold(0.7)`` sets
the text-similarity threshold of the ``llm_drift`` helper and of the drift list printed after
``--record-mode=all`` re-records (default ``text_threshold`` or 0.85).

Heavy modules (mitmproxy, zstandard, the review engine) are imported only when a test uses a
tape, so having the plugin installed costs nothing to runs that do not.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import re
import tempfile
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tapeproxy.config import as_bool, load_config, setting
from tapeproxy.errors import ConfigError
from tapeproxy.modes import MODES, mode_help, parse_mode

if TYPE_CHECKING:
    from tapeproxy.cassettes.model import Cassette
    from tapeproxy.providers.stubs import Stubs
    from tapeproxy.proxy.faults import Faults
    from tapeproxy.proxy.latency import Latency
    from tapeproxy.proxy.runner import ProxyConfig, ProxyRunner
    from tapeproxy.proxy.session import Call, Miss, TapeSession
    from tapeproxy.review.assertions import DriftCheck

__all__ = [
    "MODES",
    "Tape",
    "cassette_name",
    "llm_drift",
    "tape",
    "tape_cassette_dir",
    "tape_config",
    "vcr_cassette_name",
]

_PROXY_KEYS = (
    "latency",
    "max_age",
    "on_expiry",
    "upstream_ca",
    "confdir",
    "insecure_upstream",
    "hosts",
    "match_headers",
    "ignore_query",
    "ignore_json_paths",
    "repeat",
    "ws_match",
)
_FAULT_KEYS = ("faults", "fault_retry_after", "fault_delay", "profile")
_KEYS = frozenset({"record_mode", "no_proxy", "stubs", "seed", *_FAULT_KEYS, *_PROXY_KEYS})
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
    latency: Latency = field(repr=False)
    stubs: Stubs = field(repr=False)

    @property
    def recording(self) -> bool:
        """Whether requests without a recorded answer go upstream (``TAPEPROXY_MODE=record``)."""
        return self.session.records

    @property
    def misses(self) -> list[Miss]:
        """Requests of this test that had no recorded answer, so far."""
        return self.session.misses

    @property
    def sources(self) -> dict[str, int]:
        """This test's answers so far by where they came from: ``cassette`` (replayed),
        ``stub``, ``fault`` (an injected fault instead of either), ``live`` (a provider
        answered: recording or a live run), ``miss``."""
        counts = self.session.tally()  # "recorded" counts the exchanges a provider answered
        return {
            "cassette": counts["hits"],
            "stub": counts["stubbed"],
            "fault": counts["faulted"],
            "live": counts["recorded"],
            "miss": counts["misses"],
        }

    @property
    def calls(self) -> list[Call]:
        """What this test sent so far, in order, and who answered each request: ``source``
        is ``cassette``, ``stub`` (``rule`` names the rule), ``fault`` (``rule`` names its
        kind), ``live`` or ``miss``."""
        return self.session.calls()

    def stub(
        self,
        match: Mapping[str, Any] | None = None,
        answer: Mapping[str, Any] | None = None,
        *,
        answers: list[Mapping[str, Any]] | None = None,
        stream: Mapping[str, Any] | None = None,
    ) -> None:
        """Add a stub rule for this test only, in the stubs file format (``match``, ``answer``
        or ``answers``, ``stream``); it comes before the rules of stubs files, and after the
        rules this test added before it. ``tape.stub(match={"last_user": "score"},
        answer={"json": {"score": 8}})``.

        Raises:
            BadInputError: the rule is not valid (the message names the field).
        """
        from tapeproxy.providers.stubs import rule_from

        doc: dict[str, Any] = {"match": dict(match or {})}
        if answer is not None:
            doc["answer"] = dict(answer)
        if answers is not None:
            doc["answers"] = [dict(a) for a in answers]
        if stream is not None:
            doc["stream"] = dict(stream)
        label = f"tape.stub#{len([c for c in self.stubs.labels() if c.startswith('tape.stub')])}"
        self.stubs.add(rule_from(doc, label), label)

    @property
    def usage(self) -> dict[str, int]:
        """Token totals the providers reported for this test's live answers so far."""
        from tapeproxy.review.live import account

        return account(self.session.recorded()).tokens


def cassette_name(item: pytest.Item) -> str:
    """The file name of a test's cassette: its name (``Class.test[id]``), made safe."""
    cls = getattr(item, "cls", None)
    name = f"{cls.__name__}.{item.name}" if cls is not None else item.name
    safe = _UNSAFE.sub("_", name).strip(". ")
    if safe != name or len(safe) > 120:
        safe = f"{safe[:100]}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"
    return safe + ".json.zst"


# --- hooks -------------------------------------------------------------------------------


def _pytest_recording_loads(pluginmanager: pytest.PytestPluginManager) -> bool:
    """Whether pytest-recording is part of this run: it registers ``--record-mode`` too, and
    two registrations of one option stop pytest before it starts."""
    if pluginmanager.has_plugin("recording"):
        return True
    if os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
        return False
    return any(
        ep.value.split(":")[0].split(".")[0] == "pytest_recording"
        and not pluginmanager.is_blocked(ep.name)
        for ep in importlib.metadata.entry_points(group="pytest11")
    )


def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    """All flags in one group; ``--record-mode`` is pytest-recording's when it is loaded."""
    group = parser.getgroup("tapeproxy", "tapeproxy: record and replay HTTP(S) per test")
    help_text = f"Record mode of tapes [default: none]. {mode_help()}."
    if not _pytest_recording_loads(pluginmanager):
        group.addoption("--record-mode", choices=MODES, default=None, help=help_text)
    group.addoption(
        "--tape-record-mode",
        choices=MODES,
        default=None,
        help=help_text + " Sets tapes only (--record-mode, shared with pytest-recording "
        "when it is installed, sets both).",
    )
    group.addoption(
        "--live",
        action="store_true",
        default=None,
        help="Run the tests marked live_llm against the real providers (TAPEPROXY_LIVE=1).",
    )
    group.addoption(
        "--tape-session-proxy",
        action="store_true",
        default=None,
        help="Start the proxy before collection and set its variables for the whole session, "
        "so clients made at import time (a module-level openai.OpenAI()) use it too "
        "(session_proxy in [tool.tapeproxy]).",
    )
    group.addoption(
        "--tape-latency",
        default=None,
        metavar="recorded|none|xFACTOR",
        help="replay timing: at once (default in pytest), as recorded, or scaled (x0.5).",
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
    config.addinivalue_line(
        "markers",
        "live_llm(requires=[...], min_tokens=0): run against the real providers, only with "
        "--live (TAPEPROXY_LIVE=1) and every variable in requires set; fails when none of its "
        "requests reached a provider or fewer than min_tokens tokens were reported",
    )
    state = config.stash[_STATE] = _State(config)
    controller = config.getoption("numprocesses", None) and not hasattr(config, "workerinput")
    flag = config.getoption("tape_session_proxy", None)
    session_proxy = setting("session_proxy", flag, state.table, False, state.env)
    if not controller and as_bool(session_proxy, "session_proxy"):
        state.start_session_proxy()


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip a live_llm test unless live runs were asked for and its variables are set."""
    marker = item.get_closest_marker("live_llm")
    if marker is None:
        return
    state = item.config.stash[_STATE]
    flag = item.config.getoption("live", None)
    if not as_bool(setting("live", flag, state.table, False, state.env), "live"):
        pytest.skip("live test: run with --live (or TAPEPROXY_LIVE=1) to call real providers")
    missing = [name for name in _live_spec(item).requires if not os.environ.get(name)]
    if missing:
        pytest.skip(f"live test needs {', '.join(missing)}, which is not set")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Fail a test whose requests had no recorded answer, with the nearest-request diff."""
    report = yield
    active = item.stash.get(_ACTIVE, None)
    if report.when != "call" or active is None:
        return report
    if active.live is not None:
        text = _live_guard(active)
        active.live_failed = bool(text) or not report.passed
        if active.live_failed:
            kept = f"its exchanges (redacted) are kept in {active.tape.cassette}"
            if text:
                text = f"{text}\n{kept}"
            else:  # the test failed on its own: say where its transcript is
                report.sections.append(("tapeproxy live", kept))
    elif active.tape.misses:
        text = _miss_text(active, item.config)
    else:
        text = _bypass_text(active)
    if text and report.passed:
        report.outcome = "failed"
        report.longrepr = text
    elif text and report.failed:
        title = "tapeproxy misses" if active.tape.misses else "tapeproxy"
        report.sections.append((title, text))
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
        "record_mode": request.config.getoption("tape_record_mode")
        or request.config.getoption("record_mode", None),
        "latency": request.config.getoption("tape_latency"),
    }
    overrides = {**tape_config, **kwargs, **{k: v for k, v in flags.items() if v is not None}}
    cassette = _cassette_path(tape_cassette_dir, item, args[0] if args else None)
    live = _live_spec(item) if item.get_closest_marker("live_llm") else None
    if live is not None:  # everything goes to the providers; kept only if the test fails
        cassette = request.config.rootpath / ".tapeproxy" / "live" / cassette_name(item)
        cassette.unlink(missing_ok=True)
        overrides = {**overrides, "record_mode": "all"}
    # The threshold is only needed to list drift after a re-recording: computing it loads
    # the review engine, which a replayed suite need not import.
    active = state.begin(cassette, overrides, lambda: _threshold(item, state, cassette))
    active.live = live
    item.stash[_ACTIVE] = active
    try:
        yield active.tape
    finally:
        state.end(item.nodeid, active)


@pytest.fixture(autouse=True)
def _tape_marker(request: pytest.FixtureRequest) -> None:
    node = request.node
    if node.get_closest_marker("tape") or node.get_closest_marker("live_llm"):
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


def vcr_cassette_name(item: pytest.Item) -> str:
    """The name pytest-recording gives a test's cassette (its ``default_cassette`` marker, or
    ``Class.test[id]`` with ``<>?%*:|"'/\\`` made ``-``), as a tapeproxy file name: where
    ``import-vcr --for-pytest`` puts the converted cassette."""
    marker = item.get_closest_marker("default_cassette")
    if marker is not None and marker.args:
        name = re.sub(r"\.ya?ml$", "", str(marker.args[0]), flags=re.IGNORECASE)
    else:
        cls = getattr(item, "cls", None)
        name = f"{cls.__name__}.{item.name}" if cls is not None else item.name
        for ch in "<>?%*:|\"'/\\":
            name = name.replace(ch, "-")
    return name + ".json.zst"


def _cassette_path(directory: Path, item: pytest.Item, name: Any) -> Path:
    if name is None:
        own = directory / cassette_name(item)
        imported = directory / vcr_cassette_name(item)
        # A suite migrated with import-vcr keeps pytest-recording's names until re-recorded.
        return imported if not own.exists() and imported.exists() else own
    path = Path(str(name))
    if not path.name.endswith(".json.zst"):
        path = path.with_name(path.name + ".json.zst")
    return path if path.is_absolute() else directory / path


# --- session state -----------------------------------------------------------------------


@dataclass(frozen=True)
class _LiveSpec:
    """A live_llm marker's arguments."""

    requires: tuple[str, ...] = ()
    min_tokens: int = 0


def _live_spec(item: pytest.Item) -> _LiveSpec:
    marker = item.get_closest_marker("live_llm")
    kwargs = dict(marker.kwargs) if marker else {}
    requires = kwargs.pop("requires", ())
    min_tokens = kwargs.pop("min_tokens", 0)
    if kwargs or isinstance(requires, str) or not isinstance(min_tokens, int):
        raise ConfigError(
            f"live_llm marker of {item.nodeid}: expected requires=[VARIABLE, ...] and "
            f"min_tokens=N, got {marker.kwargs if marker else {}}"
        )
    return _LiveSpec(tuple(str(r) for r in requires), min_tokens)


def _live_guard(active: _Active) -> str | None:
    """Why a live test fails although its code passed: nothing reached a provider (it was
    stubbed by accident), or the providers reported fewer tokens than it requires."""
    from tapeproxy.review.live import account

    assert active.live is not None
    spent = account(active.tape.session.recorded())
    if spent.answered == 0:
        return (
            "tapeproxy live guard: none of this test's requests reached a provider; a live "
            "test that was stubbed by accident (a client wired to a fake, USE_MOCK_LLM set, a "
            "client that ignores HTTPS_PROXY) must not pass"
        )
    total = spent.tokens["input"] + spent.tokens["output"]
    if total < active.live.min_tokens:
        return (
            f"tapeproxy live guard: the providers reported {total} token(s) for this test, "
            f"below min_tokens={active.live.min_tokens}"
        )
    return None


@dataclass
class _Active:
    tape: Tape
    saved_env: dict[str, str | None]
    old: Cassette | None
    threshold: Callable[[], float]
    live: _LiveSpec | None = None
    live_failed: bool = False


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
        self._session_env: dict[str, str | None] = {}

    @property
    def table(self) -> dict[str, Any]:
        """``[tool.tapeproxy]`` of the nearest config file, read once."""
        if self._table is None:
            self._table = load_config(start=self.rootpath)
        return self._table

    def begin(
        self, cassette: Path, overrides: Mapping[str, Any], threshold: Callable[[], float]
    ) -> _Active:
        """Switch the proxy to a test's cassette and set the environment."""
        from tapeproxy.cassettes import store
        from tapeproxy.proxy.settings import DEFAULT_NO_PROXY, child_env

        mode = parse_mode(
            setting("record_mode", overrides.get("record_mode"), self.table, "none", self.env)
        )
        no_proxy = setting("no_proxy", overrides.get("no_proxy"), self.table, None, self.env)
        runner = self._proxy(self._config(cassette, mode, overrides))
        old = store.load(cassette) if mode in ("all", "rewrite") and cassette.exists() else None
        session = runner.switch(cassette, mode)
        session.track_calls = True
        stubs = self._stubs(overrides)
        profile = self._profile(overrides, stubs)
        runner.use_stubs(stubs)
        runner.use_faults(self._faults(overrides, runner.config.idle_timeout, profile))
        label = "record" if session.records else "replay"
        no_proxy = DEFAULT_NO_PROXY if no_proxy is None else str(no_proxy)
        env = child_env(
            {}, runner.url, runner.config.ca_cert(), no_proxy, label, runner.client_env(no_proxy)
        )
        saved = {name: os.environ.get(name) for name in env}
        os.environ.update(env)
        ca = runner.config.ca_cert()
        tape = Tape(cassette, mode, runner.url, ca, env, session, runner.config.latency, stubs)
        return _Active(tape, saved, old, threshold)

    def _stubs(self, overrides: Mapping[str, Any]) -> Stubs:
        """The test's stub rules: the files of the marker / ``tape_config`` (``stubs``), else
        of ``[tool.tapeproxy]`` / ``TAPEPROXY_STUBS``; relative paths from the rootdir."""
        from tapeproxy.providers.stubs import Stubs
        from tapeproxy.proxy.settings import seed_from

        files = overrides.get("stubs") or setting("stubs", None, self.table, None, self.env)
        if isinstance(files, str):
            files = [f.strip() for f in files.split(",") if f.strip()]
        return Stubs.from_files(
            [self.rootpath / f for f in files or ()], seed_from(self._get(overrides))
        )

    def _faults(
        self, overrides: Mapping[str, Any], idle_timeout: int, profile: Path | None
    ) -> Faults | None:
        """The test's faults: ``faults`` of the marker / ``tape_config``, else of
        ``[tool.tapeproxy]`` / ``TAPEPROXY_FAULTS``, else the profile's; None for none."""
        from tapeproxy.proxy.settings import faults_from

        return faults_from(self._get(overrides), idle_timeout, profile)

    def _profile(self, overrides: Mapping[str, Any], stubs: Stubs) -> Path | None:
        """The test's ``profile`` (a path from the rootdir), applied: its token usage to the
        stub answers and, unless the test sets ``latency``, its timing to every answer."""
        from tapeproxy.profilefile import has_table
        from tapeproxy.proxy.latency import Latency
        from tapeproxy.proxy.sampled import ProfileUsage
        from tapeproxy.proxy.settings import profile_from, seed_from

        get = self._get(overrides)
        profile = profile_from(get, self.rootpath)
        if profile is None:
            return None
        seed = seed_from(get)
        if has_table(profile, "usage"):
            stubs.usage = ProfileUsage.from_file(profile, seed).draw
        explicit = get("latency", None) is not None
        if not explicit and has_table(profile, "latency") and self.runner is not None:
            self.runner.use_latency(Latency.parse(f"@{profile}", seed))
        return profile

    def _get(self, overrides: Mapping[str, Any]) -> Callable[[str, Any], Any]:
        """A setting of this test: the marker / ``tape_config``, then the environment and
        ``[tool.tapeproxy]``."""
        return lambda key, default: setting(key, overrides.get(key), self.table, default, self.env)

    def start_session_proxy(self) -> None:
        """Start the proxy now and point the whole session's environment at it (restored in
        `stop`): clients made at import time then go through it as well."""
        from tapeproxy.proxy.settings import DEFAULT_NO_PROXY, child_env

        runner = self._proxy(self._config(self._idle, "none", {}))
        no_proxy = setting("no_proxy", None, self.table, DEFAULT_NO_PROXY, self.env)
        ca = runner.config.ca_cert()
        wiring = runner.client_env(str(no_proxy))
        env = child_env({}, runner.url, ca, str(no_proxy), "replay", wiring)
        self._session_env = {name: os.environ.get(name) for name in env}
        os.environ.update(env)

    def end(self, nodeid: str, active: _Active) -> None:
        """Restore the environment, save the cassette, and note what happened."""
        for name, value in active.saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        session = active.tape.session
        # A recorded test that made no request still gets its (empty) cassette, so that its
        # replay can tell "made no request" from "bypassed the proxy".
        if active.live is not None and not active.live_failed:
            session.discard()  # a passing live test leaves nothing behind
            wrote = False
        else:
            wrote = session.save(keep_empty=True)
        assert self.runner is not None
        self.runner.use_stubs(None)
        self.runner.use_faults(None)
        self.runner.use_latency(self.runner.config.latency)
        self.runner.switch(self._idle, "none")
        counts = session.tally()
        self.results.append(
            {
                "test": nodeid,
                "cassette": str(active.tape.cassette),
                "mode": active.tape.mode,
                "recorded": wrote,
                "replayed": counts["hits"] > 0,
                "stubbed": counts["stubbed"] > 0,
                "misses": [m.describe() for m in session.misses],
                "unused": len(session.index.unused()) if session.serves_from_cassette else 0,
                "drift": _drift(active) if wrote and active.old is not None else [],
            }
        )

    def _config(self, cassette: Path, mode: str, overrides: Mapping[str, Any]) -> ProxyConfig:
        from tapeproxy.proxy.settings import build_config

        flags = {k: overrides.get(k) for k in _PROXY_KEYS}
        if flags["latency"] is None and not setting("latency", None, self.table, None, self.env):
            flags["latency"] = "none"  # pytest's default; the CLI keeps recorded timing
        flags.update(cassette=str(cassette), mode=mode, listen="127.0.0.1:0")
        # Stubs and faults are per test (`_stubs`, `_faults`), set on the running proxy: none
        # at start.
        per_test = {"stubs", *_FAULT_KEYS}
        table = {k: v for k, v in self.table.items() if k not in per_test}
        env = {k: v for k, v in self.env.items() if k[len("TAPEPROXY_") :].lower() not in per_test}
        return build_config(flags, table, "none", env)

    def _proxy(self, config: ProxyConfig) -> ProxyRunner:
        from tapeproxy.proxy.runner import ProxyRunner

        c = config
        key = (
            c.confdir,
            c.latency,
            c.upstream_ca,
            c.insecure_upstream,
            c.hosts,
            c.rules,
            c.repeat,
            c.expiry,
            c.ws_match,
        )
        if self.runner is not None and key == self._proxy_key:
            return self.runner
        self.stop()
        _ensure_ca(c.confdir)
        runner = ProxyRunner(replace(c, cassette=self._idle, mode="none"))
        runner.start()
        self.runner, self._proxy_key = runner, key
        return runner

    def stop(self) -> None:
        """Stop the proxy if it runs; restore what `start_session_proxy` set."""
        for name, value in self._session_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._session_env = {}
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
    found = diff_cassettes(str(path), active.old, store.load(path), active.threshold())
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


def _bypass_text(active: _Active) -> str | None:
    """Why a replayed test with no cassette that sent nothing through the proxy fails.

    Such a test either made no request (record it once: an empty cassette says so) or its
    client bypassed the proxy and reached the network unnoticed (a client made at import
    time read HTTPS_PROXY before the test set it).
    """
    session = active.tape.session
    if session.records or session.existed or any(session.tally().values()):
        return None
    return (
        f"tapeproxy: no request went through the proxy, and there is no cassette at "
        f"{active.tape.cassette} to replay.\n"
        "If the test calls a provider, its client bypasses the proxy and may have reached the "
        "network: a client made at import time (a module-level openai.OpenAI()) reads "
        "HTTPS_PROXY before the test sets it. Make it in the test or a fixture, or start the "
        "proxy for the whole session: session_proxy = true in [tool.tapeproxy] "
        "(--tape-session-proxy).\n"
        "If the test makes no request, record it once (--record-mode=once): its empty "
        "cassette then says so."
    )


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
    stubbed = sum(1 for r in results if r["stubbed"])
    lines = [
        f"cassettes: {len(results)} used, {replayed} replayed, {recorded} recorded"
        + (f", {stubbed} stubbed" if stubbed else "")
        + "; "
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
