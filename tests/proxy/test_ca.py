"""Tests for tapeproxy/proxy/ca.py: the CA is made once, and the store loaded without the key
check is the store mitmproxy loads."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization
from mitmproxy.certs import CertStore

from tapeproxy.proxy.ca import ensure_ca, load_store


def test_ensure_ca_creates_once_and_keeps_the_ca(tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    cert = ensure_ca(conf)
    key_file = conf / "mitmproxy-ca.pem"
    first = key_file.read_bytes()
    assert cert.read_bytes() in first  # the CA certificate sits beside its key
    assert key_file.stat().st_mode & 0o077 == 0
    assert ensure_ca(conf) == cert
    assert key_file.read_bytes() == first


def _public(store: CertStore) -> bytes:
    return store.default_privatekey.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_load_store_gives_mitmproxys_store(tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    ensure_ca(conf)
    ours, theirs = load_store(conf), CertStore.from_store(conf, "mitmproxy", 2048)
    assert ours.default_ca == theirs.default_ca
    assert _public(ours) == _public(theirs)
    assert ours.default_chain_file == theirs.default_chain_file
    # A leaf made from it is signed by the CA, as mitmproxy's own store makes it.
    leaf = ours.get_cert("api.openai.com", ["api.openai.com"])
    assert leaf.cert.issuer == ours.default_ca.subject
    assert leaf.cert.cn == "api.openai.com"


def test_load_store_creates_a_missing_ca(tmp_path: Path) -> None:
    store = load_store(tmp_path / "fresh")
    assert (tmp_path / "fresh" / "mitmproxy-ca-cert.pem").exists()
    assert not store.default_ca.has_expired()
