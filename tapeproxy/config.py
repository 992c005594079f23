"""Finding and reading tapeproxy's configuration: `[tool.tapeproxy]` or `tapeproxy.toml`.

Precedence, for every key: flag > environment (`TAPEPROXY_<KEY>`) > config file > default.
Keys are snake_case in TOML, kebab-case as flags, upper-case as environment variables; an
empty string is a value.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tapeproxy.errors import ConfigError

__all__ = ["as_bool", "find_config_file", "load_config", "setting"]

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


def find_config_file(start: Path | None = None) -> Path | None:
    """The nearest `tapeproxy.toml`, or `pyproject.toml` with a `[tool.tapeproxy]` table."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / "tapeproxy.toml"
        if candidate.is_file():
            return candidate
        pyproject = folder / "pyproject.toml"
        if (
            pyproject.is_file()
            and "tool" in _read(pyproject)
            and ("tapeproxy" in _read(pyproject)["tool"])
        ):
            return pyproject
    return None


def load_config(path: Path | None = None, start: Path | None = None) -> dict[str, Any]:
    """The tapeproxy table of the given or nearest config file ({} when there is none).

    Raises:
        ConfigError: the file is not valid TOML or the table is not a table.
    """
    path = path or find_config_file(start)
    if path is None:
        return {}
    doc = _read(path)
    table: Any = doc.get("tool", {}).get("tapeproxy", {}) if path.name == "pyproject.toml" else doc
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [tool.tapeproxy] must be a table")
    return table


def setting(
    key: str,
    flag: Any,
    config: Mapping[str, Any],
    default: Any,
    env: Mapping[str, str] | None = None,
) -> Any:
    """Resolve one setting: the flag if given, else `TAPEPROXY_<KEY>`, else config, else default."""
    if flag is not None:
        return flag
    environ = os.environ if env is None else env
    name = f"TAPEPROXY_{key.upper()}"
    if name in environ:
        return environ[name]
    return config.get(key, default)


def as_bool(value: Any, key: str) -> bool:
    """A true/false setting from a flag, a variable (``1``, ``yes``, ``on``...) or TOML.

    Raises:
        ConfigError: anything else (the message names `key`).
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in (*_TRUE, *_FALSE):
        return value.lower() in _TRUE
    raise ConfigError(f"{key}: expected true or false, got {value!r}")


def _read(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"{path}: cannot read configuration ({e})") from e
