"""Seeded provider-shaped faults through a real proxy and the real SDKs: counts inside
binomial bounds, the SDKs' own exceptions, determinism across order and concurrency, retries
that end in the recorded answer, streams cut or paused, and no upstream connection.

Recordings are made from the fake provider on 127.0.0.1 (it counts its connections); prompts
are drawn from a seeded generator per test.
"""

from __future__ import annotations

import json
import math
import random
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import anthropic
import httpx
import httpx2
import openai
import pytest
import yaml

from tapeproxy.errors import ConfigError
from tapeproxy.fakeprovider import FakeProvider
from tapeproxy.providers.stubs import Stubs
from tapeproxy.proxy.faults import Faults, parse_faults
from tapeproxy.proxy.latency import Latency
from tapeproxy.proxy.runner import ProxyRunner
from tests.proxy.conftest import ProxyFactory, replay_refused

_N = 300


def _bounds(n: int, p: float, z: float = 3.89) -> tuple[float, float]:
    """A 99.99 % interval for a binomial count (normal approximation, z = 3.89): request keys
    hold the fake provider's random port, so every run is a fresh draw, and a test with
    several such checks must not fail one run in a few hundred by chance (a 500 count of 28
    against an expected 15 was seen once at z = 3.29)."""
    sd = math.sqrt(n * p * (1 - p))
    return n * p - z * sd, n * p + z * sd


def _prompts(rng: random.Random, n: int) -> list[str]:
    words = ["amber", "basalt", "cobalt", "delta", "ember", "fjord", "garnet", "harbor"]
    return [f"{i} " + " ".join(rng.choice(words) for _ in range(5)) for i in range(n)]


def _openai(runner: ProxyRunner, provider: FakeProvider, **kwargs: Any) -> openai.OpenAI:
    ca = ssl.create_default_context(cafile=str(runner.config.ca_cert()))
    http = httpx.Client(proxy=runner.url, verify=ca, timeout=kwargs.pop("timeout", 30))
    settings = {"max_retries": 0, **kwargs}
    return openai.OpenAI(
        base_url=provider.url + "/v1", api_key="sk-test", http_client=http, **settings
    )


def _ask(client: openai.OpenAI, prompt: str) -> str:
    done = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}]
    )
    return done.choices[0].message.content or ""


@pytest.fixture(scope="module")
def recorded(
    tmp_path_factory: pytest.TempPathFactory, confdir: Path, throwaway_ca: Any
) -> tuple[Path, dict[str, str], FakeProvider]:
    """300 chats recorded from the fake provider, with the answer each got."""
    from tapeproxy.proxy.runner import ProxyConfig

    folder = tmp_path_factory.mktemp("faults")
    cassette = folder / "chats.json.zst"
    prompts = _prompts(random.Random("faults"), _N)
    provider = FakeProvider(throwaway_ca.server_context()).start()
    config = ProxyConfig(
        cassette=cassette, mode="all", confdir=confdir, upstream_ca=throwaway_ca.ca_cert
    )
    with ProxyRunner(config) as runner, _openai(runner, provider) as client:
        answers = {p: _ask(client, p) for p in prompts}
    return cassette, answers, provider


def _replay(
    recorded: tuple[Path, dict[str, str], FakeProvider],
    run_proxy: ProxyFactory,
    spec: str,
    seed: int = 0,
    **overrides: Any,
) -> AbstractContextManager[ProxyRunner]:
    rates = parse_faults(spec)
    faults = Faults(rates, seed=seed, retry_after=overrides.pop("retry_after", 1.0))
    return run_proxy(recorded[0], "none", latency=Latency(0.0), faults=faults, **overrides)


