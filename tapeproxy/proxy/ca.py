"""The proxy's certificate authority: created on first use in the confdir, key mode 0600,
and loaded once per proxy without cryptography's RSA key check.

cryptography checks an RSA private key's consistency on every load (about 40 ms for
mitmproxy's 2048-bit key): a guard against keys from elsewhere. The CA key here is the
proxy's own file, written by mitmproxy into the confdir; mitmproxy's TlsConfig and a
separate existence check used to load it twice per start (80 ms of every pytest session).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from mitmproxy import ctx
from mitmproxy.certs import Cert, CertStore, dummy_crl

__all__ = ["BASENAME", "ensure_ca", "load_store", "tls_config"]

BASENAME = "mitmproxy"
_KEY_SIZE = 2048

# The options from which mitmproxy's TlsConfig builds its store.
_STORE_OPTIONS = frozenset(
    ("certs", "confdir", "key_size", "cert_passphrase", "emudhra", "emudhra_old")
)


def ensure_ca(confdir: Path) -> Path:
    """Create the CA in `confdir` if it is missing; returns the certificate clients must trust."""
    confdir.mkdir(parents=True, exist_ok=True)
    if not (confdir / f"{BASENAME}-ca.pem").exists():
        CertStore.create_store(confdir, BASENAME, _KEY_SIZE)
    return confdir / f"{BASENAME}-ca-cert.pem"


def load_store(confdir: Path, key_size: int = _KEY_SIZE) -> CertStore:
    """The CA store of `confdir` (created if missing), as `CertStore.from_store` makes it,
    with the key loaded unchecked (see the module's note).

    Raises:
        ValueError, TypeError: the key file cannot be read as an unencrypted key.
    """
    ca_file = confdir / f"{BASENAME}-ca.pem"
    if not ca_file.exists():
        CertStore.create_store(confdir, BASENAME, key_size)
    raw = ca_file.read_bytes()
    key = serialization.load_pem_private_key(raw, None, unsafe_skip_rsa_key_validation=True)
    certs = x509.load_pem_x509_certificates(raw)
    ca = Cert(certs[0])
    dh = CertStore.load_dhparam(confdir / f"{BASENAME}-dhparam.pem")
    chain_file = ca_file if len(certs) > 1 else None
    return CertStore(key, ca, chain_file, dummy_crl(key, ca._cert), dh)  # type: ignore[arg-type]


def tls_config(base: type[Any]) -> Any:
    """An instance of mitmproxy's TlsConfig (`base`, from the lean import) that builds its CA
    store with `load_store` when the options leave mitmproxy nothing else to do (no extra
    certificates, no passphrase, no eMudhra chain); else as mitmproxy does."""

    class TlsConfig(base):  # type: ignore[misc]
        def configure(self, updated: Any) -> None:
            names = {updated} if isinstance(updated, str) else set(updated)
            o = ctx.options
            own = not (o.certs or o.cert_passphrase or o.emudhra or o.emudhra_old)
            if own and names & _STORE_OPTIONS:
                self.certstore = load_store(Path(os.path.expanduser(o.confdir)), o.key_size)
                if self.certstore.default_ca.has_expired():
                    super().configure(names)  # mitmproxy's warning, and its reload
                    return
                names -= _STORE_OPTIONS
            super().configure(names)

    return TlsConfig()
