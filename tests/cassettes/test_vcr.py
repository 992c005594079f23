"""Tests for tapeproxy/cassettes/vcr.py: importing vcrpy cassettes, checked on the real corpus
and against the real openai / anthropic SDKs (served through httpx2.MockTransport, no network).
"""

from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
import sys
import zlib
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anthropic
import httpx2
import openai
import pytest
import yaml
import zstandard
from anthropic.types import Message, MessageTokensCount, RawMessageStreamEvent
from openai.types import Completion, CreateEmbeddingResponse
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import Response as OpenAIResponse
from openai.types.responses import ResponseStreamEvent

from tapeproxy.cassettes import vcr
from tapeproxy.cassettes.framing import split_events, stream_kind
from tapeproxy.cassettes.key import request_key
from tapeproxy.cassettes.model import Interaction, MatchRules, body_bytes
from tapeproxy.cassettes.store import load
from tapeproxy.cassettes.vcr import output_path
from tapeproxy.errors import BadInputError, CassetteError
from tapeproxy.redaction import Redactor

CORPUS = Path(
    os.environ.get("TAPEPROXY_VCR_CORPUS", Path(__file__).parents[2] / ".." / "shared/corpus/vcr")
).resolve()
CORPUS_FILES = sorted(CORPUS.rglob("*.yaml")) if CORPUS.is_dir() else []
needs_corpus = pytest.mark.skipif(
    not CORPUS_FILES, reason=f"vcr corpus not found at {CORPUS} (set TAPEPROXY_VCR_CORPUS)"
)


def read_vcr(path: Any, **kw: Any) -> tuple[Interaction, ...]:
    return vcr.read_vcr(path, redactor=Redactor(), **kw)


def import_vcr(paths: Any, out: Any, **kw: Any) -> list[vcr.Imported]:
    return vcr.import_vcr(paths, out, redactor=Redactor(), **kw)


def convert_file(path: Any, **kw: Any) -> Any:
    return vcr.convert_file(path, redactor=Redactor(), **kw)


def _ids(paths: list[Path]) -> list[str]:
    return [str(p.relative_to(CORPUS)) for p in paths]


# ---- the corpus --------------------------------------------------------------------------------


def _recorded_body(response: dict[str, Any]) -> bytes:
    """The body bytes vcrpy would replay, after gzip decoding (independent of vcr.py)."""
    if "parsed_body" in response:
        return json.dumps(response["parsed_body"]).encode()
    raw = (response.get("body") or {}).get("string") or b""
    data = raw if isinstance(raw, bytes) else raw.encode()
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def _redacted(value: str) -> bool:
    """A credential header value is nothing but an optional scheme word and a marker."""
    return re.fullmatch(r"(?:[A-Za-z0-9-]+ )?<redacted:[a-z0-9-]+>", value) is not None


@needs_corpus
@pytest.mark.parametrize("path", CORPUS_FILES, ids=_ids(CORPUS_FILES))
def test_corpus_file_converts_with_exact_bodies(path: Path) -> None:
    doc = yaml.safe_load(path.read_bytes())
    interactions = read_vcr(path)
    assert len(interactions) == len(doc["interactions"])
    for it, raw in zip(interactions, doc["interactions"], strict=True):
        resp = it.response
        assert resp is not None
        assert body_bytes(resp.body) == _recorded_body(raw["response"])
        assert resp.status == raw["response"]["status"]["code"]
        assert not any(n.lower() == "content-encoding" for n, _ in resp.headers)
        assert it.request.url == raw["request"]["uri"]
        req = it.request
        assert it.key == request_key(
            req.method, req.url, req.headers, body_bytes(req.body), MatchRules()
        )
        assert not any(
            n.lower() in ("authorization", "x-api-key", "api-key") and not _redacted(v)
            for n, v in req.headers
        )
        if resp.chunks is not None:
            assert all(offset == 0.0 for offset, _ in resp.chunks)
            assert sum(n for _, n in resp.chunks) == len(body_bytes(resp.body))


