"""Reading a request: which provider and API it is for, the model, whether it asks for a
stream, and the last user message, whatever the wire format.

The API is known by its path (so an OpenAI-compatible server such as OpenRouter, Groq,
vLLM or Ollama's /v1 is read as OpenAI, and any server at `/v1/messages` as Anthropic); the
provider by its host.
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tapeproxy.providers.answer import Endpoint, RequestFacts

__all__ = ["provider_of", "read_request"]

_GEMINI_MODEL = re.compile(r"/models/([^/:]+):(stream)?[gG]enerateContent$")
_AZURE_DEPLOYMENT = re.compile(r"/openai/deployments/([^/]+)/")


def provider_of(host: str, path: str) -> str:
    """`openai`, `azure`, `anthropic`, `gemini`, or the host itself for any other server."""
    host = host.lower()
    if host == "api.openai.com":
        return "openai"
    if host.endswith((".openai.azure.com", ".cognitiveservices.azure.com")) or (
        "/openai/deployments/" in path
    ):
        return "azure"
    if host == "api.anthropic.com":
        return "anthropic"
    if host.endswith(("generativelanguage.googleapis.com", "aiplatform.googleapis.com")):
        return "gemini"
    return host


def _endpoint(path: str) -> Endpoint | None:
    if path.endswith("/chat/completions"):
        return "chat"
    if path.endswith("/responses"):
        return "responses"
    if path.endswith("/embeddings"):
        return "embeddings"
    if path.endswith("/messages"):
        return "messages"
    if path.endswith(("generateContent", "GenerateContent")) and _GEMINI_MODEL.search(path):
        return "generate"
    return None


def read_request(method: str, url: str, body: bytes, parsed: Any = None) -> RequestFacts | None:
    """The facts of an LLM API request, or None when the path names no API known here (or
    the method is not POST).

    Args:
        parsed: the body's JSON document, when the caller has parsed it already (None: the
            body is parsed here).
    """
    if method.upper() != "POST":
        return None
    by_url = _url_facts(url)
    if by_url is None:
        return None
    endpoint, provider, host, sse, path_model, path_stream, deployment = by_url
    if parsed is not None:
        doc = parsed
    else:
        try:
            doc = json.loads(body) if body else {}
        except ValueError:
            doc = {}
    if not isinstance(doc, dict):
        doc = {}
    model = doc.get("model") if isinstance(doc.get("model"), str) else None
    stream = doc.get("stream") is True
    if endpoint == "generate":
        model, stream = path_model, path_stream
    elif model is None:
        model = deployment
    options = doc.get("stream_options")
    return RequestFacts(
        provider=provider,
        endpoint=endpoint,
        model=model,
        stream=stream,
        include_usage=isinstance(options, dict) and options.get("include_usage") is True,
        sse=sse,
        body=doc,
        last_user=_last_user(doc, endpoint),
        host=host,
    )


@functools.lru_cache(maxsize=256)
def _url_facts(
    url: str,
) -> tuple[Endpoint, str, str, bool, str | None, bool, str | None] | None:
    """What the URL alone says: endpoint, provider, host, Gemini's `alt=sse`, the model and
    stream named by a Gemini path, and an Azure deployment (None: no API known here).

    Cached: a run sends most of its requests to a handful of URLs."""
    parts = urlsplit(url)
    endpoint = _endpoint(parts.path)
    if endpoint is None:
        return None
    sse = "alt=" in parts.query and parse_qs(parts.query).get("alt") == ["sse"]
    path_model, path_stream = None, False
    if endpoint == "generate":
        found = _GEMINI_MODEL.search(parts.path)
        assert found is not None
        path_model, path_stream = found.group(1), found.group(2) is not None
    deployment = _AZURE_DEPLOYMENT.search(parts.path)
    host = (parts.hostname or "").lower()
    return (
        endpoint,
        provider_of(host, parts.path),
        host,
        sse,
        path_model,
        path_stream,
        deployment.group(1) if deployment is not None else None,
    )


def _text_of(content: Any) -> str:
    """The text of a message's content: a string, or the text parts of a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        out = []
        for part in content:
            if isinstance(part, str):
                out.append(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                out.append(part["text"])
        return "".join(out)
    return ""


def _last_user(doc: dict[str, Any], endpoint: Endpoint) -> str:
    if endpoint == "generate":
        contents = doc.get("contents")
        if isinstance(contents, dict):
            contents = [contents]
        for item in reversed(contents if isinstance(contents, list) else []):
            if isinstance(item, dict) and item.get("role", "user") == "user":
                return _text_of(item.get("parts"))
        return ""
    if endpoint == "embeddings":
        return _text_of(doc.get("input"))
    items = doc.get("input") if endpoint == "responses" else doc.get("messages")
    if isinstance(items, str):
        return items
    for item in reversed(items if isinstance(items, list) else []):
        if isinstance(item, dict) and item.get("role", "user") == "user":
            return _text_of(item.get("content"))
    return ""
