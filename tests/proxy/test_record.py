"""Recording through a real proxy: credentials never stored, parallel clients, early hang-ups."""

from __future__ import annotations

import secrets
import socket
import ssl
import threading
from pathlib import Path

from tapeproxy.cassettes import store
from tapeproxy.fakeprovider import FakeProvider
from tests.proxy.conftest import ProxyFactory, client_for, written_bytes

CHAT = "/v1/chat/completions"


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
