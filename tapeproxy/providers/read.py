"""Reading any known provider's answer: which wire format a body is in, and what it says."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from tapeproxy.providers import anthropic, gemini, openai, other
from tapeproxy.providers.llm import LLMResponse
from tapeproxy.providers.messages import Message, messages

__all__ = ["error_type", "extract"]

Reader = Callable[[Sequence[Message], bool], LLMResponse | None]


def extract(body: bytes) -> LLMResponse | None:
    """Read an LLM response body (decoded, whole), or None when it is not one we know.

    Error bodies (``{"error": ...}``) are not answers and give None; see `error_type`.
    """
    found, streamed = messages(body)
    if not found or (not streamed and found[0].data.get("error") not in (None, "", {})):
        return None
    readers: tuple[Reader, ...] = (
        openai.read_responses,
        anthropic.read,
        gemini.read,
        other.read_cohere,
        other.read_ollama,
        openai.read_chat,
    )
    for reader in readers:
        result = reader(found, streamed)
        if result is not None:
            return result
    return None


def error_type(body: bytes) -> str | None:
    """The provider's error type in an error body (``error.type``, Gemini ``error.status``,
    else ``error.code``), or None when the body carries no error."""
    found, _ = messages(body)
    for message in found:
        error = message.data.get("error")
        if isinstance(error, dict):
            for name in ("type", "status", "code"):
                value = error.get(name)
                if isinstance(value, str | int) and not isinstance(value, bool) and value != "":
                    return str(value)
            return "error"
        if isinstance(error, str) and error:
            return "error"
    return None
