"""Tests for tapeproxy/cassettes/store.py: deterministic, atomic zstd cassette files."""

from __future__ import annotations

import base64
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import zstandard

from tapeproxy.cassettes import store
from tapeproxy.cassettes.model import (
    Body,
    Cassette,
    Interaction,
    Request,
    Response,
    body_bytes,
    new_cassette,
)
from tapeproxy.cassettes.store import (
    OPTIMAL_PARSE_LIMIT,
    check_writable,
    decompress,
    dumps,
    from_document,
    load,
    loads,
    save,
    to_json_bytes,
)
from tapeproxy.errors import BadInputError, CassetteError, CassetteWriteError
from tests.cassettes.samples import chat_request, sample_cassette


def test_saving_twice_gives_identical_bytes(tmp_path: Path) -> None:
    a, b = tmp_path / "a.json.zst", tmp_path / "b.json.zst"
    assert save(a, sample_cassette())
    assert save(b, sample_cassette())
    assert a.read_bytes() == b.read_bytes() == dumps(sample_cassette())


def test_load_of_save_is_the_same_cassette(tmp_path: Path) -> None:
    path = tmp_path / "c.json.zst"
    cassette = sample_cassette()
    save(path, cassette)
    assert load(path) == cassette
    assert loads(dumps(cassette)) == cassette


def test_save_only_writes_when_something_changed(tmp_path: Path) -> None:
    path = tmp_path / "c.json.zst"
    assert save(path, sample_cassette()) is True
    before = os.stat(path)
    assert save(path, sample_cassette()) is False
    after = os.stat(path)
    assert (before.st_ino, before.st_mtime_ns) == (after.st_ino, after.st_mtime_ns)
    assert save(path, sample_cassette(created="2030-01-01T00:00:00Z")) is True
    assert load(path).meta.created == "2030-01-01T00:00:00Z"


def test_json_is_canonical_and_the_frame_has_checksum_and_size() -> None:
    raw = to_json_bytes(sample_cassette())
    doc = json.loads(raw)
    assert raw == json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8", "backslashreplace"
    )
    assert doc["format"] == "tapeproxy/1"
    assert "chunks" not in doc["interactions"][0]["response"]  # None fields are left out
    params = zstandard.get_frame_parameters(dumps(sample_cassette()))
    assert params.content_size == len(raw)
    assert params.has_checksum


def test_undecodable_header_bytes_survive_a_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "c.json.zst"
    save(path, sample_cassette())
    headers = dict(load(path).interactions[0].request.headers)
    assert headers["x-odd"] == "caf\udcc3"


def test_new_files_get_the_umask_mode_and_no_temp_files_remain(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        save(tmp_path / "sub" / "c.json.zst", sample_cassette())
    finally:
        os.umask(old)
    assert (tmp_path / "sub" / "c.json.zst").stat().st_mode & 0o777 == 0o640
    assert os.listdir(tmp_path / "sub") == ["c.json.zst"]


def test_a_symlinked_cassette_is_written_through_to_its_target(tmp_path: Path) -> None:
    target = tmp_path / "store" / "real.json.zst"
    save(target, sample_cassette())
    link = tmp_path / "cassettes" / "c.json.zst"
    link.parent.mkdir()
    link.symlink_to(os.path.relpath(target, link.parent))
    assert save(link, sample_cassette(created="2031-01-01T00:00:00Z"))
    assert link.is_symlink()
    assert load(target).meta.created == "2031-01-01T00:00:00Z"
    assert os.listdir(link.parent) == ["c.json.zst"]


def test_an_existing_cassette_keeps_its_mode(tmp_path: Path) -> None:
    path = tmp_path / "c.json.zst"
    save(path, sample_cassette())
    path.chmod(0o600)
    old = os.umask(0o022)
    try:
        assert save(path, sample_cassette(created="2031-01-01T00:00:00Z"))
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o600


_UPDATER = """
import sys
from pathlib import Path
from tapeproxy.cassettes.model import RecordedError, Interaction
from tapeproxy.cassettes.store import update
from tests.cassettes.samples import chat_request, sample_cassette
path, tag, n = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
empty = sample_cassette().model_copy(update={"interactions": ()})
for i in range(n):
    item = Interaction(key=f"{tag}-{i}", request=chat_request(), error=RecordedError(message="x"))
    update(path, lambda c: (c or empty).model_copy(
        update={"interactions": (*(c or empty).interactions, item)}))
"""


def test_updates_from_many_processes_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "c.json.zst"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _UPDATER, str(path), f"w{w}", "15"],
            cwd=Path(__file__).parents[2],
        )
        for w in range(4)
    ]
    assert [p.wait(timeout=120) for p in procs] == [0] * 4
    keys = sorted(it.key for it in load(path).interactions)
    assert keys == sorted(f"w{w}-{i}" for w in range(4) for i in range(15))


