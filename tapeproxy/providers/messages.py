"""Splitting a response body into the JSON messages it carries: one document, an SSE stream,
NDJSON lines, or a JSON array streamed piece by piece (Gemini without ``alt=sse``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

__all__ = ["Message", "messages"]


@dataclass(frozen=True)
class Message:
    """One JSON object found in a body, with its SSE event name when it had one."""

    data: dict[str, Any]
    event: str | None = None


def messages(body: bytes) -> tuple[tuple[Message, ...], bool]:
    """The JSON objects in a response body, in order, and whether the body was a stream.

    A single JSON object gives one message and ``False``; SSE, NDJSON and JSON arrays give
    one message per object and ``True``. Anything that is not JSON (SSE ``[DONE]``, comments,
    binary frames) is skipped, so a body that holds no JSON gives ``()``.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return (), False
    stripped = text.lstrip()
    if stripped.startswith("["):
        return _json_array(stripped), True
    if stripped.startswith("{"):
        whole = _loads(stripped)
        if isinstance(whole, dict):
            return (Message(whole),), False
        return _ndjson(stripped), True
    return _sse(text), True


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _json_array(text: str) -> tuple[Message, ...]:
    whole = _loads(text)
    if isinstance(whole, list):
        return tuple(Message(item) for item in whole if isinstance(item, dict))
    # A truncated array: decode the objects one by one until the text stops making sense.
    decoder = json.JSONDecoder()
    found: list[Message] = []
    pos = 1
    while pos < len(text):
        while pos < len(text) and text[pos] in " \t\r\n,]":
            pos += 1
        try:
            item, pos = decoder.raw_decode(text, pos)
        except ValueError:
            break
        if isinstance(item, dict):
            found.append(Message(item))
    return tuple(found)


def _ndjson(text: str) -> tuple[Message, ...]:
    found = (_loads(line) for line in text.splitlines() if line.strip())
    return tuple(Message(item) for item in found if isinstance(item, dict))


def _sse(text: str) -> tuple[Message, ...]:
    found: list[Message] = []
    normalized = text.replace("\r\n", "\n").replace("\r", "\n")
    for block in normalized.split("\n\n"):
        event: str | None = None
        data: list[str] = []
        for line in block.split("\n"):
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                event = value
            elif field == "data":
                data.append(value)
        item = _loads("\n".join(data)) if data else None
        if isinstance(item, dict):
            found.append(Message(item, event))
    return tuple(found)
