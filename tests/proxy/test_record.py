"""Recording through a real proxy: credentials never stored, parallel clients, early hang-ups,
answers forwarded by mitmproxy stored like those the recorder fetches, failures recorded."""

from __future__ import annotations

import secrets
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from mitmproxy import connection
from mitmproxy.proxy import server_hooks

from tapeproxy.cassettes import store
from tapeproxy.fakeprovider import FakeProvider
from tapeproxy.proxy.record import Recorder
from tapeproxy.proxy.session import TapeSession
from tapeproxy.proxy.tapeserver import TapeServer
from tapeproxy.proxy.upstream import make_client
from tests.blobserver import serving
from tests.proxy.conftest import ProxyFactory, client_for, written_bytes

CHAT = "/v1/chat/completions"
SSE = "text/event-stream"


def test_credentials_never_reach_the_cassette(
    tmp_path: Path, run_proxy: ProxyFactory, provider: FakeProvider
) -> None:
    fakes = {
        name: "fk" + secrets.token_hex(16)
        for name in (
            "authorization",
            "x-api-key",
            "api-key",
            "x-goog-api-key",
            "cookie",
            "x-amz-security-token",
            "query",
            "set-cookie",
        )
    }
    headers = {k: v for k, v in fakes.items() if k != "query"}
    headers["authorization"] = "Bearer " + fakes["authorization"]
    cassette = tmp_path / "out" / "c.json.zst"
    url = provider.url + CHAT + "?key=" + fakes["query"]
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    with run_proxy(cassette, "all") as runner, client_for(runner) as client:
        live = client.post(url, json=body, headers=headers)
    assert live.status_code == 200
    fakes["set-cookie"] = live.headers["set-cookie"].split(";")[0].split("=")[1]
    written = written_bytes(tmp_path / "out")
    assert b"set-cookie" in written  # the header is kept, its value is not
    for name, value in fakes.items():
        assert value.encode() not in written, name
    # the key of a request does not depend on its credentials: replay without them hits
    with run_proxy(cassette, "none") as runner, client_for(runner) as client:
        assert client.post(provider.url + CHAT + "?key=other", json=body).status_code == 200


