"""Stale recordings: answers older than --max-age warn, fail or are recorded again."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import pytest

from tapeproxy.cassettes import store
from tapeproxy.errors import ConfigError
from tapeproxy.fakeprovider import FakeProvider
from tapeproxy.proxy.expiry import Expiry, age_days, parse_age
from tests.proxy.conftest import ProxyFactory, client_for

_OLD, _NEW = "an old question", "a new question"


def _ask(http: object, provider: FakeProvider, prompt: str) -> tuple[int, str]:
    body = {"model": "m", "messages": [{"role": "user", "content": prompt}]}
    got = http.post(provider.url + "/v1/chat/completions", json=body)  # type: ignore[attr-defined]
    return got.status_code, got.text


def _iso(days_ago: float) -> str:
    when = dt.datetime.now(dt.UTC) - dt.timedelta(days=days_ago)
    return when.replace(microsecond=0).isoformat().replace("+00:00", "Z")


@pytest.fixture
def aged(tmp_path: Path, run_proxy: ProxyFactory, provider: FakeProvider) -> Path:
    """A cassette of two answers, one of them recorded 40 days ago."""
    cassette = tmp_path / "aged.json.zst"
    with run_proxy(cassette, "all") as runner, client_for(runner) as http:
        assert _ask(http, provider, _OLD)[0] == 200
        assert _ask(http, provider, _NEW)[0] == 200
    loaded = store.load(cassette)
    now = dt.datetime.now(dt.UTC)
    for it in loaded.interactions:  # a recording stamps each answer
        assert it.recorded_at is not None
        assert abs(age_days(it.recorded_at, "", now) or 1) < 0.01
    old, new = loaded.interactions
    stale = old.model_copy(update={"recorded_at": _iso(40)})
    store.save(cassette, loaded.model_copy(update={"interactions": (stale, new)}))
    return cassette


def test_warn_serves_and_names_them(
    aged: Path, run_proxy: ProxyFactory, provider: FakeProvider
) -> None:
    with (
        run_proxy(aged, "none", expiry=Expiry(parse_age("30d"), "warn")) as runner,
        client_for(runner) as http,
    ):
        assert _ask(http, provider, _OLD)[0] == 200
        assert _ask(http, provider, _NEW)[0] == 200
        tally, summary = runner.session.tally(), runner.session.summary()
    assert tally["expired"] == 1 and tally["misses"] == 0
    assert "answers past --max-age 30d served: 1 (the oldest 40 days)" in summary


def test_fail_answers_a_599_that_says_how_old(
    aged: Path, run_proxy: ProxyFactory, provider: FakeProvider
) -> None:
    with (
        run_proxy(aged, "none", expiry=Expiry(parse_age("30d"), "fail")) as runner,
        client_for(runner) as http,
    ):
        status, text = _ask(http, provider, _OLD)
        assert _ask(http, provider, _NEW)[0] == 200
        misses = runner.session.misses
    assert status == 599 and "too old" in text and "40 days ago" in text
    assert [m.url.endswith("/chat/completions") for m in misses] == [True]


def test_rerecord_fetches_the_expired_answer_again_in_its_place(
    aged: Path, run_proxy: ProxyFactory, provider: FakeProvider
) -> None:
    before = provider.requests
    with (
        run_proxy(aged, "new_episodes", expiry=Expiry(parse_age("30d"), "rerecord")) as runner,
        client_for(runner) as http,
    ):
        assert _ask(http, provider, _OLD)[0] == 200
        assert _ask(http, provider, _NEW)[0] == 200
    assert provider.requests == before + 1  # only the expired one went upstream
    after = store.load(aged).interactions
    assert len(after) == 2  # recorded again in its place, not beside it
    assert all((age_days(it.recorded_at, "") or 99) < 1 for it in after)
    # in replay nothing can be recorded: rerecord refuses like fail
    stale = store.load(aged)
    old = stale.interactions[0].model_copy(update={"recorded_at": _iso(40)})
    store.save(aged, stale.model_copy(update={"interactions": (old, *stale.interactions[1:])}))
    with (
        run_proxy(aged, "none", expiry=Expiry(parse_age("30d"), "rerecord")) as runner,
        client_for(runner) as http,
    ):
        statuses = {_ask(http, provider, p)[0] for p in (_OLD, _NEW)}
    assert statuses == {200, 599}


def test_a_cassette_without_stamps_ages_from_its_creation(tmp_path: Path) -> None:
    from tapeproxy.cassettes.model import Interaction, Request, Response

    it = Interaction(key="k", request=Request(method="GET", url="https://x.test/"),
                     response=Response(status=200))  # fmt: skip
    limit = Expiry(parse_age("30d"), "warn")
    assert limit.expired(it, _iso(40)) == pytest.approx(40, abs=0.01)
    assert limit.expired(it, _iso(10)) is None
    assert limit.expired(it.model_copy(update={"recorded_at": _iso(5)}), _iso(400)) is None


def test_cli_replay_fails_on_an_expired_answer(
    aged: Path, confdir: Path, provider: FakeProvider, tmp_path: Path
) -> None:
    script = tmp_path / "ask.py"
    script.write_text(
        "import httpx, os, ssl\n"
        "ca = ssl.create_default_context(cafile=os.environ['SSL_CERT_FILE'])\n"
        f"r = httpx.post({provider.url + '/v1/chat/completions'!r}, verify=ca,\n"
        f"    json={{'model': 'm', 'messages': [{{'role': 'user', 'content': {_OLD!r}}}]}})\n"
        "print(r.status_code)\n",
        encoding="utf-8",
    )
    done = subprocess.run(
        [sys.executable, "-m", "tapeproxy", "replay", "--cassette", str(aged), "--confdir",
         str(confdir), "--no-proxy", "", "--max-age", "30d", "--on-expiry", "fail", "--",
         sys.executable, str(script)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 3, done.stderr
    assert done.stdout.strip() == "599" and "too old" in done.stderr


@pytest.mark.parametrize(
    ("text", "seconds"), [("30d", 30 * 86400), ("12h", 43200), ("2w", 14 * 86400), ("90m", 5400)]
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_age(text) == seconds


_BAD = [("30", None), ("0d", None), ("3y", None), ("30d", "ignore"), (None, "fail")]


@pytest.mark.parametrize(("max_age", "on_expiry"), _BAD)
def test_bad_expiry_settings_are_refused(max_age: str | None, on_expiry: str | None) -> None:
    with pytest.raises(ConfigError):
        Expiry.parse(max_age, on_expiry)


def test_stats_names_date_pinned_models_past_the_limit(tmp_path: Path) -> None:
    import json

    from tapeproxy.cassettes.model import Body, Interaction, Request, Response, new_cassette

    def it(model: str, days: float, n: int) -> Interaction:
        body = json.dumps({"model": model, "messages": []}).encode()
        return Interaction(
            key=f"k{n}",
            request=Request(method="POST", url="https://api.openai.com/v1/chat/completions",
                            body=Body.from_bytes(body)),
            response=Response(status=200),
            recorded_at=_iso(days),
        )  # fmt: skip

    rows = (
        it("gpt-4o-2024-08-06", 40, 0),
        it("gpt-4o", 40, 1),  # not pinned: counted, not named
        it("claude-3-5-sonnet-20241022", 5, 2),  # pinned, but recent
        it("claude-3-5-sonnet-v2@20241022", 90, 3),
    )
    cassette = tmp_path / "c.json.zst"
    store.save(cassette, new_cassette("t", _iso(100)).model_copy(update={"interactions": rows}))
    done = subprocess.run(
        [sys.executable, "-m", "tapeproxy", "stats", str(cassette), "--max-age", "30d",
         "--format", "json"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    stale = json.loads(done.stdout)["stale"]
    assert stale["interactions"] == 3 and stale["max_age_days"] == 30
    assert [(r["model"], round(r["days"])) for r in stale["date_pinned"]] == [
        ("claude-3-5-sonnet-v2@20241022", 90),
        ("gpt-4o-2024-08-06", 40),
    ]
    text = subprocess.run(
        [sys.executable, "-m", "tapeproxy", "stats", str(cassette), "--max-age", "30d"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    assert "older than 30 days: 3 interactions" in text and "gpt-4o-2024-08-06" in text
