"""A throwaway certificate authority for local HTTPS servers (the demo's fake provider, tests).

Made fresh in memory each time; nothing here is ever trusted beyond the process that asked.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

__all__ = ["ThrowawayCA"]


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


@dataclass
class ThrowawayCA:
    """A CA and one server certificate (127.0.0.1 and DNS names), written to `folder`."""

    folder: Path
    ca_cert: Path
    server_cert: Path
    server_key: Path

    @classmethod
    def create(
        cls, folder: Path | None = None, names: tuple[str, ...] = ("localhost",)
    ) -> ThrowawayCA:
        """Make a new CA and a server certificate for 127.0.0.1 and `names`, signed by it."""
        folder = folder or Path(tempfile.mkdtemp(prefix="tapeproxy-ca-"))
        folder.mkdir(parents=True, exist_ok=True)
        now = dt.datetime.now(dt.UTC)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca = (
            x509.CertificateBuilder()
            .subject_name(_name("tapeproxy throwaway CA"))
            .issuer_name(_name("tapeproxy throwaway CA"))
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=7))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(True, False, False, False, False, True, True, False, False),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
            .sign(ca_key, hashes.SHA256())
        )
        key = ec.generate_private_key(ec.SECP256R1())
        sans: list[x509.GeneralName] = [x509.DNSName(n) for n in names]
        sans.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name("localhost"))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=7))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            # Python 3.13's default context (VERIFY_X509_STRICT) requires these two.
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
            )
            .add_extension(x509.ExtendedKeyUsage([x509.OID_SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        pem = serialization.Encoding.PEM
        paths = cls(folder, folder / "ca.pem", folder / "server.pem", folder / "server-key.pem")
        paths.ca_cert.write_bytes(ca.public_bytes(pem))
        paths.server_cert.write_bytes(cert.public_bytes(pem))
        paths.server_key.write_bytes(
            key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        )
        paths.server_key.chmod(0o600)
        return paths

    def server_context(self) -> ssl.SSLContext:
        """A TLS context for a server presenting the localhost certificate."""
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.server_cert, self.server_key)
        return ctx
