"""Tests for tapeproxy/proxy/runner.py: what a run loads, and switching cassettes mid-run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tapeproxy.cassettes import store
from tapeproxy.fakeprovider import FakeProvider
from tests.proxy.conftest import ProxyFactory, client_for

_REPLAY_ONLY = """
import sys
from pathlib import Path
from tapeproxy.proxy.runner import ProxyConfig, ProxyRunner
folder = Path(sys.argv[1])
with ProxyRunner(ProxyConfig(folder / "c.json.zst", "none", confdir=folder)) as runner:
    loaded = sorted(m for m in ("httpx", "tapeproxy.proxy.record") if m in sys.modules)
print(runner.recorder, loaded)
"""


def test_a_run_that_only_replays_never_loads_the_recorder(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _REPLAY_ONLY, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "None []"


def test_switching_from_replay_to_recording_adds_the_recorder(
    tmp_path: Path, run_proxy: ProxyFactory, provider: FakeProvider
) -> None:
    replayed, recorded = tmp_path / "replayed.json.zst", tmp_path / "recorded.json.zst"
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    with run_proxy(replayed, "none") as runner:
        assert runner.recorder is None
        with client_for(runner) as client:
            assert client.post(provider.url + "/v1/chat/completions", json=body).status_code == 599
        runner.switch(recorded, "all")
        assert runner.recorder is not None
        with client_for(runner) as client:
            assert client.post(provider.url + "/v1/chat/completions", json=body).status_code == 200
    assert provider.requests == 1
    assert len(store.load(recorded).interactions) == 1
    assert not replayed.exists()
