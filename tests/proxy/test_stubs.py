"""Stub answers through a real proxy and the real SDKs: every API and mode, typed by the SDKs'
own models; determinism; no upstream connection; bad stubs files refused up front.

The upstream is a fake provider on 127.0.0.1 that counts its connections: stubs never reach
it. Texts, names and arguments are drawn from a seeded generator per test, never fixed.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import anthropic
import httpx
import httpx2
import openai
import pytest
import yaml

from tapeproxy.fakeprovider import FakeProvider
from tapeproxy.providers.stubs import Stubs
from tapeproxy.proxy.latency import Latency
from tests.proxy.conftest import ProxyFactory, replay_refused

_WORDS = [
    "amber",
    "basalt",
    "cobalt",
    "delta",
    "ember",
    "fjord",
    "garnet",
    "harbor",
    "indigo",
    "juniper",
    "kelp",
    "lumen",
]


def _phrase(rng: random.Random, n: int = 6) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(n)).capitalize() + "."


def _stubs(tmp_path: Path, rules: list[dict[str, Any]], seed: int = 0) -> Stubs:
    path = tmp_path / "stubs.yaml"
    path.write_text(yaml.safe_dump(rules), encoding="utf-8")
    return Stubs.from_files([path], seed)


def _http(runner: Any) -> httpx.Client:
    ca = ssl.create_default_context(cafile=str(runner.config.ca_cert()))
    return httpx.Client(proxy=runner.url, verify=ca, timeout=30)


def _claude(runner: Any, provider: FakeProvider) -> anthropic.Anthropic:
    """The anthropic SDK (it has its own fork of httpx, `httpx2`) through the proxy."""
    ca = ssl.create_default_context(cafile=str(runner.config.ca_cert()))
    http = httpx2.Client(proxy=runner.url, verify=ca, timeout=30)
    return anthropic.Anthropic(base_url=provider.url, api_key="k", http_client=http, max_retries=0)


@pytest.fixture
def rng(request: pytest.FixtureRequest) -> random.Random:
    return random.Random(request.node.name)


def test_openai_chat_plain_streamed_and_tool_calls(
    tmp_path: Path, run_proxy: ProxyFactory, provider: FakeProvider, rng: random.Random
) -> None:
    text, city, tool = _phrase(rng), rng.choice(_WORDS), f"get_{rng.choice(_WORDS)}"
    stubs = _stubs(
        tmp_path,
        [
            {
                "match": {"endpoint": "chat", "last_user": "weather"},
                "answer": {"tool_calls": [{"name": tool, "arguments": {"city": city, "n": 3}}]},
            },
            {"match": {"endpoint": "chat"}, "answer": {"text": text}},
        ],
    )
    with (
        run_proxy(tmp_path / "none.json.zst", "none", stubs=stubs) as runner,
        _http(runner) as http,
        openai.OpenAI(
            base_url=provider.url + "/v1", api_key="sk-test", http_client=http, max_retries=0
        ) as client,
    ):
        ask = [{"role": "user", "content": "Say something"}]
        plain = client.chat.completions.create(model="gpt-4o-mini", messages=ask)  # type: ignore[arg-type]
        assert plain.choices[0].message.content == text
        assert plain.usage is not None
        assert plain.usage.total_tokens == plain.usage.prompt_tokens + plain.usage.completion_tokens
        assert plain.id.startswith("chatcmpl-") and plain.model == "gpt-4o-mini"

        stream = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=ask,
            stream=True,  # type: ignore[arg-type]
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text
        assert chunks[-1].choices == [] and chunks[-1].usage is not None
        assert chunks[-1].usage.completion_tokens == plain.usage.completion_tokens
        assert all(c.usage is None for c in chunks[:-1])

        calls = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "the weather?"}],  # type: ignore[list-item]
        )
        (call,) = calls.choices[0].message.tool_calls or []
        assert call.function.name == tool  # type: ignore[union-attr]
        assert json.loads(call.function.arguments) == {"city": city, "n": 3}  # type: ignore[union-attr]
        assert calls.choices[0].finish_reason == "tool_calls"

        with client.chat.completions.stream(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "weather now"}],  # type: ignore[list-item]
        ) as streamed:
            final = streamed.get_final_completion()
        (call,) = final.choices[0].message.tool_calls or []
        assert call.function.name == tool
        assert json.loads(call.function.arguments) == {"city": city, "n": 3}
    assert provider.connections == 0
    assert runner.session.tally()["stubbed"] == 4


def test_openai_responses_plain_and_streamed(
    tmp_path: Path, run_proxy: ProxyFactory, provider: FakeProvider, rng: random.Random
) -> None:
    text, reasoning = _phrase(rng), _phrase(rng, 4)
    stubs = _stubs(
        tmp_path,
        [{"match": {"endpoint": "responses"}, "answer": {"text": text, "reasoning": reasoning}}],
    )
    with (
        run_proxy(tmp_path / "none.json.zst", "none", stubs=stubs) as runner,
        _http(runner) as http,
        openai.OpenAI(
            base_url=provider.url + "/v1", api_key="sk-test", http_client=http, max_retries=0
        ) as client,
    ):
        plain = client.responses.create(model="gpt-5-mini", input="Tell me")
        assert plain.output_text == text and plain.status == "completed"
        assert plain.usage is not None and plain.usage.output_tokens_details.reasoning_tokens > 0
        assert plain.id.startswith("resp_")
        events = list(client.responses.create(model="gpt-5-mini", input="Tell me", stream=True))
        assert [e.sequence_number for e in events] == list(range(len(events)))
        assert events[0].type == "response.created" and events[-1].type == "response.completed"
        deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
        assert deltas == text
        assert events[-1].response.output_text == text  # type: ignore[union-attr]
    assert provider.connections == 0


def test_anthropic_messages_plain_streamed_and_tool_use(
    tmp_path: Path, run_proxy: ProxyFactory, provider: FakeProvider, rng: random.Random
) -> None:
    text, tool, place = _phrase(rng), f"find_{rng.choice(_WORDS)}", rng.choice(_WORDS)
    stubs = _stubs(
        tmp_path,
        [
            {
                "match": {"endpoint": "messages", "last_user_re": r"^where\b"},
                "answer": {"tool_calls": [{"name": tool, "arguments": {"place": place}}]},
            },
            {"match": {"endpoint": "messages", "model": "claude-*"}, "answer": {"text": text}},
        ],
    )
    with (
        run_proxy(tmp_path / "none.json.zst", "none", stubs=stubs) as runner,
        _claude(runner, provider) as client,
    ):
        ask = [{"role": "user", "content": "hello"}]
        plain = client.messages.create(model="claude-sonnet-4-5", max_tokens=64, messages=ask)  # type: ignore[arg-type]
        assert plain.content[0].text == text  # type: ignore[union-attr]
        assert plain.stop_reason == "end_turn" and plain.usage.output_tokens > 0
        with client.messages.stream(
            model="claude-sonnet-4-5",
            max_tokens=64,
            messages=ask,  # type: ignore[arg-type]
        ) as stream:
            streamed_text = "".join(stream.text_stream)
            final = stream.get_final_message()
        assert streamed_text == text and final.usage.output_tokens == plain.usage.output_tokens
        used = client.messages.create(
            model="claude-sonnet-4-5",
            max_tokens=64,
            messages=[{"role": "user", "content": "where is it?"}],
        )
        (block,) = used.content
        assert block.type == "tool_use" and block.name == tool and block.input == {"place": place}
        with client.messages.stream(
            model="claude-sonnet-4-5",
            max_tokens=64,
            messages=[{"role": "user", "content": "where now"}],
        ) as stream:
            final = stream.get_final_message()
        (block,) = final.content
        assert block.type == "tool_use" and block.input == {"place": place}
    assert provider.connections == 0


def test_gemini_generate_plain_sse_and_json_array(
    tmp_path: Path, run_proxy: ProxyFactory, provider: FakeProvider, rng: random.Random
) -> None:
    text, tool = _phrase(rng), f"lookup_{rng.choice(_WORDS)}"
    stubs = _stubs(
        tmp_path,
        [
            {
                "match": {"endpoint": "generate", "body": {"generationConfig.candidateCount": 1}},
                "answer": {"tool_calls": [{"name": tool, "arguments": {"q": "x"}}]},
            },
            {"match": {"endpoint": "generate", "model": "gemini-*"}, "answer": {"text": text}},
        ],
    )
    base = provider.url + "/v1beta/models/gemini-2.5-flash"
    ask = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    with (
        run_proxy(tmp_path / "none.json.zst", "none", stubs=stubs) as runner,
        _http(runner) as http,
    ):
        plain = http.post(base + ":generateContent", json=ask)
        assert plain.headers["x-tapeproxy-source"] == "stub"
        doc = plain.json()
        assert doc["candidates"][0]["content"]["parts"][0]["text"] == text
        usage = doc["usageMetadata"]
        assert usage["totalTokenCount"] == usage["promptTokenCount"] + usage["candidatesTokenCount"]
        sse = http.post(base + ":streamGenerateContent?alt=sse", json=ask)
        assert sse.headers["content-type"].startswith("text/event-stream")
        events = [json.loads(e[6:]) for e in sse.text.split("\r\n\r\n") if e.startswith("data: ")]
        assert "".join(e["candidates"][0]["content"]["parts"][0]["text"] for e in events) == text
        assert events[-1]["candidates"][0]["finishReason"] == "STOP"
        array = http.post(base + ":streamGenerateContent", json=ask).json()
        assert [e["candidates"][0]["content"]["parts"][0]["text"] for e in array] == [
            e["candidates"][0]["content"]["parts"][0]["text"] for e in events
        ]
        called = http.post(
            base + ":generateContent", json={**ask, "generationConfig": {"candidateCount": 1}}
        ).json()
        part = called["candidates"][0]["content"]["parts"][0]
        assert part == {"functionCall": {"name": tool, "args": {"q": "x"}}}
    assert provider.connections == 0


def test_embeddings_are_deterministic_vectors_of_the_input(
    tmp_path: Path, run_proxy: ProxyFactory, provider: FakeProvider, rng: random.Random
) -> None:
    stubs = _stubs(tmp_path, [{"match": {"endpoint": "embeddings"}, "answer": {}}])
    first, second = _phrase(rng), _phrase(rng)
    with (
        run_proxy(tmp_path / "none.json.zst", "none", stubs=stubs) as runner,
        _http(runner) as http,
        openai.OpenAI(
            base_url=provider.url + "/v1", api_key="sk-test", http_client=http, max_retries=0
        ) as client,
    ):
        got = client.embeddings.create(model="text-embedding-3-small", input=[first, second])
        again = client.embeddings.create(
            model="text-embedding-3-small", input=first, encoding_format="float"
        )
    assert [len(d.embedding) for d in got.data] == [1536, 1536]
    assert got.data[0].embedding != got.data[1].embedding
    # base64 (the SDK's default) and floats carry the same vector, to float32 precision
    assert again.data[0].embedding == pytest.approx(got.data[0].embedding, abs=1e-6)
    assert abs(sum(x * x for x in got.data[0].embedding) - 1.0) < 1e-3
    assert got.usage.prompt_tokens > 0
    assert provider.connections == 0


def test_scripted_answers_in_order_the_last_repeating_and_errors_typed(
    tmp_path: Path, run_proxy: ProxyFactory, provider: FakeProvider, rng: random.Random
) -> None:
    turns = [_phrase(rng) for _ in range(3)]
    stubs = _stubs(
        tmp_path,
        [
            {
                "match": {"endpoint": "chat", "headers": {"x-case": "limit"}},
                "answer": {
                    "error": {
                        "status": 429,
                        "type": "rate_limit_exceeded",
                        "message": "slow down",
                        "retry_after": 0,
                    }
                },
            },
            {
                "match": {"endpoint": "messages"},
                "answer": {"error": {"status": 529, "message": "Overloaded"}},
            },
            {"match": {"endpoint": "chat"}, "answers": [{"text": t} for t in turns]},
        ],
    )
    with (
        run_proxy(tmp_path / "none.json.zst", "none", stubs=stubs) as runner,
        _http(runner) as http,
        openai.OpenAI(
            base_url=provider.url + "/v1", api_key="sk-test", http_client=http, max_retries=0
        ) as client,
    ):
        said = [
            client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": f"turn {i}"}]
            )
            .choices[0]
            .message.content
            for i in range(5)
        ]
        with pytest.raises(openai.RateLimitError) as limited:
            client.chat.completions.create(
                model="m",
                messages=[{"role": "user", "content": "x"}],
                extra_headers={"x-case": "limit"},
            )
        with (
            _claude(runner, provider) as claude,
            pytest.raises(anthropic.APIStatusError) as overloaded,
        ):
            claude.messages.create(
                model="claude-x", max_tokens=8, messages=[{"role": "user", "content": "x"}]
            )
    assert said == [*turns, turns[-1], turns[-1]]
    assert limited.value.code == "rate_limit_exceeded" and limited.value.message.endswith(
        "slow down"
    )
    assert limited.value.response.headers["retry-after"] == "0"
    assert overloaded.value.status_code == 529
    assert overloaded.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]
    assert provider.connections == 0


def _bodies(
    tmp_path: Path, run_proxy: ProxyFactory, provider: FakeProvider, seed: int
) -> list[bytes]:
    stubs = _stubs(
        tmp_path,
        [
            {
                "match": {},
                "answer": {"text": "same words each run"},
                "stream": {"ttft_ms": 5, "tokens_per_s": 500, "jitter": 0.5},
            }
        ],
        seed,
    )
    ask = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]}
    out = []
    with (
        run_proxy(tmp_path / "none.json.zst", "none", stubs=stubs) as runner,
        _http(runner) as http,
    ):
        for doc in (ask, ask, {**ask, "stream": True}):
            out.append(http.post(provider.url + "/v1/chat/completions", json=doc).content)
        out.append(http.post(provider.url + "/v1/messages", json={**ask, "stream": True}).content)
    return out


def test_two_runs_give_byte_identical_answers_and_seeds_differ(
    tmp_path: Path, run_proxy: ProxyFactory, provider: FakeProvider
) -> None:
    first = _bodies(tmp_path, run_proxy, provider, seed=7)
    second = _bodies(tmp_path, run_proxy, provider, seed=7)
    other = _bodies(tmp_path, run_proxy, provider, seed=8)
    assert first == second
    assert first[0] != first[1]  # a repeat is the next occurrence: fresh ids
    assert all(a != b for a, b in zip(first, other, strict=True))
    assert provider.connections == 0


def test_cassette_answers_first_then_stubs_then_a_miss(
    tmp_path: Path, run_proxy: ProxyFactory, provider: FakeProvider
) -> None:
    cassette = tmp_path / "c.json.zst"
    ask = {"model": "m", "messages": [{"role": "user", "content": "recorded one"}]}
    with run_proxy(cassette, "once") as runner, _http(runner) as http:
        recorded = http.post(provider.url + "/v1/chat/completions", json=ask)
        assert recorded.headers["x-tapeproxy-source"] == "live"
    live_connections = provider.connections
    stubs = _stubs(tmp_path, [{"match": {"last_user": "stubbed"}, "answer": {"text": "S"}}])
    with run_proxy(cassette, "none", stubs=stubs) as runner, _http(runner) as http:
        hit = http.post(provider.url + "/v1/chat/completions", json=ask)
        stub = http.post(
            provider.url + "/v1/chat/completions",
            json={**ask, "messages": [{"role": "user", "content": "stubbed one"}]},
        )
        miss = http.post(
            provider.url + "/v1/chat/completions",
            json={**ask, "messages": [{"role": "user", "content": "neither"}]},
        )
    assert hit.headers["x-tapeproxy-source"] == "cassette" and hit.content == recorded.content
    assert stub.headers["x-tapeproxy-source"] == "stub"
    assert stub.json()["choices"][0]["message"]["content"] == "S"
    assert miss.status_code == 599
    tally = runner.session.tally()
    assert (tally["hits"], tally["stubbed"], tally["misses"]) == (1, 1, 1)
    assert provider.connections == live_connections


def test_in_record_modes_a_matched_stub_answers_instead_of_the_network(
    tmp_path: Path, run_proxy: ProxyFactory, provider: FakeProvider
) -> None:
    stubs = _stubs(tmp_path, [{"match": {"last_user": "stub me"}, "answer": {"text": "S"}}])
    cassette = tmp_path / "rec.json.zst"
    with run_proxy(cassette, "new_episodes", stubs=stubs) as runner, _http(runner) as http:
        stubbed = http.post(
            provider.url + "/v1/chat/completions",
            json={"model": "m", "messages": [{"role": "user", "content": "stub me"}]},
        )
        live = http.post(
            provider.url + "/v1/chat/completions",
            json={"model": "m", "messages": [{"role": "user", "content": "go live"}]},
        )
    assert stubbed.headers["x-tapeproxy-source"] == "stub"
    assert live.headers["x-tapeproxy-source"] == "live"
    assert provider.requests == 1
    from tapeproxy.cassettes.store import load

    (kept,) = load(cassette).interactions  # only the live exchange is recorded
    assert "go live" in (kept.request.body.text or "")  # type: ignore[union-attr]
    assert all(k.lower() != "x-tapeproxy-source" for k, _ in kept.response.headers)  # type: ignore[union-attr]


def test_streamed_stub_follows_its_timing(
    tmp_path: Path, run_proxy: ProxyFactory, provider: FakeProvider
) -> None:
    stubs = _stubs(
        tmp_path,
        [
            {
                "match": {},
                "answer": {"text": "one two three four five six seven eight"},
                "stream": {"ttft_ms": 150, "tokens_per_s": 40},
            }
        ],
    )
    ask = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "x"}]}
    with (
        run_proxy(tmp_path / "n.json.zst", "none", stubs=stubs) as runner,
        _http(runner) as http,
        http.stream("POST", provider.url + "/v1/chat/completions", json=ask) as resp,
    ):
        import time

        start = time.monotonic()
        arrivals = []
        for line in resp.iter_lines():
            if line.startswith("data: "):
                arrivals.append(time.monotonic() - start)
    # 11 events: the first after ~150 ms, the rest 25 ms apart (~250 ms more); bounds are loose
    assert len(arrivals) == 11
    assert arrivals[0] >= 0.1
    assert arrivals[-1] - arrivals[0] >= 0.2
    with (
        run_proxy(tmp_path / "n.json.zst", "none", stubs=stubs, latency=Latency(0.0)) as runner,
        _http(runner) as http,
    ):
        whole = http.post(provider.url + "/v1/chat/completions", json=ask)
    assert whole.text.endswith("data: [DONE]\n\n")


def test_bad_stubs_files_are_exit_2_naming_file_rule_and_field(tmp_path: Path) -> None:
    cases = {
        "unknown-key.yaml": (
            [{"match": {"modle": "x"}, "answer": {"text": "a"}}],
            "rule 0",
            "match.modle",
        ),
        "two-kinds.yaml": (
            [{"answer": {"text": "a"}}, {"answer": {"text": "a", "json": {}}}],
            "rule 1",
            "answer",
        ),
        "bad-regex.yaml": (
            [{"match": {"last_user_re": "(unclosed"}, "answer": {"text": "a"}}],
            "rule 0",
            "match.last_user_re",
        ),
        "wrong-type.yaml": (
            [{"answer": {"error": {"status": "many"}}}],
            "rule 0",
            "answer.error.status",
        ),
        "no-answer.yaml": ([{"match": {"endpoint": "chat"}}], "rule 0", "either answer"),
    }
    for name, (rules, rule, fieldname) in cases.items():
        path = tmp_path / name
        path.write_text(yaml.safe_dump(rules), encoding="utf-8")
        check = subprocess.run(
            [sys.executable, "-m", "tapeproxy", "stubs", "check", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert check.returncode == 2, (name, check.stderr)
        assert name in check.stderr and rule in check.stderr and fieldname in check.stderr
        assert "Traceback" not in check.stderr
        assert name in replay_refused(tmp_path, "--stubs", str(path)).stderr
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"rules": [{"answer": {"text": "x"}}]}), encoding="utf-8")
    check = subprocess.run(
        [sys.executable, "-m", "tapeproxy", "stubs", "check", str(good)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 0 and "1 rule" in check.stdout


def test_serve_with_stubs_as_the_docker_image_runs_it_answers_another_process(
    tmp_path: Path, provider: FakeProvider, confdir: Path, rng: random.Random
) -> None:
    """The image's command (`tapeproxy serve`, configured by its TAPEPROXY_* variables) with a
    stubs file and no cassette; curl, another process, uses it as its proxy."""
    text = _phrase(rng)
    stubs = tmp_path / "stubs.yaml"
    stubs.write_text(yaml.safe_dump([{"answer": {"text": text}}]), encoding="utf-8")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **os.environ,
        "TAPEPROXY_RECORD_MODE": "none",
        "TAPEPROXY_CASSETTE": str(tmp_path / "none-yet.json.zst"),
        "TAPEPROXY_CONFDIR": str(confdir),
        "TAPEPROXY_LISTEN": f"127.0.0.1:{port}",  # the image listens on 0.0.0.0:8080
        "TAPEPROXY_STUBS": str(stubs),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "tapeproxy", "serve"], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stderr is not None
        assert f"127.0.0.1:{port}" in proc.stderr.readline()
        body = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]})
        curl = subprocess.run(
            [
                "curl",
                "-sS",
                "-i",
                "--proxy",
                f"http://127.0.0.1:{port}",
                "--cacert",
                str(confdir / "mitmproxy-ca-cert.pem"),
                "-H",
                "content-type: application/json",
                "-d",
                body,
                provider.url + "/v1/chat/completions",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert curl.returncode == 0, curl.stderr
    head, _, payload = curl.stdout.rpartition("\n\n")  # after the CONNECT answer
    assert "x-tapeproxy-source: stub" in head.lower()
    assert json.loads(payload)["choices"][0]["message"]["content"] == text
    assert proc.returncode == 0 and "stubbed: 1" in err
    assert provider.connections == 0


def test_stub_answers_are_priced_from_their_tokens_where_the_model_is_known(
    tmp_path: Path, run_proxy: ProxyFactory, provider: FakeProvider
) -> None:
    import genai_prices

    stubs = _stubs(
        tmp_path,
        [
            {
                "match": {"model": "gpt-4o-mini"},
                "answer": {"text": "x", "usage": {"input": 120_000, "output": 30_000}},
            },
            {"match": {}, "answer": {"text": "abcdefgh"}},  # estimated: 2 output tokens
        ],
    )
    with run_proxy(tmp_path / "n.json.zst", "none", stubs=stubs) as runner, _http(runner) as http:
        for model in ("gpt-4o-mini", "gpt-4o-mini", "no-such-model-xyz"):
            doc = {"model": model, "messages": [{"role": "user", "content": "abcd" * 5}]}
            assert http.post(provider.url + "/v1/chat/completions", json=doc).status_code == 200
    inp, out, cost, unpriced = runner.session.stub_cost()
    assert (inp, out) == (240_000 + 5, 60_000 + 2)
    expected = genai_prices.calc_price(
        genai_prices.Usage(input_tokens=240_000, output_tokens=60_000), "gpt-4o-mini"
    ).total_price
    assert float(cost) == pytest.approx(float(expected))
    assert cost > 0 and unpriced == ["no-such-model-xyz"]
    assert "stub answers: est. tokens input 240005, output 60002" in runner.session.summary()


def test_rules_read_the_request_as_sent_not_as_keyed(
    tmp_path: Path, run_proxy: ProxyFactory, provider: FakeProvider, rng: random.Random
) -> None:
    """The key leaves out ignored JSON paths and secrets (redacted); a stub rule still reads
    the body the client sent, whichever of the two the key changed."""
    from tapeproxy.cassettes.model import MatchRules
    from tests.redaction.corpus import FORMATS

    purpose, word = rng.choice(_WORDS), rng.choice(_WORDS)
    secret = next(f for f in FORMATS if f.name == "anthropic-api").make(rng)
    stubs = _stubs(
        tmp_path,
        [
            {"match": {"body": {"metadata.purpose": purpose}}, "answer": {"text": "by path"}},
            {"match": {"last_user": f"{word} {secret}"}, "answer": {"text": "by secret"}},
            {"match": {}, "answer": {"text": "fallback"}},
        ],
    )
    rules = MatchRules(ignore_json_paths=("metadata",))
    url = provider.url + "/v1/chat/completions"
    with (
        run_proxy(tmp_path / "none.json.zst", "none", stubs=stubs, rules=rules) as runner,
        _http(runner) as http,
    ):

        def said(content: str, **extra: Any) -> str:
            doc = {"model": "m", "messages": [{"role": "user", "content": content}], **extra}
            return str(http.post(url, json=doc).json()["choices"][0]["message"]["content"])

        by_path = said("x", metadata={"purpose": purpose})
        other_path = said("x", metadata={"purpose": purpose + "-not"})
        by_secret = said(f"{word} {secret}")
    assert (by_path, other_path, by_secret) == ("by path", "fallback", "by secret")
    assert provider.connections == 0
