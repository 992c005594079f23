"""Runtimes with no manual step: Java's `java.net.http` with JVM defaults records and replays
under `record`/`replay` (JAVA_TOOL_OPTIONS and a truststore made once), and Go's `net/http`
(HTTPS_PROXY and SSL_CERT_FILE), with a provider name resolved to a local server by
`--resolve`; Node gets NODE_USE_ENV_PROXY."""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tapeproxy.cassettes import store
from tapeproxy.cassettes.model import Interaction
from tapeproxy.errors import ConfigError
from tapeproxy.fakeprovider import FakeProvider
from tapeproxy.proxy.resolve import parse_resolve
from tapeproxy.proxy.runtimes import java_truststore, runtime_env
from tapeproxy.testing_ca import ThrowawayCA
from tests.proxy.conftest import ProxyFactory, npm_install

_NAME = "llm.provider.test"  # a reserved name: without --resolve it reaches nothing

needs_java = pytest.mark.skipif(shutil.which("java") is None, reason="java is not installed")


@pytest.fixture(scope="module")
def named_ca(tmp_path_factory: pytest.TempPathFactory) -> ThrowawayCA:
    return ThrowawayCA.create(tmp_path_factory.mktemp("named-ca"), names=("localhost", _NAME))


@pytest.fixture
def named_provider(named_ca: ThrowawayCA) -> FakeProvider:
    provider = FakeProvider(named_ca.server_context()).start()
    yield provider  # type: ignore[misc]
    provider.stop()


