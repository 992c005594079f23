"""SARIF output validates against the SARIF 2.1.0 schema (models generated from the official
schema, shipped by pydantic-sarif); JSON Lines carry the documented fields."""

from __future__ import annotations

import json

from pydantic_sarif.model import StaticAnalysisResultsFormatSarifVersion210JsonSchema as Sarif

from tapeproxy.redaction.lint import Finding
from tapeproxy.redaction.report import render

_SECRET = "ghp_" + "aB3dE5fG7h" * 3 + "000000"


def _findings() -> list[Finding]:
    return [
        Finding("c.json.zst", 3, "interactions[3].request.headers.x-api-key", "github", _SECRET),
        Finding("notes.txt", None, "line 2", "openai", "sk-" + "Zq9" * 16, line=2),
    ]


def test_sarif_is_valid_sarif_2_1_0() -> None:
    doc = json.loads(render(_findings(), "sarif"))
    Sarif.model_validate(doc)
    assert doc["runs"][0]["results"][0]["ruleId"] == "github"
    assert _SECRET not in json.dumps(doc)


def test_empty_sarif_is_valid() -> None:
    Sarif.model_validate(json.loads(render([], "sarif")))


def test_json_lines_fields_and_reveal() -> None:
    lines = render(_findings(), "json").splitlines()
    first = json.loads(lines[0])
    assert set(first) == {"file", "interaction", "location", "detector", "fingerprint", "preview"}
    assert first["interaction"] == 3 and _SECRET not in lines[0]
    revealed = json.loads(render(_findings(), "json", reveal=True).splitlines()[0])
    assert revealed["secret"] == _SECRET


def test_text_masks_the_secret() -> None:
    text = render(_findings(), "text")
    assert "c.json.zst interaction 3: interactions[3].request.headers.x-api-key: github" in text
    assert _SECRET not in text and "2 secret(s) in 2 file(s)" in text
