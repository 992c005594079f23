"""The pytest plugin, driven the way users drive it: pytest runs on generated test modules
(`pytester`, in subprocesses) whose tests talk to a fake provider on 127.0.0.1 over TLS
through the session's proxy, with the openai SDK, httpx and curl."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tapeproxy.fakeprovider import FakeProvider
from tapeproxy.pytest_plugin import cassette_name
from tapeproxy.testing_ca import ThrowawayCA
from tests.plugin_env import fake_provider

pytest_plugins = ["pytester"]

INI = """
[pytest]
filterwarnings =
    error
    ignore::DeprecationWarning:mitmproxy.*
    ignore::DeprecationWarning:pyparsing.*
    ignore::DeprecationWarning:ldap3.*
"""
# The anyio plugin's CallSpec2 deprecation would trip filterwarnings=error (see pyproject).
ARGS = ("-p", "no:cacheprovider", "-p", "no:anyio")

AGENT = """
import json, os, subprocess
import openai, pytest

URL = os.environ["FAKE_URL"]
PROMPT = "hello agent"
BEFORE = {k: os.environ.get(k) for k in ("HTTPS_PROXY", "SSL_CERT_FILE", "TAPEPROXY_MODE")}

@pytest.fixture
def tape_config():
    return {"upstream_ca": os.environ["FAKE_CA"]}

def ask(prompt):
    key = "sk-test-not-a-real-key"
    with openai.OpenAI(base_url=URL + "/v1", api_key=key, max_retries=0) as client:
        messages = [{"role": "user", "content": prompt}]
        answer = client.chat.completions.create(model="gpt-fake", messages=messages)
    return answer.choices[0].message.content

@pytest.mark.tape
def test_chat():
    assert os.environ["TAPEPROXY_MODE"] == os.environ["EXPECT_MODE"]
    assert ask(PROMPT) == f"You said: {PROMPT}. This is the fake provider answering."

@pytest.mark.tape
@pytest.mark.parametrize("who", ["ann", "bob/sub"])
def test_param(who):
    assert ask(who).startswith(f"You said: {who}.")

