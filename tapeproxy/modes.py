"""The record modes, vcrpy's words, in one place: the session, the command line and the pytest
plugin all take their choices and their meaning from here."""

from __future__ import annotations

from typing import Literal

from tapeproxy.errors import ConfigError

__all__ = ["MODES", "Mode", "mode_help", "parse_mode"]

Mode = Literal["none", "once", "new_episodes", "all", "rewrite"]

MODES: tuple[Mode, ...] = ("none", "once", "new_episodes", "all", "rewrite")

_MEANING = {
    "none": "replay only; a request with no recorded answer is a miss",
    "once": "record a cassette that does not exist yet, else like none",
    "new_episodes": "serve what is recorded, record what is missing",
    "all": "re-record every request made, keep the interactions not made again",
    "rewrite": "start the cassette empty: what is not requested again is dropped",
}


def mode_help(modes: tuple[Mode, ...] = MODES) -> str:
    """One line per mode for --help texts."""
    return "; ".join(f"{m}: {_MEANING[m]}" for m in modes)


def parse_mode(value: object, where: str = "record_mode") -> Mode:
    """A record mode from a flag, variable or config value.

    Raises:
        ConfigError: not one of `MODES` (the message names `where`).
    """
    if value not in MODES:
        raise ConfigError(f"{where} {value!r}: expected one of {', '.join(MODES)}")
    return value
