"""WebSocket sessions (issue 19, first step): recorded through the proxy with every message,
redacted like bodies, printed by `show`, linted; a replay refuses them at once instead of
hanging the client."""

from __future__ import annotations

import asyncio
import json
import secrets
import ssl
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from tapeproxy.cassettes import store
from tapeproxy.cassettes.model import Body
from tapeproxy.proxy.runner import ProxyRunner
from tapeproxy.testing_ca import ThrowawayCA
from tests.proxy.conftest import ProxyFactory, written_bytes

_BINARY = bytes(range(32))


async def _realtime(request: web.Request) -> web.WebSocketResponse:
    """A Realtime-like server: a greeting, then answers to session.update and
    response.create (text deltas, a binary frame, response.done)."""
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    await ws.send_str(json.dumps({"type": "session.created", "event_id": "ev_1"}))
    async for msg in ws:
        event = json.loads(msg.data)
        if event["type"] == "session.update":
            await ws.send_str(json.dumps({"type": "session.updated"}))
        elif event["type"] == "response.create":
            for delta in ("Hel", "lo"):
                await ws.send_str(json.dumps({"type": "response.text.delta", "delta": delta}))
            await ws.send_bytes(_BINARY)
            await ws.send_str(json.dumps({"type": "response.done", "usage": {"total_tokens": 9}}))
    return ws


class _Server:
    def __init__(self, ca: ThrowawayCA) -> None:
        self._ca = ca
        self.port = 0

    async def __aenter__(self) -> _Server:
        app = web.Application()
        app.router.add_get("/v1/realtime", _realtime)
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
        async with _Server(throwaway_ca) as server:
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

    # replay (the server is gone) refuses the session at once instead of hanging the client
    async def replay() -> tuple[int, str]:
        with run_proxy(cassette, "none") as runner:
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await asyncio.wait_for(_session(runner, port, key), timeout=30)
            return refused.value.status, str(refused.value.message)

    status, _ = asyncio.run(replay())
    assert status == 501
