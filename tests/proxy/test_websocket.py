"""WebSocket sessions (issue 19): recorded through the proxy with every message, redacted like
bodies, printed by `show`, linted, and replayed with the server gone: the same messages at
their recorded offsets; a client message the recording has no answer for is a miss."""

from __future__ import annotations

import asyncio
import json
import secrets
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tapeproxy.cassettes import store
from tapeproxy.cassettes.model import Body
from tapeproxy.proxy.runner import ProxyRunner
from tapeproxy.testing_ca import ThrowawayCA
from tests.proxy.conftest import ProxyFactory, written_bytes

_BINARY = bytes(range(32))


def _realtime(gap_s: float) -> Any:
    """A Realtime-like server: a greeting, then answers to session.update and
    response.create (text deltas, a binary frame, response.done), `gap_s` apart."""

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        greeting = {"type": "session.created", "event_id": "ev_1", "who": request.query.get("who")}
        await ws.send_str(json.dumps(greeting))
        async for msg in ws:
            event = json.loads(msg.data)
            if event["type"] == "session.update":
                await ws.send_str(json.dumps({"type": "session.updated"}))
            elif event["type"] == "response.create":
                for delta in ("Hel", "lo"):
                    await asyncio.sleep(gap_s)
                    await ws.send_str(json.dumps({"type": "response.text.delta", "delta": delta}))
                await asyncio.sleep(gap_s)
                await ws.send_bytes(_BINARY)
                await asyncio.sleep(gap_s)
                done = {"type": "response.done", "usage": {"total_tokens": 9}}
                await ws.send_str(json.dumps(done))
        return ws

    return handler


class Server:
    """A local `wss://` server at /v1/realtime: `_realtime` with its gap, or `handler`."""

    def __init__(self, ca: ThrowawayCA, gap_s: float = 0.0, handler: Any = None) -> None:
        self._ca = ca
        self._handler = handler or _realtime(gap_s)
        self.port = 0

    async def __aenter__(self) -> Server:
        app = web.Application()
        app.router.add_get("/v1/realtime", self._handler)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self._ca.server_context())
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._runner.cleanup()


async def _session(runner: ProxyRunner, port: int, key: str) -> list[object]:
    ca = ssl.create_default_context(cafile=str(runner.config.ca_cert()))
    got: list[object] = []
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(
            f"wss://localhost:{port}/v1/realtime",
            proxy=runner.url,
            ssl=ca,
            headers={"authorization": f"Bearer {key}"},
        ) as ws,
    ):
        got.append(json.loads((await ws.receive()).data)["type"])
        update = {"type": "session.update", "session": {"api_key": key, "voice": "alloy"}}
        await ws.send_str(json.dumps(update))
        got.append(json.loads((await ws.receive()).data)["type"])
        await ws.send_str(json.dumps({"type": "response.create"}))
        for _ in range(4):
            msg = await ws.receive()
            got.append(msg.data if msg.type == aiohttp.WSMsgType.BINARY else json.loads(msg.data))
        await ws.close()
    return got


