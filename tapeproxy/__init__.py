"""tapeproxy: a record/replay proxy for LLM provider APIs, built as a mitmproxy addon."""

from __future__ import annotations

from tapeproxy.errors import (
    BadInputError,
    CassetteError,
    CassetteWriteError,
    ConfigError,
    ReplayMissError,
    TapeproxyError,
)

__version__ = "0.1.0"

__all__ = [
    "BadInputError",
    "CassetteError",
    "CassetteWriteError",
    "ConfigError",
    "ReplayMissError",
    "TapeproxyError",
    "__version__",
]