def _outcome(client: openai.OpenAI, prompt: str) -> str:
    try:
        _ask(client, prompt)
    except openai.RateLimitError as e:
        body = e.body if isinstance(e.body, dict) else {}
        assert body.get("code") == "rate_limit_exceeded", e.body
        assert float(e.response.headers["retry-after"]) == 1.0
        assert e.response.headers["x-ratelimit-remaining-requests"] == "0"
        assert e.response.headers["x-tapeproxy-source"] == "fault"
        return "429"
    except openai.InternalServerError as e:
        assert e.status_code == 500 and e.response.headers["x-request-id"].startswith("req_")
        return "500"
    except openai.APIConnectionError:
        return "reset"
    return "answer"


def test_openai_faults_counts_exceptions_and_determinism(
    recorded: tuple[Path, dict[str, str], FakeProvider], run_proxy: ProxyFactory
) -> None:
    _cassette, answers, provider = recorded
    prompts = list(answers)
    connections = provider.connections
    spec = "429=10%,500=5%,reset=4%"
    with _replay(recorded, run_proxy, spec) as runner, _openai(runner, provider) as client:
        first = {p: _outcome(client, p) for p in prompts}
        tally = runner.session.tally()
    counts = Counter(first.values())
    for kind, rate in (("429", 0.10), ("500", 0.05), ("reset", 0.04)):
        low, high = _bounds(_N, rate)
        assert low <= counts[kind] <= high, (kind, counts)
    assert tally["faulted"] == _N - counts["answer"]

    # The answers that were not faulted are the recorded ones.
    with _replay(recorded, run_proxy, "") as runner, _openai(runner, provider) as client:
        for p in (p for p, o in first.items() if o == "answer"):
            assert _ask(client, p) == answers[p]

    # The same seed in another order, 8 at a time, fails the same requests the same way.
    shuffled = prompts[:]
    random.Random(7).shuffle(shuffled)
    with (
        _replay(recorded, run_proxy, spec) as runner,
        _openai(runner, provider) as client,
        ThreadPoolExecutor(8) as pool,
    ):
        again = dict(zip(shuffled, pool.map(lambda p: _outcome(client, p), shuffled), strict=True))
    assert again == first

    # Another seed fails other requests.
    with _replay(recorded, run_proxy, spec, seed=1) as runner, _openai(runner, provider) as c:
        other = {p: _outcome(c, p) for p in prompts}
    faulted = {p for p, o in first.items() if o != "answer"}
    assert faulted != {p for p, o in other.items() if o != "answer"}
    assert provider.connections == connections  # no faulted replay reached the upstream


def test_sdk_retries_end_in_the_recorded_answer(
    recorded: tuple[Path, dict[str, str], FakeProvider], run_proxy: ProxyFactory
) -> None:
    _cassette, answers, provider = recorded
    prompts = list(answers)[:120]
    spec = "429=10%,500=5%,reset=4%"
    with (
        _replay(recorded, run_proxy, spec, retry_after=0.01) as runner,
        _openai(runner, provider, max_retries=8) as client,
        ThreadPoolExecutor(8) as pool,
    ):
        got = list(pool.map(lambda p: _ask(client, p), prompts))
        tally = runner.session.tally()
    assert got == [answers[p] for p in prompts]
    assert tally["faulted"] > 0  # retries happened, and each drew again


def test_anthropic_overloaded_is_529_overloaded_error(
    tmp_path: Path, run_proxy: ProxyFactory, provider: FakeProvider
) -> None:
    stubs = _stubs(tmp_path, [{"match": {"endpoint": "messages"}, "answer": {"text": "hi"}}])
    faults = Faults(parse_faults("overloaded=100%"))
    cassette = tmp_path / "none.json.zst"
    with run_proxy(cassette, "none", stubs=stubs, faults=faults) as runner:
        ca = ssl.create_default_context(cafile=str(runner.config.ca_cert()))
        http = httpx2.Client(proxy=runner.url, verify=ca, timeout=30)
        client = anthropic.Anthropic(
            base_url=provider.url, api_key="k", http_client=http, max_retries=0
        )
        with pytest.raises(anthropic.APIStatusError) as raised:
            client.messages.create(
                model="claude-sonnet-4-5",
                max_tokens=50,
                messages=[{"role": "user", "content": "hello"}],
            )
    e = raised.value
    assert e.status_code == 529
    assert isinstance(e, anthropic.APIStatusError) and e.status_code == 529
    body = e.body if isinstance(e.body, dict) else {}
    assert body["error"]["type"] == "overloaded_error"
    assert body["request_id"] == e.response.headers["request-id"]
    assert e.response.headers["retry-after"] == "1"


