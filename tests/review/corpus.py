"""Reading the shared vcrpy corpus directly (PyYAML), independent of tapeproxy's importer."""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

__all__ = ["CORPUS", "VcrResponse", "corpus_files", "needs_corpus", "read_vcr"]

CORPUS = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus" / "vcr"

# The corpus is third-party material that only the project's own machines have beside the
# checkout; a user's clone has none. What these tests cover is also covered by wire_samples.py.
needs_corpus = pytest.mark.skipif(
    not CORPUS.is_dir(), reason=f"the shared vcrpy corpus is not at {CORPUS.resolve()}"
)


@dataclass(frozen=True)
class VcrResponse:
    """One recorded vcrpy interaction, response body decoded (gzip and parsed_body undone)."""

    file: Path
    method: str
    url: str
    request_body: bytes
    status: int
    reason: str
    headers: tuple[tuple[str, str], ...]
    body: bytes


def corpus_files() -> list[Path]:
    """Every cassette of the corpus, sorted."""
    return sorted(CORPUS.resolve().rglob("*.yaml")) if CORPUS.is_dir() else []


def read_vcr(path: Path) -> list[VcrResponse]:
    """The interactions of one vcrpy YAML file."""
    with path.open("rb") as f:
        doc = yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    out = []
    for item in doc["interactions"]:
        request, response = item["request"], item["response"]
        headers = tuple(
            (str(name), str(value))
            for name, values in (response.get("headers") or {}).items()
            for value in (values if isinstance(values, list) else [values])
            if name.lower() != "content-encoding"
        )
        out.append(
            VcrResponse(
                file=path,
                method=request["method"],
                url=request["uri"],
                request_body=_body(request),
                status=int(response["status"]["code"]),
                reason=str(response["status"].get("message") or ""),
                headers=headers,
                body=_body(response),
            )
        )
    return out


def _body(part: dict[str, Any]) -> bytes:
    if "parsed_body" in part:
        return json.dumps(part["parsed_body"]).encode()
    body = part.get("body")
    if isinstance(body, dict):
        body = body.get("string")
    if body is None:
        return b""
    data = body.encode() if isinstance(body, str) else bytes(body)
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
