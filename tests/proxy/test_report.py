"""The client report (`--report`): how clients behaved under faults, named per client.

Through a real proxy: three hand-written clients that each break one rule, and the `openai`
SDK with its own retries, which breaks none. The verdict rules' edges are checked on
exchanges written out by hand.
"""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml

from tapeproxy.fakeprovider import FakeProvider
from tapeproxy.providers.stubs import Stubs
from tapeproxy.proxy.faults import Faults, parse_faults
from tapeproxy.proxy.journal import Exchange
from tapeproxy.proxy.latency import Latency
from tapeproxy.proxy.runner import ProxyRunner
from tapeproxy.proxy.verdicts import client_reports, report, summary_lines
from tests.proxy.conftest import ProxyFactory

_MAX_CALLS = 40  # each client stops once it has shown its behaviour, or after this many


def _stubs(tmp_path: Path) -> Stubs:
    rules = [
        {
            "match": {"last_user": "invalid"},
            "answer": {"error": {"status": 400, "type": "invalid_request_error", "message": "no"}},
        },
        {"answer": {"text": "fine"}},
    ]
    path = tmp_path / "stubs.yaml"
    path.write_text(yaml.safe_dump(rules), encoding="utf-8")
    return Stubs.from_files([path], 0)


def _chat(prompt: str) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": prompt}]}


Policy = Callable[[httpx.Response | None, int], float | None]
"""A client's retry policy: given the failed answer (None: no answer) and the number of
tries so far, seconds to wait before trying again, or None to give up."""


def _client(
    runner: ProxyRunner, url: str, agent: str, policy: Policy, prompt: str, shows: Shows
) -> int:
    """Calls with the policy until it has made 2 retries that show its behaviour (or
    `_MAX_CALLS` calls); the number of those retries."""
    ca = ssl.create_default_context(cafile=str(runner.config.ca_cert()))
    shown = 0
    with httpx.Client(proxy=runner.url, verify=ca, headers={"user-agent": agent}) as http:
        for n in range(_MAX_CALLS):
            tries = 0
            while True:
                try:
                    got: httpx.Response | None = http.post(url, json=_chat(f"{prompt} {n}"))
                except httpx.HTTPError:
                    got = None
                tries += 1
                if got is not None and got.status_code < 400:
                    break
                wait = policy(got, tries)
                if wait is None:
                    break
                shown += shows(got)
                time.sleep(wait)
            if shown >= 2:
                return shown
    return shown


Shows = Callable[[httpx.Response | None], bool]
"""Whether a retry after this answer shows the client's behaviour."""


def _told(got: httpx.Response | None) -> float | None:
    if got is None or "retry-after" not in got.headers:
        return None
    return float(got.headers["retry-after"])


def _ignores_retry_after(got: httpx.Response | None, tries: int) -> float | None:
    if tries > 4 or (got is not None and got.status_code == 400):
        return None
    return 0.02 if _told(got) is not None else 0.1 * 2**tries


def _retries_a_400(got: httpx.Response | None, tries: int) -> float | None:
    if tries > 4:
        return None
    told = _told(got)
    return told if told is not None else 0.1 * 2**tries


def _no_delay(got: httpx.Response | None, tries: int) -> float | None:
    if tries > 4 or (got is not None and got.status_code == 400):
        return None
    told = _told(got)
    return told if told is not None else 0.0


def test_report_names_each_misbehaving_client_and_not_the_sdk(
    tmp_path: Path, run_proxy: ProxyFactory, provider: FakeProvider
) -> None:
    url = provider.url + "/v1/chat/completions"
    report_path = tmp_path / "report.json"
    faults = Faults(parse_faults("429=25%,500=25%"), seed=11, retry_after=1.0)
    clients = {
        "ignorer/1": (_ignores_retry_after, "hello", lambda got: _told(got) is not None),
        "retries-400/1": (
            _retries_a_400,
            "invalid",
            lambda got: got is not None and got.status_code == 400,
        ),
        "no-delay/1": (_no_delay, "hello", lambda got: _told(got) is None),
    }
    with run_proxy(
        tmp_path / "none.json.zst",
        "none",
        stubs=_stubs(tmp_path),
        faults=faults,
        report=report_path,
        latency=Latency(0.0),
    ) as runner:
        with ThreadPoolExecutor(3) as pool:
            made = {
                agent: pool.submit(_client, runner, url, agent, policy, prompt, shows)
                for agent, (policy, prompt, shows) in clients.items()
            }
            retried = {agent: f.result() for agent, f in made.items()}
        exchanges = runner.journal.exchanges() if runner.journal else []
    assert all(n >= 2 for n in retried.values()), retried  # each showed its behaviour

    doc = json.loads(report_path.read_text(encoding="utf-8"))
    verdicts = {c["client"]: set(c["verdicts"]) for c in doc["clients"]}
    assert verdicts == {
        "ignorer/1": {"retry_after_ignored"},
        "retries-400/1": {"retried_non_retryable"},
        "no-delay/1": {"no_backoff"},
    }
    assert doc["verdicts"]["retry_after_ignored"] == ["ignorer/1"]
    assert doc["answers"]["by_source"]["fault"] == sum(doc["answers"]["faults"].values())
    assert set(doc["answers"]["faults"]) <= {"429", "500"}
    lines = "\n".join(summary_lines(exchanges))
    for agent, names in verdicts.items():
        assert agent in lines and all(name in lines for name in names)