def test_a_failed_write_raises_and_keeps_what_was_there(tmp_path: Path) -> None:
    (tmp_path / "dir.json.zst").mkdir()
    with pytest.raises(CassetteWriteError, match=r"dir\.json\.zst"):
        save(tmp_path / "dir.json.zst", sample_cassette())
    blocker = tmp_path / "file"
    blocker.write_bytes(b"keep")
    with pytest.raises(CassetteWriteError):
        save(blocker / "c.json.zst", sample_cassette())
    assert blocker.read_bytes() == b"keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir.json.zst", "file"]


def test_check_writable_creates_nothing_and_names_what_is_wrong(tmp_path: Path) -> None:
    check_writable(tmp_path / "new" / "deeper" / "c.json.zst")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "file").write_text("")
    with pytest.raises(BadInputError, match="is not a folder"):
        check_writable(tmp_path / "file" / "c.json.zst")


# ---- refusing bad files ------------------------------------------------------------------------


def _frame(raw: bytes, **kwargs: bool) -> bytes:
    params = zstandard.ZstdCompressionParameters.from_level(3, **kwargs)
    return zstandard.ZstdCompressor(compression_params=params).compress(raw)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "not a zstd file"),
        (b'{"format": "tapeproxy/1"}', "not a zstd file"),
        (dumps(sample_cassette())[:-10], "truncated"),
        (dumps(sample_cassette()) + b"extra", "unexpected bytes after the zstd frame"),
        (_frame(b"{}", write_content_size=False), "without a content size"),
        (_frame(b"{not json"), "not valid JSON"),
        (_frame(b"[1, 2]"), "expected a JSON object"),
        (_frame(b'{"format": "tapeproxy/2", "meta": {}}'), "newer than this tapeproxy reads"),
        (_frame(b'{"format": "vcr"}'), "not a tapeproxy cassette"),
        (_frame(b'{"format": "tapeproxy/1", "meta": {}}'), "does not match the tapeproxy/1 schema"),
        (_frame(b"[" * 100_000 + b"]" * 100_000), "not valid JSON"),
    ],
)
def test_bad_bytes_are_refused_by_name(data: bytes, message: str) -> None:
    with pytest.raises(CassetteError, match=message) as info:
        loads(data, source="some/file.json.zst")
    assert str(info.value).startswith("some/file.json.zst: ")


def test_the_decompressed_size_limit_guards_against_bombs() -> None:
    bomb = _frame(b'{"format":"tapeproxy/1"}' + b" " * 10_000_000)
    assert len(bomb) < 2000
    with pytest.raises(CassetteError, match="over the limit"):
        decompress(bomb, source="bomb", limit=1_000_000)


def test_a_missing_file_is_a_cassette_error(tmp_path: Path) -> None:
    with pytest.raises(CassetteError, match="cannot read cassette"):
        load(tmp_path / "nope.json.zst")


def test_fields_a_later_1x_writer_added_are_kept_on_save(tmp_path: Path) -> None:
    doc = json.loads(to_json_bytes(sample_cassette()))
    doc["surprise"] = {"top": 1}
    doc["meta"]["origin"] = "ci"
    doc["interactions"][0]["surprise"] = [1, 2]
    doc["interactions"][0]["request"]["note"] = "kept"
    doc["interactions"][0]["response"]["trailers"] = [["x-t", "1"]]
    doc["interactions"][0]["timing"]["dns_ms"] = 1.5
    cassette = from_document(json.loads(json.dumps(doc)), source="x")
    save(tmp_path / "c.json.zst", cassette)
    again = json.loads(decompress((tmp_path / "c.json.zst").read_bytes(), source="c"))
    assert again == doc


def test_a_known_field_of_the_wrong_type_is_still_refused() -> None:
    doc = json.loads(to_json_bytes(sample_cassette()))
    doc["interactions"][0]["response"]["status"] = "two hundred"
    with pytest.raises(CassetteError, match=r"interactions\[0\]"):
        from_document(json.loads(json.dumps(doc)), source="x")


