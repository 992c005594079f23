"""Answers written once per shape, then stamped with each request's ids.

What a writer sends for an answer depends on a few facts of the request (its shape: the
endpoint, provider, host, model, streaming flags and the input-token estimate) and on the
values it draws from `Ids`. So the first answer of a shape is written with placeholders in
place of the drawn values, each as long as the value it stands for (`_Placeholders`), and the
answers after it are that output with the values drawn for them put in the placeholders'
places: a few joins, where writing serialises every event again. Equal lengths keep each
event's bounds.

The first stamped answer of each shape is compared with the writer's own output for the same
request. A shape whose stamp differs is always written directly: the answer's text holds a
placeholder by chance, or a writer computes with a drawn value (`Ids.unit`, arithmetic on a
timestamp). Writers that echo the request's body (`write.STAMPED` leaves them out) are
always written directly.
"""

from __future__ import annotations

import operator
import threading
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

from tapeproxy.providers.answer import Answer, Ids, RequestFacts, Written, input_tokens
from tapeproxy.providers.write import Writer

__all__ = ["Stamps"]

_MARK = "\x7f"
"""Placeholders are made of DEL characters, which JSON keeps as they are and no id holds."""
_CODES = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_CREATED = 9_999_999_000
"""Timestamps stand in as ten-digit numbers from here (a drawn one always has ten digits)."""
_MAX_SHAPES = 1024
_UNSEEN = object()


class _Unstampable(Exception):
    """The writer draws a value a placeholder cannot stand for."""


def _code(n: int) -> str:
    out = _CODES[n % 26]
    while n >= 26:
        n = n // 26 - 1
        out = _CODES[n % 26] + out
    return out


class _Placeholders(Ids):
    """Gives a placeholder for each value drawn, and notes the draws in order."""

    def __init__(self) -> None:
        super().__init__(b"")
        self.draws: list[tuple[str, int, str]] = []
        """(method, length, placeholder) per value drawn."""

    def _mark(self, method: str, n: int) -> str:
        code = _code(len(self.draws))  # a value too short for its code fails the check
        text = (_MARK + code + _MARK * n)[:n]
        self.draws.append((method, n, text))
        return text

    def alnum(self, n: int) -> str:
        return self._mark("alnum", n)

    def hex(self, n: int) -> str:
        return self._mark("hex", n)

    def b64(self, n: int) -> str:
        return self._mark("b64", n)

    def digits(self, n: int) -> str:
        return self._mark("digits", n)

    def created(self) -> int:
        value = _CREATED + len(self.draws)
        self.draws.append(("created", 10, str(value)))
        return value

    def unit(self) -> float:
        raise _Unstampable("unit")


class _Slots[T: (str, bytes)]:
    """A text cut at its placeholders, kept as a %-format: `fill` puts a value in each place.

    Args:
        text: the text with placeholders.
        marks: the placeholders; `fill` takes a value for each, in this order.
    """

    def __init__(self, text: T, marks: Sequence[T]) -> None:
        found = []
        for index, mark in enumerate(marks):
            at = text.find(mark)
            while at >= 0:
                found.append((at, index, len(mark)))
                at = text.find(mark, at + len(mark))
        found.sort()
        parts, order, at = [], [], 0
        self.overlap = False
        """Whether two placeholders overlap (then a stamp cannot be trusted)."""
        for start, index, size in found:
            self.overlap = self.overlap or start < at
            parts.append(text[at:start])
            order.append(index)
            at = start + size
        parts.append(text[at:])
        self.holds = bool(order)
        percent, slot = ("%", "%s") if isinstance(text, str) else (b"%", b"%s")
        escaped: list[Any] = [part.replace(percent, percent * 2) for part in parts]
        self._format: Any = slot.join(escaped)
        self._pick = operator.itemgetter(*order) if len(order) > 1 else None
        self._one = order[0] if len(order) == 1 else None

    def fill(self, values: Sequence[T]) -> T:
        if self._pick is not None:
            return self._format % self._pick(values)  # type: ignore[no-any-return]
        if self._one is not None:
            return self._format % (values[self._one],)  # type: ignore[no-any-return]
        return self._format  # type: ignore[no-any-return]


