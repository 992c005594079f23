"""Stub rules from a cassette (`tapeproxy stubs from-cassette`): one rule per recorded LLM
answer, matching its endpoint, model and last user message, answering what was recorded.

A starting point to edit: recorded answers become hand-written ones that no longer depend
on the exact request bytes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tapeproxy.cassettes.model import body_bytes
from tapeproxy.cassettes.store import load
from tapeproxy.providers.read import error_type, extract
from tapeproxy.providers.request import read_request

__all__ = ["rules_from_cassette", "to_yaml"]


def rules_from_cassette(path: str | Path) -> list[dict[str, Any]]:
    """One stub rule (as plain data) per interaction whose request is a known LLM API call
    and whose answer reads as an LLM answer or a provider error; others are skipped."""
    rules: list[dict[str, Any]] = []
    seen: set[str] = set()
    for it in load(path).interactions:
        req, resp = it.request, it.response
        facts = read_request(req.method, req.url, body_bytes(req.body))
        if facts is None or resp is None:
            continue
        body = body_bytes(resp.body)
        answer: dict[str, Any]
        if resp.status >= 400:
            kind = error_type(body)
            answer = {"error": {"status": resp.status, **({"type": kind} if kind else {})}}
        else:
            read = extract(body)
            if read is None:
                continue
            answer = {}
            if read.tool_calls:
                answer["tool_calls"] = [
                    {"name": c.name, "arguments": c.arguments} for c in read.tool_calls
                ]
            if (read.text or not read.tool_calls) and facts.endpoint != "embeddings":
                answer["text"] = read.text
            if read.usage is not None and read.usage.input_tokens is not None:
                answer["usage"] = {
                    "input": read.usage.input_tokens,
                    "output": read.usage.output_tokens or 0,
                }
            if "text" in answer and "tool_calls" in answer:
                del answer["text"]  # a rule answers with one kind
        match: dict[str, Any] = {"endpoint": facts.endpoint}
        if facts.model:
            match["model"] = facts.model
        if facts.last_user:
            match["last_user"] = facts.last_user
        fingerprint = repr(sorted(match.items()))
        if fingerprint in seen:
            continue  # the first recorded answer for the same match wins, as rules do
        seen.add(fingerprint)
        rules.append({"match": match, "answer": answer})
    return rules


def to_yaml(rules: list[dict[str, Any]]) -> str:
    """Rules as a YAML stubs file."""
    return yaml.safe_dump(rules, sort_keys=False, allow_unicode=True, width=100)
