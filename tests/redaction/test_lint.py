"""Tests for tapeproxy/redaction/lint.py: the gate on files that are not what their names say.

A `.json.zst` that cannot be read as a cassette must fail the gate (exit 2, named), and the
text that can be got out of it is still scanned, so its secrets are reported too.
"""

from __future__ import annotations

import base64
import gzip
import json
import random
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import zstandard

from tapeproxy.cassettes.store import to_json_bytes
from tests.cassettes.samples import sample_cassette
from tests.redaction.corpus import FORMATS


def _lint(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tapeproxy", "lint", "--format=json", "--reveal", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _secret(seed: int) -> str:
    """A fake credential of a format picked by `seed`, made now (never committed)."""
    rng = random.Random(seed)
    return rng.choice([f for f in FORMATS if f.name.startswith(("openai", "anthropic"))]).make(rng)


def _zst(raw: bytes) -> bytes:
    return zstandard.ZstdCompressor(write_content_size=True).compress(raw)


def _broken_json(secret: str) -> bytes:
    return _zst(b'{"format": "tapeproxy/1", "interactions": [{"key": "' + secret.encode())


def _array(secret: str) -> bytes:
    return _zst(json.dumps([{"headers": {"authorization": f"Bearer {secret}"}}]).encode())


def _not_zstd(secret: str) -> bytes:
    return json.dumps({"api_key": secret}).encode()


def _truncated(secret: str) -> bytes:
    """A frame cut short after the block holding the secret: that block still decodes."""
    doc = json.loads(to_json_bytes(sample_cassette()))
    doc["interactions"][0]["request"]["headers"].append(["x-note", f"key {secret}"])
    rng = random.Random(3)
    doc["padding"] = "".join(rng.choice("abcdefghij ") for _ in range(400_000))
    whole = _zst(json.dumps(doc).encode())
    return whole[: len(whole) * 2 // 3]


def _bad_schema(secret: str) -> bytes:
    doc = json.loads(to_json_bytes(sample_cassette()))
    doc["interactions"][0]["response"]["headers"].append(["x-a", f"{secret}\r\nX-Injected: 1"])
    return _zst(json.dumps(doc).encode())


DAMAGED: dict[str, tuple[Callable[[str], bytes], str]] = {
    "broken-json": (_broken_json, "not valid JSON"),
    "json-array": (_array, "not a tapeproxy cassette"),
    "not-zstd": (_not_zstd, "not a zstd file"),
    "truncated-frame": (_truncated, "truncated"),
    "header-injection": (_bad_schema, "CR, LF or NUL"),
}


@pytest.mark.parametrize("kind", sorted(DAMAGED))
def test_a_damaged_cassette_fails_the_gate_and_its_secret_is_still_found(
    tmp_path: Path, kind: str
) -> None:
    make, problem = DAMAGED[kind]
    secret = _secret(len(kind))
    bad = tmp_path / "cassettes" / f"{kind}.json.zst"
    bad.parent.mkdir()
    bad.write_bytes(make(secret))
    done = _lint(tmp_path)
    assert done.returncode == 2, done.stderr
    assert f"{bad}: cannot be linted whole:" in done.stderr and problem in done.stderr
    assert "Traceback" not in done.stderr
    assert secret in {json.loads(line)["secret"] for line in done.stdout.splitlines()}


def test_an_empty_cassette_file_fails_the_gate(tmp_path: Path) -> None:
    (tmp_path / "empty.json.zst").write_bytes(b"")
    done = _lint(tmp_path / "empty.json.zst")
    assert done.returncode == 2 and "empty file" in done.stderr


def test_one_damaged_file_does_not_hide_the_others(tmp_path: Path) -> None:
    (tmp_path / "a.json.zst").write_bytes(b"not zstd")
    secret = _secret(7)
    (tmp_path / "b.json").write_text(json.dumps({"token": secret}))
    done = _lint(tmp_path)
    assert done.returncode == 2
    assert [json.loads(line)["file"] for line in done.stdout.splitlines()] == [
        str(tmp_path / "b.json")
    ]


def test_sound_cassettes_and_other_json_are_not_damaged(tmp_path: Path) -> None:
    from tapeproxy.cassettes.store import save

    save(tmp_path / "ok.json.zst", sample_cassette())
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "broken.json").write_text("{not json")
    done = _lint(tmp_path)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_a_file_over_the_lint_limit_fails_the_gate_without_being_read_whole(
    tmp_path: Path,
) -> None:
    secret = _secret(11)
    # a zstd bomb: 64 MiB of one byte, a secret at the start, a few KiB on disk
    raw = json.dumps({"format": "tapeproxy/1", "k": secret}).encode() + b" " * (64 << 20)
    bomb = tmp_path / "bomb.json.zst"
    bomb.write_bytes(_zst(raw))
    assert bomb.stat().st_size < 100_000
    plain = tmp_path / "big.json"
    plain.write_bytes(b"[" + b"0," * (1 << 20) + b"0]")
    limit = str(1 << 20)
    done = _lint("--max-bytes", limit, bomb, plain)
    assert done.returncode == 2
    assert "over the limit of 1048576" in done.stderr and f"{plain}:" in done.stderr
    # what fits in the limit was still scanned
    assert secret in {json.loads(line)["secret"] for line in done.stdout.splitlines()}


def test_a_base64_line_in_a_text_file_is_decoded_and_reported_by_line(tmp_path: Path) -> None:
    import base64

    rng = random.Random(5)
    secret = "".join(rng.choice("abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789")
                     for _ in range(18))  # fmt: skip
    inner = json.dumps({"user": "alice", "password": secret}).encode()
    path = tmp_path / "log.txt"
    path.write_text("a line of log\n" + base64.b64encode(inner).decode() + "\n")
    done = _lint(path)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    (finding,) = [json.loads(line) for line in done.stdout.splitlines()]
    assert finding["line"] == 2 and finding["location"].startswith("line 2<base64>")
    assert finding["secret"] == secret


@pytest.mark.parametrize(
    "value",
    ["AUTHORIZATION-XXX", "X-API-KEY-XXX", "api_key_xxx", "TOKEN***", "Bearer XXXX", "SECRET XXX"],
)
def test_filter_placeholders_of_other_tools_are_not_secrets(tmp_path: Path, value: str) -> None:
    # how vcrpy/pytest-recording filters and hand-made fixtures mask a credential
    doc = {"interactions": [{"request": {"headers": {"authorization": [value]}}}], "version": 1}
    (tmp_path / "c.yaml").write_text(json.dumps(doc))
    done = _lint(tmp_path / "c.yaml")
    assert (done.returncode, done.stdout) == (0, ""), done.stdout


@pytest.mark.parametrize("masked", ["abXXX", "X9fK2mQ7vL4pXXX1"])
def test_a_mask_after_random_characters_is_still_checked(tmp_path: Path, masked: str) -> None:
    secret = _secret(9)
    doc = {"headers": {"authorization": f"Bearer {secret}", "x-note": masked}}
    (tmp_path / "c.json").write_text(json.dumps(doc))
    done = _lint(tmp_path / "c.json")
    assert done.returncode == 1
    assert [json.loads(line)["secret"] for line in done.stdout.splitlines()] == [secret]


def test_a_folder_linted_on_every_core_reports_what_each_file_reports_alone(
    tmp_path: Path,
) -> None:
    from tapeproxy.redaction.lint import Linter
    from tapeproxy.redaction.redactor import Redactor
    from tests.redaction.foreign import generate, write

    docs = generate(seed=31, per_class=12, clean_per_class=6)  # 72 files: linted in parallel
    write(docs, tmp_path)
    together = _lint(tmp_path)
    assert together.returncode == 1, together.stderr
    linter = Linter(Redactor.from_config({}, report_only=True))
    alone = [
        f.to_dict(reveal=True) for p in sorted(tmp_path.iterdir()) for f in linter.lint_paths([p])
    ]

    def key(d: dict[str, object]) -> tuple[str, ...]:
        return (Path(str(d["file"])).name, str(d["location"]), str(d["secret"]))

    assert sorted(key(json.loads(line)) for line in together.stdout.splitlines()) == sorted(
        key(d) for d in alone
    )
    assert len(alone) >= 48


def test_a_yaml_binary_block_is_read_whole_and_gunzipped_not_line_by_line(tmp_path: Path) -> None:
    import base64
    import gzip

    # A streamed body of ARNs and compact JSON: any 60-character line of its base64 decodes to
    # a fragment such as `rock:us-east-1:...`, which is no credential. The secret is inside the
    # gzip, so only a whole decode finds it.
    secret = _secret(11)
    events = "".join(
        json.dumps({"arn": f"arn:aws:bedrock:us-east-1:{i:012d}:agent/x", "chunk": f"{i}"})
        for i in range(30)
    )
    body = gzip.compress((events + json.dumps({"key": secret})).encode())
    lines = "\n".join("        " + line for line in base64.encodebytes(body).decode().split())
    text = (
        "interactions:\n- request: {body: null, headers: {}, method: GET, uri: 'https://x.test/'}\n"
        "  response:\n    body:\n      string: !!binary |\n" + lines + "\n"
        "    headers: {Content-Encoding: [gzip]}\n"
        "    status: {code: 200, message: OK}\nversion: 1\n"
    )
    path = tmp_path / "stream.yaml"
    path.write_text(text)
    done = _lint(path)
    found = [json.loads(line) for line in done.stdout.splitlines()]
    assert [f["secret"] for f in found] == [secret], found


def test_answer_headers_named_like_a_session_are_kept_in_other_tools_files(tmp_path: Path) -> None:
    session = "d20260330170902-0e618f323d34"
    doc = {
        "interactions": [
            {
                "request": {"headers": {"x-session-token": [session]}, "uri": "https://x.test/"},
                "response": {"headers": {"azureml-model-session": [session]}},
            }
        ],
        "version": 1,
    }
    path = tmp_path / "c.json"
    path.write_text(json.dumps(doc))
    found = [json.loads(line) for line in _lint(path).stdout.splitlines()]
    assert [f["location"] for f in found] == ["interactions[0].request.headers.x-session-token[0]"]


def test_an_escape_before_a_value_is_not_part_of_it(tmp_path: Path) -> None:
    path = tmp_path / "logprobs.txt"
    path.write_text('{"token": "\\u2581spanish", "logprob": -0.1}\n{"token": "\\u2581const"}\n')
    assert _lint(path).stdout == ""


def _with_answer(body: str) -> bytes:
    """The sample cassette with its first answer's body replaced by `body` (JSON)."""
    doc = json.loads(to_json_bytes(sample_cassette()))
    doc["interactions"][0]["response"]["body"] = {"text": body}
    return _zst(json.dumps(doc).encode())


def test_fields_a_newer_version_added_are_linted_with_their_path(tmp_path: Path) -> None:
    secret, other = _secret(31), _secret(32)
    doc = json.loads(to_json_bytes(sample_cassette()))
    doc["meta"]["notes"] = f"recorded with key {secret}"
    doc["interactions"][0]["replayed_by"] = {"api_key": other}
    (tmp_path / "newer.json.zst").write_bytes(_zst(json.dumps(doc).encode()))
    done = _lint(tmp_path)
    found = {f["secret"]: f for f in map(json.loads, done.stdout.splitlines())}
    assert done.returncode == 1 and set(found) == {secret, other}, done.stdout
    assert found[other]["interaction"] == 0
    assert "interactions[0].replayed_by.api_key" in found[other]["location"]


def test_a_password_a_model_wrote_is_kept_by_the_recorder_and_not_reported(
    tmp_path: Path,
) -> None:
    rng = random.Random(33)
    pw = "".join(rng.choice("abcdefghijkLMNOPQ0123456789!#%") for _ in range(14))
    args = json.dumps({"user": "ada", "password": pw})
    call = {"id": "call_1", "type": "function", "function": {"name": "signup", "arguments": args}}
    answer = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": f"Password: {pw}",
                    "tool_calls": [call],
                },
                "finish_reason": "stop",
            }
        ],
    }
    (tmp_path / "kept.json.zst").write_bytes(_with_answer(json.dumps(answer)))
    done = _lint(tmp_path)
    assert (done.returncode, done.stdout) == (0, ""), done.stdout
    # a token the model wrote is still a finding
    token = _secret(34)
    answer["choices"][0]["message"]["content"] = f"Use {token}"
    (tmp_path / "kept.json.zst").write_bytes(_with_answer(json.dumps(answer)))
    done = _lint(tmp_path)
    assert done.returncode == 1 and token in done.stdout


