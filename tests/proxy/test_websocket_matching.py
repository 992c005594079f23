"""Replayed WebSocket sessions (issue 19): client messages matched by JSON content, volatile
ids ignored, in any order; and faults drawn for a session acting on it (reset, stall, slow,
malformed) or on its handshake (an HTTP status)."""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
import socket
import ssl
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tapeproxy.cassettes import store
from tapeproxy.proxy.faults import Faults, parse_faults
from tapeproxy.proxy.routes import DEFAULT_ROUTES, Route
from tapeproxy.proxy.runner import ProxyRunner
from tapeproxy.testing_ca import ThrowawayCA
from tests.proxy.conftest import ProxyFactory
from tests.proxy.test_websocket import Server

_REPLIES = {"session.update": 1, "conversation.item.create": 1, "response.create": 3}


async def _assistant(request: web.Request) -> web.WebSocketResponse:
    """Answers each Realtime client event in its own words: what it was sent comes back."""
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    await ws.send_str(json.dumps({"type": "session.created", "event_id": "ev_srv_0"}))
    async for msg in ws:
        event = json.loads(msg.data)
        kind = event["type"]
        if kind == "session.update":
            voice = event["session"]["voice"]
            await ws.send_str(json.dumps({"type": "session.updated", "voice": voice}))
        elif kind == "conversation.item.create":
            said = event["item"]["content"][0]["text"]
            await ws.send_str(json.dumps({"type": "conversation.item.created", "said": said}))
        elif kind == "response.create":
            for delta in ("Hel", "lo"):
                await asyncio.sleep(0.02)
                await ws.send_str(
                    json.dumps({"type": "response.output_text.delta", "delta": delta})
                )
            await ws.send_str(json.dumps({"type": "response.done", "usage": {"total_tokens": 5}}))
    return ws


def _events(key: str, said: str = "What is 2+2?") -> dict[str, dict[str, Any]]:
    """The client's events, each with ids made afresh (as SDKs and apps make them)."""
    item_id = f"item_{uuid.uuid4().hex[:16]}"
    return {
        "session.update": {
            "type": "session.update",
            "event_id": f"evt_{uuid.uuid4().hex}",
            "session": {"voice": "alloy", "api_key": key},
        },
        "conversation.item.create": {
            "type": "conversation.item.create",
            "event_id": f"evt_{uuid.uuid4().hex}",
            "item": {
                "id": item_id,
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": said}],
            },
        },
        "response.create": {"type": "response.create", "event_id": f"evt_{uuid.uuid4().hex}"},
    }


async def _converse(
    runner: ProxyRunner, port: int, sent: list[dict[str, Any]]
) -> tuple[list[list[object]], aiohttp.WSMessage | None]:
    """Send each event and read its replies: (the replies to each, a close that came early)."""
    ca = ssl.create_default_context(cafile=str(runner.config.ca_cert()))
    answers: list[list[object]] = []
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(f"wss://localhost:{port}/v1/realtime", proxy=runner.url, ssl=ca) as ws,
    ):
        greeting = await ws.receive(timeout=10)
        assert json.loads(greeting.data)["type"] == "session.created"
        for event in sent:
            await ws.send_str(json.dumps(event))
            got: list[object] = []
            for _ in range(_REPLIES[event["type"]]):
                msg = await ws.receive(timeout=10)
                if msg.type != aiohttp.WSMsgType.TEXT:
                    return answers, msg
                got.append(json.loads(msg.data))
            answers.append(got)
    return answers, None


def _record(
    tmp_path: Path, run_proxy: ProxyFactory, ca: ThrowawayCA, key: str
) -> tuple[Path, int, list[list[object]]]:
    cassette = tmp_path / "rt.json.zst"
    events = _events(key)

    async def record() -> tuple[list[list[object]], int]:
        async with Server(ca, handler=_assistant) as server:
            with run_proxy(cassette, "all") as runner:
                answers, early = await _converse(runner, server.port, list(events.values()))
                assert early is None
                return answers, server.port

    answers, port = asyncio.run(record())
    return cassette, port, answers


