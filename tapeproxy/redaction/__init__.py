"""Redaction at record time, secret detectors and the cassette linter (pure: no mitmproxy,
no click)."""

from __future__ import annotations

from tapeproxy.native import load_fresh

load_fresh()  # (before any module of this package that may have been compiled is imported)

from tapeproxy.redaction.placeholders import is_placeholder, marker  # noqa: E402
from tapeproxy.redaction.redactor import Redactor  # noqa: E402
from tapeproxy.redaction.scanner import Hit, fingerprint  # noqa: E402

__all__ = ["Hit", "Redactor", "fingerprint", "is_placeholder", "marker"]
