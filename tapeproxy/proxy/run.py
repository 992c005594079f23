"""Running a command under the proxy (`record -- CMD`, `replay -- CMD`) or serving until told
to stop (`serve`), and what each prints when it ends.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence

from tapeproxy.errors import BadInputError
from tapeproxy.proxy.runner import ProxyConfig, ProxyRunner
from tapeproxy.proxy.settings import child_env

__all__ = ["MISS_EXIT", "run_command", "serve_forever"]

MISS_EXIT = 3
"""Exit code of `replay` when CMD passed but some requests had no recorded answer."""


def run_command(config: ProxyConfig, cmd: Sequence[str], no_proxy: str) -> int:
    """Run CMD with the proxy's environment; returns the exit code to leave with.

    That is CMD's own code, or `MISS_EXIT` when CMD passed but there were misses.

    Raises:
        BadInputError: CMD cannot be started.
    """
    if not cmd:
        raise BadInputError("no command given: put it after --, e.g. tapeproxy replay -- pytest")
    label = "replay" if config.mode == "none" else "record"
    with ProxyRunner(config) as runner:
        env = child_env(os.environ, runner.url, config.ca_cert(), no_proxy, label)
        try:
            proc = subprocess.Popen(list(cmd), env=env)
        except OSError as e:
            raise BadInputError(f"cannot run {cmd[0]!r}: {e.strerror or e}") from e
        try:
            code = proc.wait()
        except KeyboardInterrupt:
            proc.send_signal(signal.SIGINT)
            code = proc.wait()
    print(runner.session.summary(), file=sys.stderr)
    if code == 0 and runner.session.misses:
        return MISS_EXIT
    return code


def serve_forever(config: ProxyConfig, no_proxy: str) -> int:
    """Serve until SIGINT or SIGTERM; returns 0, or `MISS_EXIT` if replay had misses."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with ProxyRunner(config) as runner:
        ca = config.ca_cert()
        print(
            f"tapeproxy serving ({config.mode}) on {runner.url} with cassette {config.cassette}\n"
            f"  export HTTPS_PROXY={runner.url} HTTP_PROXY={runner.url} NO_PROXY={no_proxy}\n"
            f"  export SSL_CERT_FILE={ca} REQUESTS_CA_BUNDLE={ca} NODE_EXTRA_CA_CERTS={ca}\n"
            "  stop with Ctrl-C",
            file=sys.stderr,
            flush=True,
        )
        while not stop.wait(0.5):
            pass
    print(runner.session.summary(), file=sys.stderr)
    return MISS_EXIT if runner.session.misses else 0