def _replay(
    run_proxy: ProxyFactory,
    cassette: Path,
    port: int,
    sent: list[dict[str, Any]],
    **settings: Any,
) -> tuple[list[list[object]], aiohttp.WSMessage | None, ProxyRunner]:
    async def go() -> tuple[list[list[object]], aiohttp.WSMessage | None, ProxyRunner]:
        with run_proxy(cassette, "none", **settings) as runner:
            answers, early = await asyncio.wait_for(_converse(runner, port, sent), timeout=30)
            return answers, early, runner

    return asyncio.run(go())


def test_json_matching_ignores_fresh_ids_and_order_and_a_changed_message_misses(
    tmp_path: Path, run_proxy: ProxyFactory, throwaway_ca: ThrowawayCA
) -> None:
    recorded_key = "sk-proj-" + secrets.token_urlsafe(40)
    cassette, port, live = _record(tmp_path, run_proxy, throwaway_ca, recorded_key)
    by_type = {answers[0]["type"]: answers for answers in live}  # type: ignore[index]
    assert set(by_type) == {
        "session.updated",
        "conversation.item.created",
        "response.output_text.delta",
    }

    # fresh ids and another key (redacted before comparing), the recorded order: as recorded
    key = "sk-proj-" + secrets.token_urlsafe(40)
    fresh = _events(key)
    answers, early, runner = _replay(
        run_proxy, cassette, port, list(fresh.values()), ws_match="json"
    )
    assert early is None and answers == live and not runner.session.misses

    # another order: each message still gets the answers recorded for it
    swapped = [fresh["conversation.item.create"], fresh["session.update"], fresh["response.create"]]
    answers, early, runner = _replay(run_proxy, cassette, port, swapped, ws_match="json")
    assert early is None and not runner.session.misses
    assert answers == [
        by_type["conversation.item.created"],
        by_type["session.updated"],
        by_type["response.output_text.delta"],
    ]

    # by position (the default) the same order is answered as the recording went, whatever it says
    answers, early, runner = _replay(run_proxy, cassette, port, swapped)
    assert early is None and answers == live and not runner.session.misses

    # a changed question is a miss under json matching: closed 1008, the why redacted
    changed = _events(key, said="What is 3+3?")
    answers, early, runner = _replay(
        run_proxy, cassette, port, list(changed.values()), ws_match="json"
    )
    assert answers == [by_type["session.updated"]]
    assert early is not None and early.type == aiohttp.WSMsgType.CLOSE and early.data == 1008
    assert "no recorded counterpart" in str(early.extra)
    (miss,) = runner.session.misses
    assert "json matching" in miss.why and "3+3" in miss.why
    assert "differs at item.content.0.text" in miss.why
    assert key not in str(early.extra) and key not in miss.why


def test_ws_match_is_a_checked_setting(tmp_path: Path) -> None:
    from tapeproxy.errors import ConfigError
    from tapeproxy.proxy.settings import build_config

    config = build_config({"ws_match": "JSON", "confdir": str(tmp_path)}, {}, "none", env={})
    assert config.ws_match == "json"
    assert build_config({"confdir": str(tmp_path)}, {}, "none", env={}).ws_match == "position"
    with pytest.raises(ConfigError, match="ws_match 'content'"):
        build_config({"ws_match": "content"}, {}, "none", env={})


async def _stream(runner: ProxyRunner, port: int) -> tuple[list[tuple[float, object]], object]:
    """Greeting, one response.create, then every message until the session ends: (arrival
    seconds and data of each, how it ended)."""
    ca = ssl.create_default_context(cafile=str(runner.config.ca_cert()))
    got: list[tuple[float, object]] = []
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(f"wss://localhost:{port}/v1/realtime", proxy=runner.url, ssl=ca) as ws,
    ):
        start = time.monotonic()
        got.append((0.0, (await ws.receive(timeout=10)).data))
        await ws.send_str(json.dumps({"type": "response.create"}))
        while True:
            msg = await ws.receive(timeout=10)
            if msg.type != aiohttp.WSMsgType.TEXT:
                return got, msg.type
            got.append((time.monotonic() - start, msg.data))
            if len(got) == 4:  # greeting, two deltas, response.done (JSON a fault may break)
                return got, "done"


