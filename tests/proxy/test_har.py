"""HAR 1.2 both ways: an export has every field HAR requires; importing it gives a cassette
with the same keys that replays the same SDK calls identically; a credential in an imported
HAR never reaches the cassette."""

from __future__ import annotations

import json
import secrets
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tapeproxy.cassettes import store
from tapeproxy.fakeprovider import FakeProvider
from tapeproxy.proxy.runner import ProxyRunner
from tests.proxy.conftest import ProxyFactory, written_bytes

_ENTRY = ("startedDateTime", "time", "request", "response", "cache", "timings")
_REQUEST = ("method", "url", "httpVersion", "cookies", "headers", "queryString", "headersSize",
            "bodySize")  # fmt: skip
_RESPONSE = ("status", "statusText", "httpVersion", "cookies", "headers", "content",
             "redirectURL", "headersSize", "bodySize")  # fmt: skip


def _client(runner: ProxyRunner, provider: FakeProvider) -> openai.OpenAI:
    ca = ssl.create_default_context(cafile=str(runner.config.ca_cert()))
    http = httpx.Client(proxy=runner.url, verify=ca, timeout=30)
    return openai.OpenAI(base_url=provider.url + "/v1", api_key="sk-x", http_client=http)


def _calls(client: openai.OpenAI) -> list[str]:
    plain = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "plain question"}]
    )
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "streamed question"}],
        stream=True,
    )
    pieces = [c.choices[0].delta.content or "" for c in stream if c.choices]
    return [plain.choices[0].message.content or "", "".join(pieces)]


def _tapeproxy(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tapeproxy", *args],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_export_import_round_trip_replays_the_same_calls(
    tmp_path: Path, run_proxy: ProxyFactory, provider: FakeProvider
) -> None:
    cassette = tmp_path / "rec.json.zst"
    with run_proxy(cassette, "all") as runner, _client(runner, provider) as client:
        answers = _calls(client)

    har = tmp_path / "rec.har"
    done = _tapeproxy("export", "--har", str(cassette), "-o", str(har))
    assert done.returncode == 0, done.stderr
    log = json.loads(har.read_text(encoding="utf-8"))["log"]
    assert log["version"] == "1.2" and log["pages"] == [] and log["creator"]["name"] == "tapeproxy"
    assert len(log["entries"]) == 2
    for entry in log["entries"]:
        assert all(name in entry for name in _ENTRY)
        assert all(name in entry["request"] for name in _REQUEST)
        assert all(name in entry["response"] for name in _RESPONSE)
        assert {"size", "mimeType", "text"} <= set(entry["response"]["content"])
        assert {"send", "wait", "receive"} <= set(entry["timings"])
        assert entry["request"]["postData"]["mimeType"] == "application/json"
    streamed = next(e for e in log["entries"] if "stream" in e["request"]["postData"]["text"])
    assert streamed["response"]["content"]["text"].startswith("data: ")  # a stream as text

    out = tmp_path / "imported"
    done = _tapeproxy("import-har", str(har), "--out", str(out))
    assert done.returncode == 0, done.stderr
    imported = store.load(out / "rec.json.zst")
    original = store.load(cassette)
    assert [it.key for it in imported.interactions] == [it.key for it in original.interactions]
    assert [it.response for it in imported.interactions] == [
        it.response for it in original.interactions
    ]

    provider.stop()
    connections = provider.connections
    with (
        run_proxy(out / "rec.json.zst", "none") as runner,
        _client(runner, provider) as client,
    ):
        assert _calls(client) == answers
        assert runner.session.tally()["hits"] == 2
    assert provider.connections == connections


def _har(entries: list[dict[str, Any]]) -> dict[str, Any]:
    return {"log": {"version": "1.2", "creator": {"name": "devtools"}, "entries": entries}}


def test_an_imported_har_is_redacted_and_browser_fields_are_read(tmp_path: Path) -> None:
    key = "sk-proj-" + secrets.token_urlsafe(40)
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    entry = {
        "startedDateTime": "2026-01-01T00:00:00.000Z",
        "time": 120.5,
        "request": {
            "method": "POST",
            "url": "https://api.openai.com/v1/chat/completions",
            "httpVersion": "HTTP/2",
            "headers": [
                {"name": ":authority", "value": "api.openai.com"},  # HTTP/2 pseudo-header
                {"name": "authorization", "value": f"Bearer {key}"},
                {"name": "content-type", "value": "application/json"},
            ],
            "postData": {"mimeType": "application/json", "text": body},
        },
        "response": {
            "status": 200,
            "statusText": "OK",
            "httpVersion": "HTTP/2",
            "headers": [
                {"name": "content-type", "value": "application/json"},
                {"name": "content-encoding", "value": "gzip"},  # devtools keeps it, decoded
            ],
            "content": {"size": 17, "mimeType": "application/json", "text": '{"echo": "ok"}'},
        },
        "timings": {"send": 0, "wait": 100.0, "receive": 20.5},
    }
    aborted = {
        "startedDateTime": "2026-01-01T00:00:01.000Z",
        "time": 5,
        "request": {"method": "GET", "url": "https://api.openai.com/v1/models", "headers": []},
        "response": {"status": 0, "headers": [], "content": {"size": 0, "mimeType": ""}},
        "timings": {"wait": -1},
    }
    har = tmp_path / "session.har"
    har.write_text(json.dumps(_har([entry, aborted])), encoding="utf-8")
    out = tmp_path / "out"
    done = _tapeproxy("import-har", str(har), "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert key.encode() not in written_bytes(out)  # redacted before anything touched disk
    first, second = store.load(out / "session.json.zst").interactions
    assert [k for k, _ in first.request.headers] == ["authorization", "content-type"]
    assert first.response is not None and first.response.body is not None
    assert first.response.body.text == '{"echo": "ok"}'
    assert ("content-encoding", "gzip") in first.response.headers  # as recorded; replay drops it
    assert (first.timing.ttfb_ms, first.timing.total_ms) == (100.0, 120.5)
    assert second.response is None and second.error is not None


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("not json", "not JSON"),
        ('{"log": {}}', "no log.entries"),
        ('{"log": {"entries": [{"request": {}}]}}', "request and response"),
    ],
)
def test_a_bad_har_writes_nothing_and_exits_2(tmp_path: Path, content: str, says: str) -> None:
    good = tmp_path / "good.har"
    good.write_text(json.dumps(_har([])), encoding="utf-8")
    bad = tmp_path / "bad.har"
    bad.write_text(content, encoding="utf-8")
    done = _tapeproxy("import-har", str(good), str(bad), "--out", str(tmp_path / "out"))
    assert done.returncode == 2 and says in done.stderr
    assert not (tmp_path / "out").exists()
