"""What every scenario shares: work folders, certificates, corpora, bounds, and how to run things.

`Env` holds the run's settings (rounds, per-measurement bounds, quick mode), starts the fake
upstream and the proxies under test (tapeproxy and the mitmdump peers, by the commands in
this module) and runs the load generator in its own process.
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import certs
from bench.corpus import Corpus
from bench.procs import Proc, free_port, run_json, venv_bin

__all__ = ["Env", "Upstream"]

TAPEPROXY = "tapeproxy"
MITMDUMP = "mitmdump"


@dataclass(frozen=True, slots=True)
class Upstream:
    """The running fake upstream's ports."""

    http: int
    https: int


@dataclass
class Env:
    """Settings and shared resources of one benchmark run."""

    out: Path
    quick: bool = False
    rounds: int = 3
    seconds: float = 2.0
    count: int = 3000
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.logs = self.out / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.work = self.out / "work"
        self.work.mkdir(parents=True, exist_ok=True)
        self.corpus = Corpus(self.out)
        self.upstream_certs = certs.make_upstream_ca(self.work / "upstream-ca")
        self.confdir = self.work / "proxy-conf"
        self.proxy_ca = certs.make_proxy_confdir(self.confdir)
        self._tapeproxy_ok: bool | None = None

    @property
    def log(self) -> Path:
        return self.logs / "run.log"

    def tapeproxy_ready(self) -> bool:
        """Whether this checkout's tapeproxy has the `serve` command (the proxy has landed)."""
        if self._tapeproxy_ok is None:
            done = subprocess.run(
                [venv_bin("tapeproxy"), "serve", "--help"], capture_output=True, check=False
            )
            self._tapeproxy_ok = done.returncode == 0
        return self._tapeproxy_ok

    # ---- processes under test ----------------------------------------------------------------

    def replay_cmd(self, target: str, n: int, port: int, *, stream: bool = False) -> list[str]:
        """The command that replays the n-interaction corpus (or the stream) with `target`."""
        listen = ["--listen", f"127.0.0.1:{port}"]
        if target == TAPEPROXY:
            cassette = self.corpus.tapeproxy(n, stream=stream)
            latency = "recorded" if stream else "none"
            return [
                venv_bin("tapeproxy"),
                "serve",
                "--mode",
                "none",
                "--cassette",
                str(cassette),
                *listen,
                "--latency",
                latency,
                "--confdir",
                str(self.confdir),
            ]
        flows = self.corpus.mitm(n, stream=stream)
        # The settings a user needs so that mitmdump never forwards: kill misses, keep every
        # flow for reuse (else it forwards once all are used, mitmproxy #8363), connect lazily.
        return [
            *self._mitmdump(port),
            "--server-replay",
            str(flows),
            "--set",
            "server_replay_extra=kill",
            "--set",
            "server_replay_reuse=true",
            "--set",
            "keepserving=true",
            "--set",
            "connection_strategy=lazy",
            "--set",
            "upstream_cert=false",
        ]

    def record_path(self, target: str, stem: str) -> Path:
        """A fresh file for `target` to record into: a cassette for tapeproxy, a flow file
        for mitmdump (any left from an earlier run removed)."""
        path = self.work / f"{stem}.{'json.zst' if target == TAPEPROXY else 'flows'}"
        path.unlink(missing_ok=True)
        return path

    def record_cmd(self, target: str, path: Path, port: int) -> list[str]:
        """The command that records through `target` into `path`."""
        ca = str(self.upstream_certs.ca)
        if target == TAPEPROXY:
            return [
                venv_bin("tapeproxy"),
                "serve",
                "--mode",
                "all",
                "--cassette",
                str(path),
                "--listen",
                f"127.0.0.1:{port}",
                "--confdir",
                str(self.confdir),
                "--upstream-ca",
                ca,
            ]
        return [
            *self._mitmdump(port),
            "-w",
            str(path),
            "--set",
            f"ssl_verify_upstream_trusted_ca={ca}",
        ]

    def _mitmdump(self, port: int) -> list[str]:
        return [
            venv_bin("mitmdump"),
            "-q",
            "--listen-host",
            "127.0.0.1",
            "--listen-port",
            str(port),
            "--set",
            f"confdir={self.confdir}",
        ]

    def start(self, cmd: list[str], name: str) -> Proc:
        """Start a process under test, logging to logs/<name>.log."""
        return Proc(cmd, self.logs / f"{name}.log")

    @contextlib.contextmanager
    def upstream(self) -> Iterator[Upstream]:
        """Run the fake upstream (HTTP and HTTPS) for the duration of the block."""
        c = self.upstream_certs
        cmd = [sys.executable, "-m", "bench.upstream", "--cert", str(c.cert), "--key", str(c.key)]
        proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True
        )
        try:
            assert proc.stdout is not None
            ports = json.loads(proc.stdout.readline() or b"{}")
            if not ports:
                raise RuntimeError("the fake upstream did not start")
            yield Upstream(ports["http"], ports["https"])
        finally:
            if proc.stdin:
                proc.stdin.close()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

    # ---- measurements ------------------------------------------------------------------------

    def load(self, url: str, *, proxy_port: int | None = None, **options: Any) -> dict[str, Any]:
        """Run one bounded load measurement (see `bench.load`) and return its result."""
        opts: dict[str, Any] = {"count": self.count, "seconds": self.seconds}
        opts.update(options)
        cmd = [sys.executable, "-m", "bench.load", "--url", url]
        if proxy_port is not None:
            cmd += ["--proxy", f"http://127.0.0.1:{proxy_port}", "--ca", str(self.proxy_ca)]
        for key, value in opts.items():
            flag = "--" + key.replace("_", "-")
            if value is True:
                cmd.append(flag)
            elif value is not False and value is not None:
                cmd += [flag, str(value)]
        timeout = 60 + float(opts["seconds"]) * 3 + (300 if opts.get("vcr") else 0)
        result = run_json(cmd, timeout, self.log)
        if result["errors"] or result["wrong"]:
            self.notes.append(
                f"{url} via {proxy_port}: {result['errors']} errors, {result['wrong']} wrong "
                f"bodies ({result['first_error']})"
            )
        return result

    def new_port(self) -> int:
        return free_port()


def wait_listening(port: int, proc: Proc, timeout: float = 60.0) -> float:
    """Wait until something accepts TCP connections on 127.0.0.1:port; seconds waited."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.cmd[0]} exited early:\n{proc.tail()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return time.perf_counter() - proc.started
        time.sleep(0.02)
    raise RuntimeError(f"nothing listening on {port} after {timeout:.0f} s:\n{proc.tail()}")