def _every_field_document() -> dict[str, Any]:
    """The sample cassette's document with every field of the format filled in somewhere: a
    journal's meta, an interaction's `recorded_at`, `source` and `detail`, and a WebSocket
    session (messages, close)."""
    doc: dict[str, Any] = json.loads(to_json_bytes(sample_cassette()))
    doc["interactions"][0].update(recorded_at="2025-01-02T03:04:05Z", source="cassette")
    doc["interactions"][0]["detail"] = "rule chat-1"
    doc["meta"]["journal"] = {"cassette": "a.json.zst", "mode": "none", "faults": "429:5%"}
    ws = {
        "key": "0" * 64,
        "request": {"method": "GET", "url": "wss://api.example.com/v1/realtime", "headers": []},
        "response": {
            "status": 101,
            "reason": "Switching Protocols",
            "headers": [["upgrade", "websocket"]],
            "messages": [[0.0, "client", "text", {"text": "hello"}], [1.5, "server", "text", {}]],
            "close": {"code": 1000, "reason": "bye", "by": "client"},
        },
    }
    ws["response"]["messages"][1][3] = {"base64": "aGk="}
    doc["interactions"].append(ws)
    return doc


Place = tuple[str | int, ...]


def _places(value: Any, at: Place = ()) -> list[tuple[Place, bool]]:
    """Every place a secret can be put in a document: each string (False), and a new field
    in each object (True, at the object's path)."""
    if isinstance(value, str):
        return [(at, False)]
    out: list[tuple[Place, bool]] = []
    if isinstance(value, dict):
        out.append((at, True))
        for k, v in value.items():
            out += _places(v, (*at, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _places(v, (*at, i))
    return out


def _put(doc: dict[str, Any], at: Place, new_field: bool, secret: str) -> None:
    target: Any = doc
    for step in at if new_field else at[:-1]:
        target = target[step]
    if new_field:
        target["x_note"] = secret
    else:
        target[at[-1]] = secret


def test_a_secret_anywhere_in_a_cassette_is_found() -> None:
    """Each string of a cassette with every field of the format, and a new field in each of
    its objects (a later 1.x version may add one anywhere): a token put there is reported,
    whether the recorder's scan reads the place (URL, header values, bodies), the rest of the
    document is linted as JSON (method, reason, meta, fields added), or the token is a header
    name. Where the schema refuses it (a literal, a body's base64), the file is damaged and
    its text still scanned: found all the same."""
    from tapeproxy.redaction.lint import Linter
    from tapeproxy.redaction.redactor import Redactor

    rng = random.Random(35)
    prefixed = [f for f in FORMATS if not f.keyword]
    linter = Linter(Redactor.from_config({}, report_only=True))
    clean = _every_field_document()
    assert linter.lint_bytes("clean.json.zst", _zst(json.dumps(clean).encode())) == []
    assert linter.damaged == []
    places = _places(clean)
    missed = []
    for at, new_field in places:
        secret = rng.choice(prefixed).make(rng)
        doc = _every_field_document()
        _put(doc, at, new_field, secret)
        found = linter.lint_bytes("c.json.zst", _zst(json.dumps(doc).encode()))
        if not any(len(f.secret) >= 16 and f.secret in secret for f in found):  # (a webhook's
            # secret is its path)
            missed.append((at, new_field, secret))
    assert missed == [], "\n".join(map(str, missed))
    assert len(places) > 100


def _event_shapes(secret: str) -> list[Any]:
    """A stream whose events each carry a piece of `secret`, as tools keep one: a list of raw
    SSE events, one SSE text, NDJSON text, a list of event objects."""
    pieces = [secret[i : i + 5] for i in range(0, len(secret), 5)]
    events = [{"type": "content_block_delta", "delta": {"text": p}} for p in pieces]
    sse = [f"event: delta\ndata: {json.dumps(e)}\n\n" for e in events]
    return [sse, "".join(sse), "\n".join(json.dumps(e) for e in events), events]


def test_a_stream_kept_where_the_recorder_does_not_read_is_joined() -> None:
    """A later version may keep a stream's events in a field of its own, anywhere: a secret
    split across them is found there as in a body."""
    from tapeproxy.redaction.lint import Linter
    from tapeproxy.redaction.redactor import Redactor

    rng = random.Random(37)
    prefixed = [f for f in FORMATS if not f.keyword]
    linter = Linter(Redactor.from_config({}, report_only=True))
    places: list[Place] = [
        ("meta",),
        ("interactions", 0),
        ("interactions", 0, "response"),
        ("interactions", 0, "response", "body"),
        ("interactions", 4, "error"),
        ("interactions", 2, "request"),
    ]
    missed = []
    for at in places:
        for shape in range(4):
            secret = rng.choice(prefixed).make(rng)
            doc = _every_field_document()
            target: Any = doc
            for step in at:
                target = target[step]
            target["x_note"] = _event_shapes(secret)[shape]
            found = linter.lint_bytes("c.json.zst", _zst(json.dumps(doc).encode()))
            if not any(len(f.secret) >= 16 and f.secret in secret for f in found):
                missed.append((at, shape, secret))
    assert missed == [], "\n".join(map(str, missed))
    assert linter.damaged == []


def test_a_stream_in_a_body_is_joined_and_a_request_only_when_it_carries_event_text() -> None:
    """An answer's body holding a stream in any of the four shapes has the secret split
    across its events found whole. A request is joined when it carries event text (raw SSE
    events, SSE or NDJSON text); its JSON lists of objects are what its client wrote whole
    (messages, tools), each scanned with the interaction, not a stream's events."""
    from tapeproxy.redaction.lint import Linter
    from tapeproxy.redaction.redactor import Redactor

    rng = random.Random(41)
    prefixed = [f for f in FORMATS if not f.keyword]
    linter = Linter(Redactor.from_config({}, report_only=True))
    missed = []
    for part, shapes in (("response", range(4)), ("request", range(3))):
        for shape in shapes:
            secret = rng.choice(prefixed).make(rng)
            stream = _event_shapes(secret)[shape]
            text = stream if isinstance(stream, str) else json.dumps(stream)
            doc = _every_field_document()
            target = doc["interactions"][0]
            target[part]["body"] = {"text": text}
            target["response"].pop("chunks", None)
            found = linter.lint_bytes("c.json.zst", _zst(json.dumps(doc).encode()))
            assert linter.damaged == []
            if not any(f.secret == secret and "joined" in f.location for f in found):
                missed.append((part, shape, secret))
    assert missed == [], "\n".join(map(str, missed))


def _packed(kind: str, data: bytes) -> bytes:
    if kind == "gzip":
        return gzip.compress(data)
    return zstandard.ZstdCompressor().compress(data)


@pytest.mark.parametrize("kind", ["gzip", "zstd"])
def test_a_secret_in_a_compressed_binary_body_is_found(kind: str) -> None:
    """A binary body that is gzip or zstd data is unpacked and its text scanned; clean ones
    report nothing, and cut or corrupt ones do not fail the lint."""
    from tapeproxy.redaction.lint import Linter
    from tapeproxy.redaction.redactor import Redactor

    rng = random.Random(39)
    linter = Linter(Redactor.from_config({}, report_only=True), max_bytes=1 << 20)
    prefixed = [f for f in FORMATS if not f.keyword]
    for part in ("request", "response"):
        secret = rng.choice(prefixed).make(rng)
        filler = " ".join(rng.choice(["alpha", "beta", "gamma"]) for _ in range(2000))
        for text, expect in ((f"{filler}\nconfig token {secret}\n", True), (filler, False)):
            packed = _packed(kind, text.encode())
            for data in (packed, packed[: len(packed) * 3 // 4], packed[:6] + b"\0" * 40):
                doc = _every_field_document()
                body = {"base64": base64.b64encode(data).decode()}
                doc["interactions"][3][part]["body"] = body  # (no chunks there)
                found = linter.lint_bytes("c.json.zst", _zst(json.dumps(doc).encode()))
                unpacked = [f for f in found if f.secret == secret and "<unpacked>" in f.location]
                if data == packed:
                    assert bool(unpacked) == expect, (part, found)
                if not expect:
                    assert found == [], found
                # (a cut frame may give the secret or not: its literals may hold it as bytes)
    bomb = _packed(kind, b"a" * (64 << 20))  # 64 MiB of one letter: read to the limit only
    doc = _every_field_document()
    doc["interactions"][3]["response"]["body"] = {"base64": base64.b64encode(bomb).decode()}
    assert linter.lint_bytes("c.json.zst", _zst(json.dumps(doc).encode())) == []
    assert linter.damaged == []
