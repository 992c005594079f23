"""How clients behaved under faults: the `--report` document and its summary lines.

A retry is the same request (same key) from the same client (its User-Agent, else its
address) after a failed answer to it: a status of 400 or more, a fault of any kind, or no
answer at all (reset, timeout). A client's tries of one request form a chain that ends at
the first answer that did not fail. The verdicts, per client:

- `retry_after_ignored`: a retry came sooner than the failed answer's `retry-after`
  (`retry-after-ms` first) told it to wait: before 90 % of that wait, less 50 ms of slack
  for the client's own clock and scheduling.
- `retried_non_retryable`: a request was tried again after a 400, 401, 403, 404 or 422,
  answers a retry cannot change.
- `retry_storm`: more than 6 tries of one request in one chain.
- `no_backoff`: the waits before retries the server set no wait for do not grow: one is
  shorter than 100 ms (no delay at all), or, of two or more in a chain, one is no longer
  than 1.1 times the one before it. The official SDKs wait 0.375 s or more before a first
  retry (OpenAI's and Anthropic's 0.5 s less up to 25 % jitter) and double it.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

from tapeproxy.cassettes import store
from tapeproxy.errors import BadInputError
from tapeproxy.proxy.journal import Exchange

__all__ = [
    "NON_RETRYABLE",
    "VERDICTS",
    "ClientReport",
    "client_reports",
    "report",
    "summary_lines",
    "write_report",
]

NON_RETRYABLE = frozenset({400, 401, 403, 404, 422})
VERDICTS = ("retry_after_ignored", "retried_non_retryable", "retry_storm", "no_backoff")
MAX_TRIES = 6
_EARLY_SHARE = 0.9
_SLACK_S = 0.05
_GROWTH = 1.1
_NO_DELAY_S = 0.1


@dataclass
class ClientReport:
    """One client's requests, retries and verdicts, with an example of each verdict."""

    client: str
    requests: int = 0
    retries: int = 0
    chains: int = 0
    recovered: int = 0
    verdicts: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)

    def flag(self, verdict: str, example: str) -> None:
        self.verdicts[verdict] += 1
        self.examples.setdefault(verdict, example)

    def to_json(self) -> dict[str, Any]:
        return {
            "client": self.client,
            "requests": self.requests,
            "retries": self.retries,
            "retried_requests": self.chains,
            "recovered": self.recovered,
            "verdicts": {
                name: {"count": self.verdicts[name], "example": self.examples[name]}
                for name in VERDICTS
                if self.verdicts[name]
            },
        }


def _failed(e: Exchange) -> bool:
    return e.status is None or e.status >= 400 or e.source == "fault"


def _what(e: Exchange) -> str:
    answer = f"{e.status}" if e.status is not None else "no answer"
    shown = e.source == "fault" and e.detail and e.detail != answer
    return f"{answer} ({e.detail} fault)" if shown else answer


def client_reports(exchanges: Iterable[Exchange]) -> list[ClientReport]:
    """Each client's report, by client name."""
    by_request: dict[tuple[str, str], list[Exchange]] = defaultdict(list)
    reports: dict[str, ClientReport] = {}
    for e in exchanges:
        by_request[(e.client, e.key)].append(e)
        reports.setdefault(e.client, ClientReport(e.client)).requests += 1
    for (client, key), tries in by_request.items():
        tries.sort(key=lambda e: e.arrived)
        for chain in _chains(tries):
            if len(chain) > 1:
                _judge(reports[client], key, chain)
    return [reports[name] for name in sorted(reports)]


def _chains(tries: Sequence[Exchange]) -> list[list[Exchange]]:
    """Tries of one request split where an answer did not fail (the next is a new call)."""
    chains: list[list[Exchange]] = []
    current: list[Exchange] = []
    for e in tries:
        current.append(e)
        if not _failed(e):
            chains.append(current)
            current = []
    if current:
        chains.append(current)
    return chains


def _judge(r: ClientReport, key: str, chain: list[Exchange]) -> None:
    r.chains += 1
    r.retries += len(chain) - 1
    if not _failed(chain[-1]):
        r.recovered += 1
    request = f"request {key[:12]}"
    free_gaps: list[float] = []
    for before, after in pairwise(chain):
        gap = after.arrived - before.ended
        told = before.retry_after
        if told is not None and gap < told * _EARLY_SHARE - _SLACK_S:
            r.flag(
                "retry_after_ignored",
                f"{request}: retried {gap:.3f} s after {_what(before)}, told to wait {told:g} s",
            )
        if before.status in NON_RETRYABLE:
            r.flag("retried_non_retryable", f"{request}: retried after {before.status}")
        if told is None:
            free_gaps.append(gap)
    if len(chain) > MAX_TRIES:
        r.flag("retry_storm", f"{request}: {len(chain)} tries")
    flat = any(gap < _NO_DELAY_S for gap in free_gaps) or any(
        later <= earlier * _GROWTH for earlier, later in pairwise(free_gaps)
    )
    if flat:
        waits = ", ".join(f"{g:.3f}" for g in free_gaps[:6])
        r.flag("no_backoff", f"{request}: waited {waits} s before its retries")


def report(exchanges: Sequence[Exchange]) -> dict[str, Any]:
    """The `--report` document: answers by source and fault kind, and each client's
    behaviour under faults."""
    sources = Counter(e.source for e in exchanges)
    faults = Counter(e.detail or "?" for e in exchanges if e.source == "fault")
    clients = client_reports(exchanges)
    return {
        "answers": {
            "total": len(exchanges),
            "by_source": dict(sorted(sources.items())),
            "faults": dict(sorted(faults.items())),
        },
        "clients": [c.to_json() for c in clients],
        "verdicts": {
            name: sorted(c.client for c in clients if c.verdicts[name]) for name in VERDICTS
        },
    }


def summary_lines(exchanges: Sequence[Exchange]) -> list[str]:
    """The summary's lines on the clients' behaviour (one per client that retried)."""
    clients = client_reports(exchanges)
    retried = [c for c in clients if c.retries]
    if not retried:
        return [f"  clients: {len(clients)}, none retried a request"] if clients else []
    lines = [f"  clients: {len(clients)}, retries seen: {sum(c.retries for c in clients)}"]
    for c in retried:
        head = f"    {c.client}: {c.requests} requests, {c.retries} retries"
        if not c.verdicts:
            lines.append(head + ", no verdict")
            continue
        lines.append(head)
        for name in VERDICTS:
            if c.verdicts[name]:
                lines.append(f"      {name} ({c.verdicts[name]}x): {c.examples[name]}")
    return lines


def write_report(path: Path, exchanges: Sequence[Exchange]) -> None:
    """Write the `--report` document (JSON), atomically.

    Raises:
        BadInputError: it cannot be written.
    """
    data = json.dumps(report(exchanges), indent=2) + "\n"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        store.write_atomic(path, data.encode("utf-8"))
    except OSError as e:
        raise BadInputError(f"{path}: cannot write the report ({e.strerror or e})") from e