@pytest.mark.tape
def test_curl():
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "from curl"}]})
    out = subprocess.run(
        ["curl", "-sS", "--fail", "-H", "content-type: application/json", "-d", body,
         URL + "/v1/chat/completions"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "You said: from curl." in out.stdout

def test_environment_restored():
    assert {k: os.environ.get(k) for k in BEFORE} == BEFORE
"""

UNCHECKED = """
@pytest.mark.tape
def test_unchecked():
    subprocess.run(["curl", "-sS", URL + "/v1/models"], capture_output=True, timeout=60)
"""


@pytest.fixture
def provider(
    throwaway_ca: ThrowawayCA, confdir: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FakeProvider]:
    """A fake provider, and the environment the generated tests run with."""
    yield from fake_provider(throwaway_ca, confdir, monkeypatch, TAPEPROXY_LATENCY="none")


def _cassettes(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*.json.zst"))


def test_openai_and_curl_record_once_replay_offline_and_fail_on_a_changed_prompt(
    pytester: pytest.Pytester, provider: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_agent=AGENT)
    monkeypatch.setenv("EXPECT_MODE", "record")
    recorded = pytester.runpytest_subprocess(*ARGS, "--record-mode=once")
    recorded.assert_outcomes(passed=5)
    assert recorded.ret == 0
    assert provider.requests == 4
    assert _cassettes(pytester.path) == [
        "cassettes/test_agent/test_chat.json.zst",
        "cassettes/test_agent/test_curl.json.zst",
        "cassettes/test_agent/test_param[ann].json.zst",
        next(c for c in _cassettes(pytester.path) if "bob_sub" in c),
    ]
    recorded.stdout.fnmatch_lines(["*cassettes: 4 used, 0 replayed, 4 recorded*"])

    provider.stop()
    monkeypatch.setenv("EXPECT_MODE", "replay")
    replayed = pytester.runpytest_subprocess(*ARGS)
    replayed.assert_outcomes(passed=5)
    assert replayed.ret == 0
    replayed.stdout.fnmatch_lines(["*cassettes: 4 used, 4 replayed, 0 recorded*"])

    pytester.makepyfile(test_agent=AGENT.replace('"hello agent"', '"hello changed"') + UNCHECKED)
    changed = pytester.runpytest_subprocess(*ARGS)
    changed.assert_outcomes(passed=4, failed=2)
    changed.stdout.fnmatch_lines(
        [
            "*- tapeproxy misses -*",
            "*1 request(s) had no recorded answer in cassettes/test_agent/test_chat.json.zst*",
            "*body.messages[[]0[]].content: recorded 'hello agent', requested 'hello changed'*",
        ]
    )
    assert "FAILED test_agent.py::test_unchecked" in changed.stdout.str()
    changed.stdout.fnmatch_lines(
        [
            "*test_unchecked.json.zst, which does not exist yet (record mode none)",
            "miss: GET https://localhost:*/v1/models *",
            "to record them: pytest --record-mode=once",
        ]
    )
    changed.stdout.fnmatch_lines(["*MISS test_agent.py::test_chat *", "*MISS *test_unchecked*"])


PARALLEL = """
import os, httpx, pytest

@pytest.mark.tape
@pytest.mark.parametrize("n", range(8))
def test_ask(n):
    r = httpx.post(os.environ["FAKE_URL"] + "/v1/chat/completions",
                   json={"model": "m", "messages": [{"role": "user", "content": f"q{n}"}]})
    assert r.status_code == 200, r.text
    assert f"You said: q{n}." in r.text
"""


def test_xdist_workers_record_and_replay_eight_tests(
    pytester: pytest.Pytester, provider: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_parallel=PARALLEL)
    pytester.makepyprojecttoml(f"[tool.tapeproxy]\nupstream_ca = {os.environ['FAKE_CA']!r}\n")
    recorded = pytester.runpytest_subprocess(*ARGS, "-n", "2", "--record-mode=once")
    recorded.assert_outcomes(passed=8)
    assert recorded.ret == 0
    recorded.stdout.fnmatch_lines(["*cassettes: 8 used, 0 replayed, 8 recorded*"])
    assert len(_cassettes(pytester.path)) == 8
    assert provider.requests == 8

    provider.stop()
    replayed = pytester.runpytest_subprocess(*ARGS, "-n", "2")
    replayed.assert_outcomes(passed=8)
    assert replayed.ret == 0
    replayed.stdout.fnmatch_lines(["*cassettes: 8 used, 8 replayed, 0 recorded*"])


DRIFT = """
import os, httpx, pytest

@pytest.fixture
def tape_config():
    return {"record_mode": "new_episodes"}

def ask(prompt):
    r = httpx.post(os.environ["FAKE_URL"] + "/v1/chat/completions",
                   json={"model": "m", "messages": [{"role": "user", "content": prompt}]})
    assert r.status_code == 200, r.text
    return r.json()["choices"][0]["message"]["content"]

@pytest.mark.tape
def test_default_threshold():
    ask("drift one")

@pytest.mark.tape(record_mode="once")
@pytest.mark.llm_drift_threshold(0.2)
def test_lenient_threshold():
    ask("drift two")

SIMILAR = ("the cat sat on the mat", "the cat sat on a mat today")  # ratio 0.79

@pytest.mark.llm_drift_threshold(0.7)
def test_helper_honours_the_marker(llm_drift):
    assert llm_drift.threshold == 0.7
    assert round(llm_drift.assert_similar(*SIMILAR), 2) == 0.79

def test_helper_default_threshold(llm_drift):
    with pytest.raises(AssertionError, match="similarity 0.792 is below the threshold 0.850"):
        llm_drift.assert_similar(*SIMILAR)

def test_helper_tool_calls_exactly(llm_drift):
    sdk_shaped = [{"function": {"name": "get", "arguments": '{"city": "Oslo"}'}}]
    llm_drift.assert_tool_calls([{"name": "get", "arguments": {"city": "Oslo"}}], sdk_shaped)
    with pytest.raises(AssertionError, match="tool calls differ"):
        llm_drift.assert_tool_calls([{"name": "get", "arguments": {"city": "Bergen"}}], sdk_shaped)
"""


def test_rerecording_with_all_lists_drift_beyond_each_tests_threshold(
    pytester: pytest.Pytester, provider: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_drift=DRIFT)
    monkeypatch.setenv("TAPEPROXY_UPSTREAM_CA", os.environ["FAKE_CA"])
    # The marker and the tape_config fixture come before the environment.
    monkeypatch.setenv("TAPEPROXY_RECORD_MODE", "none")
    first = pytester.runpytest_subprocess(*ARGS)
    first.assert_outcomes(passed=5)
    assert first.ret == 0
    first.stdout.fnmatch_lines(["*cassettes: 2 used, 0 replayed, 2 recorded*drifted: 0"])

    provider.answer = "Well: {prompt}, as the new model puts it."
    # The flag comes before the marker's record_mode="once".
    again = pytester.runpytest_subprocess(*ARGS, "--record-mode=all")
    again.assert_outcomes(passed=5)
    assert again.ret == 0
    assert provider.requests == 4
    again.stdout.fnmatch_lines(
        [
            "*cassettes: 2 used, 0 replayed, 2 recorded*drifted: 1",
            "DRIFT test_drift.py::test_default_threshold "
            "(cassettes/test_drift/test_default_threshold.json.zst)",
            "  POST https://localhost:*/v1/chat/completions: text similarity 0.4? < 0.85",
        ]
    )
    assert "DRIFT test_drift.py::test_lenient_threshold" not in again.stdout.str()


NO_TAPE = """
import sys

def test_nothing_heavy_is_imported(request):
    assert request.config.pluginmanager.has_plugin("tapeproxy")
    assert "tapeproxy.pytest_plugin" in sys.modules
    heavy = [m for m in ("mitmproxy", "zstandard", "tapeproxy.proxy") if m in sys.modules]
    assert heavy == []
"""


def test_a_session_without_tapes_imports_no_mitmproxy(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_plain=NO_TAPE)
    result = pytester.runpytest_subprocess(*ARGS)
    result.assert_outcomes(passed=1)
    assert result.ret == 0
    assert "cassettes:" not in result.stdout.str()  # no summary when no test used a tape


def test_cassette_names_are_per_test_and_safe_on_every_file_system(
    pytester: pytest.Pytester,
) -> None:
    items = pytester.getitems(
        """
        import pytest

        def test_plain(): pass

        class TestGroup:
            def test_method(self): pass

        @pytest.mark.parametrize("v", ["a b", "x/y", "p:q", "x" * 200])
        def test_param(v): pass
        """
    )
    names = [cassette_name(item) for item in items]
    assert names[:2] == ["test_plain.json.zst", "TestGroup.test_method.json.zst"]
    assert all(re.fullmatch(r"[\w.\[\]-]+\.json\.zst", n) and len(n) <= 120 for n in names)
    assert len(set(names)) == len(names)
    assert names[2].startswith("test_param[a_b]-")


STUBBED = """
import json, os, openai, pytest
from tapeproxy.errors import BadInputError

URL = os.environ["FAKE_URL"]

def ask(prompt, **extra):
    with openai.OpenAI(base_url=URL + "/v1", api_key="unused", max_retries=0) as client:
        answer = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}], **extra)
    return answer.choices[0].message.content

