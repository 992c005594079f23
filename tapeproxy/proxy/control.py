"""The control API, for test runners other than pytest (Jest, Vitest, Playwright, go test):
per-test cassettes switched over HTTP on the proxy's own listener.

- `POST $TAPEPROXY_CONTROL_URL/cassette` with `{"name": "suite/test", "mode": "once"}` saves
  the cassette in use and continues with `<cassette dir>/suite/test.json.zst` (a name that
  would leave the directory is refused; `mode` defaults to the run's; a replay run only
  replays).
- `GET $TAPEPROXY_CONTROL_URL/status` gives the cassette in use, its mode and counts, and
  the misses so far.

Only loopback clients are answered, whether they address the listener directly or send the
request through the proxy; anyone else gets 403.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mitmproxy import http

from tapeproxy.errors import TapeproxyError
from tapeproxy.modes import MODES, Mode
from tapeproxy.proxy.access import peer_address
from tapeproxy.proxy.flows import mark_handled
from tapeproxy.proxy.session import TapeSession

__all__ = ["CONTROL_PATH", "Control"]

CONTROL_PATH = "/_tapeproxy"


def _loopback(peer: Any) -> bool:
    address = peer_address(peer)
    return address is not None and address.is_loopback


def _answer(flow: http.HTTPFlow, status: int, doc: dict[str, Any]) -> None:
    mark_handled(flow, "control")
    body = json.dumps(doc, indent=2) + "\n"
    flow.response = http.Response.make(status, body, {"content-type": "application/json"})


class Control:
    """Answers the control API's requests (handed over by `Routes`).

    Args:
        switch: saves the cassette in use and continues with another (`ProxyRunner.switch`).
        session: the session in use.
        cassette_dir: where cassette names resolve.
        run_mode: the run's record mode (the default; `none` allows nothing else).
    """

    def __init__(
        self,
        switch: Callable[[Path, Mode], TapeSession],
        session: Callable[[], TapeSession],
        cassette_dir: Path,
        run_mode: Mode,
    ) -> None:
        self._switch = switch
        self._session = session
        self._dir = cassette_dir
        self._run_mode = run_mode
        self._lock = asyncio.Lock()

    async def handle(self, flow: http.HTTPFlow, path: str) -> None:
        """Answer `path` (after the control prefix) for this flow."""
        if not _loopback(flow.client_conn.peername):
            _answer(flow, 403, {"error": "tapeproxy control: loopback clients only"})
            return
        method = flow.request.method
        if path == "/status" and method == "GET":
            _answer(flow, 200, self._status())
        elif path == "/cassette" and method == "POST":
            await self._use(flow)
        else:
            _answer(
                flow,
                404,
                {"error": f"tapeproxy control: no {method} {CONTROL_PATH}{path}; there are "
                 f"POST {CONTROL_PATH}/cassette and GET {CONTROL_PATH}/status"},
            )  # fmt: skip

    def _status(self) -> dict[str, Any]:
        session = self._session()
        return {
            "cassette": str(session.path),
            "mode": session.mode,
            "counts": session.tally(),
            "misses": [m.one_line() for m in session.misses],
        }

    async def _use(self, flow: http.HTTPFlow) -> None:
        try:
            doc = json.loads(flow.request.get_content(strict=False) or b"{}")
        except ValueError:
            doc = None
        name = doc.get("name") if isinstance(doc, dict) else None
        mode = doc.get("mode", self._run_mode) if isinstance(doc, dict) else None
        if not isinstance(name, str) or not name.strip():
            _answer(flow, 400, {"error": 'tapeproxy control: send {"name": "suite/test"}'})
            return
        if mode not in MODES:
            _answer(flow, 400, {"error": f"tapeproxy control: mode {mode!r}: one of {MODES}"})
            return
        if self._run_mode == "none" and mode != "none":
            _answer(flow, 400, {"error": "tapeproxy control: a replay run only replays"})
            return
        target = self._path(name)
        if target is None:
            _answer(flow, 400, {"error": f"tapeproxy control: {name!r} leaves the cassette dir"})
            return
        previous = self._status()
        async with self._lock:  # one switch at a time; the switch saves and loads files
            loop = asyncio.get_running_loop()
            try:
                session = await loop.run_in_executor(None, self._switch, target, mode)
            except TapeproxyError as e:
                _answer(flow, 400, {"error": f"tapeproxy control: {e}"})
                return
        _answer(
            flow,
            200,
            {"cassette": str(session.path), "mode": session.mode, "exists": session.existed,
             "previous": previous},
        )  # fmt: skip

    def _path(self, name: str) -> Path | None:
        relative = name if name.endswith(".json.zst") else f"{name}.json.zst"
        base = self._dir.resolve()
        target = (base / relative).resolve()
        return target if target.is_relative_to(base) and target != base else None
