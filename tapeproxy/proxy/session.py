"""The state one proxy run shares between its addons: the cassette, what was served, what was
recorded, what missed; and the one-screen summary of it.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from tapeproxy import __version__
from tapeproxy.cassettes import store
from tapeproxy.cassettes.index import Nearest, RepeatPolicy, ReplayIndex
from tapeproxy.cassettes.key import CanonicalRequest, canonical_request, key_of
from tapeproxy.cassettes.model import (
    Cassette,
    Interaction,
    MatchRules,
    RecordedError,
    Request,
    Response,
    Timing,
    body_bytes,
    new_cassette,
)
from tapeproxy.modes import Mode, parse_mode
from tapeproxy.providers.answer import RequestFacts
from tapeproxy.providers.request import read_request
from tapeproxy.providers.stubs import StubAnswer
from tapeproxy.proxy.expiry import Expiry
from tapeproxy.redaction import Redactor

__all__ = ["Call", "Captured", "Keyed", "Miss", "TapeSession"]


@dataclass(frozen=True, slots=True)
class Call:
    """One request a client sent and who answered it: `cassette`, `stub` (with the rule's
    label in `rule`), `live` or `miss`."""

    method: str
    url: str
    source: str
    rule: str | None = None


@dataclass(frozen=True, slots=True)
class Miss:
    """A request that had no recorded answer, with the nearest recorded ones."""

    key: str
    method: str
    url: str
    nearest: tuple[Nearest, ...]
    why: str | None = None
    """Set when a recorded answer exists but was not served: why (it is past `--max-age`; a
    WebSocket client message has no recorded counterpart)."""

    def to_json(self, cassette: Path, mode: str) -> dict[str, Any]:
        """The JSON body of the 599 miss response."""
        if self.why is not None:
            return {
                "error": f"tapeproxy: {self.why}",
                "cassette": str(cassette),
                "mode": mode,
                "key": self.key,
                "request": {"method": self.method, "url": self.url},
                "hint": "re-record it: tapeproxy record --mode all (or --on-expiry rerecord "
                "with --mode new_episodes), or raise --max-age",
            }
        return {
            "error": "tapeproxy: no recorded response matches this request",
            "cassette": str(cassette),
            "mode": mode,
            "key": self.key,
            "request": {"method": self.method, "url": self.url},
            "nearest": [
                {
                    "index": n.index,
                    "method": n.method,
                    "url": n.url,
                    "differences": [
                        {"field": d.field, "recorded": d.recorded, "requested": d.requested}
                        for d in n.differences
                    ],
                }
                for n in self.nearest
            ],
            "hint": "record it: tapeproxy record --mode new_episodes, or --record-mode in pytest",
        }

    def one_line(self) -> str:
        """The miss on one line, with how the nearest recorded request differs (a log line)."""
        line = f"miss: {self.method} {self.url} (key {self.key[:12]})"
        if self.why is not None:
            return line + f"; {self.why}"
        if not self.nearest:
            return line + "; the cassette has no recorded requests"
        n = self.nearest[0]
        diffs = ", ".join(d.field for d in n.differences[:3])
        more = f" and {len(n.differences) - 3} more" if len(n.differences) > 3 else ""
        return line + f"; nearest #{n.index} differs in {diffs or 'nothing keyed'}{more}"

    def describe(self) -> str:
        """A few lines for a terminal: the request and how the nearest recorded ones differ."""
        lines = [f"miss: {self.method} {self.url} (key {self.key[:12]})"]
        if self.why is not None:
            lines.append(f"  {self.why}")
        elif not self.nearest:
            lines.append("  the cassette has no recorded requests")
        for n in self.nearest:
            lines.append(f"  nearest #{n.index}: {n.method} {n.url}")
            for d in n.differences[:8]:
                lines.append(f"    {d.field}: recorded {d.recorded!r}, requested {d.requested!r}")
            if len(n.differences) > 8:
                lines.append(f"    ... {len(n.differences) - 8} more differences")
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class Keyed:
    """A request as captured, with its key and the canonical form the key hashes: made once
    per request, it travels with the flow to the lookup, the stubs, the miss report and the
    recorder."""

    request: Request
    key: str
    canonical: CanonicalRequest
    redacted: Request
    """The request as keyed: the headers the key may depend on, redacted."""
    parsed: Any = None
    """The captured body's JSON document, parsed once for the key (None: not JSON, changed
    by redaction, or some of it is ignored by the match rules); `facts` reads it. Shared with
    `canonical`, not copied: nothing may change it."""

    def facts(self) -> RequestFacts | None:
        """What the request asks of an LLM API (`read_request`), for stubs and faults."""
        r = self.request
        if self.parsed is not None:
            return read_request(r.method, r.url, b"", self.parsed)
        return read_request(r.method, r.url, body_bytes(r.body))


@dataclass(frozen=True, slots=True)
class Captured:
    """One exchange as captured, not yet redacted (that happens in `save`); `key` is the
    request's key when it was computed on the way in."""

    request: Request
    response: Response | None
    error: RecordedError | None
    timing: Timing
    key: str | None = None
    at: float = field(default_factory=time.time)
    """When it was captured (wall clock): the interaction's `recorded_at`."""


