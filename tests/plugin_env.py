"""The environment of the pytester suites that drive the pytest plugin against a fake provider.

Not a fixture module: each test module makes its own `provider` fixture from `fake_provider`,
with the variables its generated suites need on top.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tapeproxy.fakeprovider import FakeProvider
from tapeproxy.testing_ca import ThrowawayCA

__all__ = ["fake_provider"]

_PROXY_VARIABLES = ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy", "TAPEPROXY_MODE")


def fake_provider(
    throwaway_ca: ThrowawayCA,
    confdir: Path,
    monkeypatch: pytest.MonkeyPatch,
    **variables: str,
) -> Iterator[FakeProvider]:
    """A running fake provider, with no proxy variables inherited, its URL and CA in FAKE_URL
    and FAKE_CA, the proxy's confdir, nothing bypassing the proxy, and `variables` set (an
    empty string deletes one)."""
    for name in _PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    with FakeProvider(throwaway_ca.server_context()) as provider:
        monkeypatch.setenv("FAKE_URL", provider.url)
        monkeypatch.setenv("FAKE_CA", str(throwaway_ca.ca_cert))
        monkeypatch.setenv("TAPEPROXY_CONFDIR", str(confdir))
        monkeypatch.setenv("TAPEPROXY_NO_PROXY", "")
        for name, value in variables.items():
            if value:
                monkeypatch.setenv(name, value)
            else:
                monkeypatch.delenv(name, raising=False)
        yield provider
