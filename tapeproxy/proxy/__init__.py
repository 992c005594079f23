"""The mitmproxy side of tapeproxy: record, replay and fault addons and the runner."""

from __future__ import annotations

__all__: list[str] = []