def test_the_openai_sdk_retrying_under_faults_gets_no_verdict(
    tmp_path: Path, run_proxy: ProxyFactory, provider: FakeProvider
) -> None:
    faults = Faults(parse_faults("429=15%,500=5%,reset=5%"), seed=5, retry_after=1.0)
    with run_proxy(
        tmp_path / "none.json.zst",
        "none",
        stubs=_stubs(tmp_path),
        faults=faults,
        report=tmp_path / "report.json",
        latency=Latency(0.0),
    ) as runner:
        ca = ssl.create_default_context(cafile=str(runner.config.ca_cert()))
        http = httpx.Client(proxy=runner.url, verify=ca, timeout=30)
        client = openai.OpenAI(  # at most 6 tries: more would be a storm
            base_url=provider.url + "/v1", api_key="sk-test", http_client=http, max_retries=5
        )

        def ask(i: int) -> str:
            try:
                done = client.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": f"question {i}"}]
                )
            except openai.APIError:  # it gave up after its retries: allowed, if rare
                return "gave up"
            return done.choices[0].message.content or ""

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(ask, range(24)))
        http.close()
    assert answers.count("fine") >= 22, answers  # through the SDK's retries
    doc = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    (sdk,) = doc["clients"]
    assert sdk["client"].startswith("OpenAI/Python")
    assert sdk["retries"] >= 1 and sdk["recovered"] >= sdk["retried_requests"] - 2
    assert sdk["verdicts"] == {}
    assert all(not names for names in doc["verdicts"].values())


# ---- the rules' edges, on exchanges written out by hand --------------------------------------


def _ex(arrived: float, ended: float, status: int | None, **kw: Any) -> Exchange:
    fields: dict[str, Any] = {
        "key": "k",
        "client": "c",
        "source": "fault" if status is None or status >= 400 else "stub",
        "detail": None,
        "retry_after": None,
    }
    fields.update(kw)
    return Exchange(
        fields["key"],
        fields["client"],
        fields["source"],
        fields["detail"],
        arrived,
        ended,
        status,
        fields["retry_after"],
    )


def _verdicts(*exchanges: Exchange) -> set[str]:
    (r,) = client_reports(exchanges)
    return set(r.verdicts)


@pytest.mark.parametrize(
    ("gap", "flagged"),
    [(0.0, True), (0.5, True), (0.84, True), (0.86, False), (1.0, False), (3.0, False)],
)
def test_retry_after_is_honoured_within_slack(gap: float, flagged: bool) -> None:
    got = _verdicts(_ex(0, 0.1, 429, retry_after=1.0), _ex(0.1 + gap, 0.2, 200))
    assert ("retry_after_ignored" in got) is flagged


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_non_retryable_statuses(status: int) -> None:
    assert _verdicts(_ex(0, 0.1, status), _ex(1.0, 1.1, 200)) == {"retried_non_retryable"}


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504, 529, None])
def test_retryable_answers_retried_with_backoff_are_fine(status: int | None) -> None:
    assert _verdicts(_ex(0, 0.1, status), _ex(0.6, 0.7, 200)) == set()


def test_seven_tries_are_a_storm_six_are_not() -> None:
    def chain(tries: int) -> list[Exchange]:
        out, t = [], 0.0
        for i in range(tries):
            t += 0.5 * 2**i
            out.append(_ex(t, t + 0.01, 500 if i < tries - 1 else 200))
        return out

    assert _verdicts(*chain(6)) == set()
    assert _verdicts(*chain(7)) == {"retry_storm"}


def test_backoff_must_grow_and_a_single_retry_must_wait() -> None:
    flat = [_ex(0, 0.01, 500), _ex(0.51, 0.52, 500), _ex(1.02, 1.03, 200)]
    assert _verdicts(*flat) == {"no_backoff"}
    growing = [_ex(0, 0.01, 500), _ex(0.51, 0.52, 500), _ex(1.6, 1.61, 200)]
    assert _verdicts(*growing) == set()
    assert _verdicts(_ex(0, 0.01, 500), _ex(0.011, 0.02, 200)) == {"no_backoff"}
    assert _verdicts(_ex(0, 0.01, 500), _ex(0.09, 0.1, 200)) == {"no_backoff"}
    assert _verdicts(_ex(0, 0.01, 500), _ex(0.4, 0.41, 200)) == set()  # an SDK's first wait
    # a wait of no delay among growing ones is still none
    mixed = [_ex(0, 0.01, 500), _ex(0.02, 0.03, 500), _ex(1.0, 1.01, 200)]
    assert _verdicts(*mixed) == {"no_backoff"}
    # a wait the server set does not count as the client's backoff
    told = [_ex(0, 0.01, 429, retry_after=1.0), _ex(1.02, 1.03, 429, retry_after=1.0)]
    assert _verdicts(*told, _ex(2.04, 2.05, 200)) == set()


def test_a_success_ends_a_chain_and_clients_and_requests_are_apart() -> None:
    # the same request again after a success is a new call, not a retry
    assert _verdicts(_ex(0, 0.1, 200), _ex(0.1, 0.2, 200), _ex(0.2, 0.3, 200)) == set()
    mixed = [
        _ex(0, 0.1, 429, retry_after=1.0, client="a"),
        _ex(0.12, 0.2, 200, client="b"),  # another client: not a's retry
        _ex(0.13, 0.2, 200, client="a", key="other"),  # another request: not a retry
    ]
    assert all(not r.verdicts for r in client_reports(mixed))
    doc = report(mixed)
    assert doc["answers"]["total"] == 3 and doc["answers"]["by_source"] == {"fault": 1, "stub": 2}
