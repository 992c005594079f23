"""`tapeproxy profile`: a recording of an upstream with a known error mix, latency and usage
gives them back; the TOML form feeds `--faults @FILE`; shapes and presence rules; bad input.
"""

from __future__ import annotations

import json
import math
import ssl
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tapeproxy.cassettes import store
from tapeproxy.cassettes.model import (
    Body,
    Cassette,
    Interaction,
    Meta,
    RecordedError,
    Request,
    Response,
    Timing,
)
from tapeproxy.fakeprovider import Behaviour, FakeProvider
from tapeproxy.profilefile import load_profile
from tapeproxy.providers.stubs import Stubs
from tapeproxy.proxy.faults import parse_faults
from tapeproxy.proxy.latency import Latency
from tapeproxy.proxy.runner import ProxyConfig, ProxyRunner
from tapeproxy.review.profile import build
from tapeproxy.review.render_profile import render
from tapeproxy.testing_ca import ThrowawayCA
from tests.proxy.conftest import ProxyFactory, client_for

_N = 300
_ERRORS = {429: 0.10, 500: 0.05}
_TTFB = (100.0, 300.0)


def _bounds(n: int, p: float, z: float = 3.29) -> tuple[float, float]:
    sd = math.sqrt(n * p * (1 - p))
    return n * p - z * sd, n * p + z * sd


def _record(
    folder: Path, confdir: Path, ca: ThrowawayCA, behaviour: Behaviour, n: int
) -> tuple[Path, list[openai.types.chat.ChatCompletion]]:
    cassette = folder / "known.json.zst"
    provider = FakeProvider(ca.server_context(), behaviour=behaviour).start()
    config = ProxyConfig(cassette=cassette, mode="all", confdir=confdir, upstream_ca=ca.ca_cert)
    try:
        with ProxyRunner(config) as runner:
            verify = ssl.create_default_context(cafile=str(config.ca_cert()))
            http = httpx.Client(proxy=runner.url, verify=verify, timeout=30)
            # 9 tries: at 15 % errors a call fails them all about once in 3e7 (5 tries: 1 in 13,000)
            client = openai.OpenAI(
                base_url=provider.url + "/v1", api_key="sk-test", http_client=http, max_retries=8
            )

            def ask(i: int) -> openai.types.chat.ChatCompletion:
                words = " ".join(["word"] * (1 + i % 7))
                return client.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": f"{i} {words}"}]
                )

            with ThreadPoolExecutor(8) as pool:
                answers = list(pool.map(ask, range(n)))
            http.close()
    finally:
        provider.stop()
    return cassette, answers


@pytest.fixture(scope="module")
def known(
    tmp_path_factory: pytest.TempPathFactory, confdir: Path, throwaway_ca: ThrowawayCA
) -> tuple[Path, list[Any], Behaviour]:
    """300 chats recorded, with the SDK's retries, from an upstream that fails 10 % with 429
    and 5 % with 500 and answers after 100-300 ms."""
    behaviour = Behaviour(errors=_ERRORS, ttfb_ms=_TTFB, retry_after=0.2, seed=4)
    cassette, answers = _record(
        tmp_path_factory.mktemp("profile"), confdir, throwaway_ca, behaviour, _N
    )
    return cassette, answers, behaviour


def test_profile_recovers_a_known_error_mix_latency_and_usage(
    known: tuple[Path, list[Any], Behaviour],
) -> None:
    cassette, answers, _ = known
    doc = build([(str(cassette), store.load(cassette))])
    (group,) = doc["groups"]
    assert group["endpoint"] == "POST /v1/chat/completions" and group["model"] == "gpt-4o-mini"
    tries = group["requests"]
    assert tries == sum(group["status"].values()) and tries >= _N
    for status, rate in _ERRORS.items():
        low, high = _bounds(tries, rate)
        assert low <= group["status"].get(str(status), 0) <= high, group["status"]
        assert doc["faults"][str(status)] == round(group["status"][str(status)] / tries, 4)
    assert group["status"]["200"] == _N  # every call ended in an answer...
    r = group["retries"]  # ...through the SDK's retries, seen as retries
    assert r["failed"] == r["retried"] == r["recovered"] <= tries - _N  # a call may fail twice
    assert sum(n for s, n in group["status"].items() if s != "200") == tries - _N
    assert r["success_rate"] == 1.0
    assert sum(group["error_types"].values()) == tries - _N  # each failure has its type

    mean = sum(_TTFB) / 2  # the upstream's own pause; the profile sees it through the proxy
    total = group["latency_ms"]["total"]
    assert abs(total["mean"] - mean) <= 0.10 * mean, total
    assert total["count"] == _N and _TTFB[0] <= total["min"]  # the max is the machine's load

    given = [a.usage for a in answers]
    tokens = group["tokens"]
    for name, field in (("input", "prompt_tokens"), ("output", "completion_tokens")):
        values = [getattr(u, field) for u in given]
        assert tokens[name]["count"] == _N
        assert tokens[name]["mean"] == round(sum(values) / _N, 3)
        assert (tokens[name]["min"], tokens[name]["max"]) == (min(values), max(values))


