"""The journal (`--journal`): every exchange the proxy answered, as the client got it, with
its source, through a real proxy against the fake provider on 127.0.0.1."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tapeproxy.cassettes import store
from tapeproxy.cassettes.model import Interaction, body_bytes
from tapeproxy.fakeprovider import FakeProvider
from tapeproxy.providers.stubs import Stubs
from tapeproxy.proxy.faults import Faults, parse_faults
from tapeproxy.proxy.latency import Latency
from tapeproxy.review.stats import collect
from tests.proxy.conftest import ProxyFactory, client_for, written_bytes


def _chat(prompt: str, stream: bool = False) -> dict[str, Any]:
    return {
        "model": "gpt-4o-mini",
        "stream": stream,
        "messages": [{"role": "user", "content": prompt}],
    }


def _stubs(tmp_path: Path, rules: list[dict[str, Any]]) -> Stubs:
    path = tmp_path / "stubs.yaml"
    path.write_text(yaml.safe_dump(rules), encoding="utf-8")
    return Stubs.from_files([path], 0)


@pytest.fixture
def recording(tmp_path: Path, run_proxy: ProxyFactory, provider: FakeProvider) -> Path:
    """A cassette with a plain and a streamed chat."""
    cassette = tmp_path / "rec.json.zst"
    with run_proxy(cassette, "all") as runner, client_for(runner) as http:
        url = provider.url + "/v1/chat/completions"
        assert http.post(url, json=_chat("plain one")).status_code == 200
        assert http.post(url, json=_chat("streamed one", True)).status_code == 200
    return cassette


def _by_source(journal: Path) -> dict[str, list[Interaction]]:
    cassette = store.load(journal)
    out: dict[str, list[Interaction]] = {}
    for it in cassette.interactions:
        out.setdefault(it.source or "?", []).append(it)
    return out


def test_journal_holds_every_answer_with_its_source_as_the_client_got_it(
    tmp_path: Path, run_proxy: ProxyFactory, provider: FakeProvider, recording: Path
) -> None:
    journal = tmp_path / "out" / "journal.json.zst"
    key = "sk-proj-" + secrets.token_urlsafe(40)
    stubs = _stubs(
        tmp_path, [{"match": {"last_user": "stubbed"}, "answer": {"text": "from a stub"}}]
    )
    connections = provider.connections
    url = provider.url + "/v1/chat/completions"
    with (
        run_proxy(recording, "none", stubs=stubs, journal=journal) as runner,
        client_for(runner, headers={"authorization": f"Bearer {key}"}) as http,
    ):
        plain = http.post(url, json=_chat("plain one"))
        streamed = http.post(url, json=_chat("streamed one", True))
        stubbed = http.post(url, json=_chat("stubbed please"))
        missed = http.post(url, json=_chat("never recorded"))
    assert provider.connections == connections  # a replay with a journal stays offline
    assert [r.status_code for r in (plain, streamed, stubbed, missed)] == [200, 200, 200, 599]

    found = _by_source(journal)
    assert sorted((s, len(v)) for s, v in found.items()) == [
        ("cassette", 2),
        ("miss", 1),
        ("stub", 1),
    ]
    meta = store.load(journal).meta.journal
    assert meta is not None and meta.cassette == str(recording) and meta.mode == "none"
    # Each stored answer is the body the client got, in arrival order of the requests.
    order = [it.request for it in store.load(journal).interactions]
    assert [json.loads(body_bytes(r.body))["messages"][0]["content"] for r in order] == [
        "plain one",
        "streamed one",
        "stubbed please",
        "never recorded",
    ]
    hits = {json.loads(body_bytes(it.request.body))["stream"]: it for it in found["cassette"]}
    assert body_bytes(hits[False].response.body) == plain.content  # type: ignore[union-attr]
    stream = hits[True].response
    assert stream is not None and body_bytes(stream.body) == streamed.content
    assert stream.chunks is not None and len(stream.chunks) > 2  # kept piece by piece
    offsets = [at for at, _ in stream.chunks]
    assert offsets == sorted(offsets) and offsets[-1] > offsets[0]
    assert found["stub"][0].detail == "stubs.yaml#0"  # the rule that answered
    assert found["miss"][0].response is not None and found["miss"][0].response.status == 599
    # Keys are the cassette's: a journaled hit has the key of the recorded interaction.
    recorded_keys = {it.key for it in store.load(recording).interactions}
    assert {it.key for it in found["cassette"]} == recorded_keys
    # The credential the client sent is nowhere on disk; the source header is not stored.
    on_disk = written_bytes(journal.parent)
    assert key.encode() not in on_disk
    assert b"x-tapeproxy-source" not in on_disk

    # stats reads the journal by source
    stats = collect([(str(journal), store.load(journal))])
    assert stats.by_source == {"cassette": 2, "stub": 1, "miss": 1}


def test_journal_keeps_faults_with_their_kind_and_what_the_client_got(
    tmp_path: Path, run_proxy: ProxyFactory, provider: FakeProvider, recording: Path
) -> None:
    url = provider.url + "/v1/chat/completions"
    for spec, prompt, stream in (
        ("429=100%", "plain one", False),
        ("reset=100%", "plain one", False),
        ("truncate=100%", "streamed one", True),
    ):
        journal = tmp_path / f"{spec[:-5]}.json.zst"
        faults = Faults(parse_faults(spec), seed=3)
        with (
            run_proxy(
                recording, "none", faults=faults, journal=journal, latency=Latency(0.0)
            ) as runner,
            client_for(runner) as http,
        ):
            try:
                got: bytes | None = http.post(url, json=_chat(prompt, stream)).content
            except httpx.HTTPError:
                got = None
        (it,) = store.load(journal).interactions
        kind = spec.split("=")[0]
        assert (it.source, it.detail) == ("fault", kind)
        meta = store.load(journal).meta.journal
        assert meta is not None and meta.faults == spec and meta.seed == 3
        if kind == "429":
            assert it.response is not None and it.response.status == 429
            assert dict(it.response.headers)["retry-after"] == "1"
            assert got is not None and body_bytes(it.response.body) == got
        elif kind == "reset":
            assert it.response is None and it.error is not None and got is None
        else:  # a strict prefix of the recorded stream, then the connection broke
            recorded = {
                json.loads(body_bytes(r.request.body))["stream"]: r
                for r in store.load(recording).interactions
            }[True]
            whole = body_bytes(recorded.response.body)  # type: ignore[union-attr]
            assert it.error is not None and it.response is not None
            part = body_bytes(it.response.body)
            assert whole.startswith(part) and len(part) < len(whole)


def test_journal_and_report_options_from_the_command_line(
    tmp_path: Path, recording: Path, confdir: Path, provider: FakeProvider, throwaway_ca: Any
) -> None:
    journal, report = tmp_path / "j" / "run.json.zst", tmp_path / "r" / "report.json"
    script = tmp_path / "client.py"
    script.write_text(
        "import httpx, os, ssl\n"
        "ca = ssl.create_default_context(cafile=os.environ['SSL_CERT_FILE'])\n"
        f"r = httpx.post({provider.url + '/v1/chat/completions'!r}, json={_chat('plain one')!r},"
        " verify=ca, headers={'user-agent': 'cli-client/1'})\n"
        "print(r.status_code)\n",
        encoding="utf-8",
    )
    done = subprocess.run(
        [
            sys.executable, "-m", "tapeproxy", "replay", "--cassette", str(recording),
            "--confdir", str(confdir), "--no-proxy", "",
            "--journal", str(journal), "--report", str(report),
            "--", sys.executable, str(script),
        ],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "200"
    assert f"journal: {journal} (1 exchanges)" in done.stderr
    assert "clients: 1, none retried a request" in done.stderr
    (it,) = store.load(journal).interactions
    assert it.source == "cassette"
    doc = json.loads(report.read_text(encoding="utf-8"))
    assert doc["answers"] == {"total": 1, "by_source": {"cassette": 1}, "faults": {}}
    assert doc["clients"][0]["client"] == "cli-client/1"
    assert doc["clients"][0]["verdicts"] == {}


def test_journal_of_a_recording_run_holds_the_live_answers(
    tmp_path: Path, run_proxy: ProxyFactory, provider: FakeProvider
) -> None:
    journal = tmp_path / "live-journal.json.zst"
    with (
        run_proxy(tmp_path / "new.json.zst", "all", journal=journal) as runner,
        client_for(runner) as http,
    ):
        got = http.post(provider.url + "/v1/chat/completions", json=_chat("hello", True))
    (it,) = store.load(journal).interactions
    assert it.source == "live" and it.response is not None
    assert body_bytes(it.response.body) == got.content
    assert it.key == store.load(tmp_path / "new.json.zst").interactions[0].key
