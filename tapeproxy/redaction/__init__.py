"""Redaction at record time, secret detectors and the cassette linter (pure: no mitmproxy,
no click)."""

from __future__ import annotations

from tapeproxy.redaction.redactor import Redactor, marker

__all__ = ["Redactor", "marker"]