def test_without_a_jdk_only_node_is_wired(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not used", encoding="utf-8")
    env = runtime_env(("127.0.0.1", 8080), ca, "localhost", {"PATH": str(tmp_path)})
    assert env == {"NODE_USE_ENV_PROXY": "1"}


@needs_java
def test_java_options_carry_the_proxy_the_truststore_and_the_users_own(
    tmp_path: Path, confdir: Path
) -> None:
    from tapeproxy.proxy.ca import ensure_ca

    ca = ensure_ca(confdir)
    environ = {"PATH": os.environ["PATH"], "JAVA_TOOL_OPTIONS": "-Xmx256m"}
    env = runtime_env(("127.0.0.1", 8123), ca, "localhost,127.0.0.1,::1,.internal", environ)
    options = env["JAVA_TOOL_OPTIONS"].split()
    assert options[0] == "-Xmx256m"  # the user's own come first
    assert "-Dhttps.proxyHost=127.0.0.1" in options and "-Dhttps.proxyPort=8123" in options
    assert "-Dhttp.nonProxyHosts=localhost|127.0.0.1|[::1]|*.internal" in options
    store_path = Path(next(o for o in options if o.startswith("-Djavax.net.ssl.trustStore="))
                      .split("=", 1)[1])  # fmt: skip
    assert store_path.parent == ca.parent
    # made once: the same file the next time, untouched
    stamp = store_path.stat().st_mtime_ns
    assert java_truststore(ca, environ) == store_path and store_path.stat().st_mtime_ns == stamp
    listed = subprocess.run(
        ["keytool", "-list", "-keystore", str(store_path), "-storepass", "changeit"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    assert "tapeproxy" in listed  # the proxy's CA...
    assert int(listed.split("contains ")[1].split()[0]) > 50  # ...beside the JVM's roots


_JAVA = """
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;

public class Client {
    public static void main(String[] args) throws Exception {
        HttpClient client = HttpClient.newHttpClient();  // JVM defaults, nothing set by hand
        HttpRequest request = HttpRequest.newBuilder(URI.create(args[0]))
            .header("content-type", "application/json")
            .POST(HttpRequest.BodyPublishers.ofString(args[1]))
            .build();
        HttpResponse<String> response = client.send(request, HttpResponse.BodyHandlers.ofString());
        System.out.println(response.statusCode() + " " + response.body());
    }
}
"""


def _record_then_replay_named(
    tmp_path: Path,
    confdir: Path,
    named_ca: ThrowawayCA,
    named_provider: FakeProvider,
    client: list[str],
    said: str,
) -> Interaction:
    """`client URL BODY` under `record` then `replay` (the provider stopped), the provider
    addressed by `_NAME` and `--resolve`: the same output, no new connection; the recorded
    interaction."""
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": said}]})
    url = f"https://{_NAME}/v1/chat/completions"
    resolve = f"{_NAME}:443=127.0.0.1:{named_provider.port}"
    cassette = tmp_path / "named.json.zst"

    def run(command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "tapeproxy", command, "--cassette", str(cassette),
             "--confdir", str(confdir), "--upstream-ca", str(named_ca.ca_cert),
             "--resolve", resolve, "--", *client, url, body],
            capture_output=True, text=True, timeout=180, check=False,
        )  # fmt: skip

    recorded = run("record")
    assert recorded.returncode == 0, recorded.stderr
    assert recorded.stdout.startswith("200 ") and said in recorded.stdout
    (it,) = store.load(cassette).interactions
    assert it.request.url == url  # keyed by the name the client used, not the address
    named_provider.stop()
    connections = named_provider.connections
    replayed = run("replay")
    assert replayed.returncode == 0, replayed.stderr
    assert replayed.stdout == recorded.stdout
    assert named_provider.connections == connections
    return it


@needs_java
def test_java_http_client_records_and_replays_a_resolved_provider_name(
    tmp_path: Path, confdir: Path, named_ca: ThrowawayCA, named_provider: FakeProvider
) -> None:
    client = tmp_path / "Client.java"
    client.write_text(_JAVA, encoding="utf-8")
    _record_then_replay_named(
        tmp_path, confdir, named_ca, named_provider, ["java", str(client)], "from java"
    )


_GO = """
package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
)

func main() {
	// http.Post uses the default client: the proxy from HTTPS_PROXY, the roots from
	// SSL_CERT_FILE; nothing set by hand.
	response, err := http.Post(os.Args[1], "application/json", strings.NewReader(os.Args[2]))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer response.Body.Close()
	body, _ := io.ReadAll(response.Body)
	fmt.Println(response.StatusCode, string(body))
}
"""


@pytest.fixture(scope="module")
def go_client(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Go `net/http` client, built once (Debian's golang-go; the test skips without it)."""
    go = shutil.which("go")
    if go is None:
        pytest.skip("go is not installed (Debian: apt-get install golang-go)")
    folder = tmp_path_factory.mktemp("go-client")
    (folder / "main.go").write_text(_GO, encoding="utf-8")
    env = {**os.environ, "GO111MODULE": "off", "CGO_ENABLED": "0"}
    env.setdefault("GOCACHE", str(Path.home() / ".cache" / "go-build"))
    subprocess.run(
        [go, "build", "-o", str(folder / "client"), str(folder / "main.go")],
        cwd=folder, env=env, capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    return folder / "client"


def test_go_net_http_records_and_replays_a_resolved_provider_name(
    go_client: Path,
    tmp_path: Path,
    confdir: Path,
    named_ca: ThrowawayCA,
    named_provider: FakeProvider,
) -> None:
    it = _record_then_replay_named(
        tmp_path, confdir, named_ca, named_provider, [str(go_client)], "from go"
    )
    assert "Go-http-client" in dict(it.request.headers).get("user-agent", "")


def test_resolve_reaches_a_named_host_for_streams_too(
    tmp_path: Path, run_proxy: ProxyFactory, named_ca: ThrowawayCA, named_provider: FakeProvider
) -> None:
    table = parse_resolve([f"{_NAME}:443=127.0.0.1:{named_provider.port}"])
    cassette = tmp_path / "s.json.zst"
    ask = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "stream it"}]}
    with run_proxy(cassette, "all", resolve=table, upstream_ca=named_ca.ca_cert) as runner:
        ca = ssl.create_default_context(cafile=str(runner.config.ca_cert()))
        with httpx.Client(proxy=runner.url, verify=ca, timeout=30) as http:
            got = http.post(f"https://{_NAME}/v1/chat/completions", json=ask)
    assert got.status_code == 200 and "stream" in got.text and got.text.endswith("[DONE]\n\n")
    (it,) = store.load(cassette).interactions
    assert it.request.url == f"https://{_NAME}/v1/chat/completions"
    assert it.response is not None and it.response.chunks is not None


@pytest.mark.parametrize(
    "given",
    ["api.openai.com:443", "api.openai.com=127.0.0.1:8000", "a:443=b:x", "a:0=b:1"],
)
def test_bad_resolve_entries_are_refused(given: str) -> None:
    with pytest.raises(ConfigError, match="resolve"):
        parse_resolve(given)


def test_resolve_entries_parse_as_curl_writes_them() -> None:
    assert parse_resolve("API.openai.com:443=127.0.0.1:8443, [::1]:80=[::1]:8080") == {
        ("api.openai.com", 443): ("127.0.0.1", 8443),
        ("::1", 80): ("::1", 8080),
    }


_FETCH = """
const r = await fetch(process.argv[2], {
  method: "POST",
  headers: {"content-type": "application/json"},
  body: process.argv[3],
});
console.log(r.status, await r.text());
"""


@pytest.fixture(scope="module")
def node24(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Node 24 binary, from the `node@24` npm package (the machine's own Node is older)."""
    binary = npm_install(tmp_path_factory, "node@24") / "node_modules" / ".bin" / "node"
    if not binary.exists():
        pytest.skip("the node@24 npm package installed no node binary")
    return binary


def test_node24_global_fetch_goes_through_the_proxy_with_nothing_set_by_hand(
    node24: Path,
    tmp_path: Path,
    confdir: Path,
    named_ca: ThrowawayCA,
    named_provider: FakeProvider,
) -> None:
    script = tmp_path / "fetch.mjs"
    script.write_text(_FETCH, encoding="utf-8")
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "from node 24"}]})
    url = f"https://{_NAME}/v1/chat/completions"
    resolve = f"{_NAME}:443=127.0.0.1:{named_provider.port}"
    environ = {k: v for k, v in os.environ.items() if k != "NODE_USE_ENV_PROXY"}

    def run(command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "tapeproxy", command, "--cassette", str(tmp_path / "n.json.zst"),
             "--confdir", str(confdir), "--upstream-ca", str(named_ca.ca_cert),
             "--resolve", resolve, "--", str(node24), str(script), url, body],
            capture_output=True, text=True, timeout=180, check=False, env=environ,
        )  # fmt: skip

    recorded = run("record")
    assert recorded.returncode == 0, recorded.stderr
    assert recorded.stdout.startswith("200 ") and "from node 24" in recorded.stdout
    assert store.load(tmp_path / "n.json.zst").interactions[0].request.url == url
    named_provider.stop()
    replayed = run("replay")
    assert replayed.returncode == 0, replayed.stderr
    assert replayed.stdout == recorded.stdout
