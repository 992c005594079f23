"""A stubs file seen as a cassette, so that `show`, `diff` and `stats` read it like one: each
rule becomes one exchange, a representative request (built from what the rule matches) and
the answer the rule writes for it (its first answer; a scripted rule gives one exchange per
answer).

The request stands for the rule, not for every request it answers: its URL is the
provider's usual one for the rule's endpoint, its model the rule's glob without wildcards,
its user message the rule's `last_user` text.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tapeproxy import __version__
from tapeproxy.cassettes.key import request_key
from tapeproxy.cassettes.model import (
    Body,
    Cassette,
    Interaction,
    MatchRules,
    Request,
    Response,
    Timing,
    new_cassette,
)
from tapeproxy.errors import BadInputError, CassetteError
from tapeproxy.providers.answer import Ids
from tapeproxy.providers.request import read_request
from tapeproxy.providers.stubs import Rule, load_rules
from tapeproxy.providers.write import write

__all__ = ["STUBS_SUFFIXES", "is_stubs_file", "load_any", "stubs_cassette"]

STUBS_SUFFIXES = (".yaml", ".yml", ".json", ".toml")

_URLS = {
    (
        "chat",
        "azure",
    ): "https://example.openai.azure.com/openai/deployments/{model}/chat/completions",
    (
        "embeddings",
        "azure",
    ): "https://example.openai.azure.com/openai/deployments/{model}/embeddings",
    ("chat", ""): "https://api.openai.com/v1/chat/completions",
    ("responses", ""): "https://api.openai.com/v1/responses",
    ("embeddings", ""): "https://api.openai.com/v1/embeddings",
    ("messages", ""): "https://api.anthropic.com/v1/messages",
    (
        "generate",
        "",
    ): "https://generativelanguage.googleapis.com/v1beta/models/{model}:generateContent",
}
_DEFAULT_MODELS = {
    "messages": "claude-sonnet-4-5",
    "generate": "gemini-2.5-flash",
    "embeddings": "text-embedding-3-small",
}


def is_stubs_file(path: str | os.PathLike[str]) -> bool:
    """Whether a path names a stubs file (by its suffix; a cassette is `.json.zst`)."""
    name = str(path).lower()
    return name.endswith(STUBS_SUFFIXES) and not name.endswith(".zst")


def load_any(path: str | os.PathLike[str]) -> Cassette:
    """A cassette file, or a stubs file seen as one.

    Raises:
        CassetteError: a cassette cannot be read, or a stubs file is not valid.
    """
    from tapeproxy.cassettes.store import load

    if not is_stubs_file(path):
        return load(path)
    try:
        return stubs_cassette(path)
    except CassetteError:
        raise
    except BadInputError as e:
        raise CassetteError(str(e)) from None


def _endpoint(rule: Rule) -> str:
    if rule.match.endpoint:
        return rule.match.endpoint
    provider = (rule.match.provider or "").lower()
    return {"anthropic": "messages", "gemini": "generate"}.get(provider, "chat")


def _request(rule: Rule) -> Request:
    endpoint = _endpoint(rule)
    model = (rule.match.model or _DEFAULT_MODELS.get(endpoint, "gpt-4o-mini")).replace("*", "")
    model = model.replace("?", "") or "model"
    azure = (rule.match.provider or "").lower() == "azure"
    url = _URLS.get((endpoint, "azure" if azure else ""), _URLS[(endpoint, "")])
    url = url.format(model=model)
    user = rule.match.last_user or "..."
    body: dict[str, Any]
    if endpoint == "generate":
        body = {"contents": [{"role": "user", "parts": [{"text": user}]}]}
    elif endpoint == "embeddings" or endpoint == "responses":
        body = {"model": model, "input": user}
    else:
        body = {"model": model, "messages": [{"role": "user", "content": user}]}
        if endpoint == "messages":
            body["max_tokens"] = 1024
    for dotted, value in (rule.match.body or {}).items():
        target = body
        *parents, last = dotted.split(".")
        for step in parents:
            target = target.setdefault(step, {}) if isinstance(target, dict) else {}
        if isinstance(target, dict):
            target[last] = value
    headers = (("content-type", "application/json"), *sorted((rule.match.headers or {}).items()))
    text = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    return Request(method="POST", url=url, headers=headers, body=Body(text=text))


def stubs_cassette(path: str | os.PathLike[str]) -> Cassette:
    """The exchanges a stubs file's rules stand for (see the module's docstring).

    Raises:
        BadInputError: the stubs file is not valid (naming file, rule and field).
    """
    rules = load_rules(Path(path))
    cassette = new_cassette(__version__, "", MatchRules())
    interactions = []
    for index, rule in enumerate(rules):
        request = _request(rule)
        assert request.body is not None and request.body.text is not None
        facts = read_request(request.method, request.url, request.body.text.encode())
        assert facts is not None
        answers = rule.answers if rule.answers is not None else [rule.answer]
        for n, spec in enumerate(answers):
            assert spec is not None
            written = write(facts, spec.neutral(), Ids(f"{path}\0{index}\0{n}".encode()))
            body = written.body.decode("utf-8")
            response = Response(
                status=written.status,
                reason=written.reason,
                headers=written.headers,
                body=Body(text=body) if body else None,
            )
            key = request_key(
                request.method,
                request.url,
                request.headers,
                request.body.text.encode(),
                MatchRules(),
            )
            interactions.append(
                Interaction(key=key, request=request, response=response, timing=Timing())
            )
    return cassette.model_copy(update={"interactions": tuple(interactions)})
