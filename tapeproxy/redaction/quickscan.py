"""Fast finders for the scanner's quick checks, each the exact equal of a regex it replaces.

`re` runs a character class or an alternation of words at every position of a text, about
10-15 ns a character; these run in C or Rust instead, a few times faster on the 1-2 KB answers
every recorded, replayed or linted exchange carries:

- `b64_spans`: the runs of `B64_RUN` (base64 or base64url of 24 characters or more, with its
  padding), found by `bytes.find` of 24 run characters in a translated copy of the text;
- `has_standard_run`: whether a text holds a run of the standard base64 alphabet, the same way;
- `Words`: every place where one of a list of words starts (overlapping), in one Aho-Corasick
  pass (``ahocorasick_rs``), read in windows so that a huge text costs a bounded automaton
  state.

Tests compare each with its regex on generated texts (tests/redaction/test_quickscan.py).
"""

from __future__ import annotations

import bisect
import itertools
import re
from collections.abc import Sequence

from ahocorasick_rs import AhoCorasick, BytesAhoCorasick

__all__ = ["B64_RUN", "Words", "b64_spans", "has_run", "has_standard_run", "run_holders"]

B64_RUN = re.compile(r"(?<![A-Za-z0-9+/_-])[A-Za-z0-9+/_-]{24,}={0,2}")
"""What counts as a base64 run: 24 or more base64 or base64url characters not preceded by
one, and up to two ``=`` of padding."""

_RUN_CHARS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/_-"
_TABLE = bytes(ord("a") if c in _RUN_CHARS else c if c == ord("=") else 32 for c in range(256))
_RUN_START = b"a" * 24
_RUN_REST = re.compile(rb"a*={0,2}")


_COPY_MAX = 1 << 20
"""Longest text given a translated copy; a longer one goes through the regex (slower, but a
100 MiB body is not copied twice over to find its runs)."""


def b64_spans(text: str) -> list[tuple[int, int]]:
    """The ``(start, end)`` of each `B64_RUN` match in `text`, in order."""
    if len(text) > _COPY_MAX or not text.isascii():  # (else offsets would be off)
        return [m.span() for m in B64_RUN.finditer(text)]
    marked = text.encode("ascii").translate(_TABLE)
    out: list[tuple[int, int]] = []
    at = marked.find(_RUN_START)
    while at >= 0:
        # The first place 24 run characters follow is where a run starts: the character
        # before it is none (or `=` just after an earlier run's padding, as in the regex).
        end = _RUN_REST.match(marked, at + 24)
        assert end is not None  # `a*={0,2}` always matches
        out.append((at, end.end()))
        at = marked.find(_RUN_START, end.end())
    return out


_STANDARD_TABLE = bytes(
    ord("a") if c in _RUN_CHARS[:-2] else 32 for c in range(256)
)  # the standard alphabet only: no _ or -


def has_standard_run(text: str, length: int) -> bool:
    """Whether `text` holds `length` characters of the standard base64 alphabet in a row:
    ``re.search(f"[A-Za-z0-9+/]{{{length}}}", text)``, found as above."""
    if len(text) > _COPY_MAX:
        return re.search(f"[A-Za-z0-9+/]{{{length}}}", text) is not None
    # non-ASCII characters (and lone surrogates) become bytes >= 0x80, which break a run
    marked = text.encode("utf-8", "surrogatepass").translate(_STANDARD_TABLE)
    return b"a" * length in marked


def has_run(text: str, length: int = 24) -> bool:
    """Whether `text` holds `length` run characters (base64 or base64url) in a row:
    ``re.search(f"[A-Za-z0-9+/_-]{{{length}}}", text)``, found as `has_standard_run` does
    (the regex tries its class at every position: 15 us for 2.8 KB of header values)."""
    if len(text) > _COPY_MAX:
        return re.search(f"[A-Za-z0-9+/_-]{{{length}}}", text) is not None
    return b"a" * length in text.encode("utf-8", "surrogatepass").translate(_TABLE)


def run_holders(values: Sequence[str], length: int = 24) -> set[int]:
    """The positions of the `values` that `has_run`, found in one pass over them joined by
    newlines (which no run crosses)."""
    joined = "\n".join(values)
    if len(joined) > _COPY_MAX or not joined.isascii():  # (else offsets would be off)
        return {k for k, value in enumerate(values) if has_run(value, length)}
    marked = joined.encode("ascii").translate(_TABLE)
    starts = list(itertools.accumulate((len(v) + 1 for v in values), initial=0))
    out: set[int] = set()
    run = b"a" * length
    at = marked.find(run)
    while at >= 0:
        k = bisect.bisect(starts, at) - 1
        out.add(k)
        at = marked.find(run, starts[k + 1])  # (the next value: this one holds a run)
    return out


_WINDOW = 1 << 18


class Words:
    """Where each of `words` starts in a text, overlapping matches included.

    The automaton keeps about 7 bytes per character it is given, so a long text is read in
    windows of `_WINDOW` characters (overlapping by a word's length); a text it cannot take
    (lone surrogates, kept from undecodable bytes) goes through an equivalent regex.
    """

    def __init__(self, words: Sequence[str]) -> None:
        self.words = tuple(words)
        self._automaton = AhoCorasick(list(self.words))
        self._ascii = BytesAhoCorasick([w.encode() for w in self.words])
        self._overlap = max(len(w) for w in self.words) - 1
        self._regex = re.compile("(?=" + "|".join(re.escape(w) for w in self.words) + ")")

    def hits(self, text: str) -> list[tuple[int, int]]:
        """``(start, index of the word)`` for every occurrence of every word, by start."""
        if len(text) <= _WINDOW:
            return sorted(self._in(text, 0))
        found: list[tuple[int, int]] = []
        for at in range(0, len(text), _WINDOW):
            window = text[at : at + _WINDOW + self._overlap]
            found += [(s, i) for s, i in self._in(window, at) if s < at + _WINDOW]
        return sorted(found)

    def _in(self, text: str, offset: int) -> list[tuple[int, int]]:
        if text.isascii():  # (its bytes: the str automaton's conversion cost a third more)
            found = self._ascii.find_matches_as_indexes(text.encode("ascii"), overlapping=True)
            return [(offset + s, i) for i, s, _ in found]
        try:
            return [
                (offset + s, i)
                for i, s, _ in self._automaton.find_matches_as_indexes(text, overlapping=True)
            ]
        except UnicodeEncodeError:
            return [
                (offset + m.start(), i)
                for m in self._regex.finditer(text)
                for i, w in enumerate(self.words)
                if text.startswith(w, m.start())
            ]
