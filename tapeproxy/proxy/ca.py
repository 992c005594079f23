"""The proxy's certificate authority: created on first use in the confdir, key mode 0600."""

from __future__ import annotations

from pathlib import Path

from mitmproxy.certs import CertStore

__all__ = ["ensure_ca"]


def ensure_ca(confdir: Path) -> Path:
    """Create the CA in `confdir` if it is missing; returns the certificate clients must trust."""
    confdir.mkdir(parents=True, exist_ok=True)
    CertStore.from_store(confdir, "mitmproxy", 2048)
    return confdir / "mitmproxy-ca-cert.pem"
