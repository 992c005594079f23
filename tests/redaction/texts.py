"""Every JSON text of both generated corpora, for checks that a quick path agrees with the
full scan."""

from __future__ import annotations

import json

from tests.redaction import foreign
from tests.redaction.corpus import generate


def json_texts() -> list[str]:
    """Every JSON text in both generated corpora: bodies, and other tools' whole files (each
    JSON string inside them too, where bodies and events are kept)."""
    out: list[str] = []
    for doc in generate(seed=17, per_format=6, clean=300):
        ix = doc.interaction
        for body in (ix.request.body, ix.response.body if ix.response else None):
            if body is not None and body.text:
                out.append(body.text)

    def strings(value: object) -> None:
        if isinstance(value, dict):
            for v in value.values():
                strings(v)
        elif isinstance(value, list):
            for v in value:
                strings(v)
        elif isinstance(value, str) and value.lstrip()[:1] in ("{", "["):
            out.append(value)

    for f in foreign.generate(seed=17, per_class=30, clean_per_class=30):
        raw = f.data.decode("utf-8", "replace")
        for text in [raw, *raw.splitlines()]:
            try:
                strings(json.loads(text))
                out.append(text)
            except ValueError:
                pass
    return out
