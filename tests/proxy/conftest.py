"""Fixtures for tests that run a real proxy against a fake provider on 127.0.0.1 over TLS."""

from __future__ import annotations

import contextlib
import socket
import ssl
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tapeproxy.fakeprovider import FakeProvider
from tapeproxy.proxy.latency import Latency
from tapeproxy.proxy.runner import ProxyConfig, ProxyRunner
from tapeproxy.testing_ca import ThrowawayCA


@pytest.fixture
def provider(throwaway_ca: ThrowawayCA) -> Iterator[FakeProvider]:
    with FakeProvider(throwaway_ca.server_context()) as p:
        yield p


ProxyFactory = Callable[..., AbstractContextManager[ProxyRunner]]


@pytest.fixture
def run_proxy(confdir: Path, throwaway_ca: ThrowawayCA) -> ProxyFactory:
    """Start a proxy for a cassette and mode: `with run_proxy(path, "once") as runner: ...`."""

    def start(cassette: Path, mode: str, **overrides: Any) -> ProxyRunner:
        settings: dict[str, Any] = {
            "cassette": cassette,
            "mode": mode,
            "confdir": confdir,
            "upstream_ca": throwaway_ca.ca_cert,
            "latency": Latency(1.0),
        }
        settings.update(overrides)
        return ProxyRunner(ProxyConfig(**settings))

    return start


@contextlib.contextmanager
def taken_port() -> Iterator[int]:
    """A port of 127.0.0.1 held by a listening socket of the test's own while in the block."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield taken.getsockname()[1]


def client_for(runner: ProxyRunner, **kwargs: Any) -> httpx.Client:
    """An httpx client routed through the proxy and trusting its CA."""
    return httpx.Client(
        proxy=runner.url,
        verify=ssl.create_default_context(cafile=str(runner.config.ca_cert())),
        timeout=30,
        **kwargs,
    )


def written_bytes(*folders: Path) -> bytes:
    """Every file under the folders, zstd cassettes decompressed: what a leak test greps."""
    from tapeproxy.cassettes import store

    out = []
    for folder in folders:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            data = path.read_bytes()
            if path.name.endswith(".zst"):
                data = store.decompress(data, source=str(path))
            out.append(data)
    return b"\n".join(out)


def replay_refused(cwd: Path, *options: str) -> subprocess.CompletedProcess[str]:
    """`tapeproxy replay OPTIONS -- CMD` where CMD would leave a file behind: what it printed,
    after checking that it exited 2 and that CMD never ran (bad input is refused up front)."""
    marker = cwd / "cmd-ran"
    cmd = [sys.executable, "-c", f"open({str(marker)!r}, 'w')"]
    done = subprocess.run(
        [sys.executable, "-m", "tapeproxy", "replay", *options, "--", *cmd],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert not marker.exists()  # refused before CMD started
    return done


def npm_install(tmp_path_factory: pytest.TempPathFactory, package: str) -> Path:
    """A folder with an npm package installed from the registry; the test is skipped, saying
    why, when npm is missing or cannot install it."""
    import shutil

    if shutil.which("npm") is None:
        pytest.skip("npm is not installed")
    folder = tmp_path_factory.mktemp("npm")
    done = subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", "--silent", package],
        cwd=folder, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"npm could not install {package}: {done.stderr.strip()[-300:]}")
    return folder
