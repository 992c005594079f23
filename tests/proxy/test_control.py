"""The control API: a test runner other than pytest (here a Node script) switches per-test
cassettes over HTTP; each is written under --cassette-dir and replayed from there."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tapeproxy.cassettes import store
from tapeproxy.fakeprovider import FakeProvider
from tapeproxy.proxy.control import _loopback
from tests.proxy.conftest import ProxyFactory

_RUNNER = """
const control = process.env.TAPEPROXY_CONTROL_URL;
async function use(name) {  // what a beforeEach does
  const r = await fetch(control + "/cassette", {
    method: "POST", headers: {"content-type": "application/json"}, body: JSON.stringify({name}),
  });
  if (!r.ok) throw new Error(await r.text());
}
async function ask(question) {
  const r = await fetch(process.env.OPENAI_BASE_URL + "/chat/completions", {
    method: "POST",
    headers: {"content-type": "application/json", "authorization": "Bearer sk-x"},
    body: JSON.stringify({model: "gpt-4o-mini", messages: [{role: "user", content: question}]}),
  });
  const doc = await r.json();
  return r.status === 200 ? `${r.status} ${doc.choices[0].message.content}` : `${r.status}`;
}
await use("suite/first");
console.log(await ask("the first test's question"));
await use("suite/second");
console.log(await ask("the second test's question"));
if (process.argv[2] === "wrong") {
  await use("suite/first");
  console.log(await ask("the second test's question"));
}
const status = await (await fetch(control + "/status")).json();
console.log(status.cassette.split("/").slice(-2).join("/"), status.counts.misses);
"""


def _run(
    tmp_path: Path, confdir: Path, provider: FakeProvider, ca: Any, command: str, *args: str
) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "runner.mjs"
    script.write_text(_RUNNER, encoding="utf-8")
    environ = {**os.environ, "OPENAI_BASE_URL": provider.url + "/v1"}
    return subprocess.run(
        [sys.executable, "-m", "tapeproxy", command, "--cassette-dir", str(tmp_path / "tapes"),
         "--confdir", str(confdir), "--upstream-ca", str(ca.ca_cert),
         "--", "node", str(script), *args],
        capture_output=True, text=True, timeout=120, check=False, env=environ,
    )  # fmt: skip


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_a_node_test_runner_switches_cassettes_through_the_control_api(
    tmp_path: Path, confdir: Path, provider: FakeProvider, throwaway_ca: Any
) -> None:
    recorded = _run(tmp_path, confdir, provider, throwaway_ca, "record")
    assert recorded.returncode == 0, recorded.stderr
    first, second, status = recorded.stdout.splitlines()
    assert first.startswith("200 ") and "first test" in first and "second test" in second
    assert status == "suite/second.json.zst 0"
    tapes = tmp_path / "tapes" / "suite"
    assert sorted(p.name for p in tapes.iterdir()) == ["first.json.zst", "second.json.zst"]
    asked = [
        json.loads(store.load(tapes / name).interactions[0].request.body.text or "")  # type: ignore[union-attr]
        for name in ("first.json.zst", "second.json.zst")
    ]
    assert [a["messages"][0]["content"] for a in asked] == [
        "the first test's question",
        "the second test's question",
    ]
    assert "cassettes used before this one: 2" in recorded.stderr

    provider.stop()
    replayed = _run(tmp_path, confdir, provider, throwaway_ca, "replay")
    assert replayed.returncode == 0, replayed.stderr
    assert replayed.stdout == recorded.stdout
    # a question asked under the wrong cassette misses, and the run says so (exit 3)
    wrong = _run(tmp_path, confdir, provider, throwaway_ca, "replay", "wrong")
    assert wrong.returncode == 3, wrong.stderr
    assert wrong.stdout.splitlines()[2] == "599"


def test_control_requests_are_checked(
    tmp_path: Path, run_proxy: ProxyFactory, provider: FakeProvider
) -> None:
    with run_proxy(tmp_path / "start.json.zst", "all", cassette_dir=tmp_path / "d") as runner:
        assert runner.address is not None
        host, port = runner.address
        control = f"http://{host}:{port}/_tapeproxy"
        with httpx.Client(trust_env=False) as http:
            assert http.get(control + "/status").json()["cassette"].endswith("start.json.zst")
            for body, says in (
                ({"name": "../../etc/x"}, "leaves the cassette dir"),
                ({"name": ""}, '{"name"'),
                ({"name": "a", "mode": "sometimes"}, "mode 'sometimes'"),
                ("not json", '{"name"'),
            ):
                got = http.post(control + "/cassette", content=json.dumps(body))
                assert got.status_code == 400 and says in got.json()["error"], got.text
            assert http.get(control + "/nope").status_code == 404
            ok = http.post(control + "/cassette", json={"name": "x/y", "mode": "once"})
            assert ok.status_code == 200, ok.text
            assert ok.json()["cassette"] == str((tmp_path / "d" / "x" / "y.json.zst").resolve())
            assert runner.session.mode == "once"
    with run_proxy(tmp_path / "start.json.zst", "none", cassette_dir=tmp_path / "d") as runner:
        assert runner.address is not None
        host, port = runner.address
        refused = httpx.post(
            f"http://{host}:{port}/_tapeproxy/cassette",
            json={"name": "z", "mode": "all"},
            trust_env=False,
        )
        assert refused.status_code == 400 and "only replays" in refused.text


@pytest.mark.parametrize(
    ("peer", "ok"),
    [
        (("127.0.0.1", 1), True),
        (("127.8.9.1", 1), True),
        (("::1", 1, 0, 0), True),
        (("::ffff:127.0.0.1", 1, 0, 0), True),
        (("10.0.0.5", 1), False),
        (("192.168.1.2", 1), False),
        (("::ffff:10.0.0.5", 1, 0, 0), False),
        (None, False),
    ],
)
def test_only_loopback_clients_are_answered(peer: Any, ok: bool) -> None:
    assert _loopback(peer) is ok