@pytest.mark.parametrize("shared", [True, False])
def test_a_header_injected_in_the_file_is_refused_naming_the_interaction(shared: bool) -> None:
    cassette = sample_cassette()
    doc = json.loads(to_json_bytes(cassette))
    last = max(i for i, it in enumerate(doc["interactions"]) if "response" in it)
    assert last > 0
    headers = doc["interactions"][last]["response"]["headers"]
    if shared:  # the same header seen unharmed first, then the injected value
        doc["interactions"][0]["response"]["headers"].append(["x-a", "1"])
    headers.append(["x-a", "1\r\nSet-Cookie: session=attacker"])
    with pytest.raises(
        CassetteError,
        match=rf"interactions\[{last}\] .* response\.headers: header 'x-a' has a CR, LF or NUL",
    ):
        from_document(json.loads(json.dumps(doc)), source="x")


# ---- crash safety ------------------------------------------------------------------------------

_WRITER = """
import os, sys, time
from tapeproxy.cassettes.model import (
    Body,
    Cassette,
    Interaction,
    Request,
    Response,
    body_bytes,
    new_cassette,
)
from tapeproxy.cassettes.store import save

def big(tag, b64):
    response = Response(status=200, body=Body(base64=b64))
    request = Request(method="GET", url="https://h/" + tag)
    interaction = Interaction(key=tag, request=request, response=response)
    return new_cassette("0", tag).model_copy(update={"interactions": (interaction,)})

versions = [big("old", sys.stdin.readline().strip()), big("new", sys.stdin.readline().strip())]
print("ready", flush=True)
parent, deadline = os.getppid(), time.monotonic() + 60
for i in range(100_000):  # the parent kills this process long before these bounds
    if time.monotonic() > deadline or os.getppid() != parent:
        break
    save(sys.argv[1], versions[i % 2])
"""


def _big(tag: str, payload: bytes) -> bytes:
    """The exact file the writer child saves for `tag` (same construction as in _WRITER)."""
    response = Response(status=200, body=Body(base64=base64.b64encode(payload).decode()))
    request = Request(method="GET", url="https://h/" + tag)
    interaction = Interaction(key=tag, request=request, response=response)
    return dumps(new_cassette("0", tag).model_copy(update={"interactions": (interaction,)}))


def _kill_mid_write(child: subprocess.Popen[str], folder: Path, complete: set[int]) -> bool:
    """Kill the writer as soon as a partly written file shows up in `folder` (or after a
    random while); True when the kill landed while a file was being written."""
    deadline = time.monotonic() + 2.0
    partial = False
    for _ in range(1_000_000):  # bounded in count and in time
        if time.monotonic() > deadline:
            break
        if any(size not in complete for size in _sizes(folder)):
            partial = True
            break
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    return partial


def _sizes(folder: Path) -> list[int]:
    sizes = []
    with os.scandir(folder) as entries:
        for entry in entries:
            try:
                sizes.append(entry.stat().st_size)
            except FileNotFoundError:  # a temp file renamed over the cassette meanwhile
                continue
    return sizes


def test_killing_a_writer_mid_save_never_leaves_a_truncated_cassette(tmp_path: Path) -> None:
    """SIGKILL a process that keeps overwriting a large cassette, the moment a partly written
    file appears: the cassette on disk is always a complete old or new version."""
    rng = random.Random(1234)
    payloads = {"old": rng.randbytes(3_000_000), "new": rng.randbytes(3_000_000)}  # incompressible
    complete = {len(_big(tag, p)) for tag, p in payloads.items()}
    lines = "".join(base64.b64encode(p).decode() + "\n" for p in payloads.values())
    path = tmp_path / "big.json.zst"
    mid_write = 0
    for rounds in range(1, 17):  # 8 rounds, more (up to 16) while fewer kills landed mid-write
        if rounds > 8 and mid_write >= 4:
            break
        child = subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert child.stdin is not None and child.stdout is not None
            child.stdin.write(lines)
            child.stdin.close()
            assert child.stdout.readline() == "ready\n"
            mid_write += _kill_mid_write(child, tmp_path, complete)
        finally:
            child.kill()
            child.wait(timeout=30)
            if child.stdout is not None:
                child.stdout.close()
        if path.exists():
            cassette = load(path)  # raises on a torn file
            (interaction,) = cassette.interactions
            assert interaction.response is not None
            assert body_bytes(interaction.response.body) == payloads[cassette.meta.created]
    assert mid_write >= 4  # the kills did land while files were being written
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "big.json.zst"]
    assert all(n.startswith(".big.json.zst.") and n.endswith(".tmp") for n in leftovers)


def test_sample_helpers_build_valid_interactions() -> None:
    # The crash test's child builds cassettes the same way; keep that path type-checked here.
    request = Request(method="GET", url="https://h/x")
    response = Response(status=200, body=Body(base64="AAEC"))
    cassette = new_cassette("0", "t").model_copy(
        update={"interactions": (Interaction(key="k", request=request, response=response),)}
    )
    assert loads(dumps(cassette)) == cassette


