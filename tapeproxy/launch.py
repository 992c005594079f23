"""The `tapeproxy` entry point: re-runs the proxy commands under ``python -O`` with a bytecode
cache of their own, before anything heavy is imported, then hands over to the command line.

mitmproxy type-checks every HTTP message and every proxy-layer event at runtime unless
assertions are off (``if __debug__``): about a fifth of the CPU of a replayed request. So
`record`, `replay` and `serve` re-run themselves as ``python -O``. Optimized bytecode
(``*.opt-1.pyc``) is rarely on disk: pip compiles only the plain one, and with
``PYTHONDONTWRITEBYTECODE=1`` (set by most container images) or a read-only site-packages it is
never written, so every start would compile mitmproxy, pydantic and the standard library from
source again (about 1 s). The re-run therefore keeps its bytecode under
``-X pycache_prefix=<cache>`` (``$TAPEPROXY_PYCACHE``, else ``$XDG_CACHE_HOME/tapeproxy/pycache``,
else ``~/.cache/tapeproxy/pycache``) and writes it there even when the environment says not to
write bytecode: that setting is about source trees, and nothing is written next to a source.
Both are interpreter options, not environment variables, so CMD's environment is left as it
was. ``TAPEPROXY_NO_OPTIMIZE=1`` turns the re-run off.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

__all__ = ["PROXY_COMMANDS", "main", "pycache_dir"]

PROXY_COMMANDS = frozenset({"record", "replay", "serve"})


def pycache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Where the proxy commands keep their optimized bytecode."""
    env = os.environ if environ is None else environ
    if env.get("TAPEPROXY_PYCACHE"):
        return Path(env["TAPEPROXY_PYCACHE"])
    base = env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "tapeproxy" / "pycache"


def _rerun_optimized(argv: list[str]) -> None:
    """Replace this process with ``python -O`` running the same proxy command (no return)."""
    if sys.flags.optimize or os.environ.get("TAPEPROXY_NO_OPTIMIZE"):
        return
    if len(argv) < 2 or argv[1] not in PROXY_COMMANDS:
        return
    prefix = f"pycache_prefix={pycache_dir()}"
    os.execv(sys.executable, [sys.executable, "-O", "-X", prefix, "-m", "tapeproxy", *argv[1:]])


def _write_bytecode_to_own_cache() -> None:
    """In the re-run, write bytecode to the tapeproxy cache even under PYTHONDONTWRITEBYTECODE."""
    if sys.flags.optimize and sys.pycache_prefix == str(pycache_dir()):
        sys.dont_write_bytecode = False


def main() -> None:
    """Console-script entry point."""
    _rerun_optimized(sys.argv)
    _write_bytecode_to_own_cache()
    from tapeproxy.cli import main as cli_main

    cli_main()
