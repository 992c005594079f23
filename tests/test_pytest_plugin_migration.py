"""The pytest plugin for a suite migrating from pytest-recording: both plugins in one run
sharing ``--record-mode``, replay timing off by default, ``rewrite``, and no request leaking
past the proxy unnoticed (clients made at import time). Driven with `pytester` subprocesses
against a fake provider on 127.0.0.1, as tests/test_pytest_plugin.py does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tapeproxy.cassettes import store
from tapeproxy.fakeprovider import FakeProvider
from tapeproxy.testing_ca import ThrowawayCA
from tests.plugin_env import fake_provider
from tests.test_pytest_plugin import ARGS, INI

pytest_plugins = ["pytester"]


@pytest.fixture
def provider(
    throwaway_ca: ThrowawayCA, confdir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[FakeProvider]:
    """A fake provider and the environment of the generated suites (latency left default)."""
    yield from fake_provider(throwaway_ca, confdir, monkeypatch, TAPEPROXY_LATENCY="")


def _config(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    ca = os.environ["FAKE_CA"]
    pytester.makepyprojecttoml(f"[tool.tapeproxy]\nupstream_ca = {ca!r}\n")


BOTH = """
import os, ssl, httpx, pytest

URL = os.environ["FAKE_URL"]

def ask(prompt):
    body = {"model": "m", "messages": [{"role": "user", "content": prompt}]}
    # a tape test trusts the proxy's CA (SSL_CERT_FILE); a vcr test talks to the provider
    ca = os.environ["SSL_CERT_FILE" if "TAPEPROXY_MODE" in os.environ else "FAKE_CA"]
    with httpx.Client(verify=ssl.create_default_context(cafile=ca)) as c:
        return c.post(URL + "/v1/chat/completions", json=body).json()

@pytest.fixture(scope="module")
def vcr_config():
    return {"match_on": ["method", "uri", "body"]}

@pytest.mark.vcr
def test_with_vcr():
    assert "You said: vcr" in ask("vcr")["choices"][0]["message"]["content"]

@pytest.mark.tape
def test_with_tape(tape):
    assert tape.latency.is_none  # pytest's default: replay as fast as it can
    assert "You said: tape" in ask("tape")["choices"][0]["message"]["content"]

@pytest.mark.tape(latency="recorded")
def test_timed(tape):
    assert not tape.latency.is_none

@pytest.mark.tape
def test_no_request():
    pass
"""


def test_both_plugins_share_record_mode_and_replay_offline(
    pytester: pytest.Pytester, provider: FakeProvider
) -> None:
    pytest.importorskip("pytest_recording", reason="pytest-recording is a dev dependency")
    _config(pytester)
    pytester.makepyfile(test_both=BOTH)
    recorded = pytester.runpytest_subprocess(*ARGS, "--record-mode=once")
    recorded.assert_outcomes(passed=4)
    assert "recording-" in recorded.stdout.str()  # pytest-recording was loaded
    assert provider.requests == 2
    cassettes = sorted(p.relative_to(pytester.path).as_posix() for p in pytester.path.rglob("*"))
    assert "cassettes/test_both/test_with_vcr.yaml" in cassettes
    assert "cassettes/test_both/test_with_tape.json.zst" in cassettes
    # a recorded test that made no request has an (empty) cassette, so replay can tell
    empty = store.load(pytester.path / "cassettes/test_both/test_no_request.json.zst")
    assert empty.interactions == ()

    provider.stop()
    replayed = pytester.runpytest_subprocess(*ARGS)
    replayed.assert_outcomes(passed=4)
    help_text = pytester.runpytest_subprocess("--help").stdout.str()
    assert "--tape-record-mode" in help_text and "--record-mode" in help_text


def test_without_pytest_recording_the_plugin_registers_record_mode(
    pytester: pytest.Pytester, provider: FakeProvider
) -> None:
    _config(pytester)
    pytester.makepyfile(test_tape=BOTH.split("@pytest.mark.vcr")[0] + TAPE_ONLY)
    recorded = pytester.runpytest_subprocess(*ARGS, "-p", "no:recording", "--record-mode=once")
    recorded.assert_outcomes(passed=1)
    assert "recording-" not in recorded.stdout.str()
    assert provider.requests == 1


TAPE_ONLY = """
@pytest.mark.tape
def test_with_tape(tape):
    assert "You said: tape" in ask("tape")["choices"][0]["message"]["content"]
"""


MODULE_LEVEL = """
import os, openai, pytest

# Made at import time, before any test sets HTTPS_PROXY: it never sees the proxy variables
# unless the proxy was started for the whole session.
CLIENT = openai.OpenAI(base_url=os.environ["FAKE_URL"] + "/v1", api_key="k", max_retries=0)

@pytest.mark.tape
def test_module_level_client():
    messages = [{"role": "user", "content": "module"}]
    answer = CLIENT.chat.completions.create(model="m", messages=messages)
    assert "You said: module" in answer.choices[0].message.content