def test_loading_shares_repeated_header_strings_between_interactions() -> None:
    # Two interactions without the lone surrogate, so the fast parser reads the file.
    request = Request(
        method="GET", url="https://h/a", headers=(("content-type", "application/json"),)
    )
    items = tuple(
        Interaction(key=f"k{i}", request=request, response=Response(status=200)) for i in range(2)
    )
    cassette = new_cassette("0", "2025-01-01T00:00:00Z").model_copy(update={"interactions": items})
    first, second = loads(dumps(cassette)).interactions
    assert first.request.headers[0][1] is second.request.headers[0][1]
    assert loads(dumps(cassette)) == cassette


@pytest.mark.parametrize("surrogate", [False, True], ids=["fast parser", "standard parser"])
def test_loading_makes_equal_headers_one_tuple(surrogate: bool) -> None:
    odd = "caf\udcc3" if surrogate else "cafe"
    items = tuple(
        Interaction(
            key=f"k{i}",
            request=Request(method="GET", url="https://h/a", headers=(("accept", "*/*"),)),
            response=Response(
                status=200,
                headers=(("server", odd), ("x-request-id", f"req-{i}"), ("accept", "*/*")),
            ),
        )
        for i in range(3)
    )
    cassette = new_cassette("0", "2025-01-01T00:00:00Z").model_copy(update={"interactions": items})
    loaded = loads(dumps(cassette))
    assert loaded == cassette
    first, *rest = loaded.interactions
    assert first.response is not None
    for other in rest:
        assert other.response is not None
        assert other.response.headers[0] is first.response.headers[0]
        assert other.response.headers[1] != first.response.headers[1]
        assert other.request.headers[0] is first.request.headers[0]
    # across requests and responses too
    assert first.response.headers[2] is first.request.headers[0]
    # models made outside a load are left as they are
    made = Response(status=200, headers=(("a", "b"), ("a", "b")))
    assert made.headers[0] is not made.headers[1]


def test_a_cassette_with_lone_surrogates_still_loads_whole() -> None:
    cassette = sample_cassette()
    assert "\\udcc3" in to_json_bytes(cassette).decode()
    assert loads(dumps(cassette)) == cassette


def _chat_cassette(json_bytes: int) -> bytes:
    """A cassette of chat answers in varied prose, of at least `json_bytes` bytes of JSON."""
    rng = random.Random(5)
    words = ["".join(rng.choices("bcdfghklmnprstvz", k=rng.randint(2, 7))) for _ in range(2000)]
    weights = [1 / rank for rank in range(1, len(words) + 1)]  # Zipf, as in prose
    items: list[Interaction] = []
    size = 0
    while size < json_bytes:
        text = " ".join(rng.choices(words, weights, k=300))
        request = chat_request(f"question {len(items)}")
        answer = json.dumps({"choices": [{"message": {"content": text}}]}, indent=2)
        response = Response(status=200, body=Body.from_bytes(answer.encode()))
        items.append(Interaction(key=f"{len(items):064x}", request=request, response=response))
        size += len(answer)
    cassette = new_cassette("0", "2025-01-01T00:00:00Z")
    return to_json_bytes(cassette.model_copy(update={"interactions": tuple(items)}))


def test_cassettes_up_to_the_limit_are_smaller_than_at_level_10() -> None:
    raw = _chat_cassette(1 << 20)
    fast = zstandard.ZstdCompressor(level=10).compress(raw)
    data = dumps(loads(zstandard.ZstdCompressor(level=10, write_content_size=True).compress(raw)))
    assert decompress(data, source="t") == raw
    assert len(data) < 0.95 * len(fast)


def test_cassettes_over_the_limit_still_round_trip() -> None:
    raw = _chat_cassette(OPTIMAL_PARSE_LIMIT + 1)
    assert len(raw) > OPTIMAL_PARSE_LIMIT
    cassette = loads(zstandard.ZstdCompressor(level=3, write_content_size=True).compress(raw))
    data = dumps(cassette)
    assert zstandard.get_frame_parameters(data).content_size == len(raw)
    assert loads(data) == cassette


def _plain_dump(cassette: Cassette) -> bytes:
    """The canonical JSON as one json.dumps writes it: what set-aside bodies must equal."""
    data = cassette.model_dump(mode="json", exclude_none=True)
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8", "backslashreplace")


_AWKWARD = 'a"b\\c\n\t\x00\x1f é 日本 \udcff \u2028 ' * 3


