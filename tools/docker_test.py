"""`make docker-test`: the Docker image itself, built and run with podman.

Builds the image, records a cassette with `tapeproxy demo` on the host, then runs the image
on it and checks, through the container:
1. a client without credentials is refused (407) when TAPEPROXY_PROXY_AUTH is set;
2. a client with them gets the recorded answer, byte for byte;
3. the image refuses to record on its default 0.0.0.0 listener without credentials (exit 2);
4. it stops on SIGTERM within seconds, printing its summary.

Needs podman (and, to make the base image, mmdebstrap): ``apt-get install -y podman runc
mmdebstrap``. The Dockerfile's FROM is replaced by TAPEPROXY_DOCKER_BASE (any local image with
Python >= 3.12 in /usr/local, e.g. python:3.12-slim where a registry can be reached), else by
a Debian base made here once with mmdebstrap from Debian's packages.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import zstandard

ROOT = Path(__file__).resolve().parents[1]
IMAGE = "localhost/tapeproxy:docker-test"
BASE = "localhost/pybase:trixie"


def _podman(work: Path) -> list[str]:
    conf = work / "containers.conf"
    conf.write_text("[containers]\ndefault_ulimits = []\n")  # some sandboxes refuse setrlimit
    os.environ["CONTAINERS_CONF"] = str(conf)
    return ["podman", "--runtime", "runc", "--cgroup-manager", "cgroupfs"]


def _run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, text=True, capture_output=True, check=False, **kwargs)  # type: ignore[call-overload,no-any-return]


def _must(cmd: list[str], what: str) -> str:
    done = _run(cmd)
    if done.returncode:
        sys.exit(f"docker-test: {what} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return done.stdout


def _base(pm: list[str], work: Path) -> str:
    given = os.environ.get("TAPEPROXY_DOCKER_BASE")
    if given:
        return given
    if _run([*pm, "image", "exists", BASE]).returncode == 0:
        return BASE
    if not shutil.which("mmdebstrap"):
        sys.exit("docker-test: no base image; install mmdebstrap or set TAPEPROXY_DOCKER_BASE")
    root = work / "root.tar"
    _must(
        [
            "mmdebstrap",
            "--variant=minbase",
            "--include=python3,python3-venv,ca-certificates,adduser,passwd",
            "trixie",
            str(root),
        ],
        "mmdebstrap",
    )
    _must([*pm, "import", str(root), "localhost/rootfs:trixie"], "podman import")
    (work / "Base.Dockerfile").write_text(
        "FROM localhost/rootfs:trixie\nRUN python3 -m venv /usr/local\n"
    )
    _must(
        [
            *pm,
            "build",
            "--network",
            "host",
            "-f",
            str(work / "Base.Dockerfile"),
            "-t",
            BASE,
            str(work),
        ],
        "building the base image",
    )
    return BASE


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _first_exchange(cassette: Path) -> dict[str, object]:
    doc = json.loads(zstandard.ZstdDecompressor().decompress(cassette.read_bytes()))
    return dict(doc["interactions"][0])


def _wait_listening(port: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    sys.exit(f"docker-test: the container did not listen on {port} within {seconds:.0f} s")


def _check(ok: bool, what: str) -> None:
    print(f"{'ok' if ok else 'FAILED'}: {what}")
    if not ok:
        sys.exit(1)


def main() -> None:
    if not shutil.which("podman"):
        sys.exit("docker-test: podman not found; apt-get install -y podman runc mmdebstrap")
    work = Path(tempfile.mkdtemp(prefix="tapeproxy-docker-"))
    pm = _podman(work)
    base = _base(pm, work)
    started = time.monotonic()
    _must(
        [
            *pm,
            "build",
            "--network",
            "host",
            "-v",
            "/etc/ssl/certs:/etc/ssl/certs:ro",
            "--from",
            base,
            "-t",
            IMAGE,
            str(ROOT),
        ],
        "building the image",
    )
    print(f"ok: image built from {base} in {time.monotonic() - started:.0f} s")

    cassettes, ca = work / "cassettes", work / "ca"
    cassettes.mkdir()
    ca.mkdir()
    demo = cassettes / "demo.json.zst"
    _must([sys.executable, "-m", "tapeproxy", "demo", "--cassette", str(demo)], "tapeproxy demo")
    for folder in (cassettes, ca):
        folder.chmod(0o777)  # the image runs as uid 10001
    exchange = _first_exchange(demo)
    request, response = exchange["request"], exchange["response"]
    assert isinstance(request, dict) and isinstance(response, dict)

    user, password, port = "tester", os.urandom(9).hex(), _free_port()
    name = f"tapeproxy-docker-test-{port}"
    _must(
        [
            *pm,
            "run",
            "-d",
            "--name",
            name,
            "--network",
            "host",
            "-v",
            f"{cassettes}:/cassettes",
            "-v",
            f"{ca}:/ca",
            "-e",
            f"TAPEPROXY_LISTEN=127.0.0.1:{port}",
            "-e",
            f"TAPEPROXY_PROXY_AUTH={user}:{password}",
            "-e",
            "TAPEPROXY_CASSETTE=/cassettes/demo.json.zst",
            "-e",
            "TAPEPROXY_LATENCY=none",
            IMAGE,
        ],
        "podman run",
    )
    try:
        _wait_listening(port, 60)
        verify = str(ca / "mitmproxy-ca-cert.pem")
        body = str(request["body"]["text"]).encode()  # type: ignore[index]
        headers = {"content-type": "application/json"}
        url = str(request["url"])
        with httpx.Client(proxy=f"http://127.0.0.1:{port}", verify=verify, timeout=30) as c:
            try:
                c.post(url, content=body, headers=headers)
                refused = False
            except httpx.ProxyError as e:
                refused = "407" in str(e)
        _check(refused, "a client without credentials is refused with 407")
        proxy = f"http://{user}:{password}@127.0.0.1:{port}"
        with httpx.Client(proxy=proxy, verify=verify, timeout=30) as c:
            r = c.post(url, content=body, headers=headers)
        want = str(response["body"]["text"]).encode()  # type: ignore[index]
        got = f"{r.status_code}, {len(r.content)} bytes"
        _check(
            r.status_code == response["status"] and r.content == want,
            f"an authenticated client gets the recorded answer ({got})",
        )
    finally:
        started = time.monotonic()
        _run([*pm, "stop", "-t", "20", name])
        stopped_in = time.monotonic() - started
        logs = _run([*pm, "logs", name])
        _run([*pm, "rm", "-f", name])
    output = logs.stdout + logs.stderr
    _check(
        stopped_in < 10 and "served from cassette: 1" in output,
        f"SIGTERM stops it in {stopped_in:.1f} s with its summary",
    )
    _check(password not in output, "the password is not in the container's log")

    open_proxy = _run(
        [*pm, "run", "--rm", "--network", "none", "-e", "TAPEPROXY_RECORD_MODE=all", IMAGE],
        timeout=120,
    )
    _check(
        open_proxy.returncode == 2 and "--proxy-auth" in open_proxy.stderr,
        "recording on 0.0.0.0 without credentials is refused (exit 2)",
    )
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