def judge(purpose, kind):
    return json.loads(ask("rate it", metadata={"purpose": purpose, "class": kind}))

@pytest.mark.tape(stubs=["stubs/marker.yaml"])
def test_marker_file_rules_answer():
    assert ask("from the marker file") == os.environ["MARKER_TEXT"]

@pytest.mark.tape
def test_config_file_rules_answer(tape):
    assert ask("from the config file") == os.environ["CONFIG_TEXT"]
    assert tape.stubs.labels() == ["config.yaml#0"]

@pytest.mark.tape
def test_fake_llm_keyed_by_purpose_and_class(tape):
    tape.stub(match={"body": {"metadata.purpose": "scoring", "metadata.class": "a"}},
              answer={"json": {"score": 8}})
    tape.stub(match={"body": {"metadata.purpose": "scoring"}}, answer={"json": {"score": 1}})
    tape.stub(match={"last_user": "turn"}, answers=[{"text": "one"}, {"text": "two"}])
    assert judge("scoring", "a") == {"score": 8}
    assert judge("scoring", "b") == {"score": 1}
    assert [ask("turn"), ask("turn"), ask("turn")] == ["one", "two", "two"]
    assert ask("from the config file") == os.environ["CONFIG_TEXT"]
    assert [c.source for c in tape.calls] == ["stub"] * 6
    assert [c.rule for c in tape.calls] == [
        "tape.stub#0", "tape.stub#1", "tape.stub#2", "tape.stub#2", "tape.stub#2",
        "config.yaml#0"]
    assert tape.calls[0].url == URL + "/v1/chat/completions"
    assert tape.sources == {"cassette": 0, "stub": 6, "fault": 0, "live": 0, "miss": 0}

