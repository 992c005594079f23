"""`diff` of WebSocket sessions: the server's Realtime (or Gemini Live) events read as one
answer: text deltas joined and compared by similarity, tool calls exactly, usage shown."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tapeproxy.cassettes import store
from tapeproxy.cassettes.model import Body, Interaction, Request, Response, new_cassette
from tapeproxy.cli import cli
from tapeproxy.providers.realtime import read_session

_URL = "wss://api.openai.com/v1/realtime?model=gpt-realtime"


def _session(deltas: list[str], call: dict[str, Any] | None = None, tokens: int = 5) -> Interaction:
    events: list[dict[str, Any]] = [
        {"type": "session.created", "session": {"model": "gpt-realtime"}}
    ]
    events += [{"type": "response.output_text.delta", "delta": d} for d in deltas]
    if call is not None:
        events.append({"type": "response.function_call_arguments.done", **call})
    usage = {"input_tokens": 3, "output_tokens": tokens}
    events.append({"type": "response.done", "response": {"usage": usage}})
    messages = [(0.0, "client", "text", Body(text='{"type": "response.create"}'))]
    messages += [(float(i + 1), "server", "text", Body(text=json.dumps(e)))
                 for i, e in enumerate(events)]  # fmt: skip
    return Interaction(
        key="k",
        request=Request(method="GET", url=_URL),
        response=Response(status=101, messages=tuple(messages)),  # type: ignore[arg-type]
    )


def _diff(tmp_path: Path, old: Interaction, new: Interaction) -> tuple[int, list[dict[str, Any]]]:
    paths = []
    for name, it in (("old", old), ("new", new)):
        path = tmp_path / f"{name}.json.zst"
        store.save(path, new_cassette("t", "2026-01-01T00:00:00Z").model_copy(
            update={"interactions": (it,)}))  # fmt: skip
        paths.append(str(path))
    result = CliRunner().invoke(cli, ["diff", *paths, "--format", "json"])
    doc = json.loads(result.output)
    changes = [c for i in doc["cassettes"][0]["interactions"] for c in i["changes"]]
    return result.exit_code, changes


def test_a_session_reads_as_one_answer() -> None:
    call = {"name": "get_weather", "arguments": '{"city": "Oslo"}'}
    it = _session(["Hel", "lo ", "there"], call)
    assert it.response is not None and it.response.messages is not None
    events = [json.loads(b.text or "") for _, who, _, b in it.response.messages if who == "server"]
    llm = read_session(events)
    assert llm is not None and llm.text == "Hello there" and llm.model == "gpt-realtime"
    assert [(c.name, c.arguments) for c in llm.tool_calls] == [("get_weather", {"city": "Oslo"})]
    assert llm.usage is not None and (llm.usage.input_tokens, llm.usage.output_tokens) == (3, 5)
    gemini = [{"serverContent": {"modelTurn": {"parts": [{"text": "Hi"}]}}},
              {"toolCall": {"functionCalls": [{"name": "f", "args": {"x": 1}}]}},
              {"usageMetadata": {"promptTokenCount": 2, "responseTokenCount": 4}}]  # fmt: skip
    live = read_session(gemini)
    assert live is not None and live.text == "Hi" and live.tool_calls[0].arguments == {"x": 1}
    assert read_session([{"type": "unknown.event"}]) is None


@pytest.mark.parametrize(
    ("new", "fields", "code"),
    [
        (_session(["Hello ", "there!"]), {"text"}, 0),  # similar text: shown, no drift
        (_session(["Completely ", "different words"]), {"text"}, 1),
        (_session(["Hello there"], {"name": "f", "arguments": "{}"}), {"tool_calls"}, 1),
        (_session(["Hello there"], tokens=9), {"usage"}, 0),
        (_session(["Hel", "lo there"]), set(), 0),  # the same text in other deltas: no change
    ],
)
def test_session_drift(tmp_path: Path, new: Interaction, fields: set[str], code: int) -> None:
    got, changes = _diff(tmp_path, _session(["Hello ", "there"]), new)
    assert {c["field"] for c in changes} == fields
    assert got == code
