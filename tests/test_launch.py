"""Tests for tapeproxy/launch.py: proxy commands re-run under ``python -O`` with their own
bytecode cache, and leave CMD's environment as it was."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tapeproxy.cassettes.model import new_cassette
from tapeproxy.cassettes.store import save
from tapeproxy.launch import pycache_dir

_SHOW_CMD = (
    "import os, sys; "
    "print(os.environ.get('PYTHONDONTWRITEBYTECODE'), sys.flags.optimize, sys.pycache_prefix)"
)


def _tapeproxy(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tapeproxy", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_pycache_dir_prefers_its_own_variable_then_xdg_then_home() -> None:
    assert pycache_dir({"TAPEPROXY_PYCACHE": "/x", "XDG_CACHE_HOME": "/y"}) == Path("/x")
    assert pycache_dir({"XDG_CACHE_HOME": "/y"}) == Path("/y/tapeproxy/pycache")
    assert pycache_dir({}) == Path.home() / ".cache" / "tapeproxy" / "pycache"


def test_a_proxy_command_reruns_optimized_and_caches_its_bytecode(tmp_path: Path) -> None:
    cache = tmp_path / "pycache"
    env = {**os.environ, "TAPEPROXY_PYCACHE": str(cache), "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("TAPEPROXY_NO_OPTIMIZE", None)
    save(tmp_path / "empty.json.zst", new_cassette("test", "2025-01-01T00:00:00Z"))
    args = ["replay", "--cassette", str(tmp_path / "empty.json.zst"), "--confdir", str(tmp_path)]
    result = _tapeproxy(*args, "--", sys.executable, "-c", _SHOW_CMD, env=env)
    assert result.returncode == 0, result.stderr
    # CMD: the environment as given, a plain interpreter.
    assert result.stdout.split() == ["1", "0", "None"]
    # The proxy: optimized bytecode of mitmproxy written to the cache, despite the variable.
    assert list(cache.rglob("mitmproxy/proxy/*.opt-1.pyc"))


def test_other_commands_run_in_place(tmp_path: Path) -> None:
    env = {**os.environ, "TAPEPROXY_PYCACHE": str(tmp_path / "pycache")}
    result = _tapeproxy("--version", env=env)
    assert result.returncode == 0, result.stderr
    assert "tapeproxy" in result.stdout
    assert not (tmp_path / "pycache").exists()
