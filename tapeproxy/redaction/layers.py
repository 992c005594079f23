"""Character-level text layers: percent-encoding, HTML character references, UTF-16/32.

A secret can be written one character at a time in either (``%73%6B-...``, ``&#115;&#x6b;-``),
whole or in any mix with plain characters. The scanner decodes such a layer, scans what it
decodes to, and then has to take what it found out of the text as written. This module gives,
for each layer, how to decode it, a regex of the secret as the layer may spell it (each
character as itself or as any of its encodings), and the plain re-encoding of a decoded text
that decodes back to exactly that text (the way out when something found was not spelled
character by character, a base64 run inside the layer).

Text in UTF-16 or UTF-32 is a layer of its own, over bytes: `wide_text` finds and decodes it,
`encoded_like` writes a redacted text back the way it came.
"""

from __future__ import annotations

import functools
import html
import html.entities
import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote_plus

__all__ = [
    "ENTITIES",
    "ENTITY",
    "ENTITY_SIGNAL",
    "PERCENT",
    "Layer",
    "encoded_like",
    "may_be_wide",
    "printable",
    "wide_text",
]


@dataclass(frozen=True)
class Layer:
    """One character-level encoding: `decode` a text, spell a secret in it (`spelled`),
    `encode` a decoded text back (minimally), and write a marker into it (`marker`)."""

    name: str
    decode: Callable[[str], str]
    encode: Callable[[str], str]
    marker: Callable[[str], str]
    _forms: Callable[[str], tuple[str, ...]]

    def spelled(self, secret: str) -> re.Pattern[str]:
        """`secret` with each character as itself or as one of its encodings."""
        return _spelled(secret, self._forms)


@functools.lru_cache(maxsize=256)
def _spelled(secret: str, forms: Callable[[str], tuple[str, ...]]) -> re.Pattern[str]:
    return re.compile("".join(f"(?:{'|'.join((re.escape(c), *forms(c)))})" for c in secret))


def _hex(n: int, width: int = 2) -> str:
    """A hexadecimal number as a regex, either case."""
    return "".join(f"[{d.lower()}{d.upper()}]" if d.isalpha() else d for d in f"{n:0{width}x}")


@functools.lru_cache(maxsize=512)
def _percent_forms(c: str) -> tuple[str, ...]:
    spelled = "".join(f"%{_hex(b)}" for b in c.encode("utf-8"))
    return (spelled, r"\+") if c == " " else (spelled,)


PERCENT = Layer(
    "percent",
    unquote_plus,
    # '%' and '+' are all that `unquote_plus` reads: escaped, the rest decodes as itself
    lambda text: text.replace("%", "%25").replace("+", "%2B"),
    lambda marker: marker,
    _percent_forms,
)
"""Percent-encoding (``%XX`` bytes of UTF-8, ``+`` for a space), as `unquote_plus` reads it."""


def _entity_names() -> dict[str, tuple[str, ...]]:
    names: dict[str, list[str]] = {}
    for name, value in html.entities.html5.items():
        if len(value) == 1 and name.endswith(";"):
            names.setdefault(value, []).append(re.escape(name[:-1]))
    return {c: tuple(sorted(n)) for c, n in names.items()}


_NAMES = _entity_names()


@functools.lru_cache(maxsize=512)
def _entity_forms(c: str) -> tuple[str, ...]:
    n = ord(c)
    forms = [f"&#0*{n};?", f"&#[xX]0*{_hex(n, 1)};?"]
    if c in _NAMES:
        forms.append(f"&(?:{'|'.join(_NAMES[c])});?")
    return tuple(forms)


ENTITIES = Layer(
    "html-entities",
    html.unescape,
    lambda text: text.replace("&", "&amp;"),  # (`html.unescape` reads nothing else)
    html.escape,  # a marker in markup stays text, not a tag
    _entity_forms,
)
"""HTML character references: named (``&quot;``), decimal (``&#115;``) and hexadecimal
(``&#x6b;``), as `html.unescape` reads them."""

