"""Where each provider's answers hold what the model wrote: assistant text, reasoning, tool
call arguments (a JSON string at OpenAI, an object at Anthropic and Gemini), plain and
streamed. Redaction keeps these as the provider sent them unless a detector proves a token
there: a test's tool that gets ``{"password": "<redacted>"}`` instead of what the model
chose sends another next request, and the replay misses.

Paths are those of `tapeproxy.redaction.jsonscan` (``.choices[0].message.content``), relative
to one answer document or one streamed event; a path below one of these (a key of a tool
call's input object) is generated too.
"""

from __future__ import annotations

import re

__all__ = ["is_generated"]

_I = r"\[\d+\]"
_GENERATED = re.compile(
    "^(?:"
    # OpenAI chat completions (and every OpenAI-compatible host), plain and streamed
    rf"\.choices{_I}\.(?:message|delta)\.(?:content|refusal|reasoning_content|reasoning|"
    rf"(?:tool_calls{_I}\.)?function(?:_call)?\.arguments)"
    rf"|\.choices{_I}\.text"  # legacy completions
    # OpenAI Responses: the answer, its streamed events, and the answer a final event nests
    rf"|(?:\.response)?\.output{_I}\.(?:content{_I}\.text|summary{_I}\.text|arguments|input)"
    r"|\.output_text|\.delta|\.text|\.arguments"
    rf"|\.(?:item|part)\.(?:content{_I}\.text|summary{_I}\.text|text|arguments|input)"
    # Anthropic messages, plain and streamed
    rf"|(?:\.message)?\.content{_I}\.(?:text|thinking|input)"
    r"|\.content_block\.(?:text|thinking|input)"
    r"|\.delta\.(?:text|partial_json|thinking)"
    # Gemini generateContent / streamGenerateContent
    rf"|\.candidates{_I}\.content\.parts{_I}\.(?:text|functionCall\.args)"
    r")(?=$|[.\[])"
)


def is_generated(path: str) -> bool:
    """Whether the JSON value at `path` of an answer is what the model wrote."""
    return _GENERATED.match(path) is not None