def _stubs(tmp_path: Path, rules: list[dict[str, Any]]) -> Stubs:
    path = tmp_path / "stubs.yaml"
    path.write_text(yaml.safe_dump(rules), encoding="utf-8")
    return Stubs.from_files([path])


def _raw_stream(runner: ProxyRunner, url: str, body: dict[str, Any]) -> tuple[bytes, list[float]]:
    """The bytes of a streamed answer as they arrive (until the end or a break), and when
    each piece arrived."""
    ca = ssl.create_default_context(cafile=str(runner.config.ca_cert()))
    got, times = bytearray(), []
    with httpx.Client(proxy=runner.url, verify=ca, timeout=30) as http:
        try:
            with http.stream("POST", url, json=body) as r:
                for piece in r.iter_raw():
                    got += piece
                    times.append(time.monotonic())
        except httpx.HTTPError:
            pass
    return bytes(got), times


_STREAM_TEXT = " ".join(f"word{i}" for i in range(60)) + "."


def test_truncate_cuts_every_stream_to_a_strict_prefix(
    tmp_path: Path, run_proxy: ProxyFactory, provider: FakeProvider
) -> None:
    stubs = _stubs(tmp_path, [{"match": {"endpoint": "chat"}, "answer": {"text": _STREAM_TEXT}}])
    url = provider.url + "/v1/chat/completions"
    bodies = [
        {"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": f"q{i}"}]}
        for i in range(12)
    ]
    cassette = tmp_path / "none.json.zst"
    with run_proxy(cassette, "none", stubs=stubs) as runner:
        whole = [_raw_stream(runner, url, b)[0] for b in bodies]
    assert all(w.endswith(b"data: [DONE]\n\n") for w in whole)
    faults = Faults(parse_faults("truncate=100%"))
    with run_proxy(cassette, "none", stubs=stubs, faults=faults) as runner:
        cut = [_raw_stream(runner, url, b)[0] for b in bodies]
    for full, part in zip(whole, cut, strict=True):
        assert len(part) < len(full) and full.startswith(part)
    assert len({len(p) for p in cut}) > 1  # cut at seeded places, not one fixed length

    # The openai SDK sees the stream break.
    with (
        run_proxy(cassette, "none", stubs=stubs, faults=faults) as runner,
        _openai(runner, provider) as client,
        pytest.raises((openai.APIError, httpx.HTTPError)),
    ):
        for _ in client.chat.completions.create(
            model="gpt-4o", stream=True, messages=[{"role": "user", "content": "x"}]
        ):
            pass


def test_stall_pauses_a_stream_and_resumes(
    tmp_path: Path, run_proxy: ProxyFactory, provider: FakeProvider
) -> None:
    stubs = _stubs(tmp_path, [{"match": {"endpoint": "chat"}, "answer": {"text": _STREAM_TEXT}}])
    url = provider.url + "/v1/chat/completions"
    body = {"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": "q"}]}
    cassette = tmp_path / "none.json.zst"
    with run_proxy(cassette, "none", stubs=stubs) as runner:
        whole, _ = _raw_stream(runner, url, body)
    faults = Faults(parse_faults("stall=100%"), delay=0.6)
    with run_proxy(cassette, "none", stubs=stubs, faults=faults) as runner:
        began = time.monotonic()
        got, times = _raw_stream(runner, url, body)
    assert got == whole  # resumed, and whole
    gaps = [b - a for a, b in zip([began, *times], times, strict=False)]
    assert max(gaps) >= 0.55 and len(times) > 1