@dataclass(frozen=True)
class _Stamp:
    """A shape's answer with placeholders: status, headers, the body and its events' spans."""

    status: int
    reason: str
    streamed: bool
    kinds: tuple[tuple[str, int], ...]
    """What the writer drew, in order: (`Ids` method, length)."""
    headers: tuple[tuple[str, str | _Slots[str]], ...]
    """Each header's value, or its slots when it holds a placeholder."""
    body: _Slots[bytes]
    spans: tuple[tuple[int, int], ...]
    """Where each event lies in the body."""

    @classmethod
    def of(cls, written: Written, draws: Sequence[tuple[str, int, str]]) -> _Stamp | None:
        marks = [mark for _, _, mark in draws]
        headers: list[tuple[str, str | _Slots[str]]] = []
        for name, value in written.headers:
            slots = _Slots(value, marks)
            if slots.overlap:
                return None
            headers.append((name, slots if slots.holds else value))
        body = _Slots(b"".join(written.events), [m.encode("utf-8") for m in marks])
        if body.overlap:
            return None
        spans, at = [], 0
        for event in written.events:
            spans.append((at, at + len(event)))
            at += len(event)
        kinds = tuple((method, n) for method, n, _ in draws)
        w = written
        return cls(w.status, w.reason, w.streamed, kinds, tuple(headers), body, tuple(spans))

    def fill(self, ids: Ids) -> Written:
        values = ids.values(self.kinds)
        whole = self.body.fill([v.encode("ascii") for v in values])
        spans = self.spans
        events = (whole,) if len(spans) == 1 else tuple(whole[a:b] for a, b in spans)
        headers = tuple(
            (name, v if type(v) is str else v.fill(values))  # type: ignore[union-attr]
            for name, v in self.headers
        )
        return Written(self.status, self.reason, headers, events, self.streamed)


class Stamps:
    """Stamped answers of one run (thread-safe; at most `_MAX_SHAPES` shapes kept).

    Args:
        writer: the writer whose output is stamped (`write.write`).
        stamped: the endpoints whose writers read nothing of the request but its shape.
    """

    def __init__(self, writer: Writer, stamped: frozenset[str]) -> None:
        self._writer = writer
        self._stamped = stamped
        self._shapes: dict[Hashable, _Stamp | None] = {}
        self._lock = threading.Lock()

    def write(self, facts: RequestFacts, answer: Answer, ids: Ids, identity: Hashable) -> Written:
        """What `writer(facts, answer, ids)` gives, leaving `ids` where the writer would.

        Args:
            identity: stands for the answer: equal for answers that write the same.
        """
        if facts.endpoint not in self._stamped:
            return self._writer(facts, answer, ids)
        shape = (
            identity,
            facts.endpoint,
            facts.provider,
            facts.host,
            facts.model,
            facts.stream,
            facts.include_usage,
            facts.sse,
            input_tokens(answer, facts),
        )
        with self._lock:
            stamp = self._shapes.get(shape, _UNSEEN)
        if isinstance(stamp, _Stamp):
            return stamp.fill(ids)
        if stamp is None:  # seen, and written directly
            return self._writer(facts, answer, ids)
        before = ids.copy()
        stamp = self._stamp(facts, answer)
        direct = self._writer(facts, answer, ids)
        if stamp is not None and stamp.fill(before) != direct:
            stamp = None
        with self._lock:
            if len(self._shapes) >= _MAX_SHAPES:
                self._shapes.clear()
            self._shapes[shape] = stamp
        return direct

    def _stamp(self, facts: RequestFacts, answer: Answer) -> _Stamp | None:
        marks = _Placeholders()
        try:
            written = self._writer(facts, answer, marks)
        except _Unstampable:
            return None
        return _Stamp.of(written, marks.draws)