"""


def test_a_client_made_at_import_cannot_reach_the_network_unnoticed(
    pytester: pytest.Pytester, provider: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    _config(pytester)
    pytester.makepyfile(test_module=MODULE_LEVEL)
    # The fake provider's CA, for the client that bypasses the proxy (as a real one would
    # trust the real provider's certificate).
    monkeypatch.setenv("SSL_CERT_FILE", os.environ["FAKE_CA"])
    leaked = pytester.runpytest_subprocess(*ARGS)
    leaked.assert_outcomes(failed=1)
    leaked.stdout.fnmatch_lines(["*no request went through the proxy*", "*session_proxy*"])

    before = provider.requests
    recorded = pytester.runpytest_subprocess(*ARGS, "--tape-session-proxy", "--record-mode=once")
    recorded.assert_outcomes(passed=1)
    assert provider.requests == before + 1
    cassette = pytester.path / "cassettes/test_module/test_module_level_client.json.zst"
    assert len(store.load(cassette).interactions) == 1

    provider.stop()
    (pytester.path / "pyproject.toml").write_text(
        (pytester.path / "pyproject.toml").read_text() + "\nsession_proxy = true\n"
    )
    replayed = pytester.runpytest_subprocess(*ARGS)
    replayed.assert_outcomes(passed=1)


REWRITE = """
import os, httpx, pytest

@pytest.mark.tape
def test_prompts():
    for prompt in os.environ["PROMPTS"].split(","):
        body = {"model": "m", "messages": [{"role": "user", "content": prompt}]}
        r = httpx.post(os.environ["FAKE_URL"] + "/v1/chat/completions", json=body)
        assert r.status_code == 200
"""


def test_rewrite_starts_the_cassette_empty_and_diff_shows_what_went(
    pytester: pytest.Pytester, provider: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    _config(pytester)
    pytester.makepyfile(test_rw=REWRITE)
    cassette = pytester.path / "cassettes/test_rw/test_prompts.json.zst"
    monkeypatch.setenv("PROMPTS", "a,b,c")
    pytester.runpytest_subprocess(*ARGS, "--record-mode=once").assert_outcomes(passed=1)
    old = pytester.path / "old.json.zst"
    old.write_bytes(cassette.read_bytes())
    monkeypatch.setenv("PROMPTS", "a2")
    pytester.runpytest_subprocess(*ARGS, "--record-mode=all").assert_outcomes(passed=1)
    assert len(store.load(cassette).interactions) == 4  # all keeps what was not asked again
    pytester.runpytest_subprocess(*ARGS, "--record-mode=rewrite").assert_outcomes(passed=1)
    assert len(store.load(cassette).interactions) == 1
    diff = subprocess.run(
        [sys.executable, "-m", "tapeproxy", "diff", "--format", "json", str(old), str(cassette)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    (summary,) = (c["summary"] for c in json.loads(diff.stdout)["cassettes"])
    assert (summary["removed"], summary["added"]) == (3, 1), summary


PARAMETRISED = """
import os, ssl, httpx, pytest

def ask(prompt):
    body = {"model": "m", "messages": [{"role": "user", "content": prompt}]}
    ca = os.environ["SSL_CERT_FILE" if "TAPEPROXY_MODE" in os.environ else "FAKE_CA"]
    with httpx.Client(verify=ssl.create_default_context(cafile=ca)) as c:
        return c.post(os.environ["FAKE_URL"] + "/v1/chat/completions", json=body).json()

WHO = ["ann", "bob/sub", "c d", "x:y?z"]

@pytest.mark.MARKER
@pytest.mark.parametrize("who", WHO)
def test_param(who):
    assert ask(who)["choices"][0]["message"]["content"].startswith(f"You said: {who}.")

class TestGroup:
    @pytest.mark.MARKER
    def test_in_class(self):
        assert "You said: grouped" in ask("grouped")["choices"][0]["message"]["content"]
"""


def test_a_pytest_recording_suite_imported_for_pytest_replays_every_test(
    pytester: pytest.Pytester, provider: FakeProvider
) -> None:
    pytest.importorskip("pytest_recording", reason="pytest-recording is a dev dependency")
    _config(pytester)
    pytester.makepyfile(test_suite=PARAMETRISED.replace("MARKER", "vcr"))
    recorded = pytester.runpytest_subprocess(*ARGS, "--record-mode=once")
    recorded.assert_outcomes(passed=5)
    yamls = sorted((pytester.path / "cassettes" / "test_suite").glob("*.yaml"))
    assert len(yamls) == 5
    done = subprocess.run(
        [sys.executable, "-m", "tapeproxy", "import-vcr", "--for-pytest", str(pytester.path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "Imported 5 file(s), 5 interaction(s)" in done.stdout

    provider.stop()
    before = provider.requests
    pytester.makepyfile(test_suite=PARAMETRISED.replace("MARKER", "tape"))
    replayed = pytester.runpytest_subprocess(*ARGS, "-p", "no:recording")
    replayed.assert_outcomes(passed=5)
    replayed.stdout.fnmatch_lines(["*cassettes: 5 used, 5 replayed, 0 recorded*"])
    assert provider.requests == before