@needs_corpus
def test_whole_corpus_imports_through_the_cli(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tapeproxy",
            "import-vcr",
            *map(str, CORPUS_FILES),
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    written = sorted(tmp_path.rglob("*.json.zst"))  # the corpus tree, mirrored
    assert len(written) == len(CORPUS_FILES) == 77
    assert sum(len(load(p).interactions) for p in written) == 120
    assert "Imported 77 file(s), 120 interaction(s)" in result.stdout


@needs_corpus
def test_streamed_corpus_bodies_get_one_chunk_per_event() -> None:
    kinds: Counter[str] = Counter()
    for path in CORPUS_FILES:
        for it in read_vcr(path):
            assert it.response is not None
            data = body_bytes(it.response.body)
            kind = stream_kind(it.response.headers, it.request.url, data)
            if kind is None:
                assert it.response.chunks is None
                continue
            kinds[kind] += 1
            pieces = split_events(kind, data)
            assert [n for _, n in it.response.chunks or ()] == [len(p) for p in pieces]
    assert kinds == {"sse": 38, "json-array": 6, "ndjson": 2, "eventstream": 1}


# ---- the real SDKs -----------------------------------------------------------------------------

_OPENAI_TYPES: dict[str, tuple[type[Any], Any]] = {
    "/chat/completions": (ChatCompletion, ChatCompletionChunk),
    "/completions": (Completion, Completion),
    "/responses": (OpenAIResponse, ResponseStreamEvent),
    "/embeddings": (CreateEmbeddingResponse, None),
}


class _LegacyCompletion(anthropic.BaseModel):
    """Anthropic's /v1/complete answer; anthropic 2.x dropped its type but not its wire."""

    completion: str
    model: str
    stop_reason: str | None


_ANTHROPIC_TYPES: dict[str, tuple[type[Any], Any]] = {
    "/v1/messages": (Message, RawMessageStreamEvent),
    "/v1/messages/count_tokens": (MessageTokensCount, None),
    "/v1/complete": (_LegacyCompletion, None),
}

_STATUS_ERRORS = {
    400: "BadRequestError",
    401: "AuthenticationError",
    403: "PermissionDeniedError",
    404: "NotFoundError",
    429: "RateLimitError",
}


def _provider(url: str) -> str | None:
    host = urlsplit(url).hostname or ""
    if host == "api.openai.com":
        return "openai"
    if host.endswith(".openai.azure.com"):
        return "azure-openai"
    if host == "api.anthropic.com":
        return "anthropic"
    return None


def _transport(it: Interaction) -> httpx2.MockTransport:
    """Serves the converted interaction as a replay would: stored headers minus the framing
    ones (httpx recomputes them), the body in its stored chunks."""
    resp = it.response
    assert resp is not None
    data = body_bytes(resp.body)
    headers = [
        (n, v) for n, v in resp.headers if n.lower() not in ("content-length", "transfer-encoding")
    ]
    recorded = urlsplit(it.request.url)

    def handler(request: httpx2.Request) -> httpx2.Response:
        assert request.url.path == recorded.path
        assert request.method == it.request.method
        if resp.chunks is None:
            return httpx2.Response(resp.status, headers=headers, content=data)
        sizes = [n for _, n in resp.chunks]
        starts = [sum(sizes[:i]) for i in range(len(sizes))]
        pieces = [data[s : s + n] for s, n in zip(starts, sizes, strict=True)]
        return httpx2.Response(resp.status, headers=headers, content=iter(pieces))

    return httpx2.MockTransport(handler)


def _sdk_case(it: Interaction) -> tuple[Any, str, type[Any], Any]:
    url = urlsplit(it.request.url)
    base = f"{url.scheme}://{url.netloc}"
    http = httpx2.Client(transport=_transport(it))
    if _provider(it.request.url) in ("openai", "azure-openai"):
        client: Any = openai.OpenAI(
            api_key="sk-test", base_url=base, http_client=http, max_retries=0
        )
        suffix = next(s for s in _OPENAI_TYPES if url.path.endswith(s))
        cast_to, chunk = _OPENAI_TYPES[suffix]
        stream_cls = None if chunk is None else openai.Stream[chunk]
    else:
        client = anthropic.Anthropic(
            api_key="sk-ant-test", base_url=base, http_client=http, max_retries=0
        )
        cast_to, chunk = _ANTHROPIC_TYPES[url.path]
        stream_cls = None if chunk is None else anthropic.Stream[chunk]
    path = url.path + (f"?{url.query}" if url.query else "")
    return client, path, cast_to, stream_cls


def _parse_with_sdk(it: Interaction) -> str:
    """Have the SDK parse the interaction; returns the kind of answer it was."""
    client, path, cast_to, stream_cls = _sdk_case(it)
    body = json.loads(body_bytes(it.request.body))
    stream = bool(body.get("stream")) and stream_cls is not None
    assert it.response is not None
    if it.response.status >= 400:
        with pytest.raises(
            openai.APIStatusError if isinstance(client, openai.OpenAI) else anthropic.APIStatusError
        ) as info:
            client.post(path, cast_to=cast_to, body=body, stream=stream, stream_cls=stream_cls)
        assert type(info.value).__name__ == _STATUS_ERRORS[it.response.status]
        assert info.value.status_code == it.response.status
        return "error"
    result = client.post(path, cast_to=cast_to, body=body, stream=stream, stream_cls=stream_cls)
    if not stream:
        assert isinstance(result, cast_to)
        assert result.model_fields_set
        return "json"
    events = list(result)
    assert events
    last = getattr(events[-1], "type", None)
    if cast_to is Message:
        assert last == "message_stop"
    elif cast_to is OpenAIResponse:
        assert last in ("response.completed", "response.incomplete", "response.failed")
    return "stream"


def _sdk_interactions() -> list[tuple[str, int, Interaction]]:
    return [
        (str(p.relative_to(CORPUS)), i, it)
        for p in CORPUS_FILES
        for i, it in enumerate(read_vcr(p))
        if _provider(it.request.url)
    ]


@needs_corpus
def test_every_openai_and_anthropic_answer_parses_with_the_real_sdk() -> None:
    counts: Counter[tuple[str, str]] = Counter()
    for name, index, it in _sdk_interactions():
        try:
            kind = _parse_with_sdk(it)
        except Exception as e:
            raise AssertionError(f"{name} interaction {index}: {e!r}") from e
        counts[(_provider(it.request.url) or "", kind)] += 1
    # 91 answers: 83 from api.openai.com / api.anthropic.com (2 of them OpenRouter bodies under
    # an OpenAI URI, llm's test_tools_streaming_variant_a) and 8 from Azure OpenAI.
    assert counts == {
        ("openai", "json"): 34,
        ("openai", "stream"): 24,
        ("openai", "error"): 8,
        ("azure-openai", "json"): 3,
        ("azure-openai", "error"): 5,
        ("anthropic", "json"): 6,
        ("anthropic", "stream"): 7,
        ("anthropic", "error"): 4,
    }


# ---- formats and failures ----------------------------------------------------------------------


def _vcr(tmp_path: Path, text: str, name: str = "c.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


_MINIMAL = """\
interactions:
- request:
    body: '{"model": "m", "stream": true}'
    headers:
      Content-Type: application/json
      Authorization:
      - Bearer sk-secret-value
    method: post
    uri: https://api.example.com/v1/x?b=2&a=1#stream
  response:
    body:
      string: !!binary |
        {body}
    headers:
      Content-Encoding:
      - gzip
      Content-Type:
      - text/event-stream
      X-Count: 3
      X-Flag: true
    status:
      code: 200
      message: OK
version: 1
"""


def test_gzip_binary_body_is_decoded_and_chunked(tmp_path: Path) -> None:
    sse = b'data: {"a":1}\r\n\r\n: keep-alive\n\ndata: [DONE]\n\n'
    encoded = __import__("base64").b64encode(gzip.compress(sse)).decode()
    interactions = read_vcr(_vcr(tmp_path, _MINIMAL.replace("{body}", encoded)))
    (it,) = interactions
    assert it.request.method == "POST"
    assert ("Authorization", "Bearer <redacted:credential-header>") in it.request.headers
    assert it.response is not None
    assert body_bytes(it.response.body) == sse
    assert it.response.chunks == ((0.0, 17), (0.0, 14), (0.0, 14))
    assert ("X-Count", "3") in it.response.headers
    assert ("X-Flag", "true") in it.response.headers
    assert all(n != "Content-Encoding" for n, _ in it.response.headers)


def test_parsed_body_becomes_json_dumps(tmp_path: Path) -> None:
    text = """\
interactions:
- request:
    method: POST
    uri: https://api.openai.com/v1/chat/completions
    parsed_body: {model: gpt, messages: [{role: user, content: "hé"}]}
    headers: {}
  response:
    parsed_body: {id: x, object: chat.completion}
    headers: {content-type: [application/json]}
    status: {code: 200, message: OK}
version: 1
"""
    (it,) = read_vcr(_vcr(tmp_path, text))
    assert (
        body_bytes(it.request.body)
        == json.dumps({"model": "gpt", "messages": [{"role": "user", "content": "hé"}]}).encode()
    )
    assert it.response is not None
    assert body_bytes(it.response.body) == b'{"id": "x", "object": "chat.completion"}'


def test_stale_gzip_header_on_a_decoded_body_is_dropped(tmp_path: Path) -> None:
    text = _MINIMAL.replace("!!binary |\n        {body}", "'{\"ok\": true}'").replace(
        "text/event-stream", "application/json"
    )
    (it,) = read_vcr(_vcr(tmp_path, text))
    assert it.response is not None
    assert body_bytes(it.response.body) == b'{"ok": true}'
    assert all(n.lower() != "content-encoding" for n, _ in it.response.headers)


@pytest.mark.parametrize(
    ("coding", "encode"),
    [
        ("deflate", zlib.compress),
        ("zstd", lambda b: zstandard.ZstdCompressor().compress(b)),
        ("gzip, deflate", lambda b: zlib.compress(gzip.compress(b))),
    ],
)
def test_other_content_encodings_are_undone(tmp_path: Path, coding: str, encode: Any) -> None:
    data = b'{"text": "' + b"x" * 500 + b'"}'
    encoded = __import__("base64").b64encode(encode(data)).decode()
    text = _MINIMAL.replace("{body}", encoded).replace("- gzip", f"- {coding}")
    (it,) = read_vcr(_vcr(tmp_path, text))
    assert it.response is not None
    assert body_bytes(it.response.body) == data


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("interactions: [\n", "not valid YAML"),
        ("- just\n- a list\n", "no 'interactions' list"),
        ("interactions: []\nversion: 2\n", "format version 2"),
        ("interactions: [42]\nversion: 1\n", "interactions[0]"),
        (
            "interactions:\n- request: {method: GET}\n"
            "  response: {status: {code: 200}}\nversion: 1\n",
            "interactions[0].request.uri",
        ),
        (
            "interactions:\n- request: {method: GET, uri: 'https://h/'}\n"
            "  response: {status: {code: 'x'}}\nversion: 1\n",
            "interactions[0].response.status",
        ),
        (
            "interactions:\n- request: {method: GET, uri: 'https://h/'}\n"
            "  response: {status: {code: 200}, body: {string: 5}}\nversion: 1\n",
            "body.string",
        ),
        ("!!python/object:os.system {}\n", "not valid YAML"),
    ],
)
def test_bad_files_raise_cassette_error_naming_the_file(
    tmp_path: Path, text: str, message: str
) -> None:
    path = _vcr(tmp_path, text)
    with pytest.raises(CassetteError) as info:
        read_vcr(path)
    assert str(path) in str(info.value)
    assert message in str(info.value)


