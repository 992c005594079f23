"""Record modes, one test per cell of DESIGN's table, through a real proxy and fake provider."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tapeproxy.cassettes import store
from tapeproxy.cassettes.model import Interaction, body_bytes
from tapeproxy.fakeprovider import FakeProvider
from tapeproxy.testing_ca import ThrowawayCA
from tests.proxy.conftest import ProxyFactory, client_for

CHAT = "/v1/chat/completions"


def _ask(runner: object, provider: FakeProvider, prompt: str) -> tuple[int, str]:
    with client_for(runner) as client:  # type: ignore[arg-type]
        r = client.post(
            provider.url + CHAT,
            json={"model": "m", "messages": [{"role": "user", "content": prompt}]},
        )
    return r.status_code, r.text


def _request_id(interaction: Interaction) -> str:
    assert interaction.response is not None
    return dict(interaction.response.headers)["x-request-id"]


def _record(run_proxy: ProxyFactory, cassette: Path, provider: FakeProvider, *prompts: str) -> None:
    with run_proxy(cassette, "all") as runner:
        for p in prompts:
            assert _ask(runner, provider, p)[0] == 200


def test_none_with_cassette_serves_hits_and_misses_the_rest(
    tmp_path: Path, run_proxy: ProxyFactory, provider: FakeProvider
) -> None:
    cassette = tmp_path / "c.json.zst"
    _record(run_proxy, cassette, provider, "a")
    before = provider.requests
    with run_proxy(cassette, "none") as runner:
        hit = _ask(runner, provider, "a")
        miss = _ask(runner, provider, "b")
    assert hit[0] == 200 and "You said: a" in hit[1]
    assert miss[0] == 599
    assert provider.requests == before


def test_none_without_cassette_misses_everything(
    tmp_path: Path, run_proxy: ProxyFactory, provider: FakeProvider
) -> None:
    cassette = tmp_path / "absent.json.zst"
    with run_proxy(cassette, "none") as runner:
        assert _ask(runner, provider, "a")[0] == 599
    assert provider.requests == 0
    assert not cassette.exists()


def test_once_with_cassette_is_like_none(
    tmp_path: Path, run_proxy: ProxyFactory, provider: FakeProvider
) -> None:
    cassette = tmp_path / "c.json.zst"
    _record(run_proxy, cassette, provider, "a")
    before, data = provider.requests, cassette.read_bytes()
    with run_proxy(cassette, "once") as runner:
        assert _ask(runner, provider, "a")[0] == 200
        assert _ask(runner, provider, "b")[0] == 599
    assert provider.requests == before
    assert cassette.read_bytes() == data


def test_once_without_cassette_records_everything(
    tmp_path: Path, run_proxy: ProxyFactory, provider: FakeProvider
) -> None:
    cassette = tmp_path / "c.json.zst"
    with run_proxy(cassette, "once") as runner:
        assert _ask(runner, provider, "a")[0] == 200
        assert _ask(runner, provider, "b")[0] == 200
    assert provider.requests == 2
    assert len(store.load(cassette).interactions) == 2


def test_new_episodes_with_cassette_serves_hits_and_records_misses(
    tmp_path: Path, run_proxy: ProxyFactory, provider: FakeProvider
) -> None:
    cassette = tmp_path / "c.json.zst"
    _record(run_proxy, cassette, provider, "a")
    before = provider.requests
    with run_proxy(cassette, "new_episodes") as runner:
        assert _ask(runner, provider, "a")[0] == 200
        assert _ask(runner, provider, "b")[0] == 200
    assert provider.requests == before + 1
    bodies = [it.request.body.text for it in store.load(cassette).interactions if it.request.body]
    assert len(bodies) == 2 and '"a"' in (bodies[0] or "") and '"b"' in (bodies[1] or "")


def test_new_episodes_without_cassette_records_everything(
    tmp_path: Path, run_proxy: ProxyFactory, provider: FakeProvider
) -> None:
    cassette = tmp_path / "c.json.zst"
    with run_proxy(cassette, "new_episodes") as runner:
        assert _ask(runner, provider, "a")[0] == 200
    assert provider.requests == 1
    assert len(store.load(cassette).interactions) == 1


def test_all_with_cassette_rerecords_what_it_touches_and_keeps_the_rest(
    tmp_path: Path, run_proxy: ProxyFactory, provider: FakeProvider
) -> None:
    cassette = tmp_path / "c.json.zst"
    _record(run_proxy, cassette, provider, "a", "b")
    old = {_request_id(it): it.key for it in store.load(cassette).interactions}
    before = provider.requests
    with run_proxy(cassette, "all") as runner:
        assert _ask(runner, provider, "a")[0] == 200
    assert provider.requests == before + 1
    new = {_request_id(it): it.key for it in store.load(cassette).interactions}
    assert sorted(new.values()) == sorted(old.values())
    assert len(set(new) & set(old)) == 1  # "b" kept as it was, "a" answered anew


def test_all_without_cassette_records_everything(
    tmp_path: Path, run_proxy: ProxyFactory, provider: FakeProvider
) -> None:
    cassette = tmp_path / "c.json.zst"
    with run_proxy(cassette, "all") as runner:
        assert _ask(runner, provider, "a")[0] == 200
        assert _ask(runner, provider, "a")[0] == 200
    assert provider.requests == 2
    assert len(store.load(cassette).interactions) == 2


# Each CMD says it is running (so its proxy has loaded the cassette), waits for the other, then
# asks its prompts through the proxy: both recorders load the same file before either saves.
_PARALLEL_CLIENT = """
import pathlib, sys, time, httpx
url, me, other, *prompts = sys.argv[1:]
pathlib.Path(me).touch()
deadline = time.monotonic() + 60
while not pathlib.Path(other).exists() and time.monotonic() < deadline:
    time.sleep(0.02)