def _faulted(
    run_proxy: ProxyFactory, cassette: Path, port: int, spec: str, seed: int = 0
) -> tuple[list[tuple[float, object]], object, dict[str, int]]:
    faults = Faults(parse_faults(spec), seed=seed, delay=0.4)

    async def go() -> tuple[list[tuple[float, object]], object, dict[str, int]]:
        with run_proxy(cassette, "none", faults=faults) as runner:
            got, end = await asyncio.wait_for(_stream(runner, port), timeout=30)
            return got, end, runner.session.tally()

    return asyncio.run(go())


def test_faults_drawn_for_a_session_act_on_it(
    tmp_path: Path, run_proxy: ProxyFactory, throwaway_ca: ThrowawayCA
) -> None:
    cassette = tmp_path / "rt.json.zst"

    async def record() -> tuple[list[tuple[float, object]], int]:
        async with Server(throwaway_ca, handler=_assistant) as server:
            with run_proxy(cassette, "all") as runner:
                got, end = await _stream(runner, server.port)
                assert end == "done"
                return got, server.port

    live, port = asyncio.run(record())
    messages = [data for _, data in live]
    assert len(messages) == 4  # greeting, two deltas, done

    for seed in range(4):  # reset: a strict prefix, then the connection breaks
        got, end, tally = _faulted(run_proxy, cassette, port, "reset=100%", seed)
        assert end != "done" and end in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED,
                                          aiohttp.WSMsgType.ERROR)  # fmt: skip
        assert 1 <= len(got) < len(messages)
        assert [d for _, d in got] == messages[: len(got)]
        assert tally["faulted"] == 1 and tally["hits"] == 0 and tally["misses"] == 0
    again, _, _ = _faulted(run_proxy, cassette, port, "reset=100%", 3)
    assert len(again) == len(got)  # seeded: the same seed breaks at the same message

    unfaulted, end, _ = _faulted(run_proxy, cassette, port, "reset=0%")
    assert end == "done" and [d for _, d in unfaulted] == messages
    got, end, tally = _faulted(run_proxy, cassette, port, "stall=100%")
    assert end == "done" and [d for _, d in got] == messages and tally["faulted"] == 1
    assert got[-1][0] - unfaulted[-1][0] >= 0.35  # the stall's 0.4 s, less timer slack
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(got)]
    assert max(gaps) >= 0.35  # one pause, not spread thin

    got, end, _ = _faulted(run_proxy, cassette, port, "slow=100%")
    assert end == "done" and [d for _, d in got] == messages and got[1][0] >= 0.35

    got, end, _ = _faulted(run_proxy, cassette, port, "malformed=100%")
    broken = []
    for _, data in got:
        try:
            json.loads(str(data))
        except ValueError:
            broken.append(data)
    assert len(broken) == 1 and len(got) == len(messages)


def test_an_http_fault_drawn_for_a_session_answers_its_handshake(
    tmp_path: Path, run_proxy: ProxyFactory, throwaway_ca: ThrowawayCA
) -> None:
    cassette = tmp_path / "rt.json.zst"

    async def record() -> int:
        async with Server(throwaway_ca, handler=_assistant) as server:
            with run_proxy(cassette, "all") as runner:
                await _stream(runner, server.port)
                return server.port

    port = asyncio.run(record())

    async def replay() -> BaseException:
        faults = Faults(parse_faults("429=100%"), retry_after=3)
        with run_proxy(cassette, "none", faults=faults) as runner:
            with pytest.raises(aiohttp.WSServerHandshakeError) as failed:
                await _stream(runner, port)
            assert runner.session.tally()["faulted"] == 1
            return failed.value

    error = asyncio.run(replay())
    assert isinstance(error, aiohttp.WSServerHandshakeError) and error.status == 429
    assert error.headers is not None and error.headers.get("retry-after") == "3"