def test_parallel_clients_all_land_in_the_cassette_and_replay(
    tmp_path: Path, run_proxy: ProxyFactory, provider: FakeProvider
) -> None:
    cassette = tmp_path / "c.json.zst"
    clients, per_client = 16, 50
    failures: list[str] = []

    def work(i: int, runner: object, expect: dict[str, str] | None) -> None:
        with client_for(runner) as client:  # type: ignore[arg-type]
            for j in range(per_client):
                prompt = f"client {i} request {j}"
                r = client.post(
                    provider.url + CHAT, json={"messages": [{"role": "user", "content": prompt}]}
                )
                if r.status_code != 200 or f"You said: {prompt}." not in r.text:
                    failures.append(f"{prompt}: {r.status_code}")

    for mode in ("all", "none"):
        with run_proxy(cassette, mode) as runner:
            threads = [
                threading.Thread(target=work, args=(i, runner, None)) for i in range(clients)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join(120)
        assert not failures, failures[:5]
        if mode == "all":
            assert len(store.load(cassette).interactions) == clients * per_client
            recorded_requests = provider.requests
    assert provider.requests == recorded_requests  # the replay served all 800 itself


def test_client_hanging_up_early_still_records_the_whole_stream(
    tmp_path: Path, run_proxy: ProxyFactory, provider: FakeProvider, confdir: Path
) -> None:
    cassette = tmp_path / "c.json.zst"
    body = b'{"model": "m", "stream": true, "messages": []}'
    with run_proxy(cassette, "all") as runner:
        assert runner.address is not None
        ctx = ssl.create_default_context(cafile=str(runner.config.ca_cert()))
        with socket.create_connection(runner.address, timeout=10) as raw:
            raw.sendall(
                f"CONNECT localhost:{provider.port} HTTP/1.1\r\nhost: localhost\r\n\r\n".encode()
            )
            assert b" 200 " in raw.recv(4096)
            with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
                tls.sendall(
                    f"POST {CHAT} HTTP/1.1\r\nhost: localhost:{provider.port}\r\n"
                    f"content-type: application/json\r\nx-fake-tail-ms: 300\r\nx-fake-gap-ms: 5\r\n"
                    f"content-length: {len(body)}\r\n\r\n".encode()
                    + body
                )
                seen = b""
                while b"[DONE]" not in seen:  # read like the openai SDK: stop at [DONE]
                    seen += tls.recv(65536)
        # hung up; the upstream still has ": end" to send
    (it,) = store.load(cassette).interactions
    assert it.error is None and it.response is not None and it.response.body is not None
    assert it.response.body.to_bytes().endswith(b"data: [DONE]\n\n: end\n\n")


def _volatile_free(headers: tuple[tuple[str, str], ...]) -> list[tuple[str, str]]:
    return [
        (k, "" if k.lower() in ("date", "set-cookie", "x-request-id") else v) for k, v in headers
    ]


def test_forwarded_and_fetched_answers_are_stored_alike(
    tmp_path: Path, run_proxy: ProxyFactory, provider: FakeProvider
) -> None:
    cassette = tmp_path / "c.json.zst"
    body = {"model": "m", "messages": [{"role": "user", "content": "same"}]}
    gz = {"accept-encoding": "gzip"}
    with run_proxy(cassette, "all") as runner, client_for(runner) as client:
        forwarded = client.post(provider.url + CHAT, json=body, headers=gz)
        # asks for a stream, so the recorder fetches it itself; the answer is plain JSON
        fetched = client.post(provider.url + CHAT, json=body, headers={**gz, "accept": SSE})
    assert forwarded.content == fetched.content
    assert forwarded.headers["content-encoding"] == "gzip"
    native, relayed = (it.response for it in store.load(cassette).interactions)
    assert native is not None and relayed is not None
    assert (native.status, native.reason, native.http_version) == (200, "OK", "HTTP/1.1")
    assert native.model_dump(exclude={"headers"}) == relayed.model_dump(exclude={"headers"})
    assert _volatile_free(native.headers) == _volatile_free(relayed.headers)
    assert native.body is not None and b"You said: same." in native.body.to_bytes()  # decoded
    timing = store.load(cassette).interactions[0].timing
    assert 0 < timing.ttfb_ms <= timing.total_ms


class _Unasked(BaseHTTPRequestHandler):
    """Streams 5 SSE events (chunked, no Content-Length) to any POST, `x-gap-ms` apart (30)."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        gap = int(self.headers.get("x-gap-ms") or 30) / 1000
        try:
            for i in range(5):
                time.sleep(gap)
                event = b"data: %d\n\n" % i
                self.wfile.write(b"%x\r\n%b\r\n" % (len(event), event))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            self.close_connection = True


def _pieces(
    client: httpx.Client, url: str, gap_ms: int = 30, keep: int | None = None
) -> list[bytes]:
    body = {"model": "m", "messages": []}
    with client.stream("POST", url, json=body, headers={"x-gap-ms": str(gap_ms)}) as r:
        assert r.status_code == 200
        pieces = []
        for piece in r.iter_raw():
            pieces.append(piece)
            if keep is not None and len(pieces) == keep:
                break  # hang up
        return pieces


@contextmanager
def _unasked_upstream() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Unasked)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1/chat/completions"
    finally:
        server.shutdown()
        server.server_close()


def test_unasked_stream_is_recorded_with_offsets_and_replays_chunked(
    tmp_path: Path, run_proxy: ProxyFactory
) -> None:
    cassette = tmp_path / "c.json.zst"
    with (
        _unasked_upstream() as url,
        run_proxy(cassette, "all") as runner,
        client_for(runner) as client,
    ):
        live = _pieces(client, url)
    (it,) = store.load(cassette).interactions
    assert it.error is None and it.response is not None and it.response.chunks is not None
    assert it.response.body is not None
    assert (
        it.response.body.to_bytes()
        == b"".join(live)
        == b"".join(b"data: %d\n\n" % i for i in range(5))
    )
    offsets = [offset for offset, _ in it.response.chunks]
    assert len(offsets) == 5 and offsets == sorted(offsets)
    with run_proxy(cassette, "none") as runner, client_for(runner) as client:
        replayed = _pieces(client, url)
    assert b"".join(replayed) == b"".join(live)
    assert len(replayed) == 5  # one piece per recorded chunk


def test_refused_upstream_is_recorded_as_an_error_and_replayed_as_a_reset(
    tmp_path: Path, run_proxy: ProxyFactory
) -> None:
    cassette = tmp_path / "c.json.zst"
    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/v1/chat/completions"
    for mode in ("all", "none"):
        with (
            run_proxy(cassette, mode) as runner,
            client_for(runner) as client,
            pytest.raises(httpx.HTTPError),
        ):
            client.post(url, json={"model": "m"})
        if mode == "all":
            (it,) = store.load(cassette).interactions
            assert it.response is None and it.error is not None
            assert "connect" in it.error.message.lower()  # ECONNREFUSED, as mitmproxy says it


def test_unasked_stream_is_cut_short_by_a_client_hanging_up(
    tmp_path: Path, run_proxy: ProxyFactory
) -> None:
    cassette = tmp_path / "c.json.zst"
    with (
        _unasked_upstream() as url,
        run_proxy(cassette, "all") as runner,
        client_for(runner) as client,
    ):
        (first,) = _pieces(client, url, gap_ms=100, keep=1)
    (it,) = store.load(cassette).interactions
    assert it.error is not None and it.response is not None and it.response.body is not None
    recorded = it.response.body.to_bytes()
    assert recorded.startswith(first) and len(recorded) < len(b"data: 0\n\n") * 5


def _offers(recorder: Recorder, host: str) -> tuple[bytes, ...]:
    server = connection.Server(address=(host, 443))
    client = connection.Client(peername=("127.0.0.1", 1), sockname=("127.0.0.1", 2))
    recorder.server_connect(server_hooks.ServerConnectionHookData(server, client))
    return tuple(server.alpn_offers)


def test_recorded_upstreams_are_offered_http1_only(tmp_path: Path) -> None:
    recording = TapeSession(tmp_path / "a.json.zst", "all")
    hosts = frozenset({"api.example.com"})
    recorder = Recorder(recording, TapeServer(), make_client, hosts)
    assert _offers(recorder, "api.example.com") == (b"http/1.1",)
    assert _offers(recorder, "elsewhere.example.com") == ()  # passed through as it is
    assert (
        _offers(
            Recorder(TapeSession(tmp_path / "b.json.zst", "none"), TapeServer(), make_client),
            "api.example.com",
        )
        == ()
    )


def test_large_binary_bodies_are_recorded_and_replayed_byte_for_byte(
    tmp_path: Path, run_proxy: ProxyFactory
) -> None:
    """A 3 MiB binary answer and upload: kept as their bytes while recorded (not as base64),
    they are saved, loaded and replayed as the very bytes, and the upload is keyed alike."""
    import hashlib
    import random

    blob = random.Random(7).randbytes(3 << 20)
    cassette = tmp_path / "c.json.zst"
    upload = blob[::-1]
    with (
        serving(blob) as url,
        run_proxy(cassette, "all") as runner,
        client_for(runner) as client,
    ):
        assert client.get(url + "/blob").content == blob
        assert client.post(url + "/up", content=upload).text == hashlib.sha256(upload).hexdigest()
    got, sent = store.load(cassette).interactions
    assert got.response is not None and got.response.body is not None
    assert got.response.body.to_bytes() == blob
    assert sent.request.body is not None and sent.request.body.to_bytes() == upload
    with run_proxy(cassette, "none") as runner, client_for(runner) as client:  # no server now
        assert client.get(url + "/blob").content == blob
        assert client.post(url + "/up", content=upload).text == hashlib.sha256(upload).hexdigest()
