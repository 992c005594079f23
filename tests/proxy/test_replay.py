"""Replay through a real proxy: streamed bodies chunk by chunk at their offsets, misses, errors,
and no upstream connection ever."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from tapeproxy.cassettes import store
from tapeproxy.fakeprovider import FakeProvider
from tapeproxy.proxy.latency import Latency
from tests.proxy.conftest import ProxyFactory, client_for

CHAT = "/v1/chat/completions"
STREAM = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "stream me"}]}


def _stream(client: httpx.Client, url: str) -> tuple[list[tuple[float, bytes]], int]:
    start = time.perf_counter()
    pieces = []
    with client.stream("POST", url, json=STREAM, headers={"x-fake-gap-ms": "40"}) as r:
        for piece in r.iter_raw():
            pieces.append(((time.perf_counter() - start) * 1000, piece))
        return pieces, r.status_code


def test_replayed_sse_is_byte_identical_chunked_and_never_early(
    tmp_path: Path, run_proxy: ProxyFactory, provider: FakeProvider
) -> None:
    cassette = tmp_path / "c.json.zst"
    with run_proxy(cassette, "all") as runner, client_for(runner) as client:
        live, _ = _stream(client, provider.url + CHAT)
    (recorded,) = store.load(cassette).interactions
    assert recorded.response is not None and recorded.response.chunks is not None
    offsets = [offset for offset, _ in recorded.response.chunks]
    assert len(offsets) >= 10

    provider.stop()
    with run_proxy(cassette, "none") as runner, client_for(runner) as client:
        replayed, status = _stream(client, provider.url + CHAT)
    assert status == 200
    assert b"".join(p for _, p in replayed) == b"".join(p for _, p in live)
    assert b"".join(p for _, p in replayed) == recorded.response.body.to_bytes()  # type: ignore[union-attr]
    assert len(replayed) == len(offsets)  # each recorded chunk arrives as its own piece
    for (arrival, _), offset in zip(replayed, offsets, strict=True):
        assert arrival >= offset  # never earlier than recorded (lower bound only)


def test_latency_none_sends_the_same_bytes_at_once(
    tmp_path: Path, run_proxy: ProxyFactory, provider: FakeProvider
) -> None:
    cassette = tmp_path / "c.json.zst"
    with run_proxy(cassette, "all") as runner, client_for(runner) as client:
        live, _ = _stream(client, provider.url + CHAT)
    with (
        run_proxy(cassette, "none", latency=Latency.parse("none")) as runner,
        client_for(runner) as client,
    ):
        replayed, _ = _stream(client, provider.url + CHAT)
    assert b"".join(p for _, p in replayed) == b"".join(p for _, p in live)


def test_miss_answers_599_with_nearest_difference_and_never_goes_upstream(
    tmp_path: Path, run_proxy: ProxyFactory, provider: FakeProvider
) -> None:
    cassette = tmp_path / "c.json.zst"
    body = {"model": "m", "messages": [{"role": "user", "content": "recorded"}]}
    with run_proxy(cassette, "all") as runner, client_for(runner) as client:
        client.post(provider.url + CHAT, json=body)
    before = provider.connections
    body["messages"][0]["content"] = "changed"
    with run_proxy(cassette, "none") as runner, client_for(runner) as client:
        r = client.post(provider.url + CHAT, json=body)
    assert provider.connections == before
    assert r.status_code == 599
    assert r.headers["x-tapeproxy-miss"]
    doc = r.json()
    assert doc["cassette"] == str(cassette)
    (diff,) = doc["nearest"][0]["differences"]
    assert diff == {
        "field": "body.messages[0].content",
        "recorded": "recorded",
        "requested": "changed",
    }


def test_repeats_serve_recorded_order_then_the_last_again(
    tmp_path: Path, run_proxy: ProxyFactory, provider: FakeProvider
) -> None:
    cassette = tmp_path / "c.json.zst"
    body = {"model": "m", "messages": [{"role": "user", "content": "same"}]}
    with run_proxy(cassette, "all") as runner, client_for(runner) as client:
        ids = [
            client.post(provider.url + CHAT, json=body).headers["x-request-id"] for _ in range(2)
        ]
    with run_proxy(cassette, "none") as runner, client_for(runner) as client:
        again = [
            client.post(provider.url + CHAT, json=body).headers["x-request-id"] for _ in range(3)
        ]
    assert again == [ids[0], ids[1], ids[1]]
    with run_proxy(cassette, "none", repeat="error") as runner, client_for(runner) as client:
        statuses = [client.post(provider.url + CHAT, json=body).status_code for _ in range(3)]
    assert statuses == [200, 200, 599]


@pytest.mark.parametrize("status", [429, 500])
def test_upstream_errors_replay_as_recorded(
    status: int, tmp_path: Path, run_proxy: ProxyFactory, provider: FakeProvider
) -> None:
    cassette = tmp_path / "c.json.zst"
    headers = {"x-fake-status": str(status)}
    with run_proxy(cassette, "all") as runner, client_for(runner) as client:
        live = client.post(provider.url + CHAT, json={}, headers=headers)
    provider.stop()
    with run_proxy(cassette, "none") as runner, client_for(runner) as client:
        replayed = client.post(provider.url + CHAT, json={}, headers=headers)
    assert (replayed.status_code, replayed.content) == (live.status_code, live.content)
    assert replayed.headers["x-should-retry"] == "false"
    assert replayed.reason_phrase == live.reason_phrase


def test_connection_reset_is_recorded_and_replayed_as_a_reset(
    tmp_path: Path, run_proxy: ProxyFactory, provider: FakeProvider
) -> None:
    cassette = tmp_path / "c.json.zst"
    with (
        run_proxy(cassette, "all") as runner,
        client_for(runner) as client,
        pytest.raises(httpx.HTTPError),
    ):
        client.post(provider.url + "/v1/reset", json={})
    (it,) = store.load(cassette).interactions
    assert it.response is None and it.error is not None
    with (
        run_proxy(cassette, "none") as runner,
        client_for(runner) as client,
        pytest.raises(httpx.HTTPError),
    ):
        client.post(provider.url + "/v1/reset", json={})


def test_gzip_body_is_stored_decoded_and_replayed_without_content_encoding(
    tmp_path: Path, run_proxy: ProxyFactory, provider: FakeProvider
) -> None:
    cassette = tmp_path / "c.json.zst"
    body = {"model": "m", "messages": [{"role": "user", "content": "zip"}]}
    with run_proxy(cassette, "all") as runner, client_for(runner) as client:
        live = client.post(provider.url + CHAT, json=body, headers={"accept-encoding": "gzip"})
    assert live.headers["content-encoding"] == "gzip"
    (it,) = store.load(cassette).interactions
    assert it.response is not None and it.response.body is not None
    assert json.loads(it.response.body.to_bytes()) == live.json()
    with run_proxy(cassette, "none") as runner, client_for(runner) as client:
        replayed = client.post(provider.url + CHAT, json=body, headers={"accept-encoding": "gzip"})
    assert "content-encoding" not in replayed.headers
    assert replayed.headers["content-length"] == str(len(replayed.content))
    assert replayed.content == live.content
