"""Record modes, one test per cell of DESIGN's table, through a real proxy and fake provider."""

from __future__ import annotations

from pathlib import Path

from tapeproxy.cassettes import store
from tapeproxy.cassettes.model import Interaction
from tapeproxy.fakeprovider import FakeProvider
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