def test_truncated_gzip_body_is_an_error(tmp_path: Path) -> None:
    encoded = __import__("base64").b64encode(gzip.compress(b"x" * 1000)[:-12]).decode()
    path = _vcr(tmp_path, _MINIMAL.replace("{body}", encoded))
    with pytest.raises(CassetteError, match="cannot undo content-encoding gzip"):
        read_vcr(path)


def test_one_bad_file_writes_nothing(tmp_path: Path) -> None:
    good = _vcr(tmp_path, "interactions: []\nversion: 1\n", "good.yaml")
    bad = _vcr(tmp_path, "interactions: [\n", "bad.yaml")
    out = tmp_path / "out"
    with pytest.raises(CassetteError, match=r"bad\.yaml"):
        import_vcr([good, bad], out)
    assert not out.exists()


def test_same_names_in_two_folders_are_mirrored_not_flattened(tmp_path: Path) -> None:
    for folder in ("a", "b/deeper"):
        (tmp_path / folder).mkdir(parents=True)
    first = _vcr(tmp_path / "a", "interactions: []\nversion: 1\n", "sync.yaml")
    second = _vcr(tmp_path / "b/deeper", "interactions: []\nversion: 1\n", "sync.yaml")
    done = import_vcr([first, second], tmp_path / "out")
    assert [d.target for d in done] == [
        tmp_path / "out/a/sync.json.zst",
        tmp_path / "out/b/deeper/sync.json.zst",
    ]


