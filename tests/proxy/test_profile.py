"""`tapeproxy profile`: a recording of an upstream with a known error mix, latency and usage
gives them back; the TOML form feeds `--faults @FILE`; shapes and presence rules; bad input.
"""

from __future__ import annotations

import json
import math
import ssl
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
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
from tapeproxy.proxy.faults import parse_faults
from tapeproxy.proxy.runner import ProxyConfig, ProxyRunner
from tapeproxy.review.profile import build
from tapeproxy.review.render_profile import load_profile, render
from tapeproxy.testing_ca import ThrowawayCA

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
            client = openai.OpenAI(
                base_url=provider.url + "/v1", api_key="sk-test", http_client=http, max_retries=4
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
    assert total["count"] == _N and _TTFB[0] <= total["min"] and total["max"] <= _TTFB[1] * 1.5

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
    assert g["retries"] == {"failed": 3, "retried": 2, "recovered": 1, "success_rate": 0.5}
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
