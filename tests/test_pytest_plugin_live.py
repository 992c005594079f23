"""Live runs: ``@pytest.mark.live_llm`` tests (pytester) and ``tapeproxy live -- CMD``, against
a fake provider on 127.0.0.1 standing in for the real one. A live run that was stubbed by
accident must fail, not pass."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tapeproxy.cassettes import store
from tapeproxy.cassettes.model import body_bytes
from tapeproxy.fakeprovider import FakeProvider
from tapeproxy.testing_ca import ThrowawayCA
from tests.plugin_env import fake_provider
from tests.test_pytest_plugin import ARGS, INI

pytest_plugins = ["pytester"]

LIVE = """
import os, openai, pytest

def ask(prompt):
    key = os.environ["FAKE_PROVIDER_KEY"]
    with openai.OpenAI(base_url=os.environ["FAKE_URL"] + "/v1", api_key=key, max_retries=0) as c:
        answer = c.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}])
    return answer.choices[0].message.content

@pytest.mark.live_llm(requires=["FAKE_PROVIDER_KEY"], min_tokens=1)
def test_live_call(tape):
    assert ask("live").startswith("You said: live")
    assert tape.sources == {"cassette": 0, "stub": 0, "fault": 0, "live": 1, "miss": 0}
    assert tape.usage["input"] > 0 and tape.usage["output"] > 0

@pytest.mark.live_llm(requires=["FAKE_PROVIDER_KEY", "NOT_SET_ANYWHERE_KEY"])
def test_needs_another_key():
    ask("never")

@pytest.mark.live_llm(requires=["FAKE_PROVIDER_KEY"])
def test_stubbed_by_accident():
    if os.environ.get("USE_MOCK_LLM"):
        return  # the app answered from its own fake: nothing reached a provider
    ask("real")

@pytest.mark.live_llm(requires=["FAKE_PROVIDER_KEY"], min_tokens=1_000_000)
def test_under_min_tokens():
    ask("short")
"""


@pytest.fixture
def provider(
    throwaway_ca: ThrowawayCA, confdir: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FakeProvider]:
    yield from fake_provider(
        throwaway_ca,
        confdir,
        monkeypatch,
        TAPEPROXY_LIVE="",
        NOT_SET_ANYWHERE_KEY="",
        TAPEPROXY_UPSTREAM_CA=str(throwaway_ca.ca_cert),
        # a key-shaped value made now: what a live run must never write down
        FAKE_PROVIDER_KEY="sk-proj-" + os.urandom(24).hex(),
    )


def test_live_tests_are_skipped_by_default(
    pytester: pytest.Pytester, provider: FakeProvider
) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_live=LIVE)
    result = pytester.runpytest_subprocess(*ARGS, "-rs")
    result.assert_outcomes(skipped=4)
    result.stdout.fnmatch_lines(["*run with --live (or TAPEPROXY_LIVE=1)*"])
    assert provider.requests == 0


def test_live_run_guards_and_keeps_what_failed(
    pytester: pytest.Pytester, provider: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_live=LIVE)
    monkeypatch.setenv("USE_MOCK_LLM", "1")
    result = pytester.runpytest_subprocess(*ARGS, "-rfs", "--live")
    result.assert_outcomes(passed=1, failed=2, skipped=1)
    out = result.stdout.str()
    result.stdout.fnmatch_lines(["*live test needs NOT_SET_ANYWHERE_KEY, which is not set*"])
    assert "FAILED test_live.py::test_stubbed_by_accident" in out
    assert "none of this test's requests reached a provider" in out
    assert "FAILED test_live.py::test_under_min_tokens" in out
    assert "below min_tokens=1000000" in out
    assert provider.requests == 2  # the passing call and the short one
    kept = sorted((pytester.path / ".tapeproxy" / "live").iterdir())
    assert [p.name for p in kept] == [
        "test_stubbed_by_accident.json.zst",
        "test_under_min_tokens.json.zst",
    ]
    assert f"kept in {kept[1]}" in out
    (short,) = store.load(kept[1]).interactions
    assert os.environ["FAKE_PROVIDER_KEY"] not in store.to_json_bytes(store.load(kept[1])).decode()
    assert json.loads(body_bytes(short.request.body))["messages"][0]["content"] == "short"

    monkeypatch.setenv("TAPEPROXY_LIVE", "1")  # the variable instead of the flag
    again = pytester.runpytest_subprocess(*ARGS, "-k", "live_call")
    again.assert_outcomes(passed=1)


def _tapeproxy(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tapeproxy", *args], capture_output=True, text=True, timeout=120
    )


def test_live_command_exits_4_when_nothing_reached_a_provider(confdir: Path) -> None:
    done = _tapeproxy("live", "--confdir", str(confdir), "--", "true")
    assert done.returncode == 4, done.stderr
    assert "0 request(s) reached a provider" in done.stderr
    assert "no request reached a provider" in done.stderr


def test_live_command_counts_tokens_and_cost_and_keeps_a_journal(
    tmp_path: Path, provider: FakeProvider, confdir: Path
) -> None:
    body = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
    curl = ["curl", "-sS", "--fail", "-H", "content-type: application/json"]
    curl += ["-H", f"authorization: Bearer {os.environ['FAKE_PROVIDER_KEY']}", "-d", body]
    journal = tmp_path / "live.json.zst"
    args = ["live", "--confdir", str(confdir), "--journal", str(journal), "--"]
    done = _tapeproxy(*args, *curl, provider.url + "/v1/chat/completions")
    assert done.returncode == 0, done.stderr
    assert "1 request(s) reached a provider" in done.stderr
    (kept,) = store.load(journal).interactions
    assert kept.response is not None and kept.response.body is not None
    usage = json.loads(kept.response.body.text or "")["usage"]  # what the provider reported
    tokens = f"tokens: input {usage['prompt_tokens']}, output {usage['completion_tokens']},"
    assert tokens in done.stderr
    assert "cost at list prices: $0.0000" in done.stderr and "gpt-4o-mini" in done.stderr
    assert os.environ["FAKE_PROVIDER_KEY"] not in store.to_json_bytes(store.load(journal)).decode()
    again = _tapeproxy(*args, "true")
    assert again.returncode == 2 and "exists already" in again.stderr