def test_two_inputs_with_one_target_are_refused(tmp_path: Path) -> None:
    first = _vcr(tmp_path, "interactions: []\nversion: 1\n", "c.yaml")
    second = _vcr(tmp_path, "interactions: []\nversion: 1\n", "c.yml")
    with pytest.raises(BadInputError, match="would both be written"):
        import_vcr([first, second], tmp_path / "out")


def test_reimport_leaves_an_unchanged_cassette_alone(tmp_path: Path) -> None:
    source = _vcr(tmp_path, "interactions: []\nversion: 1\n", "same.yml")
    (first,) = import_vcr([source], tmp_path / "out")
    before = first.target.read_bytes()
    (second,) = import_vcr([source], tmp_path / "out")
    assert first.written and not second.written
    assert second.target.read_bytes() == before
    assert first.target == output_path(source, tmp_path / "out") == tmp_path / "out/same.json.zst"


def test_corrupt_existing_target_is_not_overwritten(tmp_path: Path) -> None:
    source = _vcr(tmp_path, "interactions: []\nversion: 1\n")
    target = output_path(source, tmp_path)
    target.write_bytes(b"precious")
    with pytest.raises(CassetteError, match="not overwriting"):
        import_vcr([source], tmp_path)
    assert target.read_bytes() == b"precious"


