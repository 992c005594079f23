"""The placeholder grammar: values that stand in for a secret and are never flagged.

Recognised: our own marker ``<redacted:DETECTOR>``, REDACTED-family words, ``<...>``,
``${...}``, ``{{...}}``, ``%...%``, template fields (``{password}``, ``%(secret)s``,
``$TOKEN``), all-mask bodies (``*``, ``X``, ``x``, ``0``, ``.``, ``•``),
``sk-...ab12`` elisions, a body with at most 3 distinct characters after a known prefix, and
documented dummies (AWS's ``...EXAMPLE``, ``your-api-key``, ``changeme``...).
"""

from __future__ import annotations

import re

__all__ = ["MARKER_RE", "is_placeholder", "marker"]

MARKER_RE = re.compile(r"<redacted:[a-z0-9-]+>")
"""Our own redaction marker, as written by `marker`."""

_WRAPPED = re.compile(
    r"^(?:<[^<>]*>|\$\{[^{}]*\}|\{\{[^{}]*\}\}|%[A-Za-z_][A-Za-z0-9_]*%|\$[A-Z_]{3,}"
    # a template's named field: Python str.format / f-string, %-format, shell variable
    r"|\{[A-Za-z_][A-Za-z0-9_.]{0,31}\}|%\([A-Za-z_][A-Za-z0-9_]{0,31}\)[sdr]"
    r"|\$[A-Za-z_][A-Za-z0-9_]{2,31}"
    # a name and a mask, as cassette filters write them: AUTHORIZATION-XXX, X-API-KEY-XXX
    r"|[A-Za-z][A-Za-z_-]{0,40}[-_ :]?(?:X{3,}|x{3,}|\*{3,}))$"
)
_MASK_CHARS = frozenset("*xX0.•#-_ ")
_ELISION = re.compile(r"(?:\.\.\.|…|\*{3,})")
_DUMMY_WORDS = (
    "redacted",
    "example",
    "placeholder",
    "changeme",
    "change_me",
    "change-me",
    "your_",
    "your-",
    "yourapikey",
    "dummy",
    "replace",
    "insert",
    "not-a-real",
    "not_a_real",
    "notarealkey",
    "fake",
    "xxxx",
    "****",
    "<",
    ">",
    "${",
    "{{",
    "filtered",
    "masked",
    "hidden",
    "removed",
    "scrubbed",
)
_WORD_VALUES = frozenset(
    {
        "none",
        "null",
        "nil",
        "true",
        "false",
        "undefined",
        "secret",
        "password",
        "passwd",
        "token",
        "apikey",
        "api_key",
        "api-key",
        "bearer",
        "basic",
        "test",
        "testing",
        "sample",
        "string",
        "key",
        "default",
        "empty",
        "unknown",
        "anonymous",
        "guest",
        "user",
        "username",
        "admin",
        "pass",
    }
)


def marker(detector: str) -> str:
    """The placeholder that replaces a secret found by `detector`."""
    return f"<redacted:{detector}>"


def is_placeholder(value: str, prefix: str = "") -> bool:
    """Whether `value` is a stand-in for a secret rather than a secret.

    Args:
        value: the candidate secret as found.
        prefix: the known prefix of its format (``sk-proj-``), if any; the rest is the body
            checked for masks and low variety.
    """
    v = value.strip()
    if not v or MARKER_RE.search(v) or _WRAPPED.match(v):
        return True
    low = v.lower()
    if low in _WORD_VALUES or any(w in low for w in _DUMMY_WORDS):
        return True
    if _ELISION.search(v):
        return True
    body = v[len(prefix) :] if prefix and v.startswith(prefix) else v
    if not body or set(body) <= _MASK_CHARS:
        return True
    if len(set(body.lower())) <= 3:
        return True
    if len(v) >= 8 and len(v) - len(v.rstrip(v[-1])) >= 0.6 * len(v):
        return True  # a kept prefix followed by a mask: AIza000000...
    return bool(v.endswith("EXAMPLE") or v.endswith("EXAMPLEKEY"))
