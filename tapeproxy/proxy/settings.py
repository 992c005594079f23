"""Turning flags, `TAPEPROXY_*` environment variables and `[tool.tapeproxy]` into a run's
`ProxyConfig`, with the precedence flag > environment > config file > default.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tapeproxy.cassettes.model import MatchRules
from tapeproxy.config import as_bool, setting
from tapeproxy.errors import ConfigError
from tapeproxy.modes import Mode, parse_mode
from tapeproxy.profilefile import has_table, load_profile
from tapeproxy.providers.stubs import Stubs
from tapeproxy.proxy.access import check_exposure, parse_credentials
from tapeproxy.proxy.expiry import Expiry
from tapeproxy.proxy.faults import Faults, parse_faults
from tapeproxy.proxy.latency import Latency
from tapeproxy.proxy.resolve import parse_resolve
from tapeproxy.proxy.routes import parse_routes
from tapeproxy.proxy.runner import ProxyConfig, default_confdir
from tapeproxy.proxy.sampled import ProfileUsage
from tapeproxy.proxy.wsreplay import WS_MATCHES, WsMatch
from tapeproxy.redaction import Redactor

__all__ = [
    "DEFAULT_CASSETTE",
    "DEFAULT_NO_PROXY",
    "build_config",
    "child_env",
    "faults_from",
    "parse_listen",
    "profile_from",
    "seed_from",
]

DEFAULT_CASSETTE = "cassettes/tapeproxy.json.zst"
DEFAULT_NO_PROXY = "localhost,127.0.0.1,::1"


def parse_listen(text: str) -> tuple[str, int]:
    """Parse `HOST:PORT` (or `[::1]:PORT`).

    Raises:
        ConfigError: not of that shape.
    """
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ConfigError(f"--listen {text!r}: expected HOST:PORT, e.g. 127.0.0.1:8080")
    return host.strip("[]"), int(port)


def _strings(value: Any, key: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    if isinstance(value, Sequence) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ConfigError(f"{key}: expected a list of strings or a comma-separated string")


def _positive(value: Any, key: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if number < 1:
        raise ConfigError(f"{key} {value!r}: expected a positive whole number")
    return number


def build_config(
    flags: Mapping[str, Any],
    config: Mapping[str, Any],
    mode_default: Mode,
    env: Mapping[str, str] | None = None,
    listen_default: str = "127.0.0.1:0",
) -> ProxyConfig:
    """Resolve every proxy setting; `flags` holds None for what was not given on the line.

    Raises:
        ConfigError: a value is invalid (the message names the setting).
    """

    def get(key: str, default: Any) -> Any:
        return setting(key, flags.get(key), config, default, env)

    # TAPEPROXY_MODE is what tapeproxy sets for CMD (record or replay), so the mode is read from
    # TAPEPROXY_RECORD_MODE / `record_mode` instead.
    mode = parse_mode(
        flags.get("mode") or setting("record_mode", None, config, mode_default, env), "mode"
    )
    host, port = parse_listen(get("listen", listen_default))
    upstream_ca = get("upstream_ca", None)
    if upstream_ca and not Path(upstream_ca).is_file():
        raise ConfigError(f"upstream_ca {upstream_ca!r}: no such file")
    hosts = get("hosts", None)
    rules = MatchRules(
        headers=_strings(get("match_headers", MatchRules().headers), "match_headers"),
        ignore_query=_strings(get("ignore_query", ()), "ignore_query"),
        ignore_json_paths=_strings(get("ignore_json_paths", ()), "ignore_json_paths"),
    )
    repeat = get("repeat", "last")
    if repeat not in ("last", "error"):
        raise ConfigError(f"repeat {repeat!r}: expected 'last' or 'error'")
    proxy_auth = get("proxy_auth", None) or None
    if proxy_auth is not None:
        parse_credentials(str(proxy_auth))
    allow_open = as_bool(get("allow_open_proxy", False), "allow_open_proxy")
    records = mode != "none"
    check_exposure(host, records, proxy_auth, allow_open)
    given = get("max_connections", None)
    max_connections = None if given is None else _positive(given, "max_connections")
    idle_timeout = _positive(get("idle_timeout", 600), "idle_timeout")
    handshake_timeout = _positive(get("handshake_timeout", 30), "handshake_timeout")
    # `--stubs` is repeatable: click gives () when it is absent, which is not a value.
    stubs = _stubs(flags.get("stubs") or setting("stubs", None, config, None, env), get)
    profile = profile_from(get)
    faults = faults_from(get, idle_timeout, profile)
    latency = get("latency", None)
    if latency is None and profile is not None and has_table(profile, "latency"):
        latency = f"@{profile}"
    if profile is not None and stubs is not None and has_table(profile, "usage"):
        stubs.usage = ProfileUsage.from_file(profile, seed_from(get)).draw
    journal, report = get("journal", None), get("report", None)
    return ProxyConfig(
        cassette=Path(get("cassette", DEFAULT_CASSETTE)),
        mode=mode,
        listen_host=host,
        listen_port=port,
        confdir=Path(get("confdir", default_confdir())),
        latency=Latency.parse(str(latency or "recorded"), seed_from(get)),
        upstream_ca=Path(upstream_ca) if upstream_ca else None,
        insecure_upstream=as_bool(get("insecure_upstream", False), "insecure_upstream"),
        hosts=frozenset(_strings(hosts, "hosts")) if hosts else None,
        rules=rules,
        redactor=Redactor.from_config(config),
        repeat=repeat,
        proxy_auth=proxy_auth,
        allow_open_proxy=allow_open,
        max_connections=max_connections,
        idle_timeout=idle_timeout,
        handshake_timeout=handshake_timeout,
        stubs=stubs,
        faults=faults,
        journal=Path(journal) if journal else None,
        report=Path(report) if report else None,
        routes=parse_routes(flags.get("route") or get("routes", None), os.environ),
        resolve=parse_resolve(flags.get("resolve") or get("resolve", None)),
        cassette_dir=Path(cassette_dir) if (cassette_dir := get("cassette_dir", None)) else None,
        expiry=Expiry.parse(get("max_age", None), get("on_expiry", None)),
        ws_match=_ws_match(get("ws_match", "position")),
        routes_port=_port(get("routes_port", 0), "routes_port"),
    )


def _port(value: Any, key: str) -> int:
    text = str(value).strip()
    if not text.isdigit() or int(text) > 65535:
        raise ConfigError(f"{key} {value!r}: expected a port number (0: any free port)")
    return int(text)


def _ws_match(value: Any) -> WsMatch:
    for match in WS_MATCHES:
        if str(value).strip().lower() == match:
            return match
    raise ConfigError(f"ws_match {value!r}: expected one of {', '.join(WS_MATCHES)}")


def _stubs(files: Any, get: Any) -> Stubs | None:
    """The stub rules of the files named by `--stubs` (or `stubs`, `TAPEPROXY_STUBS`), read
    and checked now, before anything starts; None when there are none."""
    if not files:
        return None
    return Stubs.from_files(_strings(files, "stubs"), seed_from(get))


def _seconds(value: Any, key: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = -1.0
    if not 0.0 <= number <= 3600.0:
        raise ConfigError(f"{key} {value!r}: expected seconds from 0 to 3600")
    return number


def profile_from(get: Any, base: Path | None = None) -> Path | None:
    """The `--profile FILE` (or `profile`, `TAPEPROXY_PROFILE`), checked to be a profile;
    a relative path from `base` when given."""
    given = get("profile", None)
    if not given:
        return None
    path = base / given if base is not None else Path(given)
    load_profile(path)
    return path


def faults_from(get: Any, idle_timeout: int, profile: Path | None = None) -> Faults | None:
    """The faults of `--faults` (or `faults`, `TAPEPROXY_FAULTS`), else of the profile's
    [faults] table, checked now; None when none were asked for. A timeout holds a request
    at most as long as an idle connection.

    Args:
        get: `get(key, default)` of a setting, by the usual precedence.
        profile: the `--profile` file, if any.
    """
    spec = get("faults", None)
    if spec is None and profile is not None and has_table(profile, "faults"):
        spec = f"@{profile}"
    if spec is None or str(spec).strip() == "":
        return None
    return Faults(
        parse_faults(str(spec)),
        seed=seed_from(get),
        retry_after=_seconds(get("fault_retry_after", 1.0), "fault_retry_after"),
        delay=_seconds(get("fault_delay", 2.0), "fault_delay"),
        hold=float(idle_timeout),
    )


def seed_from(get: Any) -> int:
    """The `seed` setting as a whole number."""
    seed = get("seed", 0)
    try:
        return int(seed)
    except (TypeError, ValueError):
        raise ConfigError(f"seed {seed!r}: expected a whole number") from None


def child_env(
    base: Mapping[str, str],
    proxy_url: str,
    ca_cert: Path,
    no_proxy: str,
    mode: str,
    wiring: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment CMD runs with: proxy, CA bundle and mode variables, and `wiring`
    (`ProxyRunner.client_env`: the SDKs' base URLs on the routes, Node's and Java's proxy
    settings)."""
    env = dict(base)
    env.update(wiring or {})
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"):
        env[name] = proxy_url
    env["NO_PROXY"] = env["no_proxy"] = no_proxy
    for name in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "NODE_EXTRA_CA_CERTS"):
        env[name] = str(ca_cert)
    env["TAPEPROXY_MODE"] = mode
    return env