def test_timeout_holds_until_the_client_gives_up_then_frees_the_connection(
    recorded: tuple[Path, dict[str, str], FakeProvider], run_proxy: ProxyFactory
) -> None:
    _cassette, answers, provider = recorded
    prompt = next(iter(answers))
    with _replay(recorded, run_proxy, "timeout=100%", max_connections=1) as runner:
        with _openai(runner, provider, timeout=0.5) as client:
            began = time.monotonic()
            with pytest.raises(openai.APITimeoutError):
                _ask(client, prompt)
            assert time.monotonic() - began < 5
        # The held connection was let go: with room for one client, a new one is served.
        runner.replayer.faults = None  # type: ignore[union-attr]
        deadline = time.monotonic() + 5
        while True:
            with _openai(runner, provider) as client:
                try:
                    assert _ask(client, prompt) == answers[prompt]
                    break
                except openai.APIConnectionError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)


def test_malformed_makes_the_sdk_fail_to_parse(
    recorded: tuple[Path, dict[str, str], FakeProvider], run_proxy: ProxyFactory
) -> None:
    _cassette, answers, provider = recorded
    prompt = next(iter(answers))
    with (
        _replay(recorded, run_proxy, "malformed=100%") as runner,
        _openai(runner, provider) as c,
        pytest.raises(json.JSONDecodeError),  # the openai SDK's own parse of the body
    ):
        _ask(c, prompt)


def test_malformed_stream_event_makes_the_sdk_fail_to_parse(
    tmp_path: Path, run_proxy: ProxyFactory, provider: FakeProvider
) -> None:
    stubs = _stubs(tmp_path, [{"match": {"endpoint": "chat"}, "answer": {"text": _STREAM_TEXT}}])
    faults = Faults(parse_faults("malformed=100%"))
    with (
        run_proxy(tmp_path / "none.json.zst", "none", stubs=stubs, faults=faults) as runner,
        _openai(runner, provider) as client,
    ):
        stream = client.chat.completions.create(
            model="gpt-4o", stream=True, messages=[{"role": "user", "content": "x"}]
        )
        with pytest.raises(json.JSONDecodeError):
            for _ in stream:
                pass


def test_http_fault_shapes_follow_the_api(
    tmp_path: Path, run_proxy: ProxyFactory, provider: FakeProvider
) -> None:
    """Gemini gets Google's envelope; a path no API uses gets a plain JSON error."""
    stubs = _stubs(tmp_path, [{"match": {"endpoint": "generate"}, "answer": {"text": "hi"}}])
    faults = Faults(parse_faults("429=100%"), retry_after=3)
    with run_proxy(tmp_path / "none.json.zst", "none", stubs=stubs, faults=faults) as runner:
        ca = ssl.create_default_context(cafile=str(runner.config.ca_cert()))
        with httpx.Client(proxy=runner.url, verify=ca, timeout=30) as http:
            r = http.post(
                provider.url + "/v1beta/models/gemini-2.5-flash:generateContent",
                json={"contents": [{"role": "user", "parts": [{"text": "hello"}]}]},
            )
    assert r.status_code == 429 and r.headers["retry-after"] == "3"
    assert r.json()["error"]["status"] == "RESOURCE_EXHAUSTED"


