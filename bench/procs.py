"""Processes under measurement: start, wait for the first replayed answer, peak RSS, stop.

Every process is started by the harness in its own session and stopped by its own pid
(SIGINT, then SIGTERM, then SIGKILL, each after a bounded wait); nothing is ever killed by
name. Every wait here is bounded in time.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

from bench import payloads

__all__ = [
    "Proc",
    "first_response_after",
    "free_port",
    "run_json",
    "venv_bin",
]


def venv_bin(name: str) -> str:
    """The path of a console script installed beside the running Python."""
    return str(Path(sys.executable).parent / name)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Proc:
    """A started process whose output goes to a log file; stop it with `stop()` or `with`."""

    def __init__(self, cmd: list[str], log: Path, *, stdin: int | None = None) -> None:
        self.cmd = cmd
        self.log = log
        log.parent.mkdir(parents=True, exist_ok=True)
        self._log_file: IO[bytes] = log.open("ab")
        self._log_file.write(("\n$ " + " ".join(cmd) + "\n").encode())
        self._log_file.flush()
        self.started = time.perf_counter()
        self.popen = subprocess.Popen(
            cmd,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL if stdin is None else stdin,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def peak_rss_mb(self) -> float:
        """Peak resident memory (VmHWM) of the process and its children, in MiB."""
        total = 0
        for pid in _tree(self.pid):
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            for line in status.splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])
        return total / 1024

    def tail(self, lines: int = 15) -> str:
        """The last lines of the process's log (for error messages)."""
        self._log_file.flush()
        text = self.log.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def stop(self, timeout: float = 30.0) -> int | None:
        """Stop the process: SIGINT, then SIGTERM, then SIGKILL; returns its exit code."""
        for sig, wait in ((signal.SIGINT, timeout), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            if self.popen.poll() is not None:
                break
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.popen.wait(wait)
            except subprocess.TimeoutExpired:
                continue
        self._log_file.close()
        return self.popen.poll()

    def __enter__(self) -> Proc:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo and len(out) < 64:
        p = todo.pop()
        out.append(p)
        for task in Path(f"/proc/{p}/task").glob("*/children"):
            try:
                todo += [int(c) for c in task.read_text().split()]
            except OSError:
                continue
    return out


def _try_request(port: int, index: int) -> bool:
    body = payloads.request_body(index)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request(
            "POST",
            payloads.BASE_HTTP + payloads.PATH,
            body=body,
            headers={"content-type": "application/json", "host": "api.bench.test"},
        )
        resp = conn.getresponse()
        data = resp.read()
        return resp.status == 200 and data == payloads.exchange(index).body
    except OSError:
        return False
    finally:
        conn.close()


def first_response_after(proc: Proc, port: int, timeout: float, index: int = 0) -> float:
    """Seconds from the start of `proc` to its first correct replayed answer to request `index`.

    Raises:
        RuntimeError: the process died or gave no correct answer within `timeout` seconds.
    """
    deadline = proc.started + timeout
    while time.perf_counter() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.cmd[0]} exited early:\n{proc.tail()}")
        if _try_request(port, index):
            return time.perf_counter() - proc.started
        time.sleep(0.01)
    raise RuntimeError(f"no replayed answer within {timeout:.0f} s:\n{proc.tail()}")


def run_json(cmd: list[str], timeout: float, log: Path) -> dict[str, Any]:
    """Run a helper (`python -m bench.load ...`) to the end and parse its JSON result."""
    with log.open("ab") as err:
        err.write(("\n$ " + " ".join(cmd) + "\n").encode())
        err.flush()
        done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=err, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])} failed ({done.returncode}); see {log}")
    result: dict[str, Any] = json.loads(done.stdout.decode().strip().splitlines()[-1])
    return result
