"""Making cassettes reviewable: `show` (git textconv), `diff` (drift), `stats` (pure: no
mitmproxy, no click)."""

from __future__ import annotations

from tapeproxy.review.show import render, show_file

__all__ = ["render", "show_file"]