@pytest.mark.tape
def test_a_bad_rule_is_named(tape):
    with pytest.raises(BadInputError, match="tape.stub#0: field answer: give one of"):
        tape.stub(answer={"text": "a", "json": {}})
    assert ask("from the config file") == os.environ["CONFIG_TEXT"]

@pytest.mark.tape
def test_rules_of_a_test_end_with_it(tape):
    assert tape.stubs.labels() == ["config.yaml#0"]
    assert ask("from the config file") == os.environ["CONFIG_TEXT"]
"""


def test_stubs_from_marker_config_and_tape_stub_answer_with_no_cassette(
    pytester: pytest.Pytester, provider: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    import random

    import yaml

    rng = random.Random("stubs-plugin")
    marker_text, config_text = (
        " ".join(rng.choice(["kelp", "onyx", "moss", "reef", "dune"]) for _ in range(5))
        for _ in range(2)
    )
    monkeypatch.setenv("MARKER_TEXT", marker_text)
    monkeypatch.setenv("CONFIG_TEXT", config_text)
    pytester.makeini(INI)
    (pytester.path / "stubs").mkdir()
    (pytester.path / "stubs" / "marker.yaml").write_text(
        yaml.safe_dump([{"match": {"last_user": "marker"}, "answer": {"text": marker_text}}])
    )
    (pytester.path / "config.yaml").write_text(
        yaml.safe_dump([{"match": {"last_user": "config"}, "answer": {"text": config_text}}])
    )
    pytester.makefile(".toml", pyproject='[tool.tapeproxy]\nstubs = ["config.yaml"]\n')
    pytester.makepyfile(test_stubbed=STUBBED)
    result = pytester.runpytest_subprocess(*ARGS)
    result.assert_outcomes(passed=5)
    assert provider.requests == 0 and provider.connections == 0
    assert _cassettes(pytester.path) == []
    result.stdout.fnmatch_lines(["*cassettes: 5 used, 0 replayed, 0 recorded, 5 stubbed*"])


FAULTED = """
import os, openai, pytest

URL = os.environ["FAKE_URL"]

def client():
    return openai.OpenAI(base_url=URL + "/v1", api_key="unused", max_retries=0)

def ask(c, prompt):
    return c.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}])

