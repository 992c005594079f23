"""Tests for tapeproxy/proxy/run.py: `record -- CMD` stopped by the signals CI cancellation,
`timeout`, `docker stop` and a closed terminal send. CMD (and what it started) is stopped,
the exchanges it already got are saved, and the summary is printed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tapeproxy.cassettes import store
from tapeproxy.fakeprovider import FakeProvider
from tapeproxy.testing_ca import ThrowawayCA

# The grandchild (CMD is a shell that starts it) makes one request through the proxy, says
# so with its pid, then would sleep for longer than any test.
_CLIENT = """
import os, sys, time, httpx
r = httpx.post(sys.argv[1] + "/v1/chat/completions", json={"messages": []}, timeout=30)
open(sys.argv[2] + ".tmp", "w").write(f"{os.getpid()} {r.status_code}")
os.replace(sys.argv[2] + ".tmp", sys.argv[2])
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purposes: it runs nothing and holds no proxy variable.
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(") ", 1)[1][0] != "Z"


def _wait_for(path: Path, proc: subprocess.Popen[str], seconds: float = 60) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if path.exists():
            return path.read_text()
        assert proc.poll() is None, proc.communicate()[1]
        time.sleep(0.05)
    raise AssertionError(f"{path} did not appear in {seconds} s")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_stop_signal_stops_cmd_and_its_children_and_saves_what_was_recorded(
    tmp_path: Path,
    provider: FakeProvider,
    throwaway_ca: ThrowawayCA,
    confdir: Path,
    sig: signal.Signals,
) -> None:
    cassette, ready = tmp_path / "c.json.zst", tmp_path / "ready"
    script = tmp_path / "client.py"
    script.write_text(_CLIENT)
    cmd = f'"{sys.executable}" "{script}" "{provider.url}" "{ready}"'
    args = ["record", "--cassette", str(cassette), "--confdir", str(confdir), "--no-proxy", ""]
    args += ["--upstream-ca", str(throwaway_ca.ca_cert), "--", "sh", "-c", cmd]
    proc = subprocess.Popen(
        [sys.executable, "-m", "tapeproxy", *args],
        stdin=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    grandchild = -1
    try:
        pid, status = _wait_for(ready, proc).split()
        grandchild = int(pid)
        assert status == "200"
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + sig, err
    assert f"stopped by {sig.name}" in err and "recorded: 1" in err
    assert len(store.load(cassette).interactions) == 1
    deadline = time.monotonic() + 10
    while _alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    alive = _alive(grandchild)
    if alive:
        os.kill(grandchild, signal.SIGKILL)
    assert not alive, "CMD's child outlived tapeproxy"


def test_cmd_killed_by_a_signal_gives_128_plus_it(tmp_path: Path, confdir: Path) -> None:
    args = ["record", "--cassette", str(tmp_path / "c.json.zst"), "--confdir", str(confdir)]
    done = subprocess.run(
        [sys.executable, "-m", "tapeproxy", *args, "--", "sh", "-c", "kill -TERM $$"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 128 + signal.SIGTERM, done.stderr
