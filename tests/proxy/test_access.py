"""Tests for tapeproxy/proxy/access.py: public clients refused, proxy authentication, and no
open recording proxy on an address other machines reach."""

from __future__ import annotations

import base64
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from mitmproxy.test import tflow

from tapeproxy.cassettes import store
from tapeproxy.errors import ConfigError
from tapeproxy.fakeprovider import FakeProvider
from tapeproxy.proxy.access import Access, check_exposure, is_loopback
from tests.proxy.conftest import ProxyFactory, client_for


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _credentials() -> tuple[str, str]:
    return f"u{secrets.token_hex(3)}", secrets.token_urlsafe(12)


@pytest.mark.parametrize(
    "header_for",
    [
        lambda u, p: None,
        lambda u, p: _basic(u, p + "x"),
        lambda u, p: _basic(u + "x", p),
        lambda u, p: _basic(u, ""),
        lambda u, p: f"Bearer {p}",
        lambda u, p: "Basic !!!not-base64",
        lambda u, p: "Basic " + base64.b64encode(u.encode()).decode(),
    ],
    ids=["none", "bad-password", "bad-user", "empty-password", "bearer", "garbage", "no-colon"],
)
def test_a_request_without_the_right_credentials_gets_407(header_for: object) -> None:
    user, password = _credentials()
    flow = tflow.tflow()
    header = header_for(user, password)  # type: ignore[operator]
    if header is not None:
        flow.request.headers["proxy-authorization"] = header
    Access(f"{user}:{password}").requestheaders(flow)
    assert flow.response is not None and flow.response.status_code == 407
    assert flow.response.headers["proxy-authenticate"] == 'Basic realm="tapeproxy"'


def test_the_right_credentials_pass_and_are_not_forwarded() -> None:
    user, password = _credentials()
    flow = tflow.tflow()
    flow.request.headers["proxy-authorization"] = _basic(user, password)
    Access(f"{user}:{password}").requestheaders(flow)
    assert flow.response is None
    assert "proxy-authorization" not in flow.request.headers


def test_a_connect_that_authenticated_opens_a_trusted_tunnel() -> None:
    user, password = _credentials()
    access = Access(f"{user}:{password}")
    connect = tflow.tflow()
    connect.request.method = "CONNECT"
    connect.request.headers["proxy-authorization"] = _basic(user, password)
    access.http_connect(connect)
    assert connect.response is None
    inner = tflow.tflow()
    inner.client_conn = connect.client_conn
    access.requestheaders(inner)
    assert inner.response is None
    stranger = tflow.tflow()  # another client connection: no tunnel of its own
    access.requestheaders(stranger)
    assert stranger.response is not None and stranger.response.status_code == 407


def test_without_credentials_configured_nothing_is_asked() -> None:
    flow = tflow.tflow()
    Access(None).requestheaders(flow)
    assert flow.response is None