def test_a_websocket_session_is_recorded_redacted_shown_and_linted(
    tmp_path: Path, run_proxy: ProxyFactory, throwaway_ca: ThrowawayCA
) -> None:
    key = "sk-proj-" + secrets.token_urlsafe(40)
    cassette = tmp_path / "ws.json.zst"

    async def record() -> tuple[list[object], int]:
        async with Server(throwaway_ca) as server:
            with run_proxy(cassette, "all") as runner:
                return await _session(runner, server.port, key), server.port

    got, port = asyncio.run(record())
    assert got[:2] == ["session.created", "session.updated"] and _BINARY in got

    (it,) = store.load(cassette).interactions
    assert it.response is not None and it.response.status == 101
    messages = it.response.messages
    assert messages is not None
    assert [(who, kind) for _, who, kind, _ in messages] == [
        ("server", "text"),
        ("client", "text"),
        ("server", "text"),
        ("client", "text"),
        ("server", "text"),
        ("server", "text"),
        ("server", "binary"),
        ("server", "text"),
    ]
    offsets = [at for at, *_ in messages]
    assert offsets == sorted(offsets) and offsets[0] >= 0
    assert messages[6][3].to_bytes() == _BINARY
    assert it.response.close is not None and it.response.close.by == "client"
    on_disk = written_bytes(tmp_path)
    assert key.encode() not in on_disk  # in the handshake header and in a client frame
    assert b'"voice": "alloy"' in messages[1][3].to_bytes()  # the rest of the frame kept

    shown = subprocess.run(
        [sys.executable, "-m", "tapeproxy", "show", str(cassette)],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    assert "websocket: 8 message(s)" in shown
    assert "> {" in shown and '< {"type": "response.done"' in shown
    assert "[binary, 32 bytes]" in shown and "closed by the client" in shown

    # the gate reads frames: a secret planted in a stored server frame is found
    planted = "sk-proj-" + secrets.token_urlsafe(40)
    loaded = store.load(cassette)
    frames = list(messages)
    frames[4] = (*frames[4][:3], Body(text=json.dumps({"type": "x", "leak": planted})))
    response = it.response.model_copy(update={"messages": tuple(frames)})
    dirty = tmp_path / "dirty" / "ws.json.zst"
    store.save(
        dirty,
        loaded.model_copy(update={"interactions": (it.model_copy(update={"response": response}),)}),
    )
    lint = subprocess.run(
        [sys.executable, "-m", "tapeproxy", "lint", str(dirty)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert lint.returncode == 1 and "messages[4]" in lint.stdout + lint.stderr
    assert subprocess.run(
        [sys.executable, "-m", "tapeproxy", "lint", str(cassette)],
        capture_output=True, timeout=60, check=False,
    ).returncode == 0  # fmt: skip

    # replay, the server gone: the same messages, in order, at their recorded offsets
    async def replay() -> tuple[list[object], list[float]]:
        with run_proxy(cassette, "none") as runner:
            started = time.monotonic()
            again = await asyncio.wait_for(_session(runner, port, key), timeout=30)
            assert runner.session.tally()["hits"] == 1 and not runner.session.misses
            return again, [time.monotonic() - started]

    again, _ = asyncio.run(replay())
    assert again == got


def test_replayed_messages_keep_their_offsets_and_an_unrecorded_one_is_a_miss(
    tmp_path: Path, run_proxy: ProxyFactory, throwaway_ca: ThrowawayCA
) -> None:
    cassette = tmp_path / "ws.json.zst"

    async def talk(runner: ProxyRunner, port: int, extra: bool) -> tuple[list[float], object]:
        ca = ssl.create_default_context(cafile=str(runner.config.ca_cert()))
        arrivals: list[float] = []
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(f"wss://localhost:{port}/v1/realtime", proxy=runner.url, ssl=ca) as ws,
        ):
            start = time.monotonic()
            await ws.receive()
            arrivals.append(time.monotonic() - start)
            await ws.send_str(json.dumps({"type": "response.create"}))
            sent = time.monotonic()
            for _ in range(4):
                await ws.receive()
                arrivals.append(time.monotonic() - sent)
            closing: object = None
            if extra:  # a message the recording has no answer for
                await ws.send_str(json.dumps({"type": "response.create"}))
                closing = await ws.receive()
            await ws.close()
        return arrivals, closing

    async def record() -> tuple[list[float], int]:
        async with Server(throwaway_ca, gap_s=0.1) as server:
            with run_proxy(cassette, "all") as runner:
                return (await talk(runner, server.port, False))[0], server.port

    live, port = asyncio.run(record())

    async def replay(extra: bool) -> tuple[list[float], object, int]:
        with run_proxy(cassette, "none") as runner:
            arrivals, closing = await asyncio.wait_for(talk(runner, port, extra), timeout=30)
            return arrivals, closing, len(runner.session.misses)

    replayed, _, misses = asyncio.run(replay(False))
    assert misses == 0
    # each message within 25 ms of when it came live (the recording's offsets, 100 ms apart)
    assert all(abs(r - lv) <= 0.025 for r, lv in zip(replayed, live, strict=True)), (live, replayed)
    assert replayed[-1] >= 0.25  # the gaps were kept, not sent at once
    _, closing, misses = asyncio.run(replay(True))
    assert misses == 1
    assert isinstance(closing, aiohttp.WSMessage) and closing.type == aiohttp.WSMsgType.CLOSE
    assert closing.data == 1008 and "no recorded counterpart" in str(closing.extra)


async def _fake_realtime(request: web.Request) -> web.WebSocketResponse:
    """Enough of OpenAI's Realtime API for its SDK: session.created, then text deltas and
    response.done for each response.create."""
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    model = request.query.get("model", "?")
    session = {"id": "sess_1", "object": "realtime.session", "model": model}
    created = {"type": "session.created", "event_id": "ev_0", "session": session}
    await ws.send_str(json.dumps(created))
    n = 0
    async for msg in ws:
        event = json.loads(msg.data)
        if event.get("type") != "response.create":
            continue
        n += 1
        for i, delta in enumerate(("Hello ", f"number {n}")):
            await ws.send_str(json.dumps({
                "type": "response.output_text.delta", "event_id": f"ev_{n}_{i}",
                "response_id": f"resp_{n}", "item_id": "item_1", "output_index": 0,
                "content_index": 0, "delta": delta,
            }))  # fmt: skip
        await ws.send_str(json.dumps({
            "type": "response.done", "event_id": f"ev_{n}_done",
            "response": {"id": f"resp_{n}", "object": "realtime.response", "status": "completed",
                         "usage": {"total_tokens": 7, "input_tokens": 3, "output_tokens": 4}},
        }))  # fmt: skip
    return ws


# openai 3.60 calls websockets' connect() in a way websockets 16+ deprecates (not ours to fix)
@pytest.mark.filterwarnings("ignore:connect\\(\\) must be used as a context manager")
def test_the_openai_sdk_realtime_client_records_and_replays(
    tmp_path: Path,
    run_proxy: ProxyFactory,
    throwaway_ca: ThrowawayCA,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import threading

    import openai

    cassette = tmp_path / "realtime.json.zst"
    port_box: list[int] = []
    ready, stop = threading.Event(), threading.Event()

    def serve() -> None:  # the fake server in a thread of its own: the SDK client is sync
        async def main() -> None:
            app = web.Application()
            app.router.add_get("/v1/realtime", _fake_realtime)
            runner = web.AppRunner(app)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=throwaway_ca.server_context())
            await site.start()
            port_box.append(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
            ready.set()
            while not stop.is_set():
                await asyncio.sleep(0.05)
            await runner.cleanup()

        asyncio.run(main())

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    assert ready.wait(10)
    port = port_box[0]

    def converse(runner: ProxyRunner) -> list[str]:
        monkeypatch.setenv("HTTPS_PROXY", runner.url)  # websockets reads the proxy variables
        monkeypatch.setenv("NO_PROXY", "")
        ca = ssl.create_default_context(cafile=str(runner.config.ca_cert()))
        client = openai.OpenAI(api_key="sk-test", base_url=f"https://localhost:{port}/v1")
        texts: list[str] = []
        with client.realtime.connect(
            model="gpt-realtime", websocket_connection_options={"ssl": ca}
        ) as conn:
            assert conn.recv().type == "session.created"
            for _ in range(2):
                conn.response.create()
                text = ""
                for event in conn:
                    if event.type == "response.output_text.delta":
                        text += event.delta
                    elif event.type == "response.done":
                        break
                texts.append(text)
        return texts

    with run_proxy(cassette, "all") as runner:
        live = converse(runner)
    stop.set()
    server.join(10)
    assert live == ["Hello number 1", "Hello number 2"]
    (it,) = store.load(cassette).interactions
    assert it.request.url.startswith(f"https://localhost:{port}/v1/realtime?model=gpt-realtime")
    assert it.response is not None and it.response.messages is not None
    stats = json.loads(
        subprocess.run(
            [sys.executable, "-m", "tapeproxy", "stats", str(cassette), "--format", "json"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
    )
    sessions = {"sessions": 1, "client_messages": 2, "server_messages": 7, "audio_bytes": 0}
    assert stats["websocket"] == sessions
    assert stats["tokens_by_model"]["gpt-realtime"]["input"] == 6  # two response.done, 3 each
    assert stats["tokens_by_model"]["gpt-realtime"]["output"] == 8
    with run_proxy(cassette, "none") as runner:  # the server is gone
        assert converse(runner) == live
        assert not runner.session.misses


def test_two_concurrent_sessions_in_one_cassette_replay_each_to_its_own_client(
    tmp_path: Path, run_proxy: ProxyFactory, throwaway_ca: ThrowawayCA
) -> None:
    cassette = tmp_path / "two.json.zst"

    async def chat(runner: ProxyRunner, port: int, who: str) -> list[object]:
        ca = ssl.create_default_context(cafile=str(runner.config.ca_cert()))
        url = f"wss://localhost:{port}/v1/realtime?who={who}"
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(url, proxy=runner.url, ssl=ca) as ws,
        ):
            got: list[object] = [json.loads((await ws.receive()).data)["who"]]
            await ws.send_str(json.dumps({"type": "response.create"}))
            for _ in range(4):
                msg = await ws.receive()
                got.append(msg.data)
            await ws.close()
        return got

    async def record() -> tuple[list[list[object]], int]:
        async with Server(throwaway_ca, gap_s=0.05) as server:
            with run_proxy(cassette, "all") as runner:
                both = await asyncio.gather(*(chat(runner, server.port, w) for w in "ab"))
                return list(both), server.port

    live, port = asyncio.run(record())
    assert [g[0] for g in live] == ["a", "b"]
    assert len(store.load(cassette).interactions) == 2

    async def replay() -> list[list[object]]:
        with run_proxy(cassette, "none") as runner:
            both = await asyncio.gather(*(chat(runner, port, w) for w in "ba"))
            assert not runner.session.misses
            return list(both)

    b, a = asyncio.run(replay())
    assert [a, b] == live