@pytest.mark.tape(faults="429=100%", fault_retry_after=2)
def test_marker_faults_fail_every_answer(tape):
    tape.stub(answer={"text": "never seen"})
    with client() as c, pytest.raises(openai.RateLimitError) as raised:
        ask(c, "hello")
    assert raised.value.response.headers["retry-after"] == "2"
    assert raised.value.response.headers["x-tapeproxy-source"] == "fault"
    assert [(x.source, x.rule) for x in tape.calls] == [("fault", "429")]
    assert tape.sources == {"cassette": 0, "stub": 0, "fault": 1, "live": 0, "miss": 0}

@pytest.mark.tape
def test_config_faults_with_seed_fail_some(tape):
    tape.stub(answer={"text": "fine"})
    outcomes = []
    with client() as c:
        for i in range(40):
            try:
                outcomes.append(ask(c, f"q{i}").choices[0].message.content)
            except openai.InternalServerError:
                outcomes.append("500")
    assert 0 < outcomes.count("500") < 40 and set(outcomes) == {"fine", "500"}
    assert tape.sources["fault"] == outcomes.count("500")

@pytest.mark.tape
def test_faults_end_with_the_test_that_set_them(tape):
    tape.stub(answer={"text": "fine"})
    with client() as c:
        assert ask(c, "q").choices[0].message.content == "fine"
"""


def test_faults_from_marker_and_config(pytester: pytest.Pytester, provider: FakeProvider) -> None:
    pytester.makeini(INI)
    pytester.makefile(".toml", pyproject='[tool.tapeproxy]\nfaults = "500=50%"\nseed = 3\n')
    pytester.makepyfile(
        test_faulted=FAULTED.replace(
            "@pytest.mark.tape\ndef test_faults_end",
            '@pytest.mark.tape(faults="")\ndef test_faults_end',
        )
    )
    result = pytester.runpytest_subprocess(*ARGS)
    result.assert_outcomes(passed=3)
    assert provider.requests == 0 and provider.connections == 0


PROFILED = """
import os, time, openai, pytest

URL = os.environ["FAKE_URL"]

def ask(prompt):
    with openai.OpenAI(base_url=URL + "/v1", api_key="unused", max_retries=0) as c:
        return c.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}])

@pytest.mark.tape(profile="slow.toml")
def test_profile_sets_usage_and_timing(tape):
    tape.stub(answer={"text": "fine"})
    start = time.monotonic()
    done = ask("hello")
    assert time.monotonic() - start >= 0.25  # a total drawn from 300-310 ms
    assert (done.usage.prompt_tokens, done.usage.completion_tokens) == (7, 11)

@pytest.mark.tape(profile="failing.toml")
def test_profile_faults(tape):
    tape.stub(answer={"text": "fine"})
    with pytest.raises(openai.InternalServerError):
        ask("hello")

@pytest.mark.tape
def test_no_profile_afterwards(tape):
    tape.stub(answer={"text": "fine"})
    start = time.monotonic()
    assert ask("hello").choices[0].message.content == "fine"
    assert time.monotonic() - start < 0.25
"""


def test_profile_from_the_marker_applies_usage_timing_and_faults_per_test(
    pytester: pytest.Pytester, provider: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TAPEPROXY_LATENCY")  # a latency set anywhere wins over the profile's
    pytester.makeini(INI)
    pytester.makefile(
        ".toml",
        slow='format = "tapeproxy-profile/1"\n[latency]\ntotal_ms = [300.0, 310.0]\n'
        "[usage]\ninput = [7, 7]\noutput = [11, 11]\n",
        failing='format = "tapeproxy-profile/1"\n[faults]\n"500" = 1.0\n',
    )
    pytester.makepyfile(test_profiled=PROFILED)
    result = pytester.runpytest_subprocess(*ARGS)
    result.assert_outcomes(passed=3)
    assert provider.requests == 0 and provider.connections == 0
