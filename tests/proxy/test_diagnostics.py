"""Tests for tapeproxy/proxy/diagnostics.py and the summary's explanations: an upstream whose
certificate is not trusted, a client that rejects the proxy's certificate, and a run whose
requests all went around the proxy. Each says its cause and the flag that fixes it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tapeproxy.cassettes import store
from tapeproxy.fakeprovider import FakeProvider
from tapeproxy.testing_ca import ThrowawayCA


def _record(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tapeproxy", "record", *args],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def _curl(url: str, *options: str) -> list[str]:
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    return ["curl", "-sS", "-H", "content-type: application/json", "-d", body, *options, url]


def test_an_untrusted_upstream_certificate_is_counted_apart_and_explained(
    tmp_path: Path, provider: FakeProvider, confdir: Path
) -> None:
    cassette = tmp_path / "c.json.zst"
    args = ["--cassette", str(cassette), "--confdir", str(confdir), "--no-proxy", "", "--"]
    done = _record(*args, *_curl(provider.url + "/v1/chat/completions"))  # no --upstream-ca
    assert "recorded: 0" in done.stderr, done.stderr
    assert "upstream failures: 1" in done.stderr
    assert "--upstream-ca FILE" in done.stderr
    assert provider.requests == 0
    (failed,) = store.load(cassette).interactions  # kept as what happened: an error
    assert failed.response is None and failed.error is not None


def test_a_client_that_rejects_the_proxy_certificate_is_named(
    tmp_path: Path, provider: FakeProvider, throwaway_ca: ThrowawayCA, confdir: Path
) -> None:
    args = ["--cassette", str(tmp_path / "c.json.zst"), "--confdir", str(confdir)]
    args += ["--no-proxy", "", "--upstream-ca", str(throwaway_ca.ca_cert), "--"]
    # curl told to trust only the provider's CA, as a client with its own trust store is
    curl = _curl(provider.url + "/v1/chat/completions", "--cacert", str(throwaway_ca.ca_cert))
    done = _record(*args, *curl)
    assert done.returncode != 0
    assert "clients that rejected the proxy's certificate: 1" in done.stderr, done.stderr
    assert "tapeproxy ca" in done.stderr


def test_requests_that_went_around_the_proxy_are_explained(
    tmp_path: Path, provider: FakeProvider, throwaway_ca: ThrowawayCA, confdir: Path
) -> None:
    cassette = tmp_path / "c.json.zst"
    args = ["--cassette", str(cassette), "--confdir", str(confdir), "--"]
    # the default --no-proxy: a loopback upstream is reached directly
    curl = _curl(provider.url + "/v1/chat/completions", "--cacert", str(throwaway_ca.ca_cert))
    done = _record(*args, *curl)
    assert done.returncode == 0, done.stderr
    assert provider.requests == 1 and not cassette.exists()
    assert "nothing reached the proxy" in done.stderr
    assert "--no-proxy ''" in done.stderr


def test_replay_that_nothing_reached_says_so_and_names_the_route_fix(
    tmp_path: Path, provider: FakeProvider, throwaway_ca: ThrowawayCA, confdir: Path
) -> None:
    from tapeproxy.cassettes import store
    from tapeproxy.cassettes.model import new_cassette

    cassette = tmp_path / "c.json.zst"
    store.save(cassette, new_cassette("test", "2026-01-01T00:00:00Z"))
    curl = _curl(provider.url + "/v1/chat/completions", "--cacert", str(throwaway_ca.ca_cert))
    done = subprocess.run(
        [sys.executable, "-m", "tapeproxy", "replay", "--cassette", str(cassette), "--confdir",
         str(confdir), "--", *curl],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert "nothing reached the proxy" in done.stderr, done.stderr
    assert "OPENAI_BASE_URL=http://127.0.0.1:" in done.stderr  # the fix that needs no proxy