def test_convert_file_stamps_meta(tmp_path: Path) -> None:
    source = _vcr(tmp_path, "interactions: []\nversion: 1\n")
    rules = MatchRules(ignore_query=("a",))
    cassette = convert_file(source, rules=rules, created="2025-01-01T00:00:00Z")
    assert cassette.meta.created == "2025-01-01T00:00:00Z"
    assert cassette.meta.match == rules
    assert cassette.interactions == ()


_OLD_HTTPX = """\
interactions:
- request:
    body: '{"model": "m"}'
    headers:
      content-type: [application/json]
    method: POST
    uri: https://api.openai.com/v1/chat/completions
  response:
    content: '{"choices": [{"message": {"content": "old layout"}}]}'
    headers:
      content-type: application/json
    http_version: HTTP/1.1
    status_code: 200
"""


def test_the_older_httpx_stub_layout_without_a_version_imports(tmp_path: Path) -> None:
    # What vcrpy's httpx stubs wrote before vcrpy 5, and files with no `version:`: vcrpy reads
    # both, so must the importer.
    (interaction,) = read_vcr(_vcr(tmp_path, _OLD_HTTPX))
    assert interaction.response is not None
    assert interaction.response.status == 200
    assert b"old layout" in body_bytes(interaction.response.body)


def test_a_newer_vcr_format_version_is_still_refused(tmp_path: Path) -> None:
    with pytest.raises(CassetteError, match="version 2"):
        read_vcr(_vcr(tmp_path, "interactions: []\nversion: 2\n"))


def test_a_json_body_kept_as_yaml_structure_imports_as_its_json(tmp_path: Path) -> None:
    # Some projects' serializers keep a JSON request body as a mapping under `body` itself.
    text = """interactions:
- request:
    body:
      model: m
      messages: [{role: user, content: hi}]
    headers: {content-type: [application/json]}
    method: POST
    uri: https://api.example.com/v1/chat/completions
  response:
    body: {string: '{"ok": true}'}
    headers: {content-type: [application/json]}
    status: {code: 200, message: OK}
version: 1
"""
    (interaction,) = read_vcr(_vcr(tmp_path, text))
    sent = json.loads(body_bytes(interaction.request.body))
    assert sent == {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def test_an_answer_repeating_a_secret_of_its_request_loses_it_on_import(tmp_path: Path) -> None:
    # What a model wrote is kept, but not a credential its prompt carried (an echo).
    import random

    rng = random.Random(61)
    secret = "".join(rng.choice("abcdefghijKLMNOPQR0123456789") for _ in range(20))
    prompt = json.dumps({"messages": [{"role": "user", "content": f"password={secret}"}]})
    answer = json.dumps(
        {"choices": [{"message": {"role": "assistant", "content": f"Saved password={secret}"}}]}
    )
    text = f"""\
interactions:
- request:
    body: {json.dumps(prompt)}
    headers: {{Content-Type: [application/json]}}
    method: POST
    uri: https://api.openai.com/v1/chat/completions
  response:
    body: {{string: {json.dumps(answer)}}}
    headers: {{Content-Type: [application/json]}}
    status: {{code: 200, message: OK}}
version: 1
"""
    (it,) = read_vcr(_vcr(tmp_path, text))
    assert it.response is not None
    assert secret not in body_bytes(it.request.body).decode()
    assert secret not in body_bytes(it.response.body).decode()
    assert "Saved password=<redacted:" in body_bytes(it.response.body).decode()
