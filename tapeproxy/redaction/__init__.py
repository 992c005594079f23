"""Redaction at record time, secret detectors and the cassette linter (pure: no mitmproxy,
no click)."""

from __future__ import annotations

from tapeproxy.redaction.placeholders import is_placeholder, marker
from tapeproxy.redaction.redactor import Redactor
from tapeproxy.redaction.scanner import Hit, fingerprint

__all__ = ["Hit", "Redactor", "fingerprint", "is_placeholder", "marker"]
