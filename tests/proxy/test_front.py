"""The front (`proxy.fastroutes` with `proxy.tlsterm`): CONNECT tunnels whose client speaks
TLS with HTTP/1.1 are ended by the front, and their cassette hits answered there, byte for
byte as mitmproxy answers them; everything else reaches mitmproxy as before (misses, h2,
recording, faults, non-TLS tunnels), and mitmproxy starts only when something is handed on.

Every test goes through real clients (httpx, curl, a raw socket) to a real proxy."""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tapeproxy.cassettes import store
from tapeproxy.fakeprovider import FakeProvider
from tapeproxy.providers.stubs import Stubs
from tapeproxy.proxy.faults import Faults, parse_faults
from tapeproxy.proxy.latency import Latency
from tapeproxy.proxy.runner import ProxyRunner
from tapeproxy.proxy.tlsterm import ServerCerts, _parse_hello
from tests.proxy.conftest import ProxyFactory, client_for, taken_port

_PROMPTS = ("one", "two", "three")


def _chat(prompt: str, stream: bool = False) -> dict[str, object]:
    return {"model": "m", "stream": stream, "messages": [{"role": "user", "content": prompt}]}


def _record(tmp_path: Path, run_proxy: ProxyFactory, provider: FakeProvider) -> Path:
    cassette = tmp_path / "tunnelled.json.zst"
    with run_proxy(cassette, "all") as runner, client_for(runner) as http:
        for prompt in _PROMPTS:
            assert http.post(provider.url + "/v1/chat/completions", json=_chat(prompt)).is_success
        streamed = http.post(provider.url + "/v1/chat/completions", json=_chat("flow", True))
        assert streamed.text.endswith("[DONE]\n\n")
    assert len(store.load(cassette).interactions) == 4
    return cassette


@contextlib.contextmanager
def _replaying(
    tmp_path: Path, run_proxy: ProxyFactory, provider: FakeProvider
) -> Iterator[ProxyRunner]:
    """A replay (timing off) of the recorded cassette, the upstream stopped."""
    cassette = _record(tmp_path, run_proxy, provider)
    provider.stop()
    with run_proxy(cassette, "none", latency=Latency(0.0)) as runner:
        yield runner


def _served(runner: ProxyRunner) -> int:
    return 0 if runner.fast_routes is None else runner.fast_routes.served


def test_tunnelled_hits_are_answered_by_the_front_as_mitmproxy_answers_them(
    tmp_path: Path, run_proxy: ProxyFactory, provider: FakeProvider
) -> None:
    cassette = _record(tmp_path, run_proxy, provider)
    provider.stop()
    before = provider.connections

    def replay(front: bool) -> tuple[list[tuple[int, list[tuple[str, str]], bytes]], int]:
        got = []
        with run_proxy(cassette, "none", latency=Latency(0.0), fast_routes=front) as runner:
            for prompt, stream in [(p, False) for p in _PROMPTS] + [("flow", True)]:
                with client_for(runner) as http:  # a fresh connection per request
                    r = http.post(provider.url + "/v1/chat/completions", json=_chat(prompt, stream))
                headers = [(k, v) for k, v in r.headers.multi_items() if k != "date"]
                got.append((r.status_code, headers, r.content))
            assert runner.mitmproxy_started is not front  # nothing was handed on
            assert runner.session.tally()["hits"] == 4
            return got, _served(runner)

    by_front, served = replay(True)
    by_mitmproxy, not_served = replay(False)
    assert (served, not_served) == (4, 0)
    assert by_front == by_mitmproxy  # status, headers in order, bytes
    assert by_front[3][2].endswith(b"[DONE]\n\n")
    assert provider.connections == before


