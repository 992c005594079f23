"""The one exception tree of tapeproxy; each class knows the exit code the CLI maps it to.

Hierarchy::

    TapeproxyError            exit 1: something went wrong that is not the user's input
    ├── BadInputError         exit 2: a file, option or argument is not what was expected
    │   ├── CassetteError     exit 2: a cassette cannot be read (corrupt, bad schema, newer)
    │   └── ConfigError       exit 2: a configuration value is invalid
    ├── CassetteWriteError    exit 1: a cassette could not be written; what was on disk is kept
    └── ReplayMissError       exit 3: a request had no recorded answer in replay

Messages name the file or option, say what was expected and what to do next.
"""

from __future__ import annotations

__all__ = [
    "BadInputError",
    "CassetteError",
    "CassetteWriteError",
    "ConfigError",
    "ReplayMissError",
    "TapeproxyError",
]


class TapeproxyError(Exception):
    """Root of every error tapeproxy raises on purpose."""

    exit_code: int = 1


class BadInputError(TapeproxyError):
    """The user gave input that cannot be used (file, option, argument)."""

    exit_code = 2


class CassetteError(BadInputError):
    """A cassette file cannot be read: not zstd, truncated, invalid JSON, wrong schema."""


class ConfigError(BadInputError):
    """A configuration value (flag, environment variable or config file key) is invalid."""


class CassetteWriteError(TapeproxyError):
    """Writing a cassette failed; the file already on disk, if any, is untouched."""


class ReplayMissError(TapeproxyError):
    """A request had no recorded answer while replaying."""

    exit_code = 3
