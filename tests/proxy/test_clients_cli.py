"""Real clients (openai, anthropic, httpx, requests, curl) run as CMD under `tapeproxy record`
and then `tapeproxy replay` with the upstream stopped: same output, no upstream connection."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tapeproxy.fakeprovider import FakeProvider
from tapeproxy.testing_ca import ThrowawayCA

CLIENTS = Path(__file__).parent / "clients"


def _tapeproxy(
    verb: str, cassette: Path, confdir: Path, ca: ThrowawayCA, cmd: list[str]
) -> subprocess.CompletedProcess[str]:
    args = [sys.executable, "-m", "tapeproxy", verb, "--cassette", str(cassette)]
    args += ["--confdir", str(confdir), "--no-proxy", ""]
    if verb == "record":
        args += ["--upstream-ca", str(ca.ca_cert)]
    return subprocess.run([*args, "--", *cmd], capture_output=True, text=True, timeout=120)


def _curl(url: str) -> list[str]:
    body = '{"model": "m", "stream": true, "messages": [{"role": "user", "content": "curl"}]}'
    return [
        "curl",
        "-sS",
        "-N",
        "--fail-with-body",
        "-H",
        "content-type: application/json",
        "-d",
        body,
        url + "/v1/chat/completions",
    ]


@pytest.mark.parametrize("client", ["openai", "anthropic", "httpx", "requests", "curl"])
def test_record_then_replay_gives_identical_output(
    client: str, tmp_path: Path, confdir: Path, throwaway_ca: ThrowawayCA
) -> None:
    cassette = tmp_path / "cassettes" / f"{client}.json.zst"
    with FakeProvider(throwaway_ca.server_context()) as provider:
        cmd = (
            _curl(provider.url)
            if client == "curl"
            else [sys.executable, str(CLIENTS / f"{client}_client.py"), provider.url]
        )
        recorded = _tapeproxy("record", cassette, confdir, throwaway_ca, cmd)
        assert recorded.returncode == 0, recorded.stderr
        seen = provider.connections
    replayed = _tapeproxy("replay", cassette, confdir, throwaway_ca, cmd)
    assert replayed.returncode == 0, replayed.stderr
    assert replayed.stdout == recorded.stdout
    assert recorded.stdout.strip()
    assert provider.connections == seen  # the provider was stopped: nothing could reach it
    assert "misses: 0" in replayed.stderr


def test_replay_miss_exits_3_with_the_difference(
    tmp_path: Path, confdir: Path, throwaway_ca: ThrowawayCA
) -> None:
    cassette = tmp_path / "c.json.zst"
    with FakeProvider(throwaway_ca.server_context()) as provider:
        url = provider.url
        assert _tapeproxy("record", cassette, confdir, throwaway_ca, _curl(url)).returncode == 0
        seen = provider.requests
        changed = _curl(url)
        changed[changed.index("-d") + 1] = changed[changed.index("-d") + 1].replace("curl", "other")
        changed.remove("--fail-with-body")
        replayed = _tapeproxy("replay", cassette, confdir, throwaway_ca, changed)
        assert provider.requests == seen
    assert replayed.returncode == 3, replayed.stderr
    assert '"x-tapeproxy-miss"' not in replayed.stdout
    assert "body.messages[0].content" in replayed.stdout  # the 599 body names the field
    assert "body.messages[0].content: recorded 'curl', requested 'other'" in replayed.stderr