def test_record_modes_replay_known_sessions_and_record_new_ones(
    tmp_path: Path, run_proxy: ProxyFactory, throwaway_ca: ThrowawayCA
) -> None:
    cassette = tmp_path / "modes.json.zst"
    connected: list[str] = []

    async def session(runner: ProxyRunner, port: int, who: str) -> list[object]:
        ca = ssl.create_default_context(cafile=str(runner.config.ca_cert()))
        url = f"wss://localhost:{port}/v1/realtime?who={who}"
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(url, proxy=runner.url, ssl=ca) as ws,
        ):
            got = [(await ws.receive(timeout=10)).data]
            await ws.send_str(json.dumps({"type": "response.create"}))
            got += [(await ws.receive(timeout=10)).data for _ in range(3)]
        return got

    @web.middleware
    async def count(request: web.Request, handler: Any) -> web.StreamResponse:
        connected.append(request.query["who"])
        return await handler(request)  # type: ignore[no-any-return]

    async def run(mode: str, who: str) -> list[object]:
        app = web.Application(middlewares=[count])
        app.router.add_get("/v1/realtime", _assistant)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", port, ssl_context=throwaway_ca.server_context())
        await site.start()
        try:
            with run_proxy(cassette, mode) as proxy:
                return await session(proxy, port, who)
        finally:
            await runner.cleanup()

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    first = asyncio.run(run("once", "a"))
    assert connected == ["a"]
    assert asyncio.run(run("new_episodes", "a")) == first  # known: replayed, not reconnected
    assert connected == ["a"]
    asyncio.run(run("new_episodes", "b"))  # new: recorded beside it
    assert connected == ["a", "b"]
    urls = sorted(it.request.url for it in store.load(cassette).interactions)
    assert [u.rsplit("=", 1)[1] for u in urls] == ["a", "b"]


def test_a_session_recorded_through_the_proxy_replays_by_base_url_on_either_listener(
    tmp_path: Path, run_proxy: ProxyFactory, throwaway_ca: ThrowawayCA
) -> None:
    """A client configured by base URL (`ws://PROXY/<route>/...`, no proxy, no CA) gets the
    session recorded through HTTPS_PROXY: on the proxy's port and on the routes' own listener,
    which hands the upgrade on."""
    cassette = tmp_path / "ws.json.zst"

    async def record() -> tuple[list[object], tuple[Route, ...]]:
        async with Server(throwaway_ca, handler=_assistant) as server:
            routes = (*DEFAULT_ROUTES, Route("local", f"https://localhost:{server.port}"))
            with run_proxy(cassette, "all", routes=routes) as runner:
                got, end = await _stream(runner, server.port)
                assert end == "done"
                return [data for _, data in got], routes

    live, routes = asyncio.run(record())

    async def replay(fast: bool) -> tuple[list[object], dict[str, int]]:
        with run_proxy(cassette, "none", routes=routes) as runner:
            assert runner.address is not None and runner.fast_routes is not None
            port = runner.fast_routes.address[1] if fast else runner.address[1]  # type: ignore[index]
            async with (
                aiohttp.ClientSession() as http,
                http.ws_connect(f"ws://127.0.0.1:{port}/local/v1/realtime") as ws,
            ):
                got: list[object] = [(await ws.receive(timeout=10)).data]
                await ws.send_str(json.dumps({"type": "response.create"}))
                got += [(await ws.receive(timeout=10)).data for _ in range(3)]
            return got, runner.session.tally()

    for fast in (False, True):
        got, tally = asyncio.run(replay(fast))
        assert got == live and tally["hits"] == 1 and tally["misses"] == 0
