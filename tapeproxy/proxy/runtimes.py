"""Making the common runtimes use the proxy with no manual step: the variables `record`,
`replay`, `live` and the pytest plugin set for CMD beyond `HTTPS_PROXY` and the CA bundle.

- Node 24+ and 22.21+ send `fetch` (and the `openai` and `@anthropic-ai/sdk` packages, which
  use it) through `HTTPS_PROXY` only with `NODE_USE_ENV_PROXY=1`; the CA comes from
  `NODE_EXTRA_CA_CERTS`.
- Java (`java.net.http`, `HttpURLConnection`) reads neither: `JAVA_TOOL_OPTIONS` gets the proxy
  properties and a PKCS12 truststore holding the proxy's CA and the JVM's own roots, made
  once with the JDK's `keytool` and kept beside the CA (it is named after the CA and the
  JVM's roots, so a new CA or JDK gets a new one).
- Go and .NET read `HTTPS_PROXY` and, on Linux, `SSL_CERT_FILE`: nothing more to set.

Java and Go never proxy loopback hosts: a local upstream is reached by a provider's name and
`--resolve` (`proxy.resolve`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

__all__ = ["JAVA_STORE_PASSWORD", "java_truststore", "runtime_env"]

logger = logging.getLogger(__name__)

JAVA_STORE_PASSWORD = "changeit"
"""The truststore holds public certificates only: its password protects nothing (the JDK's
own cacerts uses the same)."""


def _java_home(environ: Mapping[str, str]) -> Path | None:
    home = environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "keytool").exists():
        return Path(home)
    java = shutil.which("java", path=environ.get("PATH"))
    if java is None:
        return None
    home_of_java = Path(os.path.realpath(java)).parent.parent
    return home_of_java if (home_of_java / "bin" / "keytool").exists() else None


def java_truststore(ca_cert: Path, environ: Mapping[str, str]) -> Path | None:
    """A PKCS12 truststore of the JVM's default roots plus the proxy's CA, made once and kept
    beside the CA; None when no JDK with `keytool` is found (or it fails: logged)."""
    home = _java_home(environ)
    if home is None:
        return None
    roots = home / "lib" / "security" / "cacerts"
    if not roots.exists():
        return None
    digest = hashlib.sha256(ca_cert.read_bytes() + roots.resolve().read_bytes()).hexdigest()
    store = ca_cert.parent / f"tapeproxy-java-{digest[:16]}.p12"
    if store.exists():
        return store
    keytool = str(home / "bin" / "keytool")
    with tempfile.TemporaryDirectory(dir=ca_cert.parent) as scratch:
        made = Path(scratch) / "truststore.p12"
        password = ["-storepass", JAVA_STORE_PASSWORD]
        steps = [
            [keytool, "-importkeystore", "-noprompt", "-srckeystore", str(roots),
             "-srcstorepass", JAVA_STORE_PASSWORD, "-destkeystore", str(made),
             "-deststoretype", "PKCS12", "-deststorepass", JAVA_STORE_PASSWORD],
            [keytool, "-importcert", "-noprompt", "-alias", "tapeproxy", "-file", str(ca_cert),
             "-keystore", str(made), "-storetype", "PKCS12", *password],
        ]  # fmt: skip
        for step in steps:
            try:
                done = subprocess.run(step, capture_output=True, text=True, timeout=120)
            except (OSError, subprocess.TimeoutExpired) as e:
                logger.warning("tapeproxy: cannot make the Java truststore: %s", e)
                return None
            if done.returncode != 0:
                logger.warning(
                    "tapeproxy: cannot make the Java truststore: %s", done.stderr.strip()[-300:]
                )
                return None
        os.replace(made, store)
    return store


def _non_proxy_hosts(no_proxy: str) -> str:
    """NO_PROXY as Java's `http.nonProxyHosts` (`a|*.b`)."""
    hosts = []
    for entry in (e.strip() for e in no_proxy.split(",") if e.strip()):
        host = entry.rsplit(":", 1)[0] if entry.count(":") == 1 else entry
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"  # an IPv6 address, as Java writes it
        hosts.append(f"*{host}" if host.startswith(".") else host)
    return "|".join(hosts)


def runtime_env(
    proxy: tuple[str, int], ca_cert: Path, no_proxy: str, environ: Mapping[str, str]
) -> dict[str, str]:
    """The variables that point Node and Java at the proxy (appended to a JAVA_TOOL_OPTIONS
    the user had)."""
    env = {"NODE_USE_ENV_PROXY": "1"}
    store = java_truststore(ca_cert, environ)
    if store is None:
        return env
    host, port = proxy
    options = [
        f"-Dhttps.proxyHost={host}",
        f"-Dhttps.proxyPort={port}",
        f"-Dhttp.proxyHost={host}",
        f"-Dhttp.proxyPort={port}",
        f"-Djavax.net.ssl.trustStore={store}",
        f"-Djavax.net.ssl.trustStorePassword={JAVA_STORE_PASSWORD}",
        "-Djavax.net.ssl.trustStoreType=PKCS12",
    ]
    if no_proxy.strip():
        options.append(f"-Dhttp.nonProxyHosts={_non_proxy_hosts(no_proxy)}")
    own = environ.get("JAVA_TOOL_OPTIONS", "").strip()
    env["JAVA_TOOL_OPTIONS"] = " ".join([own, *options] if own else options)
    return env
