"""Rendering lint findings: readable text, JSON Lines, or a SARIF 2.1.0 log.

Only JSON Lines with ``reveal`` ever carries a whole secret; text and SARIF show the masked
preview and the fingerprint.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from tapeproxy import __version__
from tapeproxy.redaction.lint import Finding

__all__ = ["FORMATS", "render"]

FORMATS = ("text", "json", "sarif")
_SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"


def render(findings: Sequence[Finding], fmt: str, reveal: bool = False) -> str:
    """The findings in `fmt` (one of `FORMATS`), ending with a newline when not empty."""
    if fmt == "json":
        return "".join(
            json.dumps(f.to_dict(reveal), ensure_ascii=False, sort_keys=True) + "\n"
            for f in findings
        )
    if fmt == "sarif":
        return json.dumps(_sarif(findings), indent=2, ensure_ascii=False) + "\n"
    return _text(findings, reveal)


def _text(findings: Sequence[Finding], reveal: bool) -> str:
    lines = []
    for f in findings:
        where = f.file if f.interaction is None else f"{f.file} interaction {f.interaction}"
        shown = f.secret if reveal else f.preview
        lines.append(f"{where}: {f.location}: {f.detector} secret {shown} [{f.fingerprint[:16]}]")
    if findings:
        files = len({f.file for f in findings})
        lines.append(
            f"{len(findings)} secret(s) in {files} file(s). Redact them (re-record), or allow-list "
            "a fingerprint in [tool.tapeproxy] allowlist."
        )
    return "".join(line + "\n" for line in lines)


def _sarif(findings: Sequence[Finding]) -> dict[str, Any]:
    rules = sorted({f.detector for f in findings})
    results = []
    for f in findings:
        where = f"interaction {f.interaction}, " if f.interaction is not None else ""
        location: dict[str, Any] = {
            "physicalLocation": {"artifactLocation": {"uri": f.file}},
            "logicalLocations": [{"fullyQualifiedName": f.location, "kind": "member"}],
        }
        if f.line is not None:
            location["physicalLocation"]["region"] = {"startLine": f.line}
        results.append(
            {
                "ruleId": f.detector,
                "ruleIndex": rules.index(f.detector),
                "level": "error",
                "message": {"text": f"{f.detector} secret {f.preview} at {where}{f.location}"},
                "locations": [location],
                "partialFingerprints": {"secretSha256/v1": f.fingerprint},
            }
        )
    driver = {
        "name": "tapeproxy",
        "version": __version__,
        "informationUri": "https://pypi.org/project/tapeproxy/",
        "rules": [
            {"id": r, "shortDescription": {"text": f"{r} credential in a recorded cassette"}}
            for r in rules
        ],
    }
    return {
        "$schema": _SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [{"tool": {"driver": driver}, "results": results}],
    }