def test_plain_http_proxied_hits_are_answered_by_the_front_as_mitmproxy_answers_them(
    tmp_path: Path, run_proxy: ProxyFactory
) -> None:
    cassette = tmp_path / "plain.json.zst"
    with FakeProvider() as plain:  # an upstream over plain HTTP, reached through HTTP_PROXY
        url = plain.url + "/v1/chat/completions"
        with run_proxy(cassette, "all") as runner, client_for(runner) as http:
            for prompt in _PROMPTS:
                assert http.post(url, json=_chat(prompt)).is_success
            assert http.post(url + "?stream=1", json=_chat("flow", True)).is_success

    def replay(front: bool) -> tuple[list[tuple[int, list[tuple[str, str]], bytes]], int]:
        got = []
        with run_proxy(cassette, "none", latency=Latency(0.0), fast_routes=front) as runner:
            with client_for(runner) as http:  # one connection: requests follow each other
                for prompt, stream in [(p, False) for p in _PROMPTS] + [("flow", True)]:
                    target = url + ("?stream=1" if stream else "")
                    r = http.post(target, json=_chat(prompt, stream))
                    headers = [(k, v) for k, v in r.headers.multi_items() if k != "date"]
                    got.append((r.status_code, headers, r.content))
                missed = http.post(url, json=_chat("never asked"))  # then mitmproxy's
                assert missed.status_code == 599 and "no recorded response" in missed.text
                assert http.post(url, json=_chat("one")).status_code == 200
            assert runner.session.tally()["hits"] == 5
            return got, _served(runner)

    by_front, served = replay(True)
    by_mitmproxy, not_served = replay(False)
    assert (served, not_served) == (4, 0)
    assert by_front == by_mitmproxy
    assert plain.requests == 4


def test_a_miss_hands_the_tunnel_to_mitmproxy_which_explains_it_and_serves_on(
    tmp_path: Path, run_proxy: ProxyFactory, provider: FakeProvider
) -> None:
    with _replaying(tmp_path, run_proxy, provider) as runner, client_for(runner) as http:
        url = provider.url + "/v1/chat/completions"
        assert http.post(url, json=_chat("one")).status_code == 200
        assert _served(runner) == 1 and not runner.mitmproxy_started
        missed = http.post(url, json=_chat("never asked"))  # the same connection, re-encrypted
        assert missed.status_code == 599
        assert "no recorded response matches this request" in missed.text
        assert runner.mitmproxy_started
        assert http.post(url, json=_chat("two")).status_code == 200  # on, through mitmproxy
        assert _served(runner) == 1
        assert runner.session.tally()["hits"] == 2 and runner.session.tally()["misses"] == 1
        with client_for(runner) as fresh:  # a new tunnel is the front's again
            assert fresh.post(url, json=_chat("three")).status_code == 200
        assert _served(runner) == 2


def _negotiated(runner: ProxyRunner, alpn: list[str] | None) -> str | None:
    """The protocol a TLS client offering `alpn` gets through the proxy's CONNECT."""
    assert runner.address is not None
    context = ssl.create_default_context(cafile=str(runner.config.ca_cert()))
    if alpn is not None:
        context.set_alpn_protocols(alpn)
    with socket.create_connection(runner.address, timeout=10) as raw:
        raw.sendall(b"CONNECT api.openai.com:443 HTTP/1.1\r\nHost: api.openai.com:443\r\n\r\n")
        assert raw.recv(1024).startswith(b"HTTP/1.1 200")
        with context.wrap_socket(raw, server_hostname="api.openai.com") as tls:
            return tls.selected_alpn_protocol()


@pytest.mark.parametrize(
    "alpn",
    [["h2", "http/1.1"], ["http/1.1", "h2"], ["http/1.1"], None, ["spdy/3", "http/1.1"],
     ["http/1.0", "http/1.1"], ["h3", "h2", "http/1.1"]],
)  # fmt: skip
def test_clients_get_the_protocol_mitmproxy_would_choose(
    tmp_path: Path, run_proxy: ProxyFactory, alpn: list[str] | None
) -> None:
    chosen = []
    for front in (True, False):
        with run_proxy(tmp_path / "c.json.zst", "none", fast_routes=front) as runner:
            chosen.append(_negotiated(runner, alpn))
            ended_here = front and not runner.mitmproxy_started
        if front:
            assert ended_here is (chosen[0] in (None, "http/1.1"))
    assert chosen[0] == chosen[1]