@pytest.mark.parametrize("large", [8, 64, 1 << 20])
def test_large_bodies_set_aside_are_written_as_json_dumps_writes_them(
    large: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bodies over the limit are escaped piece by piece (pieces of 7 characters here, so
    that escapes, surrogates and wide characters fall on every boundary): the bytes are
    those of one plain dump, and they load back the same."""
    monkeypatch.setattr(store, "_LARGE", large)
    monkeypatch.setattr(store, "_PIECE", 7)
    rng = random.Random(large)
    text = "".join(rng.choice(_AWKWARD) for _ in range(300))
    binary = Body(base64=base64.b64encode(rng.randbytes(90)).decode())
    ws = Response(
        status=101,
        reason="Switching Protocols",
        http_version="HTTP/1.1",
        headers=(("upgrade", "websocket"),),
        messages=((0.0, "client", "text", Body(text=text)), (1.0, "server", "binary", binary)),
    )
    answer = Response(
        status=200, reason="OK", http_version="HTTP/1.1", headers=(), body=Body(text=text)
    )
    request = chat_request().model_copy(update={"body": Body(text=text[::-1])})
    extra = (
        Interaction(key="a" * 64, request=request, response=ws),
        Interaction(key="b" * 64, request=chat_request("x"), response=answer),
    )
    base = sample_cassette()
    cassette = base.model_copy(update={"interactions": (*base.interactions, *extra)})
    assert to_json_bytes(cassette) == _plain_dump(cassette)
    data = dumps(cassette)
    assert decompress(data, source="x") == _plain_dump(cassette)
    assert loads(data) == cassette


@pytest.mark.parametrize("kept", [True, False], ids=["kept-as-bytes", "base64"])
def test_saving_a_large_body_holds_little_more_than_the_cassette(
    tmp_path: Path, kept: bool
) -> None:
    """As recorded (a binary body kept as its bytes) and as loaded (its base64)."""
    import base64
    import tracemalloc

    data = random.Random(1).randbytes(8 << 20)
    body = Body.from_bytes(data) if kept else Body(base64=base64.b64encode(data).decode())
    assert body is not None and body.kept_as_bytes == kept
    big = Interaction(
        key="c" * 64,
        request=chat_request(),
        response=Response(status=200, reason="OK", http_version="HTTP/1.1", headers=(), body=body),
    )
    cassette = sample_cassette().model_copy(update={"interactions": (big,)})
    encoded = len(body.b64() or "")
    tracemalloc.start()
    try:
        save(tmp_path / "big.json.zst", cassette)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # the body's base64 is 10.7 MiB; a plain dump held it twice more over (21 MiB)
    assert peak < encoded // 2, peak
    loaded = load(tmp_path / "big.json.zst")
    assert loaded == cassette
    got = loaded.interactions[0].response
    assert got is not None and got.body is not None and got.body.to_bytes() == data


@pytest.mark.parametrize("piece", [8, 12, 1 << 20])
def test_bodies_kept_as_bytes_are_written_as_their_base64_would_be(
    piece: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Binary bodies kept as their bytes (a recorded answer, upload or WebSocket message)
    are written as base64 a piece at a time (pieces of 6 and 9 bytes here, so that every
    boundary of a base64 quad is met): the file is byte for byte the one their base64 form
    gives, and loads back the same."""
    from tapeproxy.cassettes import model

    base = sample_cassette()  # (its own binary body as loaded: base64)
    monkeypatch.setattr(model, "KEPT_AS_BYTES", 10)
    monkeypatch.setattr(store, "_PIECE", piece)
    rng = random.Random(piece)

    def both(n: int) -> tuple[Body, Body]:
        data = b"\xff" + rng.randbytes(n)
        kept = Body.from_bytes(data)
        assert kept is not None and kept.kept_as_bytes
        return kept, Body(base64=base64.b64encode(data).decode())

    (up, up64), (answer, answer64), (msg, msg64) = both(100), both(1001), both(33)

    def cassette(request: Body, response: Body, message: Body) -> Cassette:
        ws = Response(status=101, messages=((0.0, "server", "binary", message),))
        return base.model_copy(
            update={
                "interactions": (
                    *base.interactions,
                    Interaction(
                        key="d" * 64,
                        request=chat_request().model_copy(update={"body": request}),
                        response=Response(status=200, body=response),
                    ),
                    Interaction(key="e" * 64, request=chat_request("ws"), response=ws),
                )
            }
        )

    kept, encoded = cassette(up, answer, msg), cassette(up64, answer64, msg64)
    assert dumps(kept) == dumps(encoded)
    assert to_json_bytes(kept) == to_json_bytes(encoded) == _plain_dump(encoded)
    assert loads(dumps(kept)) == kept == encoded