def test_the_draw_is_a_pure_function_of_seed_key_and_occurrence() -> None:
    rates = parse_faults("429=20%,reset=10%")
    keys = [f"key-{i}" for i in range(2000)]

    def draws(order: list[str], threads: int) -> dict[tuple[str, int], str | None]:
        faults = Faults(rates, seed=5)
        out: dict[tuple[str, int], str | None] = {}
        lock = threading.Lock()

        def one(key: str) -> None:
            first = faults.draw(key)
            second = faults.draw(key)  # a retry: the next occurrence
            with lock:
                out[(key, 0)] = first.kind if first else None
                out[(key, 1)] = second.kind if second else None

        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(one, order))
        return out

    straight = draws(keys, 1)
    shuffled = keys[:]
    random.Random(3).shuffle(shuffled)
    assert draws(shuffled, 8) == straight
    firsts = Counter(straight[(k, 0)] for k in keys)
    for kind, rate in (("429", 0.2), ("reset", 0.1)):
        low, high = _bounds(len(keys), rate)
        assert low <= firsts[kind] <= high
    retried = [k for k in keys if straight[(k, 0)] is not None]
    assert any(straight[(k, 1)] is None for k in retried)  # a retry draws again


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("429=10%,bogus=5%", "unknown fault kind 'bogus'"),
        ("429", "is not KIND=RATE"),
        ("429=ten", "is not a number"),
        ("500=150%", "outside 0-100%"),
        ("429=60%,500=50%", "more than 100%"),
        ("302=5%", "unknown fault kind '302'"),
    ],
)
def test_bad_fault_specs_are_refused(spec: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        parse_faults(spec)


def test_faults_from_a_profile_file(tmp_path: Path) -> None:
    profile = tmp_path / "profile.toml"
    profile.write_text('[faults]\n429 = 0.1\nreset = "4%"\n', encoding="utf-8")
    assert parse_faults(f"@{profile}") == (("429", 0.1), ("reset", 0.04))
    (tmp_path / "bad.toml").write_text("[latency]\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"no \[faults\] table"):
        parse_faults(f"@{tmp_path / 'bad.toml'}")


def test_cli_refuses_a_bad_spec_before_running_cmd(tmp_path: Path) -> None:
    cassette = str(tmp_path / "c.json.zst")
    done = replay_refused(tmp_path, "--cassette", cassette, "--faults", "429=10%,teapot=1%")
    assert "teapot" in done.stderr


def test_cli_replay_with_faults_summarises_them(tmp_path: Path, confdir: Path) -> None:
    """`replay --stubs --faults` through curl: the fault's source header and the summary."""
    stubs = tmp_path / "stubs.yaml"
    stubs.write_text(yaml.safe_dump([{"match": {}, "answer": {"text": "hi"}}]), encoding="utf-8")
    with socket.socket() as s:  # a port nothing listens on: the answer can only be a stub's
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    script = (
        "import subprocess,sys\n"
        "for i in range(4):\n"
        f"    subprocess.run(['curl','-s','-D','-','-o','/dev/null','-x',__import__('os')"
        f".environ['HTTPS_PROXY'],'http://127.0.0.1:{port}/v1/chat/completions','-d',"
        '\'{"model":"m","messages":[{"role":"user","content":"q%d"}]}\' % i])\n'
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tapeproxy",
            "replay",
            "--confdir",
            str(confdir),
            "--cassette",
            str(tmp_path / "none.json.zst"),
            "--stubs",
            str(stubs),
            "--faults",
            "503=100%",
            "--no-proxy",
            "",
            "--",
            sys.executable,
            "-c",
            script,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("HTTP/1.1 503") == 4
    assert done.stdout.lower().count("x-tapeproxy-source: fault") == 4
    assert "faults injected: 4 (503 4)" in done.stderr


def test_a_faulted_scripted_stub_answer_comes_again_on_the_retry(
    tmp_path: Path, run_proxy: ProxyFactory, provider: FakeProvider
) -> None:
    # 16 turns: the request key holds the fake provider's (random) port, so which turns fail
    # changes from run to run; at 50 % all 16 first tries succeed once in 65,536 runs
    script = [{"text": f"answer {i}"} for i in range(16)]
    stubs = _stubs(tmp_path, [{"answers": script}])
    faults = Faults(parse_faults("500=50%"), seed=2)
    got, failures = [], 0
    with (
        run_proxy(tmp_path / "n.json.zst", "none", stubs=stubs, faults=faults) as runner,
        _openai(runner, provider) as client,
    ):
        for turn in range(len(script)):
            while True:  # a client retrying each turn until it gets an answer
                try:
                    got.append(_ask(client, f"turn {turn}"))
                    break
                except openai.InternalServerError:
                    failures += 1
    assert failures > 0  # some turns were faulted
    assert got == [s["text"] for s in script]  # each scripted answer reached the client, in order
