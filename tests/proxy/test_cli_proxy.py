"""The proxy commands as a user runs them: `ca`, `serve`, and bad input giving exit 2."""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import socket
import ssl
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tapeproxy.cassettes import store
from tapeproxy.cassettes.model import Request
from tapeproxy.errors import CassetteError
from tapeproxy.fakeprovider import FakeProvider
from tapeproxy.redaction import Redactor
from tapeproxy.testing_ca import ThrowawayCA
from tests.proxy.conftest import ProxyFactory, client_for, taken_port

TAPEPROXY = [sys.executable, "-m", "tapeproxy"]


def _run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*TAPEPROXY, *args], capture_output=True, text=True, timeout=60, cwd=cwd)


def test_ca_creates_the_ca_with_a_private_key_only_the_user_can_read(tmp_path: Path) -> None:
    result = _run("ca", "--confdir", str(tmp_path / "conf"))
    assert result.returncode == 0, result.stderr
    cert = Path(result.stdout.strip())
    assert cert == tmp_path / "conf" / "mitmproxy-ca-cert.pem"
    assert b"BEGIN CERTIFICATE" in cert.read_bytes()
    key = tmp_path / "conf" / "mitmproxy-ca.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_records_until_sigterm_then_saves(
    tmp_path: Path, provider: FakeProvider, throwaway_ca: ThrowawayCA, confdir: Path
) -> None:
    port = _free_port()
    cassette = tmp_path / "served.json.zst"
    args = ["serve", "--mode", "all", "--listen", f"127.0.0.1:{port}", "--cassette", str(cassette)]
    args += ["--confdir", str(confdir), "--upstream-ca", str(throwaway_ca.ca_cert)]
    proc = subprocess.Popen([*TAPEPROXY, *args], stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        banner = proc.stderr.readline()
        assert f"http://127.0.0.1:{port}" in banner
        ctx = ssl.create_default_context(cafile=str(confdir / "mitmproxy-ca-cert.pem"))
        with httpx.Client(proxy=f"http://127.0.0.1:{port}", verify=ctx, timeout=30) as client:
            r = client.post(provider.url + "/v1/chat/completions", json={"messages": []})
        assert r.status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "recorded: 1" in err
    assert len(store.load(cassette).interactions) == 1


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["replay", "--latency", "fast", "--", "true"], "--latency 'fast'"),
        (["serve", "--listen", "nowhere"], "--listen 'nowhere'"),
        (["record", "--upstream-ca", "/nonexistent/ca.pem", "--", "true"], "/nonexistent/ca.pem"),
        (["record", "--", "/nonexistent/program"], "cannot run '/nonexistent/program'"),
        (
            ["replay", "--cassette", "typo.json.zst", "--", "true"],
            "typo.json.zst: no such cassette",
        ),
        (["serve", "--cassette", "typo.json.zst"], "typo.json.zst: no such cassette"),
        (["record", "--cassette", "pyproject.toml/c.json.zst", "--", "true"], "is not a folder"),
    ],
)
def test_bad_input_exits_2_with_a_message_and_no_traceback(
    args: list[str], expected: str, tmp_path: Path
) -> None:
    (tmp_path / "pyproject.toml").write_text("")
    args = [*args, "--confdir", str(tmp_path)] if args[0] == "serve" else args
    result = _run(*args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("Error: ")
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "conf") == ["pyproject.toml"]


@contextlib.contextmanager
def _read_only(folder: Path) -> Iterator[None]:
    """A folder nobody may write to: mode 0500, or for root (who ignores modes) immutable."""
    folder.mkdir(mode=0o500)
    immutable = os.geteuid() == 0
    if immutable and subprocess.run(["chattr", "+i", str(folder)], check=False).returncode:
        pytest.skip("running as root on a file system without chattr +i: no read-only folder")
    try:
        yield
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
        folder.chmod(0o700)


def test_record_refuses_a_read_only_destination_before_running_cmd(tmp_path: Path) -> None:
    folder, marker = tmp_path / "ro", tmp_path / "ran"
    with _read_only(folder):
        cassette = folder / "c.json.zst"
        result = _run("record", "--cassette", str(cassette), "--", "touch", str(marker))
    assert result.returncode == 2 and "could not be saved there" in result.stderr
    assert not marker.exists()


def test_corrupt_cassette_is_named_and_left_alone(tmp_path: Path) -> None:
    cassette = tmp_path / "broken.json.zst"
    cassette.write_bytes(b"not zstd at all")
    result = _run("replay", "--cassette", str(cassette), "--confdir", str(tmp_path), "--", "true")
    assert result.returncode == 2
    assert str(cassette) in result.stderr and "Traceback" not in result.stderr
    assert cassette.read_bytes() == b"not zstd at all"


