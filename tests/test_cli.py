"""Tests for tapeproxy/cli.py (the cassettes section: show, import-vcr), run as a user would:
``python -m tapeproxy`` in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import zstandard

from tapeproxy.cassettes.model import Body, Interaction, Request, Response
from tapeproxy.cassettes.store import dumps, save, to_json_bytes
from tapeproxy.review.show import render
from tests.cassettes.samples import sample_cassette


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tapeproxy", *map(str, args)],
        capture_output=True,
        text=True,
        encoding="utf-8",
        check=False,
        timeout=60,
    )


def _zst(raw: bytes) -> bytes:
    return zstandard.ZstdCompressor(write_content_size=True, write_checksum=True).compress(raw)


def _injected() -> bytes:
    """A cassette whose last response header splits into extra header lines when sent."""
    doc = json.loads(to_json_bytes(sample_cassette()))
    doc["interactions"][1]["response"]["headers"].append(["x-a", "1\r\nSet-Cookie: s=evil"])
    return _zst(json.dumps(doc).encode())


BAD_CASSETTES = {
    "header-injection": _injected(),
    "truncated": dumps(sample_cassette())[:-20],
    "not-zstd": b'{"format": "tapeproxy/1"}',
    "invalid-json": _zst(b'{"format": "tapeproxy/1", '),
    "wrong-schema": _zst(b'{"format": "tapeproxy/1", "meta": {"created": 5}}'),
    "newer-format": _zst(b'{"format": "tapeproxy/2", "meta": {}, "interactions": []}'),
}


@pytest.mark.parametrize("name", sorted(BAD_CASSETTES))
def test_show_refuses_bad_cassettes_with_exit_2(tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.json.zst"
    path.write_bytes(BAD_CASSETTES[name])
    before = os.stat(path)
    result = run("show", path)
    assert result.returncode == 2
    assert result.stderr.startswith("Error: ")
    assert str(path) in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stdout == ""
    after = os.stat(path)
    assert path.read_bytes() == BAD_CASSETTES[name]
    assert (before.st_mtime_ns, before.st_ino) == (after.st_mtime_ns, after.st_ino)
    assert sorted(os.listdir(tmp_path)) == [path.name]


def test_show_names_a_newer_format_as_such(tmp_path: Path) -> None:
    path = tmp_path / "new.json.zst"
    path.write_bytes(BAD_CASSETTES["newer-format"])
    assert "newer than this tapeproxy reads" in run("show", path).stderr


def test_show_prints_the_rendered_cassette(tmp_path: Path) -> None:
    path = tmp_path / "c.json.zst"
    save(path, sample_cassette())
    result = run("show", path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == render(sample_cassette())


def test_replay_refuses_a_header_injection_before_running_cmd(tmp_path: Path) -> None:
    path = tmp_path / "evil.json.zst"
    path.write_bytes(BAD_CASSETTES["header-injection"])
    marker = tmp_path / "ran"
    result = run("replay", "--cassette", path, "--", "touch", marker)
    assert result.returncode == 2, result.stderr
    assert "interactions[1]" in result.stderr and "CR, LF or NUL" in result.stderr
    assert not marker.exists()


def test_show_escapes_control_characters(tmp_path: Path) -> None:
    esc = "\x1b[2J\x1b]0;owned\x07"
    request = Request(method="GET", url=f"https://h/{esc}", headers=(("x-t", f"a{esc}"),))
    response = Response(status=200, reason=f"OK{esc}", body=Body(text=f"line{esc}\rfake\n"))
    item = Interaction(key="k", request=request, response=response)
    path = tmp_path / "c.json.zst"
    save(path, sample_cassette().model_copy(update={"interactions": (item,)}))
    result = run("show", path)
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stdout and "\x07" not in result.stdout and "\r" not in result.stdout
    assert "\\x1b[2J" in result.stdout and "\\x0dfake" in result.stdout


def test_show_of_a_missing_file_is_exit_2(tmp_path: Path) -> None:
    result = run("show", tmp_path / "missing.json.zst")
    assert result.returncode == 2
    assert "missing.json.zst" in result.stderr


def test_import_vcr_converts_and_reports(tmp_path: Path) -> None:
    source = tmp_path / "rec.yaml"
    source.write_text(
        "interactions:\n- request: {method: GET, uri: 'https://h/x', headers: {}}\n"
        "  response: {status: {code: 204, message: No Content}, headers: {}}\nversion: 1\n"
    )
    result = run("import-vcr", source, "--out", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    assert "(1 interaction(s), written)" in result.stdout
    shown = run("show", tmp_path / "out" / "rec.json.zst")
    assert "=== [1/1] GET https://h/x" in shown.stdout


def test_import_vcr_bad_input_is_exit_2_and_writes_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("interactions: [\n")
    result = run("import-vcr", bad, "--out", tmp_path / "out")
    assert result.returncode == 2
    assert result.stderr.startswith(f"Error: {bad}: not valid YAML")
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_usage_errors_are_exit_2() -> None:
    assert run("import-vcr", "x.yaml").returncode == 2  # --out missing
    assert run("show").returncode == 2


@pytest.mark.parametrize("command", ["show", "import-vcr"])
def test_help_explains_the_command(command: str) -> None:
    result = run(command, "--help")
    assert result.returncode == 0
    assert "textconv" in result.stdout if command == "show" else "--out" in result.stdout