def test_a_client_that_prefers_h2_gets_mitmproxy_and_h2(
    tmp_path: Path, run_proxy: ProxyFactory, provider: FakeProvider
) -> None:
    with _replaying(tmp_path, run_proxy, provider) as runner:
        with client_for(runner, http2=True) as http:  # httpx offers http/1.1 first
            got = http.post(provider.url + "/v1/chat/completions", json=_chat("one"))
        assert got.http_version == "HTTP/1.1" and _served(runner) == 1
        assert _negotiated(runner, ["h2", "http/1.1"]) == "h2"
        assert runner.mitmproxy_started


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
@pytest.mark.parametrize("protocol", ["--http1.1", "--http2"])
def test_curl_through_the_front(
    tmp_path: Path, run_proxy: ProxyFactory, provider: FakeProvider, protocol: str
) -> None:
    with _replaying(tmp_path, run_proxy, provider) as runner:
        done = subprocess.run(
            ["curl", "-sS", protocol, "--proxy", runner.url, "--cacert",
             str(runner.config.ca_cert()), "-H", "content-type: application/json",
             "-d", '{"model": "m", "stream": false, "messages": [{"role": "user", '
             '"content": "one"}]}', provider.url + "/v1/chat/completions"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert runner.session.tally()["hits"] == 1, done.stdout
        # curl asks for h2 with --http2, which the front leaves to mitmproxy
        assert _served(runner) == (1 if protocol == "--http1.1" else 0)


def test_recording_misses_through_the_front_while_hits_are_answered(
    tmp_path: Path, run_proxy: ProxyFactory, provider: FakeProvider
) -> None:
    cassette = _record(tmp_path, run_proxy, provider)
    with run_proxy(cassette, "new_episodes", latency=Latency(0.0)) as runner:
        assert runner.mitmproxy_started  # the recorder is mitmproxy's addon
        with client_for(runner) as http:
            url = provider.url + "/v1/chat/completions"
            assert http.post(url, json=_chat("one")).status_code == 200
            assert http.post(url, json=_chat("new")).status_code == 200
        tally = runner.session.tally()
        assert _served(runner) == 1 and tally["hits"] == 1 and tally["recorded"] == 1
    assert provider.requests == 5  # four recorded first, and the new one
    assert len(store.load(cassette).interactions) == 5


def test_faults_drawn_per_test_take_tunnels_from_the_front(
    tmp_path: Path, run_proxy: ProxyFactory, provider: FakeProvider
) -> None:
    with _replaying(tmp_path, run_proxy, provider) as runner, client_for(runner) as http:
        url = provider.url + "/v1/chat/completions"
        assert http.post(url, json=_chat("one")).status_code == 200
        runner.use_faults(Faults(parse_faults("500=100%")))  # as the pytest plugin does
        assert http.post(url, json=_chat("two")).status_code == 500  # the open tunnel too
        with client_for(runner) as fresh:
            assert fresh.post(url, json=_chat("three")).status_code == 500
        assert _served(runner) == 1 and runner.session.tally()["faulted"] == 2


@pytest.mark.parametrize("latency", [0.0, 1.0])
def test_faults_and_stubs_come_out_the_same_with_the_front_or_without(
    tmp_path: Path, run_proxy: ProxyFactory, provider: FakeProvider, latency: float
) -> None:
    """Seeded faults fail the same requests, scripted stub answers come in the same order,
    whether the front answers what draws no fault or mitmproxy answers everything."""
    cassette = _record(tmp_path, run_proxy, provider)
    provider.stop()
    rules = tmp_path / "stubs.json"
    rules.write_text(
        json.dumps(
            {"rules": [{"match": {"last_user": "stubbed"},
                        "answers": [{"text": "first"}, {"text": "second"}, {"text": "third"}]}]}
        )
    )  # fmt: skip
    asked = [p for _ in range(10) for p in (*_PROMPTS, "stubbed", "never asked")]

    def run(front: bool) -> tuple[list[tuple[int, list[tuple[str, str]], bytes]], dict[str, int]]:
        got = []
        with run_proxy(
            cassette, "none", latency=Latency(latency), fast_routes=front,
            faults=Faults(parse_faults("500=20%,429=10%"), seed=11),
            stubs=Stubs.from_files([rules]),
        ) as runner:  # fmt: skip
            for n, prompt in enumerate(asked):
                with client_for(runner) as http:
                    r = http.post(provider.url + "/v1/chat/completions", json=_chat(prompt))
                headers = [(k, v) for k, v in r.headers.multi_items() if k != "date"]
                got.append((r.status_code, headers, r.content))
                if n == len(asked) // 2:
                    runner.use_faults(Faults(parse_faults("503=20%"), seed=5))  # mid-run
            assert (_served(runner) > 0) is front
            return got, runner.session.tally()

    with_front, tally = run(True)
    without, tally_without = run(False)
    assert with_front == without
    assert tally == tally_without
    statuses = {status for status, _, _ in with_front}
    # hits and stubs, faults and misses all met. Which requests fail depends on their keys,
    # which hold the fake upstream's port: 40 draws at 20-30 % all clean, or all 10 stub
    # requests failed, are each under 1 in 100,000 runs
    assert {200, 599} <= statuses and statuses & {429, 500, 503}
    assert tally["stubbed"] > 0 and tally["faulted"] > 0


def test_a_client_that_rejects_the_front_certificate_is_noted(
    tmp_path: Path, run_proxy: ProxyFactory, provider: FakeProvider
) -> None:
    cassette = _record(tmp_path, run_proxy, provider)
    with run_proxy(cassette, "none") as runner:
        with (
            httpx.Client(proxy=runner.url, verify=ssl.create_default_context(), timeout=10) as http,
            pytest.raises(httpx.ConnectError),
        ):
            http.post(provider.url + "/v1/chat/completions", json=_chat("one"))
        deadline = time.monotonic() + 10  # the client's alert is read after it gave up
        while not runner.session.tally()["client_tls_failures"] and time.monotonic() < deadline:
            time.sleep(0.01)
        assert runner.session.tally()["client_tls_failures"] == 1
        assert "does not trust the proxy's certificate" in runner.session.summary()


def test_plain_http_in_a_tunnel_is_relayed_to_mitmproxy(
    tmp_path: Path, run_proxy: ProxyFactory, provider: FakeProvider
) -> None:
    with run_proxy(tmp_path / "c.json.zst", "none") as runner:
        assert runner.address is not None
        with socket.create_connection(runner.address, timeout=10) as s:
            s.sendall(b"CONNECT example.test:80 HTTP/1.1\r\nHost: example.test:80\r\n\r\n")
            assert s.recv(1024).startswith(b"HTTP/1.1 200")
            s.sendall(b"GET /v1/models HTTP/1.1\r\nHost: example.test\r\n\r\n")
            answer = _read_answer(s)
        assert answer.startswith(b"HTTP/1.1 599") and b"no recorded response" in answer
        assert runner.mitmproxy_started and _served(runner) == 0


def _read_answer(s: socket.socket) -> bytes:
    got = b""
    while b"\r\n\r\n" not in got or len(got.partition(b"\r\n\r\n")[2]) < _length(got):
        chunk = s.recv(65536)
        if not chunk:
            break
        got += chunk
    return got


def _length(got: bytes) -> int:
    for line in got.partition(b"\r\n\r\n")[0].split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


def test_stalled_clients_are_closed_after_the_handshake_timeout(
    tmp_path: Path, run_proxy: ProxyFactory
) -> None:
    with run_proxy(tmp_path / "c.json.zst", "none", handshake_timeout=1) as runner:
        assert runner.address is not None
        began = time.monotonic()
        with socket.create_connection(runner.address, timeout=10) as silent, \
                socket.create_connection(runner.address, timeout=10) as half:  # fmt: skip
            half.sendall(b"CONNECT example.test:443 HTTP/1.1\r\n\r\n")
            assert half.recv(1024).startswith(b"HTTP/1.1 200")  # then no ClientHello
            assert silent.recv(1024) == b"" and half.recv(1024) == b""
        assert time.monotonic() - began < 8


def _hello(sni: str | None, alpn: list[str] | None) -> bytes:
    """The first record a real TLS client (Python's ssl) sends."""
    context = ssl.create_default_context()
    if sni is None:
        context.check_hostname = False
    if alpn is not None:
        context.set_alpn_protocols(alpn)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname=sni)
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


@pytest.mark.parametrize(
    ("sni", "alpn", "http1"),
    [
        ("api.openai.com", ["h2", "http/1.1"], False),
        ("api.openai.com", ["http/1.1"], True),
        ("api.openai.com", ["http/1.1", "h2"], True),
        ("api.openai.com", ["spdy/3", "http/1.1"], True),
        ("localhost", None, True),
        (None, ["http/1.1"], True),
        ("xn--bcher-kva.example", ["spdy/3", "h2"], False),
        ("a" * 60 + ".example", ["http/1.0"], False),
    ],
)
def test_the_client_hello_is_read_for_its_name_and_protocols(
    sni: str | None, alpn: list[str] | None, http1: bool
) -> None:
    record = _hello(sni, alpn)
    hello = _parse_hello(record[5:])
    assert hello is not None
    assert hello.sni == sni and hello.alpn == tuple(alpn or ())
    assert hello.wants_http1 is http1
    for cut in (6, 40, len(record) - 1):  # a hello cut short is not read, whatever the cut
        assert _parse_hello(record[5:cut]) is None
    assert _parse_hello(b"\x02" + record[6:]) is None  # not a ClientHello


def test_certificates_for_ever_new_names_are_kept_within_a_bound(confdir: Path) -> None:
    certs = ServerCerts(confdir, max_hosts=4)
    try:
        names = [f"host{n}.example" for n in range(10)] + ["127.0.0.1", "::1"]
        for name in names:
            context = certs.context(name, http1=True)
            assert len(certs) <= 4
        # the context serves the name it was made for, to a client that trusts the CA only
        client = ssl.create_default_context(cafile=str(confdir / "mitmproxy-ca-cert.pem"))
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        server = context.wrap_bio(incoming, outgoing, server_side=True)
        c_in, c_out = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = client.wrap_bio(c_in, c_out, server_hostname="::1")
        for _ in range(10):
            for side in (tls, server):
                with contextlib.suppress(ssl.SSLWantReadError):
                    side.do_handshake()
            incoming.write(c_out.read())
            c_in.write(outgoing.read())
        tls.do_handshake()
        assert tls.selected_alpn_protocol() is None  # the client offered none
        assert list(certs._folder.iterdir()) == []  # type: ignore[union-attr]  # keys removed
    finally:
        certs.close()


@pytest.mark.parametrize("front", [True, False])
def test_a_taken_port_fails_the_start_at_once_and_leaves_no_proxy_thread(
    tmp_path: Path, run_proxy: ProxyFactory, front: bool
) -> None:
    from tapeproxy.errors import BadInputError

    with taken_port() as port:
        runner = run_proxy(tmp_path / "c.json.zst", "none", listen_port=port, fast_routes=front)
        began = time.monotonic()
        with pytest.raises(BadInputError, match=f"address already in use: port {port}"):
            runner.start()
        assert time.monotonic() - began < 4  # not the 5 s join of a thread left running
        assert runner._thread is not None and not runner._thread.is_alive()
