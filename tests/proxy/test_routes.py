"""Base-URL routes: requests made straight to the proxy's listener under `/<route>/`, with no
proxy support and no CA, are recorded and replayed like proxied ones (the same keys), and
`record`/`replay` point the SDKs' base-URL variables at them."""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tapeproxy.cassettes import store
from tapeproxy.errors import ConfigError
from tapeproxy.fakeprovider import FakeProvider
from tapeproxy.proxy.routes import DEFAULT_ROUTES, Route, parse_routes
from tapeproxy.proxy.runner import ProxyRunner
from tests.proxy.conftest import ProxyFactory, client_for, npm_install


def _base(runner: ProxyRunner, name: str) -> str:
    assert runner.address is not None
    host, port = runner.address
    return f"http://{host}:{port}/{name}"


def _routed_openai(runner: ProxyRunner, name: str = "local") -> openai.OpenAI:
    """The openai SDK given only a base URL: no proxy, no CA (trust_env=False)."""
    http = httpx.Client(trust_env=False, timeout=30)
    return openai.OpenAI(base_url=_base(runner, name) + "/v1", api_key="sk-x", http_client=http)


def _proxied_openai(runner: ProxyRunner, provider: FakeProvider) -> openai.OpenAI:
    ca = ssl.create_default_context(cafile=str(runner.config.ca_cert()))
    http = httpx.Client(proxy=runner.url, verify=ca, timeout=30)
    return openai.OpenAI(base_url=provider.url + "/v1", api_key="sk-x", http_client=http)


def _ask(client: openai.OpenAI, prompt: str) -> str:
    done = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}]
    )
    return done.choices[0].message.content or ""


def _routes(provider: FakeProvider) -> tuple[Route, ...]:
    return (*DEFAULT_ROUTES, Route("local", provider.url))


def test_routed_and_proxied_calls_share_keys_and_one_cassette_serves_both(
    tmp_path: Path, run_proxy: ProxyFactory, provider: FakeProvider
) -> None:
    cassette = tmp_path / "both.json.zst"
    routes = _routes(provider)
    with run_proxy(cassette, "all", routes=routes) as runner:
        with _routed_openai(runner) as routed:
            first = _ask(routed, "asked by base URL")
        with _proxied_openai(runner, provider) as proxied:
            second = _ask(proxied, "asked through the proxy")
    stored = store.load(cassette).interactions
    assert [it.request.url for it in stored] == [provider.url + "/v1/chat/completions"] * 2
    assert all("127.0.0.1" not in json.dumps(it.request.model_dump()) for it in stored)

    provider.stop()  # replay never needs it
    connections = provider.connections
    with run_proxy(cassette, "none", routes=routes) as runner:
        with _proxied_openai(runner, provider) as proxied:
            assert _ask(proxied, "asked by base URL") == first  # recorded routed
        with _routed_openai(runner) as routed:
            assert _ask(routed, "asked through the proxy") == second  # recorded proxied
        assert runner.session.tally()["hits"] == 2
    assert provider.connections == connections


def test_a_request_sent_through_the_proxy_to_its_own_route_is_routed(
    tmp_path: Path, run_proxy: ProxyFactory, provider: FakeProvider
) -> None:
    # a runtime with an empty NO_PROXY sends even loopback requests through the proxy
    with (
        run_proxy(tmp_path / "c.json.zst", "all", routes=_routes(provider)) as runner,
        client_for(runner) as http,
    ):
        body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
        got = http.post(_base(runner, "local") + "/v1/chat/completions", json=body)
    assert got.status_code == 200 and "hi" in got.text
    (it,) = store.load(tmp_path / "c.json.zst").interactions
    assert it.request.url == provider.url + "/v1/chat/completions"


def test_an_unknown_route_is_a_404_that_lists_the_routes(
    tmp_path: Path, run_proxy: ProxyFactory, provider: FakeProvider
) -> None:
    with run_proxy(tmp_path / "c.json.zst", "none", routes=_routes(provider)) as runner:
        got = httpx.get(_base(runner, "nope") + "/v1/models", trust_env=False)
    assert got.status_code == 404
    doc = got.json()
    assert "/nope" in doc["error"] and doc["routes"]["/openai"] == "https://api.openai.com/v1"
    assert doc["routes"]["/local"] == provider.url


def test_default_routes_follow_the_users_own_base_urls_and_never_themselves() -> None:
    routes = {r.name: r for r in parse_routes(None, {})}
    assert routes["openai"].upstream == "https://api.openai.com/v1"
    assert routes["anthropic"].variable == "ANTHROPIC_BASE_URL"
    own = {r.name: r for r in parse_routes(None, {"OPENAI_BASE_URL": "http://gw.test:4000/v1/"})}
    assert own["openai"].upstream == "http://gw.test:4000/v1"
    # a variable tapeproxy itself set (an earlier run's route) is not followed: it would loop
    again = parse_routes(None, {"OPENAI_BASE_URL": "http://127.0.0.1:5555/openai"})
    assert {r.name: r for r in again}["openai"].upstream == "https://api.openai.com/v1"
    mine = {
        r.name: r for r in parse_routes("vllm=http://127.0.0.1:8000/v1,openai=https://o.test", {})
    }
    assert mine["vllm"] == Route("vllm", "http://127.0.0.1:8000/v1")
    assert mine["openai"] == Route("openai", "https://o.test", "OPENAI_BASE_URL")
    table = parse_routes({"groq": "https://api.groq.com/openai/v1"}, {})
    assert {r.name for r in table} >= {"groq", "openai"}


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ("vllm", "NAME=UPSTREAM_URL"),
        ("Bad Name=http://x.test", "lower-case"),
        ("x=ftp://x.test", "http(s) URL"),
        ("x=not a url", "http(s) URL"),
    ],
)
def test_bad_routes_are_refused(given: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says.replace("(", r"\(").replace(")", r"\)")):
        parse_routes(given, {})


