"""The cassette format, the request key, the zstd store and the replay index (pure: no
mitmproxy, no click)."""

from __future__ import annotations

from tapeproxy.cassettes.index import Difference, Nearest, ReplayIndex, differences
from tapeproxy.cassettes.key import (
    CREDENTIAL_HEADERS,
    CREDENTIAL_QUERY_PARAMS,
    canonical_request,
    request_key,
)
from tapeproxy.cassettes.model import (
    FORMAT,
    Body,
    Cassette,
    Interaction,
    MatchRules,
    Meta,
    RecordedError,
    Request,
    Response,
    Timing,
    body_bytes,
)
from tapeproxy.cassettes.store import dumps, load, loads, save

__all__ = [
    "CREDENTIAL_HEADERS",
    "CREDENTIAL_QUERY_PARAMS",
    "FORMAT",
    "Body",
    "Cassette",
    "Difference",
    "Interaction",
    "MatchRules",
    "Meta",
    "Nearest",
    "RecordedError",
    "ReplayIndex",
    "Request",
    "Response",
    "Timing",
    "body_bytes",
    "canonical_request",
    "differences",
    "dumps",
    "load",
    "loads",
    "request_key",
    "save",
]