@pytest.mark.parametrize(
    ("peer", "refused"),
    [
        ("8.8.4.4", True),
        ("2001:4860:4860::8844", True),
        ("::ffff:8.8.4.4", True),
        ("127.0.0.1", False),
        ("::1", False),
        ("10.1.2.3", False),
        ("172.17.0.1", False),
        ("192.168.1.20", False),
        ("fe80::1%eth0", False),
    ],
)
def test_clients_from_public_addresses_are_refused(peer: str, refused: bool) -> None:
    client = tflow.tclient_conn()
    client.peername = (peer, 40000)
    Access(None).client_connected(client)
    assert (client.error is not None) == refused


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("", False),
        ("::", False),
        ("10.0.0.5", False),
        ("proxy.internal", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_a_recording_proxy_on_a_reachable_address_needs_credentials() -> None:
    with pytest.raises(ConfigError, match="--proxy-auth"):
        check_exposure("0.0.0.0", True, None, False)
    check_exposure("0.0.0.0", True, "u:p", False)
    check_exposure("0.0.0.0", True, None, True)
    check_exposure("0.0.0.0", False, None, False)  # replay never goes upstream
    check_exposure("127.0.0.1", True, None, False)


def test_through_a_real_proxy_only_authenticated_clients_record(
    tmp_path: Path, run_proxy: ProxyFactory, provider: FakeProvider
) -> None:
    user, password = _credentials()
    cassette = tmp_path / "c.json.zst"
    with run_proxy(cassette, "all", proxy_auth=f"{user}:{password}") as runner:
        assert f"{user}:" in runner.url
        bare = runner.url.replace(f"{user}:{password}@", "")
        with httpx.Client(proxy=bare, verify=False, timeout=30) as anonymous:
            with pytest.raises(httpx.ProxyError, match="407"):
                anonymous.post(provider.url + "/v1/chat/completions", json={"messages": []})
            plain = anonymous.get(provider.url.replace("https://", "http://") + "/v1/models")
            assert plain.status_code == 407
        with client_for(runner) as client:  # runner.url carries the credentials
            r = client.post(provider.url + "/v1/chat/completions", json={"messages": []})
        assert r.status_code == 200
    assert provider.requests == 1
    (recorded,) = store.load(cassette).interactions
    assert not any(n.lower() == "proxy-authorization" for n, _ in recorded.request.headers)
    assert password not in store.to_json_bytes(store.load(cassette)).decode()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_refuses_an_open_recording_proxy(tmp_path: Path) -> None:
    args = ["serve", "--mode", "all", "--listen", f"0.0.0.0:{_free_port()}"]
    args += ["--cassette", str(tmp_path / "c.json.zst"), "--confdir", str(tmp_path)]
    done = subprocess.run(
        [sys.executable, "-m", "tapeproxy", *args], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "--proxy-auth" in done.stderr and "--allow-open-proxy" in done.stderr


def test_serve_on_every_address_warns_and_hides_the_password(tmp_path: Path) -> None:
    user, password = _credentials()
    cassette = tmp_path / "c.json.zst"
    store.save(cassette, _empty())
    args = ["serve", "--listen", f"0.0.0.0:{_free_port()}", "--cassette", str(cassette)]
    args += ["--confdir", str(tmp_path), "--proxy-auth", f"{user}:{password}"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "tapeproxy", *args], stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stderr is not None
        banner = "".join(proc.stderr.readline() for _ in range(6))
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
    assert "WARNING: listening on 0.0.0.0" in banner and "auth required" in banner
    assert f"http://{user}:PASSWORD@" in banner and password not in banner


def _empty() -> store.Cassette:
    from tapeproxy.cassettes.model import new_cassette

    return new_cassette("test", "2025-01-01T00:00:00Z")


def test_clients_beyond_the_connection_limit_are_refused_until_one_leaves() -> None:
    access = Access(None, max_connections=3)
    clients = [tflow.tclient_conn() for _ in range(5)]
    for client in clients:
        client.peername = ("127.0.0.1", 40000)
        access.client_connected(client)
    assert [c.error is None for c in clients] == [True, True, True, False, False]
    access.client_disconnected(clients[0])
    late = tflow.tclient_conn()
    late.peername = ("10.0.0.7", 40001)
    access.client_connected(late)
    assert late.error is None


def test_the_default_limit_leaves_room_below_the_open_file_limit() -> None:
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    limit = Access(None).max_connections
    assert limit >= 64
    if soft != resource.RLIM_INFINITY:
        assert 2 * limit < soft or limit == 64


def test_max_connections_must_be_a_positive_number(tmp_path: Path) -> None:
    for bad in ("0", "many"):
        args = ["serve", "--max-connections", bad, "--cassette", str(tmp_path / "c.json.zst")]
        done = subprocess.run(
            [sys.executable, "-m", "tapeproxy", *args], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 2 and f"max_connections {bad!r}" in done.stderr, done.stderr


def _closed_within(sock: socket.socket, seconds: float) -> bool:
    """Whether the peer closes `sock` within `seconds` (reading EOF)."""
    sock.settimeout(seconds)
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


@pytest.mark.parametrize("front", [True, False])
def test_stalled_clients_are_capped_and_closed_when_idle(
    tmp_path: Path, run_proxy: ProxyFactory, provider: FakeProvider, front: bool
) -> None:
    # Clients that connect and never finish a request (a stalled CONNECT) must not take the
    # proxy away from everyone: beyond the cap they are refused, and idle ones are closed.
    cassette = tmp_path / "c.json.zst"
    with run_proxy(cassette, "all", max_connections=2, idle_timeout=2, fast_routes=front) as runner:
        assert (runner.fast_routes is not None) is front  # the front caps, or mitmproxy
        host, port = runner.address or ("127.0.0.1", 0)
        stalled = [socket.create_connection((host, port)) for _ in range(2)]
        stalled[0].sendall(b"CONNECT api.example:443 HTTP/1.1\r\n")  # never finished
        extra = socket.create_connection((host, port))
        assert _closed_within(extra, 5), "a client beyond max_connections was not refused"
        assert all(_closed_within(s, 8) for s in stalled), "idle clients were not closed"
        with client_for(runner) as client:  # room again for a real client
            r = client.post(provider.url + "/v1/chat/completions", json={"messages": []})
        assert r.status_code == 200
        for s in [*stalled, extra]:
            s.close()


def test_a_client_that_sends_no_request_is_closed_after_the_handshake_timeout(
    tmp_path: Path, run_proxy: ProxyFactory, provider: FakeProvider
) -> None:
    # The idle timeout is long; a client that connected and never got through to a request
    # (a CONNECT it never finishes, a silent socket) must not hold its slot that long.
    cassette = tmp_path / "c.json.zst"
    with run_proxy(cassette, "all", idle_timeout=600, handshake_timeout=1) as runner:
        host, port = runner.address or ("127.0.0.1", 0)
        silent = socket.create_connection((host, port))
        half = socket.create_connection((host, port))
        half.sendall(b"CONNECT api.example:443 HTTP/1.1\r\n")  # never finished
        with client_for(runner) as client:  # a client that asks in time is served, and
            r = client.post(provider.url + "/v1/chat/completions", json={"messages": []})
            assert r.status_code == 200
            assert _closed_within(silent, 8) and _closed_within(half, 8)
            time.sleep(1.5)  # its kept-alive connection outlives the handshake timeout
            r = client.post(provider.url + "/v1/chat/completions", json={"messages": []})
            assert r.status_code == 200
        silent.close()
        half.close()
