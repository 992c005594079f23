"""Writing a neutral answer in the wire format a request calls for (the one dispatch over
the provider modules' writers)."""

from __future__ import annotations

from collections.abc import Callable

from tapeproxy.providers import anthropic, gemini, openai
from tapeproxy.providers.answer import Answer, Failure, Ids, RequestFacts, Written

__all__ = ["STAMPED", "write", "write_failure"]

Writer = Callable[[RequestFacts, Answer, Ids], Written]
FailureWriter = Callable[[RequestFacts, Failure, Ids], Written]

_WRITERS: dict[str, Writer] = {
    "chat": openai.write_chat,
    "responses": openai.write_responses,
    "embeddings": openai.write_embeddings,
    "messages": anthropic.write_messages,
    "generate": gemini.write_generate,
}

STAMPED = frozenset({"chat", "messages", "generate"})
"""The endpoints whose writers (answers and errors) read nothing of the request but its shape,
the facts `stamp.Stamps` keys by: Responses and embeddings echo fields of the request body."""


def write_failure(facts: RequestFacts, failure: Failure, ids: Ids) -> Written:
    """An error as the request's API sends it: Anthropic's envelope for Messages, Google's
    for Gemini, OpenAI's for every OpenAI-shaped API (Azure and compatible servers too)."""
    if facts.endpoint == "messages":
        return anthropic.write_error(facts, failure, ids)
    if facts.endpoint == "generate":
        return gemini.write_error(facts, failure, ids)
    return openai.write_error(facts, failure, ids)


def write(facts: RequestFacts, answer: Answer, ids: Ids) -> Written:
    """The answer in the request's wire format (its error, when it is one)."""
    if answer.error is not None:
        return write_failure(facts, answer.error, ids)
    return _WRITERS[facts.endpoint](facts, answer, ids)
