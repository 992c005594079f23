"""Routed cassette hits are answered on a listener of their own, without mitmproxy's engine
(issue 18): the same bytes as the proxy's own routes and as proxied replay, the same keys and
counts; everything else (misses, stubs, recording, unknown routes, answers that keep their
timing) is handed to the proxy's listener on the same connection."""

from __future__ import annotations

import json
import ssl
from pathlib import Path

import httpx
import openai
import pytest

from tapeproxy.cassettes import store
from tapeproxy.fakeprovider import FakeProvider
from tapeproxy.proxy.latency import Latency
from tapeproxy.proxy.routes import DEFAULT_ROUTES, Route
from tapeproxy.proxy.runner import ProxyRunner
from tests.proxy.conftest import ProxyFactory, taken_port


def _routes(provider: FakeProvider) -> tuple[Route, ...]:
    return (*DEFAULT_ROUTES, Route("local", provider.url))


def _on(runner: ProxyRunner, fast: bool) -> str:
    """The base URL of the `local` route: on the fast listener, or on the proxy's own."""
    assert runner.address is not None
    port = runner.address[1]
    if fast:
        assert runner.fast_routes is not None and runner.fast_routes.address is not None
        port = runner.fast_routes.address[1]
        assert port != runner.address[1]
    return f"http://127.0.0.1:{port}/local"


def _chat(prompt: str, stream: bool = False) -> dict[str, object]:
    return {
        "model": "gpt-4o-mini",
        "stream": stream,
        "messages": [{"role": "user", "content": prompt}],
    }


def _record(tmp_path: Path, run_proxy: ProxyFactory, provider: FakeProvider) -> Path:
    cassette = tmp_path / "routed.json.zst"
    with run_proxy(cassette, "all", routes=_routes(provider)) as runner:
        base = runner.route_env()["OPENAI_BASE_URL"]  # the fast listener, which hands it on
        assert runner.fast_routes is not None and base.endswith(
            f":{runner.fast_routes.address[1]}/openai"  # type: ignore[index]
        )
        with httpx.Client(trust_env=False, timeout=30) as http:
            for prompt in ("one", "two"):
                assert (
                    http.post(
                        _on(runner, True) + "/v1/chat/completions", json=_chat(prompt)
                    ).status_code
                    == 200
                )
            streamed = http.post(
                _on(runner, True) + "/v1/chat/completions", json=_chat("flow", True)
            )
            assert streamed.status_code == 200 and streamed.text.endswith("[DONE]\n\n")
        assert runner.fast_routes.served == 0  # recording: all handed on
    assert len(store.load(cassette).interactions) == 3
    return cassette


def test_hits_are_answered_on_the_fast_listener_byte_for_byte(
    tmp_path: Path, run_proxy: ProxyFactory, provider: FakeProvider
) -> None:
    cassette = _record(tmp_path, run_proxy, provider)
    provider.stop()
    connections = provider.connections

    def replay(
        fast: bool, latency: Latency
    ) -> tuple[list[tuple[int, list[tuple[str, str]], bytes]], int, dict[str, int]]:
        got = []
        with run_proxy(
            cassette, "none", routes=_routes(provider), latency=latency, fast_routes=fast
        ) as runner:
            with httpx.Client(trust_env=False, timeout=30) as http:
                for prompt, stream in (("one", False), ("two", False), ("flow", True)):
                    r = http.post(
                        _on(runner, fast) + "/v1/chat/completions", json=_chat(prompt, stream)
                    )
                    headers = [(k, v) for k, v in r.headers.multi_items() if k not in ("date",)]
                    got.append((r.status_code, headers, r.content))
            served = 0 if runner.fast_routes is None else runner.fast_routes.served
            return got, served, runner.session.tally()

    fast, served, tally = replay(True, Latency(0.0))
    slow, not_served, _ = replay(False, Latency(0.0))
    assert served == 3 and not_served == 0
    assert tally["hits"] == 3 and tally["misses"] == 0
    assert fast == slow  # status, headers in order, bytes
    assert all(status == 200 for status, _, _ in fast)
    assert fast[2][2].endswith(b"[DONE]\n\n")

    # a stream that keeps its recorded timing is left to the proxy (its tape server)
    timed, served, tally = replay(True, Latency(1.0))
    assert served == 2 and tally["hits"] == 3
    assert [body for *_, body in timed] == [body for *_, body in slow]  # (framed as streamed)
    assert provider.connections == connections


