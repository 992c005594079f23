"""The media types that mark a streamed answer, and which framing each one uses.

The one table of them: the recorder decides from it which answers to relay piece by piece,
and the cassette framing and the review readers decide from it how a stored body splits
into events.
"""

from __future__ import annotations

from typing import Literal

__all__ = ["STREAM_MEDIA_TYPES", "StreamKind", "stream_media_kind"]

StreamKind = Literal["sse", "ndjson", "json-array", "eventstream"]

STREAM_MEDIA_TYPES: dict[str, StreamKind] = {
    "text/event-stream": "sse",
    # One JSON document a line, under each of the names servers use for it (Ollama,
    # Cohere v1, JSON Lines).
    "application/x-ndjson": "ndjson",
    "application/ndjson": "ndjson",
    "application/jsonl": "ndjson",
    "application/x-jsonlines": "ndjson",
    "application/stream+json": "ndjson",
    # AWS binary frames (Bedrock).
    "application/vnd.amazon.eventstream": "eventstream",
}
"""Lower-case media type (no parameters) -> the framing of the stream it announces."""


def stream_media_kind(content_type: str) -> StreamKind | None:
    """The framing a Content-Type value announces, or None when it is not a stream type."""
    return STREAM_MEDIA_TYPES.get(content_type.split(";", 1)[0].strip().lower())