ENTITY_SIGNAL = re.compile(
    r"&#(?:0*(?:4[89]|5[0-7]|6[5-9]|[7-9][0-9]|1[01][0-9]|12[0-2])"
    r"|[xX]0*(?:3[0-9]|[46][1-9a-fA-F]|[57][0-9aA]));?"
    r"|&(?:quot|apos|#0*3[49]|#[xX]0*2[27]);"
)
"""Where HTML character references may hide a credential from the quick checks: a letter or
digit written as one (markup escapes punctuation, never those), or an escaped quote (JSON in
an attribute: ``{&quot;apiKey&quot;:&quot;...``, whose names the checks must see)."""

ENTITY = re.compile(r"&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31};)")
"""A character reference `html.unescape` may decode (numeric ones need no ``;``)."""


_BOMS = (
    (b"\xff\xfe\x00\x00", "utf-32-le"),
    (b"\x00\x00\xfe\xff", "utf-32-be"),
    (b"\xff\xfe", "utf-16-le"),
    (b"\xfe\xff", "utf-16-be"),
)
_SAMPLE = 4096


def may_be_wide(data: bytes) -> bool:
    """False only when `wide_text(data)` is None for sure: no byte order mark, no NUL near
    the start (the quick test, without a call through `_wide_shape`)."""
    return data[:2] in (b"\xff\xfe", b"\xfe\xff") or 0 in data[:_SAMPLE]


def wide_text(data: bytes) -> tuple[str, str, int] | None:
    """UTF-16 or UTF-32 text in `data`: ``(text, codec, length of its byte order mark)``,
    found by the mark, or without one by where the NUL bytes are (text that is mostly ASCII
    has one in every other byte of UTF-16, always on the same side, and three in every four of
    UTF-32). None when `data` is not such text: it must decode, and be mostly printable (a
    16-bit audio sample has its NULs in place too, but decodes to control characters)."""
    codec, bom = _wide_shape(data)
    if codec is None:
        return None
    unit = 4 if "32" in codec else 2
    try:
        text = data[bom : bom + (len(data) - bom) // unit * unit].decode(codec)
    except UnicodeDecodeError:
        return None
    return (text, codec, bom) if printable(text[:_SAMPLE]) else None


def printable(text: str) -> bool:
    """Whether `text` is text: not empty, and 95 % of it printable or line breaks and tabs."""
    return bool(text) and sum(c.isprintable() or c in "\n\r\t" for c in text) >= 0.95 * len(text)


def _wide_shape(data: bytes) -> tuple[str | None, int]:
    for mark, codec in _BOMS:
        if data.startswith(mark):
            return codec, len(mark)
    sample = data[:_SAMPLE]
    if len(sample) < 8 or 0 not in sample:
        return None, 0
    quarter = len(sample) // 4
    if sample[2::4].count(0) >= 0.9 * quarter and sample[3::4].count(0) >= 0.9 * quarter:
        return "utf-32-le", 0
    if sample[0::4].count(0) >= 0.9 * quarter and sample[1::4].count(0) >= 0.9 * quarter:
        return "utf-32-be", 0
    half = len(sample) // 2
    odd, even = sample[1::2].count(0), sample[0::2].count(0)
    if odd >= 0.4 * half and even <= 0.05 * half:
        return "utf-16-le", 0
    if even >= 0.4 * half and odd <= 0.05 * half:
        return "utf-16-be", 0
    return None, 0


def encoded_like(data: bytes, text: str) -> bytes:
    """`text` encoded as `data` is: in its UTF-16 or UTF-32 codec with its mark, else UTF-8."""
    found = wide_text(data)
    if found is None:
        return text.encode("utf-8", "surrogatepass")
    _, codec, bom = found
    return data[:bom] + text.encode(codec, "surrogatepass")