def test_what_is_not_a_hit_is_handed_to_the_proxy_on_the_same_connection(
    tmp_path: Path, run_proxy: ProxyFactory, provider: FakeProvider
) -> None:
    cassette = _record(tmp_path, run_proxy, provider)
    stubs = tmp_path / "stubs.json"
    stubs.write_text(
        json.dumps(
            {"rules": [{"match": {"last_user": "stubbed"}, "answer": {"text": "from a stub"}}]}
        )
    )
    from tapeproxy.providers.stubs import Stubs

    with run_proxy(
        cassette, "none", routes=_routes(provider), latency=Latency(0.0),
        stubs=Stubs.from_files([stubs]),
    ) as runner:  # fmt: skip
        assert runner.fast_routes is not None
        with httpx.Client(trust_env=False, timeout=30) as http:
            url = _on(runner, True) + "/v1/chat/completions"
            assert http.post(url, json=_chat("one")).status_code == 200
            assert runner.fast_routes.served == 1
            missed = http.post(url, json=_chat("never asked"))
            assert missed.status_code == 599 and "never asked" not in missed.headers.get(
                "x-tapeproxy-miss", ""
            )
            assert "no recorded response matches this request" in missed.text
            # the connection goes on through the proxy: a hit, a stub, an unknown route
            assert http.post(url, json=_chat("two")).status_code == 200
            sdk = openai.OpenAI(
                base_url=_on(runner, True) + "/v1",
                api_key="sk-x",
                http_client=httpx.Client(trust_env=False, timeout=30),
            )
            question = [{"role": "user", "content": "stubbed"}]
            stubbed = sdk.chat.completions.create(model="gpt-4o-mini", messages=question)  # type: ignore[arg-type]
            assert stubbed.choices[0].message.content == "from a stub"
            nope = http.get(_on(runner, True).replace("/local", "/nope") + "/v1/models")
            assert nope.status_code == 404 and "/local" in nope.json()["routes"]
        tally = runner.session.tally()
        assert tally["hits"] == 2 and tally["misses"] == 1 and tally["stubbed"] == 1
        assert runner.fast_routes.served == 2  # the first hit; the stub, on the SDK's connection


def test_runs_whose_addons_must_see_every_request_have_no_fast_listener(
    tmp_path: Path, run_proxy: ProxyFactory, provider: FakeProvider
) -> None:
    cassette = _record(tmp_path, run_proxy, provider)
    journal = tmp_path / "journal.json.zst"
    with run_proxy(cassette, "none", routes=_routes(provider), journal=journal) as runner:
        assert runner.fast_routes is None and runner.address is not None
        assert runner.route_env()["OPENAI_BASE_URL"].endswith(f":{runner.address[1]}/openai")
        with httpx.Client(trust_env=False, timeout=30) as http:
            got = http.post(_on(runner, False) + "/v1/chat/completions", json=_chat("one"))
        assert got.status_code == 200 and runner.session.tally()["hits"] == 1
    assert len(store.load(journal).interactions) == 1  # the journal saw the request


def test_proxied_and_fast_routed_requests_share_one_cassette(
    tmp_path: Path, run_proxy: ProxyFactory, provider: FakeProvider
) -> None:
    cassette = tmp_path / "proxied.json.zst"
    with run_proxy(cassette, "all", routes=_routes(provider)) as runner:
        ca = ssl.create_default_context(cafile=str(runner.config.ca_cert()))
        with httpx.Client(proxy=runner.url, verify=ca, timeout=30) as http:
            live = http.post(provider.url + "/v1/chat/completions", json=_chat("proxied")).json()
    provider.stop()
    with run_proxy(cassette, "none", routes=_routes(provider)) as runner:
        with httpx.Client(trust_env=False, timeout=30) as http:
            got = http.post(_on(runner, True) + "/v1/chat/completions", json=_chat("proxied"))
        assert (
            got.json() == live and runner.fast_routes is not None and runner.fast_routes.served == 1
        )


def test_the_routes_port_is_a_setting_and_a_taken_one_is_a_clear_error(
    tmp_path: Path, run_proxy: ProxyFactory, provider: FakeProvider
) -> None:
    from tapeproxy.errors import BadInputError, ConfigError
    from tapeproxy.proxy.settings import build_config

    with (
        taken_port() as port,
        pytest.raises(BadInputError, match=f"routes' listener \\(port {port}\\)"),
        run_proxy(tmp_path / "c.json.zst", "all", routes_port=port),
    ):
        pass
    with run_proxy(tmp_path / "c.json.zst", "all", routes_port=port) as runner:
        assert runner.route_env()["OPENAI_BASE_URL"] == f"http://127.0.0.1:{port}/openai"
    assert build_config({"routes_port": "8081"}, {}, "none", env={}).routes_port == 8081
    with pytest.raises(ConfigError, match="routes_port"):
        build_config({"routes_port": "http"}, {}, "none", env={})


def test_the_routes_listener_is_not_a_proxy(
    tmp_path: Path, run_proxy: ProxyFactory, provider: FakeProvider
) -> None:
    with run_proxy(tmp_path / "c.json.zst", "all", routes=_routes(provider)) as runner:
        assert runner.fast_routes is not None and runner.fast_routes.address is not None
        fast = f"http://127.0.0.1:{runner.fast_routes.address[1]}"
        with httpx.Client(proxy=fast, trust_env=False, timeout=30) as http:
            got = http.get(provider.url.replace("https", "http") + "/v1/models")
        assert got.status_code == 400 and "not the proxy" in got.text
        assert runner.session.tally()["recorded"] == 0