def test_record_mode_is_not_read_from_tapeproxy_mode(tmp_path: Path) -> None:
    # TAPEPROXY_MODE is what tapeproxy sets for CMD; a nested run must not take it as a mode.
    env = {**os.environ, "TAPEPROXY_MODE": "replay"}
    args = ["record", "--cassette", str(tmp_path / "c.json.zst"), "--confdir", str(tmp_path)]
    result = subprocess.run(
        [
            *TAPEPROXY,
            *args,
            "--",
            sys.executable,
            "-c",
            "import os; print(os.environ['TAPEPROXY_MODE'])",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "record"


class _BrokenRedactor(Redactor):
    """A redactor that fails, to drive replay's own error path."""

    def redact_request(self, request: Request) -> Request:
        raise RuntimeError("redactor exploded")


def test_replay_fails_closed_when_it_errors(
    tmp_path: Path, run_proxy: ProxyFactory, provider: FakeProvider
) -> None:
    cassette = tmp_path / "c.json.zst"
    with (
        run_proxy(cassette, "none", redactor=_BrokenRedactor()) as runner,
        client_for(runner) as client,
    ):
        r = client.post(provider.url + "/v1/chat/completions", json={})
    assert r.status_code == 599
    assert r.headers["x-tapeproxy-error"] == "RuntimeError"
    assert provider.connections == 0


class _Lines:
    """Lines of a pipe as they come, read by a thread (select cannot see Python's buffer)."""

    def __init__(self, stream: Any) -> None:
        self._queue: queue.Queue[str] = queue.Queue()
        self._stream = stream
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def finish(self, proc: subprocess.Popen[str]) -> None:
        """Wait for the process, then for this reader to reach the end of the pipe, and close
        it (reading it from here too, as `communicate` does, would race the reader)."""
        proc.wait(timeout=30)
        self._thread.join(timeout=30)
        self._stream.close()

    def _read(self, stream: Any) -> None:
        for line in stream:
            self._queue.put(line)
        self._queue.put("")

    def first_with(self, text: str, seconds: float = 30) -> str:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._queue.get(timeout=left)
            except queue.Empty:
                break
            if text in line:
                return line
            if not line:
                break
        raise AssertionError(f"no line with {text!r} within {seconds} s")


def test_serve_prints_misses_and_recordings_as_they_happen(
    tmp_path: Path, provider: FakeProvider, throwaway_ca: ThrowawayCA, confdir: Path
) -> None:
    cassette = tmp_path / "served.json.zst"
    ctx = ssl.create_default_context(cafile=str(confdir / "mitmproxy-ca-cert.pem"))
    for mode, prompt, expected in (("all", "a", "recorded: POST"), ("none", "b", "miss: POST")):
        port = _free_port()
        args = ["serve", "-v", "--mode", mode, "--listen", f"127.0.0.1:{port}"]
        args += ["--cassette", str(cassette), "--confdir", str(confdir)]
        args += ["--upstream-ca", str(throwaway_ca.ca_cert)]
        proc = subprocess.Popen([*TAPEPROXY, *args], stderr=subprocess.PIPE, text=True)
        try:
            lines = _Lines(proc.stderr)
            exports = lines.first_with("SSL_CERT_FILE")
            assert "CURL_CA_BUNDLE=" in exports
            with httpx.Client(proxy=f"http://127.0.0.1:{port}", verify=ctx, timeout=30) as c:
                body = {"messages": [{"role": "user", "content": prompt}]}
                c.post(provider.url + "/v1/chat/completions", json=body)
            line = lines.first_with(expected)  # while serve still runs
            assert "/v1/chat/completions" in line
            if mode == "none":
                assert "nearest #0 differs in body.messages[0].content" in line
        finally:
            proc.send_signal(signal.SIGTERM)
            lines.finish(proc)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["record", "--casette", "x", "--", "true"], "Did you mean '--cassette'?"),
        (["replay", "--mode", "none", "--", "true"], "it belongs to: record --mode, serve --mode"),
        (["replay", "--latencyy=none", "--", "true"], "No such option '--latencyy'"),
    ],
)
def test_a_misspelt_option_before_the_command_is_named(
    tmp_path: Path, args: list[str], expected: str
) -> None:
    marker = tmp_path / "ran"
    result = _run(*args[:-1], "touch", str(marker), cwd=tmp_path)
    assert result.returncode == 2 and expected in result.stderr, result.stderr
    assert "cannot run" not in result.stderr and not marker.exists()


def test_a_port_in_use_is_named(tmp_path: Path) -> None:
    with taken_port() as port:
        args = ["serve", "--mode", "all", "--listen", f"127.0.0.1:{port}"]
        result = _run(*args, "--cassette", str(tmp_path / "c.json.zst"), "--confdir", str(tmp_path))
    assert result.returncode == 2
    assert f"address already in use: port {port}" in result.stderr, result.stderr


def _interactions_within(cassette: Path, count: int, seconds: float = 20) -> int:
    """How many interactions the cassette holds once it holds `count` (or time is up)."""
    deadline, found = time.monotonic() + seconds, -1
    while time.monotonic() < deadline:
        with contextlib.suppress(CassetteError):
            found = len(store.load(cassette).interactions)
            if found >= count:
                break
        time.sleep(0.1)
    return found


def test_serve_saves_as_it_goes_so_a_kill_loses_nothing_older_than_seconds(
    tmp_path: Path, provider: FakeProvider, throwaway_ca: ThrowawayCA, confdir: Path
) -> None:
    cassette, port = tmp_path / "served.json.zst", _free_port()
    args = ["serve", "--mode", "all", "--listen", f"127.0.0.1:{port}"]
    args += ["--cassette", str(cassette), "--confdir", str(confdir)]
    args += ["--upstream-ca", str(throwaway_ca.ca_cert)]
    proc = subprocess.Popen([*TAPEPROXY, *args], stderr=subprocess.PIPE, text=True)
    ctx = ssl.create_default_context(cafile=str(confdir / "mitmproxy-ca-cert.pem"))
    lines = _Lines(proc.stderr)
    try:
        lines.first_with("export HTTPS_PROXY")
        with httpx.Client(proxy=f"http://127.0.0.1:{port}", verify=ctx, timeout=30) as c:
            same = {"messages": [{"role": "user", "content": "same"}]}
            for expected in (1, 2):  # the same request twice: two answers, in order
                c.post(provider.url + "/v1/chat/completions", json=same)
                assert _interactions_within(cassette, expected) == expected
    finally:
        proc.kill()  # SIGKILL: what docker kill and the OOM killer do
        lines.finish(proc)
    time.sleep(0.5)
    assert len(store.load(cassette).interactions) == 2