@dataclass
class _Counts:
    hits: int = 0
    stubbed: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    recorded: int = 0
    passed_through: int = 0
    errors: int = 0
    expired: list[float] = field(default_factory=list)
    misses: list[Miss] = field(default_factory=list)
    upstream_failures: list[str] = field(default_factory=list)
    client_tls_failures: list[str] = field(default_factory=list)


_CERT_FAILURE = ("certificate verify failed", "certificate_verify_failed")


class TapeSession:
    """One cassette in use by one proxy run; thread-safe.

    Args:
        cassette: path of the `.json.zst` file (read if present, written on `save`).
        mode: record mode (DESIGN "Record modes").
        rules: match rules for new cassettes; an existing cassette keeps its own.
        redactor: applied to every request before keying and every interaction before storing.
        repeat: what happens after the last recorded answer for a key was served.
        on_event: called with one line per miss, and per recorded exchange when `verbose`
            (for `serve`, whose summary only comes at the end).
        verbose: also report recorded exchanges to `on_event`.
    """

    def __init__(
        self,
        cassette: Path,
        mode: Mode,
        rules: MatchRules | None = None,
        redactor: Redactor | None = None,
        repeat: RepeatPolicy = "last",
        on_event: Callable[[str], None] | None = None,
        verbose: bool = False,
    ) -> None:
        self.path = cassette
        self.mode = parse_mode(mode, "record mode")
        self.redactor = redactor or Redactor()
        on_disk = store.stamp(cassette)  # before reading: a later write gives another stamp
        self.existed = on_disk is not None
        now = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
        self._cassette: Cassette = (
            store.load(cassette) if self.existed else new_cassette(__version__, now, rules)
        )
        self._known = store.Known(on_disk, self._cassette if self.existed else None)
        self.rules = self._cassette.meta.match
        self._keyed_headers = frozenset(h.lower() for h in self.rules.headers) | {"content-type"}
        self.keyed_headers = frozenset(h.encode("latin-1") for h in self._keyed_headers)
        """The lower-case names of the headers a request's key can depend on (as bytes)."""
        self.index = ReplayIndex(self._cassette.interactions, repeat)
        self._new: list[Captured] = []
        self._counts = _Counts()
        self._lock = threading.Lock()
        self._on_event = on_event
        self._verbose = verbose
        self._save_lock = threading.Lock()
        self._written: tuple[Interaction, ...] = ()
        self.track_calls = False
        self._calls: list[Call] = []
        self._stub_tokens: dict[tuple[str, str], list[int]] = {}
        self.expiry: Expiry | None = None
        """The `--max-age` limit and what to do past it (None: answers never expire)."""
        self._replaced: set[str] = set()

    @property
    def serves_from_cassette(self) -> bool:
        """Whether recorded answers are served (every mode but `all`, and `once` on a new file)."""
        return self.mode in ("none", "new_episodes") or (self.mode == "once" and self.existed)

    @property
    def records(self) -> bool:
        """Whether requests without a recorded answer go upstream and are recorded."""
        return self.mode in ("new_episodes", "all", "rewrite") or (
            self.mode == "once" and not self.existed
        )

    def key(self, request: Request) -> str:
        """The key of an incoming request (see `keyed`)."""
        return self.keyed(request).key

    def keyed(self, request: Request) -> Keyed:
        """The key of an incoming request, redacted first so secrets never change it, with
        the canonical form it hashes.

        Only the headers that take part in the key (and content-type, which decides how the
        body is read) go through the redactor: the rest cannot change the key, and scanning
        them is most of the cost on replay's request path.
        """
        keyed = self._keyed_headers
        headers = tuple([h for h in request.headers if h[0].lower() in keyed])
        subset = request
        if len(headers) < len(request.headers):
            subset = request.model_copy(update={"headers": headers})
        r = self.redactor.redact_request(subset)
        canonical = canonical_request(r.method, r.url, r.headers, body_bytes(r.body), self.rules)
        parsed = None
        if r.body is request.body and not self.rules.ignore_json_paths:
            parsed = canonical["body"].get("json") if canonical["body"] else None
        return Keyed(request, key_of(canonical), canonical, r, parsed)

    def lookup(self, key: str) -> Interaction | None:
        """The next recorded answer for this key, or None (`count_hit` when it is served)."""
        return self.index.next(key)

    def peek(self, key: str) -> Interaction | None:
        """The answer `lookup` would give now, without taking it."""
        return self.index.peek(key)

    def count_hit(self, request: Request) -> None:
        """Count a request answered from the cassette."""
        with self._lock:
            self._counts.hits += 1
        self.note_call(request, "cassette")

    def expired(self, found: Interaction) -> float | None:
        """A recorded answer's age in days when it is past `expiry`, else None."""
        if self.expiry is None:
            return None
        return self.expiry.expired(found, self._cassette.meta.created)

    def count_expired(self, days: float) -> None:
        """Count an answer served past `--max-age` (`--on-expiry warn`)."""
        with self._lock:
            self._counts.expired.append(days)

    def rerecord(self, key: str) -> None:
        """Record this key again in place of its expired answers (`--on-expiry rerecord`)."""
        with self._lock:
            self._replaced.add(key)

    def refuse_expired(self, keyed: Keyed, days: float) -> Miss:
        """Count and explain an answer not served because it is past `--max-age`."""
        assert self.expiry is not None
        r = keyed.redacted
        why = (
            f"the recorded answer is too old: recorded {days:.0f} days ago, past --max-age "
            f"{self.expiry.describe()}"
        )
        return self._count_miss(Miss(keyed.key, r.method, r.url, (), why=why), keyed)

    def refuse_message(self, key: str, method: str, url: str, why: str) -> Miss:
        """Count and explain a WebSocket client message the recording has no answer for."""
        m = Miss(key, method, url, (), why=why)
        with self._lock:
            self._counts.misses.append(m)
        if self._on_event is not None:
            self._on_event(m.one_line())
        return m

    def miss(self, keyed: Keyed) -> Miss:
        """Count and explain a request that has no recorded answer."""
        r = keyed.redacted
        nearest = tuple(self.index.nearest(keyed.canonical, self.rules))
        return self._count_miss(Miss(keyed.key, r.method, r.url, nearest), keyed)

    def _count_miss(self, m: Miss, keyed: Keyed) -> Miss:
        with self._lock:
            self._counts.misses.append(m)
        self.note_call(keyed.request, "miss")
        if self._on_event is not None:
            self._on_event(m.one_line())
        return m

    def add(self, captured: Captured) -> None:
        """Keep a newly recorded exchange; `save` keys and redacts it before writing.

        Keying and redaction are deferred off the request path: they are most of what
        recording costs per request, and nothing is written before they are done.
        """
        with self._lock:
            self._new.append(captured)
            if captured.response is None and captured.error is not None:
                self._counts.upstream_failures.append(captured.error.message)
            else:
                self._counts.recorded += 1
        self.note_call(captured.request, "live")
        if self._on_event is not None and self._verbose:
            r, resp = captured.request, captured.response
            outcome = f"{resp.status}" if resp is not None else "no response"
            if captured.error is not None:
                outcome += f", {captured.error.message}"
            self._on_event(
                f"recorded: {r.method} {r.url} -> {outcome} ({captured.timing.total_ms:.0f} ms)"
            )

    def _interaction(self, c: Captured) -> Interaction:
        at = dt.datetime.fromtimestamp(int(c.at), dt.UTC).isoformat().replace("+00:00", "Z")
        raw = Interaction(
            key=c.key or self.key(c.request),
            request=c.request,
            response=c.response,
            error=c.error,
            timing=c.timing,
            recorded_at=at,
        )
        return self.redactor.redact_interaction(raw)

    def count_stub(self, answer: StubAnswer, model: str | None, request: Request) -> None:
        """Count a request answered by a stub rule, with the tokens its answer reports."""
        origin = request.url.split("/", 3)
        where = (model or "", "/".join(origin[:3]))
        with self._lock:
            self._counts.stubbed += 1
            tokens = self._stub_tokens.setdefault(where, [0, 0])
            tokens[0] += answer.input_tokens
            tokens[1] += answer.output_tokens
        self.note_call(request, "stub", answer.rule)

    def stub_cost(self) -> tuple[int, int, Decimal, list[str]]:
        """Stub answers' estimated input and output tokens, their cost at list prices (from
        the price data bundled with genai-prices), and the models it has no price for."""
        from tapeproxy.providers.llm import Usage
        from tapeproxy.providers.pricing import price

        with self._lock:
            tallies = {k: list(v) for k, v in self._stub_tokens.items()}
        total, unpriced = Decimal(0), []
        for (model, origin), (inp, out) in sorted(tallies.items()):
            cost = (
                price(Usage(input_tokens=inp, output_tokens=out), model, origin) if model else None
            )
            if cost is None:
                unpriced.append(model or "(no model)")
            else:
                total += cost
        inputs = sum(v[0] for v in tallies.values())
        outputs = sum(v[1] for v in tallies.values())
        return inputs, outputs, total, sorted(set(unpriced))

    def count_fault(self, kind: str, request: Request) -> None:
        """Count an answer replaced by a fault of this kind."""
        with self._lock:
            self._counts.faults[kind] += 1
        self.note_call(request, "fault", kind)

    def note_call(self, request: Request, source: str, rule: str | None = None) -> None:
        """Keep who answered a request, when `track_calls` is on (the pytest plugin's
        `tape.calls`; off for `serve`, which would keep them for ever)."""
        if self.track_calls:
            with self._lock:
                self._calls.append(Call(request.method, request.url, source, rule))

    def calls(self) -> list[Call]:
        """The requests kept by `note_call`, in order."""
        with self._lock:
            return list(self._calls)

    def note_client_tls_failure(self, message: str) -> None:
        """Count a client that failed the TLS handshake with the proxy (and why)."""
        with self._lock:
            self._counts.client_tls_failures.append(message)

    def count_passthrough(self) -> None:
        """Count a request to a host that is not recorded."""
        with self._lock:
            self._counts.passed_through += 1

    def count_error(self) -> None:
        """Count an internal error that was answered with an error response."""
        with self._lock:
            self._counts.errors += 1

    def tally(self) -> dict[str, int]:
        """Counts so far: `hits`, `stubbed`, `faulted`, `recorded`, `misses`, `passed_through`,
        `errors`..."""
        with self._lock:
            c = self._counts
            return {
                "hits": c.hits,
                "stubbed": c.stubbed,
                "faulted": sum(c.faults.values()),
                "recorded": c.recorded,
                "misses": len(c.misses),
                "passed_through": c.passed_through,
                "errors": c.errors,
                "expired": len(c.expired),
                "upstream_failures": len(c.upstream_failures),
                "client_tls_failures": len(c.client_tls_failures),
            }

    @property
    def misses(self) -> list[Miss]:
        """Every miss so far, in order."""
        with self._lock:
            return list(self._counts.misses)

    def discard(self) -> None:
        """Forget what was recorded and not saved yet (a passing live test keeps nothing)."""
        with self._lock:
            self._new.clear()

    def recorded(self) -> tuple[Interaction, ...]:
        """Every exchange this session recorded so far, keyed and redacted as it is saved."""
        with self._lock:
            captured = list(self._new)
        return (*self._written, *(self._interaction(c) for c in captured))

    def save(self, keep_empty: bool = False) -> bool:
        """Write what was recorded so far; True when the file was written.

        With `keep_empty`, a recording session that recorded nothing still writes its cassette
        when the file does not exist yet (a test that made no request).

        May be called again and again (serve saves as it goes): each call writes what this
        session recorded since the start. The file is read again under a lock and merged
        (`store.update`): another recorder of the same cassette (a parallel CI job, an xdist
        worker) may have saved it since this session loaded it, and what it added is kept.
        """
        with self._save_lock:
            with self._lock:
                captured = list(self._new)
            empty = keep_empty and self.records and not self.path.exists()
            if not captured and not empty and not (self.mode == "rewrite" and self.existed):
                return False
            mine = (*self._written, *(self._interaction(c) for c in captured))
            wrote, self._known = store.update(
                self.path, lambda current: self._merged(current, mine), self._known
            )
            with self._lock:
                del self._new[: len(captured)]
            self._written = mine
            return wrote

    def _merged(self, current: Cassette | None, mine: tuple[Interaction, ...]) -> Cassette:
        """What to write: the file as it is now, with what this session recorded (`mine`) at
        the end in place of what an earlier save of this session put there.

        Mode `rewrite` drops every interaction the file had when the session loaded it;
        mode `all` replaces every interaction of a key it recorded. Other modes append; an
        interaction another writer added for a key this session also recorded is replaced
        (both recorded the same request: one answer is enough, and it is this one).
        """
        base = current if current is not None else self._cassette
        touched = {it.key for it in mine}
        loaded = {it.key for it in self._cassette.interactions}
        earlier: dict[str, list[Interaction]] = {}
        for it in self._written:
            earlier.setdefault(it.key, []).append(it)
        old = []
        for it in base.interactions:
            ours = earlier.get(it.key)
            if ours and it in ours:
                ours.remove(it)  # written by an earlier save of this session
            elif self.mode == "rewrite":
                if it.key not in loaded and it.key not in touched:
                    old.append(it)  # another writer's, since this session loaded the file
            elif it.key in self._replaced and it.key in touched:
                continue  # expired and recorded again (`--on-expiry rerecord`)
            elif it.key not in touched or (self.mode != "all" and it.key in loaded):
                old.append(it)
        return base.model_copy(update={"interactions": (*old, *mine)})

    def summary(self) -> str:
        """The one-screen summary printed when the proxy stops."""
        with self._lock:
            c = self._counts
            lines = [
                f"tapeproxy {self.mode}: {self.path}",
                f"  served from cassette: {c.hits}   "
                + (f"stubbed: {c.stubbed}   " if c.stubbed else "")
                + f"recorded: {c.recorded}   "
                f"misses: {len(c.misses)}   passed through: {c.passed_through}"
                + (f"   errors: {c.errors}" if c.errors else ""),
            ]
            if c.faults:
                kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(c.faults.items()))
                lines.append(f"  faults injected: {sum(c.faults.values())} ({kinds})")
            if c.expired and self.expiry is not None:
                lines.append(
                    f"  answers past --max-age {self.expiry.describe()} served: "
                    f"{len(c.expired)} (the oldest {max(c.expired):.0f} days); re-record "
                    "them: tapeproxy record --mode all, or --on-expiry rerecord"
                )
            lines += _failure_lines(c)
            stubbed = c.stubbed
            unused = self.index.unused() if self.serves_from_cassette else []
            if unused:
                lines.append(f"  recorded but not used: {len(unused)} interaction(s)")
            for m in c.misses[:5]:
                lines.extend("  " + line for line in m.describe().splitlines())
            if len(c.misses) > 5:
                lines.append(f"  ... and {len(c.misses) - 5} more misses")
        if stubbed:
            inp, out, cost, unpriced = self.stub_cost()
            line = (
                f"  stub answers: est. tokens input {inp}, output {out}; ${cost:.6f} at list prices"
            )
            if unpriced:
                line += f" (no price for {', '.join(unpriced[:3])})"
            lines.insert(2, line)
        return "\n".join(lines)


def _failure_lines(c: _Counts) -> list[str]:
    """The summary's lines on failed upstream connections and rejected proxy certificates,
    with the cause and the flag that fixes it."""
    lines = []
    if c.upstream_failures:
        lines.append(
            f"  upstream failures: {len(c.upstream_failures)} (no answer from the upstream; "
            "stored as errors, not as answers)"
        )
        if any(m in f.lower() for f in c.upstream_failures for m in _CERT_FAILURE):
            lines.append(
                "    the upstream's certificate is not trusted: for a corporate or test CA add "
                "--upstream-ca FILE (upstream_ca), or --insecure-upstream for a test server"
            )
        lines += [f"    {message}" for message in list(dict.fromkeys(c.upstream_failures))[:3]]
    if c.client_tls_failures:
        lines.append(
            f"  clients that rejected the proxy's certificate: {len(c.client_tls_failures)} "
            f"({c.client_tls_failures[0]})"
        )
        lines.append(
            "    the client does not trust tapeproxy's CA: `tapeproxy ca` prints its file; CMD "
            "gets SSL_CERT_FILE, REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE and NODE_EXTRA_CA_CERTS, a "
            "client with a trust store of its own (Java, a pinned bundle) needs it added"
        )
    return lines