for p in prompts:
    body = {"model": "m", "messages": [{"role": "user", "content": p}]}
    assert httpx.post(url + "/v1/chat/completions", json=body, timeout=30).status_code == 200
"""


def test_parallel_recorders_of_one_cassette_keep_each_others_exchanges(
    tmp_path: Path,
    run_proxy: ProxyFactory,
    provider: FakeProvider,
    throwaway_ca: ThrowawayCA,
    confdir: Path,
) -> None:
    # Parallel CI jobs or xdist workers sharing one cassette: both load it, record, then save.
    cassette = tmp_path / "c.json.zst"
    _record(run_proxy, cassette, provider, "kept")
    script = tmp_path / "client.py"
    script.write_text(_PARALLEL_CLIENT)
    for mode in ("new_episodes", "all"):
        procs = []
        for me, other in (("one", "two"), ("two", "one")):
            args = ["record", "--mode", mode, "--cassette", str(cassette), "--no-proxy", ""]
            args += ["--confdir", str(confdir), "--upstream-ca", str(throwaway_ca.ca_cert), "--"]
            args += [sys.executable, str(script), provider.url]
            args += [str(tmp_path / f"{mode}-{me}"), str(tmp_path / f"{mode}-{other}")]
            args += [f"{mode} from {me}", "same in both"]
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "tapeproxy", *args],
                    stdin=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
        for proc in procs:
            _, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
    prompts = sorted(
        json.loads(body_bytes(it.request.body))["messages"][0]["content"]
        for it in store.load(cassette).interactions
    )
    assert prompts == [
        "all from one",
        "all from two",
        "kept",
        "new_episodes from one",
        "new_episodes from two",
        "same in both",
    ]


def test_rewrite_with_cassette_keeps_only_what_it_is_asked_again(
    tmp_path: Path, run_proxy: ProxyFactory, provider: FakeProvider
) -> None:
    cassette = tmp_path / "c.json.zst"
    _record(run_proxy, cassette, provider, "a", "b", "c")
    before = provider.requests
    with run_proxy(cassette, "rewrite") as runner:
        assert _ask(runner, provider, "a")[0] == 200
    assert provider.requests == before + 1  # rewrite never serves the old answers
    (kept,) = store.load(cassette).interactions
    assert json.loads(body_bytes(kept.request.body))["messages"][0]["content"] == "a"


def test_rewrite_with_nothing_asked_leaves_an_empty_cassette(
    tmp_path: Path, run_proxy: ProxyFactory, provider: FakeProvider
) -> None:
    cassette = tmp_path / "c.json.zst"
    _record(run_proxy, cassette, provider, "a")
    with run_proxy(cassette, "rewrite"):
        pass
    assert store.load(cassette).interactions == ()
