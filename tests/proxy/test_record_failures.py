"""Tests for tapeproxy/proxy/record.py on upstreams that misbehave: recorded as what happened.

A client that gives up on a hung upstream is stored as ended by the client (not as an upstream
failure), and a body that claims gzip but is not is stored raw under its claim, so its replay
fails the client as the live answer did, instead of succeeding where live failed.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tapeproxy.cassettes import store
from tapeproxy.cassettes.model import UNDECODABLE_ENCODING, body_bytes
from tests.proxy.conftest import ProxyFactory, client_for


class _RawUpstream:
    """A plain-HTTP server on 127.0.0.1 that reads a request and answers `answer` bytes as
    they are (None: never answers, holding the connection until closed)."""

    def __init__(self, answer: bytes | None) -> None:
        self._answer = answer
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        for _ in range(20):  # bounded: a test makes a few requests
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            conn.settimeout(10)
            data = b""
            while b"\r\n\r\n" not in data:
                piece = conn.recv(65536)
                if not piece:
                    break
                data += piece
            head, _, rest = data.partition(b"\r\n\r\n")
            length = next(
                (int(line.split(b":")[1]) for line in head.split(b"\r\n")
                 if line.lower().startswith(b"content-length:")),
                0,
            )  # fmt: skip
            while len(rest) < length:
                rest += conn.recv(65536)
            if self._answer is None:
                self._held.append(conn)
                continue
            conn.sendall(self._answer)
            conn.close()

    def close(self) -> None:
        for conn in self._held:
            conn.close()
        self._sock.close()


@pytest.fixture
def hung() -> Iterator[_RawUpstream]:
    upstream = _RawUpstream(None)
    yield upstream
    upstream.close()


@pytest.mark.parametrize("stream", [False, True], ids=["forwarded", "stream-fetch"])
def test_a_client_giving_up_on_a_hung_upstream_is_recorded_as_the_clients_doing(
    tmp_path: Path, run_proxy: ProxyFactory, hung: _RawUpstream, stream: bool
) -> None:
    cassette = tmp_path / "c.json.zst"
    body = {"model": "m", "messages": [], "stream": stream}
    # The proxy is stopped while the upstream still hangs: what is stored must not wait for it.
    with (
        run_proxy(cassette, "all") as runner,
        client_for(runner) as client,
        pytest.raises(httpx.TimeoutException),
    ):
        client.post(hung.url + "/v1/chat/completions", json=body, timeout=1.0)
    (failed,) = store.load(cassette).interactions
    assert failed.response is None and failed.error is not None
    assert failed.error.by == "client", failed.error
    assert failed.error.after_ms >= 900


def test_a_body_that_lies_about_gzip_replays_the_same_failure(
    tmp_path: Path, run_proxy: ProxyFactory
) -> None:
    plain = b'{"choices": []}'
    answer = (
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-encoding: gzip\r\n"
        b"content-length: %d\r\n\r\n%s" % (len(plain), plain)
    )
    upstream = _RawUpstream(answer)
    cassette = tmp_path / "c.json.zst"
    try:
        with (
            run_proxy(cassette, "all") as runner,
            client_for(runner) as client,
            pytest.raises(httpx.DecodingError),  # live: the client cannot gunzip it
        ):
            client.post(upstream.url + "/v1/chat/completions", json={"m": 1})
    finally:
        upstream.close()
    (stored,) = store.load(cassette).interactions
    assert stored.response is not None
    assert (UNDECODABLE_ENCODING, "gzip") in stored.response.headers
    assert body_bytes(stored.response.body) == plain  # kept raw: what came
    with (
        run_proxy(cassette, "none") as runner,
        client_for(runner) as client,
        pytest.raises(httpx.DecodingError),  # replay fails the same way
    ):
        client.post(upstream.url + "/v1/chat/completions", json={"m": 1})