_PY_CLIENT = """
import os, httpx, openai
# base URL only: the SDK reads OPENAI_BASE_URL; no proxy, no CA
client = openai.OpenAI(api_key="sk-x", http_client=httpx.Client(trust_env=False))
done = client.chat.completions.create(
    model="gpt-4o-mini", messages=[{"role": "user", "content": "by base URL"}])
print(os.environ["OPENAI_BASE_URL"].rsplit(":", 1)[0], done.choices[0].message.content)
"""


def _run(tmp_path: Path, confdir: Path, cmd: list[str], command: str, **env: str) -> Any:
    environ = {**os.environ, **env}
    return subprocess.run(
        [sys.executable, "-m", "tapeproxy", command, "--cassette", str(tmp_path / "c.json.zst"),
         "--confdir", str(confdir), "--", *cmd],
        capture_output=True, text=True, timeout=120, check=False, env=environ,
    )  # fmt: skip


def _record_then_replay(
    tmp_path: Path, confdir: Path, cmd: list[str], provider: FakeProvider, ca: Any
) -> str:
    """CMD recorded with the user's OPENAI_BASE_URL on the fake provider, then replayed with
    the provider stopped: the same output both times, which is returned."""
    own = {"OPENAI_BASE_URL": provider.url + "/v1", "TAPEPROXY_UPSTREAM_CA": str(ca.ca_cert)}
    recorded = _run(tmp_path, confdir, cmd, "record", **own)
    assert recorded.returncode == 0, recorded.stderr
    provider.stop()
    replayed = _run(tmp_path, confdir, cmd, "replay", **own)
    assert replayed.returncode == 0, replayed.stderr
    assert replayed.stdout == recorded.stdout
    return str(recorded.stdout)


def test_record_and_replay_point_the_sdk_variable_at_its_route(
    tmp_path: Path, confdir: Path, provider: FakeProvider, throwaway_ca: Any
) -> None:
    script = tmp_path / "client.py"
    script.write_text(_PY_CLIENT, encoding="utf-8")
    cmd = [sys.executable, str(script)]
    output = _record_then_replay(tmp_path, confdir, cmd, provider, throwaway_ca)
    assert output.startswith("http://127.0.0.1 ")  # the SDK was pointed at the route...
    (it,) = store.load(tmp_path / "c.json.zst").interactions
    assert it.request.url == provider.url + "/v1/chat/completions"  # ...which forwarded


_NODE_FETCH = """
const base = process.env.OPENAI_BASE_URL;
const r = await fetch(base + "/chat/completions", {
  method: "POST",
  headers: {"content-type": "application/json", "authorization": "Bearer sk-x"},
  body: JSON.stringify({model: "gpt-4o-mini", messages: [{role: "user", content: "from node"}]}),
});
const doc = await r.json();
console.log(r.status, doc.choices[0].message.content);
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_node_global_fetch_records_and_replays_through_its_route(
    tmp_path: Path, confdir: Path, provider: FakeProvider, throwaway_ca: Any
) -> None:
    script = tmp_path / "client.mjs"
    script.write_text(_NODE_FETCH, encoding="utf-8")
    output = _record_then_replay(tmp_path, confdir, ["node", str(script)], provider, throwaway_ca)
    assert output.startswith("200 ") and "from node" in output


_NODE_SDK = """
import OpenAI from "openai";
// configured only by OPENAI_BASE_URL (set by tapeproxy for CMD): no proxy, no CA
const client = new OpenAI({ apiKey: "sk-x" });
const done = await client.chat.completions.create({
  model: "gpt-4o-mini", messages: [{ role: "user", content: "from the node sdk" }],
});
console.log(done.id, done.choices[0].message.content);
"""


@pytest.fixture(scope="module")
def node_openai(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the `openai` npm package installed (from the npm registry)."""
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    return npm_install(tmp_path_factory, "openai")


def test_the_openai_npm_package_configured_by_base_url_records_and_replays(
    node_openai: Path, tmp_path: Path, confdir: Path, provider: FakeProvider, throwaway_ca: Any
) -> None:
    script = node_openai / "client.mjs"
    script.write_text(_NODE_SDK, encoding="utf-8")
    output = _record_then_replay(tmp_path, confdir, ["node", str(script)], provider, throwaway_ca)
    assert "from the node sdk" in output