def test_profile_toml_is_read_back_and_feeds_faults(
    known: tuple[Path, list[Any], Behaviour], tmp_path: Path
) -> None:
    cassette = known[0]
    out = tmp_path / "p.toml"
    done = subprocess.run(
        [sys.executable, "-m", "tapeproxy", "profile", str(cassette.parent), "--format", "toml",
         "-o", str(out)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    doc = build([(str(cassette), store.load(cassette))])
    back = load_profile(out)
    assert back["faults"] == doc["faults"] and back["latency"] == doc["latency"]
    assert back["groups"][0]["status"] == doc["groups"][0]["status"]
    assert dict(parse_faults(f"@{out}")) == doc["faults"]
    assert json.loads(render(doc, "json")) == doc
    text = render(doc, "text")
    assert "POST /v1/chat/completions" in text and "retry success 100%" in text


def _it(key: str, status: int | None, body: Any, request: dict[str, Any], **kw: Any) -> Interaction:
    response = None
    if status is not None:
        response = Response(status=status, body=Body.from_bytes(json.dumps(body).encode()))
    return Interaction(
        key=key,
        request=Request(
            method="POST",
            url="https://api.example.test/v1/chat/completions",
            body=Body.from_bytes(json.dumps(request).encode()),
        ),
        response=response,
        timing=Timing(ttfb_ms=10, total_ms=20),
        **kw,
    )


def test_shape_paths_types_and_which_setting_makes_a_field_appear() -> None:
    def answer(reasoning: bool) -> dict[str, Any]:
        usage: dict[str, Any] = {"prompt_tokens": 5, "completion_tokens": 7}
        if reasoning:
            usage["completion_tokens_details"] = {"reasoning_tokens": 3}
        return {
            "model": "m",
            "choices": [{"message": {"role": "assistant", "content": "hi"}}],
            "usage": usage,
        }

    rows = []
    for i in range(6):
        asks = {"model": "m", "messages": [{"role": "user", "content": str(i)}]}
        if i % 2:
            asks["reasoning_effort"] = "low"
        asks["temperature"] = 0.5 if i % 3 else None
        rows.append(_it(f"k{i}", 200, answer(bool(i % 2)), asks))
    doc = build([("c", Cassette(meta=Meta(created="x", tapeproxy="0"), interactions=tuple(rows)))])
    shape = doc["groups"][0]["shape"]["plain"]
    fields = shape["fields"]
    assert fields["choices[].message.content"] == {"types": ["string"], "share": 1.0}
    assert fields["usage.completion_tokens_details.reasoning_tokens"]["share"] == 0.5
    assert shape["presence"] == [
        {"path": "usage.completion_tokens_details", "when": "reasoning_effort"},
        {"path": "usage.completion_tokens_details.reasoning_tokens", "when": "reasoning_effort"},
    ]


def test_retry_chains_misses_and_transport_failures() -> None:
    ok = {"choices": [{"message": {"content": "x"}}]}
    err = {"error": {"type": "server_error", "message": "boom"}}
    asks = {"model": "m", "messages": []}
    rows = [
        _it("a", 500, err, asks),
        _it("a", 200, ok, asks),  # retried and recovered
        _it("b", None, None, asks, error=RecordedError(message="reset", by="upstream")),
        _it("b", 500, err, asks),  # retried, never recovered
        _it("c", 200, ok, asks),
        _it("c", 200, ok, asks),  # the same request again after a success: a new call
        _it("d", 599, {"error": "miss"}, asks, source="miss"),  # not provider behaviour
        _it("e", 400, {"error": {"type": "invalid_request_error"}}, asks),
    ]
    doc = build([("c", Cassette(meta=Meta(created="x", tapeproxy="0"), interactions=tuple(rows)))])
    (g,) = doc["groups"]
    assert doc["skipped"] == 1 and g["requests"] == 7
    assert g["status"] == {"200": 3, "400": 1, "500": 2, "reset": 1}
    assert g["retries"] == {"failed": 3, "retried": 2, "recovered": 1, "success_rate": 0.3333}
    assert g["error_types"] == {"server_error": 2, "reset": 1, "invalid_request_error": 1}
    assert "400" not in doc["faults"]  # caused by the request: never drawn as a fault
    assert doc["faults"] == {"500": round(2 / 7, 4), "reset": round(1 / 7, 4)}


def test_profile_bad_input_is_exit_2(tmp_path: Path) -> None:
    for args in (
        [str(tmp_path / "nope.json.zst")],
        [str(tmp_path)],  # a folder with no cassette
    ):
        done = subprocess.run(
            [sys.executable, "-m", "tapeproxy", "profile", *args],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 2, done.stderr
        assert "Error:" in done.stderr


_CLIENT = """
import os, sys
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise
import openai

client = openai.OpenAI(base_url=sys.argv[1] + "/v1", api_key="sk-test", max_retries=8)

def ask(i):
    words = " ".join(["word"] * (1 + i % 7))
    try:
        done = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": f"{i} {words}"}]
        )
    except openai.APIError as e:  # the SDK gave up retrying
        print(f"call {i}: {type(e).__name__}: {e}", file=sys.stderr)
        return None
    return done.choices[0].message.content

with ThreadPoolExecutor(16) as pool:
    answers = list(pool.map(ask, range(int(sys.argv[2]))))
print(sum(a is not None for a in answers))
"""


def _mock_run(
    tmp_path: Path, confdir: Path, url: str, profile: Path, name: str, *options: str
) -> tuple[Path, int, list[str]]:
    """The client of the recording, against stubs and the profile: its journal, how many of
    its calls got an answer, and why the others did not."""
    stubs = tmp_path / "stubs.yaml"
    stubs.write_text('- answer: {text: "You said it. This is a stub answering."}\n', "utf-8")
    client = tmp_path / "client.py"
    client.write_text(_CLIENT, encoding="utf-8")
    journal = tmp_path / f"{name}.json.zst"
    done = subprocess.run(
        [sys.executable, "-m", "tapeproxy", "replay", "--cassette", str(tmp_path / "none.json.zst"),
         "--stubs", str(stubs), "--profile", str(profile), "--journal", str(journal),
         "--fault-retry-after", "0.2", "--confdir", str(confdir), "--no-proxy", "", *options,
         "--", sys.executable, str(client), url, str(_N)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    gave_up = [line for line in done.stderr.splitlines() if line.startswith("call ")]
    return journal, int(done.stdout), gave_up


def _parity(reference: Path, observed: Path, *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tapeproxy", "parity", str(reference), str(observed), *options],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_a_mock_run_with_the_profile_is_at_parity_and_one_with_3x_errors_is_not(
    known: tuple[Path, list[Any], Behaviour], tmp_path: Path, confdir: Path
) -> None:
    cassette = known[0]
    url = store.load(cassette).interactions[0].request.url.split("/v1/")[0]
    profile = tmp_path / "profile.toml"
    profile.write_text(render(build([(str(cassette), store.load(cassette))]), "toml"), "utf-8")

    journal, answered, gave_up = _mock_run(tmp_path, confdir, url, profile, "mock")
    assert answered == _N, gave_up
    same = _parity(cassette, journal)
    assert same.returncode == 0, same.stdout + same.stderr
    assert "at parity" in same.stdout and "BEYOND" not in same.stdout
    for measure in ("error rate 429", "retry success rate", "latency mean", "tokens output mean",
                    "shape plain"):  # fmt: skip
        assert measure in same.stdout
    # the profile itself is a side parity reads too
    assert _parity(profile, journal).returncode == 0

    rates = build([(str(cassette), store.load(cassette))])["faults"]
    tripled = ",".join(f"{k}={3 * v:.4f}" for k, v in rates.items())
    worse, _, _ = _mock_run(tmp_path, confdir, url, profile, "worse", "--faults", tripled)
    beyond = _parity(cassette, worse, "--format", "json")
    assert beyond.returncode == 1, beyond.stdout + beyond.stderr
    doc = json.loads(beyond.stdout)
    assert doc["parity"] is False
    assert "error rate" in doc["beyond"] and "error rate 429" in doc["beyond"]
    markdown = _parity(cassette, worse, "--format", "markdown")
    assert markdown.returncode == 1 and "| error rate 429 |" in markdown.stdout


def test_parity_bad_input_and_tolerances(
    known: tuple[Path, list[Any], Behaviour], tmp_path: Path
) -> None:
    cassette = known[0]
    assert _parity(cassette, tmp_path / "missing.json.zst").returncode == 2
    bad = _parity(cassette, cassette, "--tolerance", "latency=3")
    assert bad.returncode == 2 and "error_rate" in bad.stderr  # names the known tolerances
    not_profile = tmp_path / "p.toml"
    not_profile.write_text("[faults]\n'429' = 0.1\n", encoding="utf-8")
    assert _parity(cassette, not_profile).returncode == 2
    # a tolerance can loosen a measure
    assert _parity(cassette, cassette, "--tolerance", "shape=off").returncode == 0


def test_latency_from_a_profile_times_stub_streams_and_cassette_answers(
    tmp_path: Path, run_proxy: ProxyFactory, provider: FakeProvider
) -> None:
    table = tmp_path / "latency.toml"
    table.write_text(
        "[latency]\nttfb_ms = [150.0, 250.0]\ntotal_ms = [300.0, 400.0]\ngap_ms = [20.0, 30.0]\n",
        encoding="utf-8",
    )
    rules = tmp_path / "stubs.yaml"
    rules.write_text('- match: {last_user: "stub"}\n  answer: {text: "a b c d e f"}\n', "utf-8")
    url = provider.url + "/v1/chat/completions"
    cassette = tmp_path / "c.json.zst"
    with run_proxy(cassette, "all") as runner, client_for(runner) as http:
        http.post(url, json={"model": "m", "messages": [{"role": "user", "content": "rec"}]})
    recorded = store.load(cassette).interactions[0].timing.total_ms

    def timed(seed: int) -> tuple[list[float], float]:
        latency = Latency.parse(f"@{table}", seed)
        stubs = Stubs.from_files([rules], seed)
        with (
            run_proxy(cassette, "none", latency=latency, stubs=stubs) as runner,
            client_for(runner) as http,
        ):
            ask = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "stub"}]}
            start = time.monotonic()
            arrivals = []
            with http.stream("POST", url, json=ask) as resp:
                for line in resp.iter_lines():
                    if line.startswith("data: "):
                        arrivals.append(time.monotonic() - start)
            start = time.monotonic()
            http.post(url, json={"model": "m", "messages": [{"role": "user", "content": "rec"}]})
            return arrivals, time.monotonic() - start

    arrivals, whole = timed(1)
    # the first event after a drawn TTFB (150-250 ms), then drawn gaps (20-30 ms)
    assert 0.14 <= arrivals[0] <= 0.5, arrivals
    gaps = [b - a for a, b in pairwise(arrivals)]
    assert len(gaps) >= 5 and sum(gaps) / len(gaps) >= 0.015, gaps
    # a recorded answer (recorded in `recorded` ms) now takes a drawn total of 300-400 ms
    assert recorded < 250 and 0.29 <= whole <= 1.0, (recorded, whole)


def test_parity_pairs_groups_across_hosts_and_names_a_group_only_one_side_has() -> None:
    from tapeproxy.review.parity import DEFAULT_TOLERANCES, compare

    ok = {"model": "m", "choices": [{"message": {"content": "x"}}]}

    def doc(host: str, models: list[str]) -> dict[str, Any]:
        rows = []
        for i, model in enumerate(models):
            it = _it(f"k{i}", 200, {**ok, "model": model}, {"model": model, "messages": []})
            url = it.request.url.replace("api.example.test", host)
            rows.append(
                it.model_copy(update={"request": it.request.model_copy(update={"url": url})})
            )
        meta = Meta(created="x", tapeproxy="0")
        return build([("c", Cassette(meta=meta, interactions=tuple(rows)))])

    measures = compare(doc("api.openai.com", ["a"] * 5), doc("127.0.0.1:8000", ["a"] * 5),
                       DEFAULT_TOLERANCES)  # fmt: skip
    assert measures and all(m.within for m in measures)  # one group each side: paired
    lone = compare(doc("h", ["a"] * 5), doc("h", ["a"] * 5 + ["b"]), DEFAULT_TOLERANCES)
    beyond = [m for m in lone if not m.within]
    assert [(m.name, m.reference, m.observed) for m in beyond] == [
        ("requests", "none", "1 requests")
    ]
