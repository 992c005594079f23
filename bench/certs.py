"""Throwaway certificates made at run time: a CA for the fake upstream and the proxies' CA.

Nothing here is ever committed: `make_upstream_ca` writes a fresh CA and a leaf for
127.0.0.1 / localhost / api.bench.test into the run's work folder, and `make_proxy_confdir`
creates mitmproxy's CA layout once so that tapeproxy and mitmdump start with the same CA and
neither pays for key generation inside a timed start.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tapeproxy.testing_ca import ThrowawayCA

__all__ = ["UpstreamCerts", "make_proxy_confdir", "make_upstream_ca"]

UPSTREAM_NAMES = ("127.0.0.1", "localhost", "api.bench.test")


@dataclass(frozen=True, slots=True)
class UpstreamCerts:
    """Paths of the upstream's CA certificate (to trust) and its leaf certificate and key."""

    ca: Path
    cert: Path
    key: Path


def make_upstream_ca(folder: Path) -> UpstreamCerts:
    """Write a fresh CA and a server certificate signed by it for the fake upstream."""
    made = ThrowawayCA.create(folder, names=UPSTREAM_NAMES[1:])
    return UpstreamCerts(made.ca_cert, made.server_cert, made.server_key)


def make_proxy_confdir(confdir: Path) -> Path:
    """Create mitmproxy's CA files in `confdir` (if absent); returns the CA cert to trust."""
    from tapeproxy.proxy.ca import ensure_ca

    return ensure_ca(confdir)
