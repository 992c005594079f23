"""A pytest suite of 20 tests replayed by the tapeproxy plugin and by pytest-recording (vcrpy),
both plugins installed in the one environment, as a suite migrating from one to the other has.

Each test POSTs one chat completion over HTTPS to the fake upstream. Both suites are recorded
once, then replayed `rounds` times each, alternating, with the upstream stopped; the figure is
the wall time of the whole `pytest` run (start-up included), as a developer or CI sees it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from bench.env import Env
from bench.report import Figure, Report, Target

__all__ = ["run"]

_TESTS = 20
_SUITE = """
import os, ssl, httpx, pytest

def _verify():
    # a tape test trusts the proxy's CA (SSL_CERT_FILE, set by the tape); a vcr test the
    # upstream's, in recording
    name = "SSL_CERT_FILE" if "TAPEPROXY_MODE" in os.environ else "BENCH_UPSTREAM_CA"
    return ssl.create_default_context(cafile=os.environ[name])

@pytest.mark.MARKER
@pytest.mark.parametrize("n", range(TESTS))
def test_chat(n):
    body = {"model": "m", "messages": [{"role": "user", "content": f"question {n}"}]}
    with httpx.Client(verify=_verify()) as client:
        r = client.post(os.environ["BENCH_URL"], json=body)
    assert r.status_code == 200 and r.content
"""


def _suite(folder: Path, marker: str, upstream_ca: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    code = _SUITE.replace("MARKER", marker).replace("TESTS", str(_TESTS))
    (folder / "test_suite.py").write_text(code)
    (folder / "pyproject.toml").write_text(
        f"[tool.pytest.ini_options]\naddopts = '-p no:cacheprovider'\n"
        f"[tool.tapeproxy]\nupstream_ca = {str(upstream_ca)!r}\nno_proxy = ''\n"
        f"confdir = {str(folder / 'conf')!r}\n"
    )
    return folder


def _pytest(folder: Path, env: dict[str, str], *args: str) -> float:
    began = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    took = time.perf_counter() - began
    if done.returncode != 0:
        tail = " | ".join(done.stdout.splitlines()[-5:])
        raise RuntimeError(f"pytest in {folder.name} failed ({done.returncode}): {tail}")
    return took


def run(env: Env, report: Report) -> None:
    """Record both suites once, then time their replays, interleaved."""
    try:
        import pytest_recording  # noqa: F401
    except ImportError:
        env.notes.append("pytest_suite: pytest-recording is not installed; not measured")
        return
    base = env.work / "pytest-suite"
    ca = env.upstream_certs.ca
    tape = _suite(base / "tapeproxy", "tape", ca)
    vcr = _suite(base / "vcrpy", "vcr", ca)
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TAPEPROXY_", "HTTP"))}
    clean = {k: v for k, v in clean.items() if k.lower() not in ("https_proxy", "http_proxy")}
    with env.upstream() as up:
        url = f"https://localhost:{up.https}/v1/chat/completions"
        recording = {**clean, "BENCH_URL": url, "BENCH_UPSTREAM_CA": str(ca)}
        for folder in (tape, vcr):
            _pytest(folder, recording, "--record-mode=rewrite")
    replaying = {**recording, "BENCH_URL": url}
    fig = report.add(
        Figure(
            "pytest_suite",
            f"replay a pytest suite of {_TESTS} tests (wall time)",
            "s",
            peer_name="pytest-recording",
            target=Target("<=", 1.0),
            note="both plugins installed; tapeproxy's default latency (none); start-up included",
        )
    )
    for r in range(env.rounds):
        order = [(tape, fig.subject), (vcr, fig.peer)]
        for folder, values in order if r % 2 == 0 else order[::-1]:
            values.append(_pytest(folder, replaying))
