"""Stub answers: hand-written rules that answer requests no cassette recorded, written in the
provider's own wire format.

A stubs file (YAML, JSON or TOML) is a list of rules (TOML: `[[rules]]`; YAML and JSON may
also hold the list under a `rules` key). Each rule has an optional `match` (all the given
conditions must hold), then `answer` or `answers` (one per repeat of the rule, the last
repeating), and an optional `stream` timing. The first rule that matches answers.

Determinism: ids and timestamps come from (seed, request key, occurrence of that key), and
streamed timing jitter from the same source, so two runs give byte-identical answers.
"""

from __future__ import annotations

import fnmatch
import json
import re
import threading
import tomllib
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from tapeproxy.errors import BadInputError
from tapeproxy.providers.answer import (
    Answer,
    Failure,
    Ids,
    RequestFacts,
    Written,
    input_tokens,
    output_tokens,
)
from tapeproxy.providers.llm import ToolCall
from tapeproxy.providers.stamp import Stamps
from tapeproxy.providers.write import STAMPED, write

__all__ = ["Rule", "StubAnswer", "Stubs", "load_rules", "rule_from"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class MatchSpec(_Strict):
    """Which requests a rule answers; every condition given must hold."""

    provider: str | None = None
    endpoint: Literal["chat", "responses", "messages", "generate", "embeddings"] | None = None
    model: str | None = None
    last_user: str | None = None
    last_user_re: str | None = None
    body: dict[str, Any] | None = None
    headers: dict[str, str] | None = None

    @field_validator("last_user_re")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as e:
                raise ValueError(f"not a valid regular expression: {e}") from None
        return value


class ToolCallSpec(_Strict):
    name: str
    arguments: dict[str, Any] | str = Field(default_factory=dict)


class ErrorSpec(_Strict):
    status: int = Field(ge=400, le=599)
    type: str | None = None
    message: str = ""
    retry_after: float | None = Field(default=None, ge=0)


class UsageSpec(_Strict):
    input: int | None = Field(default=None, ge=0)
    output: int | None = Field(default=None, ge=0)


class AnswerSpec(_Strict):
    """One answer: at most one of `text`, `tool_calls`, `json`, `error` (none at all is an
    empty text, or for embeddings the vectors of the input)."""

    text: str | None = None
    tool_calls: list[ToolCallSpec] | None = None
    json_: Any = Field(default=None, alias="json")
    error: ErrorSpec | None = None
    reasoning: str | None = None
    usage: UsageSpec | None = None
    finish_reason: str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> AnswerSpec:
        kinds = [
            name
            for name, value in (
                ("text", self.text),
                ("tool_calls", self.tool_calls),
                ("json", self.json_),
                ("error", self.error),
            )
            if value is not None
        ]
        if len(kinds) > 1:
            raise ValueError(f"give one of text, tool_calls, json, error; got {', '.join(kinds)}")
        return self

    def neutral(self) -> Answer:
        usage = self.usage or UsageSpec()
        error = None
        if self.error is not None:
            e = self.error
            error = Failure(e.status, e.type, e.message, e.retry_after)
        return Answer(
            text=self.text,
            tool_calls=tuple(ToolCall(c.name, c.arguments) for c in self.tool_calls or ()),
            json=self.json_,
            reasoning=self.reasoning,
            input_tokens=usage.input,
            output_tokens=usage.output,
            finish_reason=self.finish_reason,
            error=error,
        )


class StreamSpec(_Strict):
    """Timing of a streamed answer: the first event after `ttft_ms`, then `tokens_per_s`
    events a second, each gap varied by up to +/- `jitter` of itself (seeded)."""

    ttft_ms: float = Field(default=0.0, ge=0)
    tokens_per_s: float | None = Field(default=None, gt=0)
    jitter: float = Field(default=0.0, ge=0, le=1)


class Rule(_Strict):
    """One stub rule."""

    match: MatchSpec = Field(default_factory=MatchSpec)
    answer: AnswerSpec | None = None
    answers: list[AnswerSpec] | None = Field(default=None, min_length=1)
    stream: StreamSpec | None = None

    @model_validator(mode="after")
    def _answer_or_answers(self) -> Rule:
        if (self.answer is None) == (self.answers is None):
            raise ValueError("give either answer or answers (a list), not both and not neither")
        return self

    def nth(self, n: int) -> AnswerSpec:
        """The answer for the n-th time (from 0) the rule matches; the last repeats."""
        if self.answer is not None:
            return self.answer
        assert self.answers is not None
        return self.answers[min(n, len(self.answers) - 1)]


_RULES = TypeAdapter(list[Rule])


def _read(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BadInputError(f"{path}: stubs file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise BadInputError(f"{path}: cannot read the stubs file: {e}") from None
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            return tomllib.loads(text)
        if suffix == ".json":
            return json.loads(text)
    except ValueError as e:
        raise BadInputError(f"{path}: not valid {suffix.lstrip('.')}: {e}") from None
    import yaml  # here, not at the top: every proxy start imports this module (12 ms)

    try:
        return yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as e:
        raise BadInputError(f"{path}: not valid {suffix.lstrip('.') or 'YAML'}: {e}") from None


def _where(loc: Sequence[int | str]) -> str:
    if not loc:
        return "the file"
    head, *rest = loc
    field = ".".join(str(p) for p in rest if p not in ("function-after", "function-before"))
    if isinstance(head, int):
        return f"rule {head}" + (f", field {field}" if field else "")
    return ".".join(str(p) for p in loc)


def _problems(e: ValidationError, where: str, index_first: bool) -> str:
    lines = []
    for err in e.errors()[:5]:
        message = err["msg"].removeprefix("Value error, ")
        loc = err["loc"] if index_first else (0, *err["loc"])
        lines.append(f"{where}: {_where(loc)}: {message}")
    more = f"\n({e.error_count() - 5} more problems)" if e.error_count() > 5 else ""
    return "\n".join(lines) + more


def rule_from(doc: Mapping[str, Any], label: str) -> Rule:
    """One rule from plain data (as one entry of a stubs file).

    Raises:
        BadInputError: it is not a valid rule (the message names `label` and the field).
    """
    try:
        return Rule.model_validate(dict(doc))
    except ValidationError as e:
        raise BadInputError(
            _problems(e, label, index_first=False).replace("rule 0, ", "")
        ) from None


def load_rules(path: str | Path) -> tuple[Rule, ...]:
    """The rules of one stubs file.

    Raises:
        BadInputError: the file is missing, unreadable or not valid; the message names the
            file, the rule (by its index from 0) and the field.
    """
    path = Path(path)
    doc = _read(path)
    if isinstance(doc, dict) and set(doc) == {"rules"}:
        doc = doc["rules"]
    if doc is None:
        doc = []
    if not isinstance(doc, list):
        raise BadInputError(
            f"{path}: a stubs file is a list of rules (or a `rules` list); got {type(doc).__name__}"
        )
    try:
        return tuple(_RULES.validate_python(doc))
    except ValidationError as e:
        raise BadInputError(_problems(e, str(path), index_first=True)) from None


@dataclass(frozen=True)
class StubAnswer:
    """A stub's answer to one request: which rule (its label), the answer with each event's
    offset (ms from the request) when the rule has stream timing, and the tokens it reports
    (0 for an error)."""

    rule: str
    written: Written
    offsets_ms: tuple[float, ...] | None
    input_tokens: int = 0
    output_tokens: int = 0
    rule_id: int = field(default=0, repr=False, compare=False)
    """Which rule object answered (`Stubs.give_back`)."""


def _dig(doc: Any, dotted: str) -> Any:
    for step in dotted.split("."):
        if isinstance(doc, dict) and step in doc:
            doc = doc[step]
        elif (
            isinstance(doc, list)
            and step.lstrip("-").isdigit()
            and -len(doc) <= int(step) < len(doc)
        ):
            doc = doc[int(step)]
        else:
            return _MISSING
    return doc


_MISSING = object()


def _matches(match: MatchSpec, facts: RequestFacts, headers: Mapping[str, str]) -> bool:
    if match.provider is not None and not fnmatch.fnmatchcase(
        facts.provider, match.provider.lower()
    ):
        return False
    if match.endpoint is not None and match.endpoint != facts.endpoint:
        return False
    if match.model is not None and not fnmatch.fnmatchcase(facts.model or "", match.model):
        return False
    if match.last_user is not None and match.last_user not in facts.last_user:
        return False
    if match.last_user_re is not None and not re.search(match.last_user_re, facts.last_user):
        return False
    for dotted, wanted in (match.body or {}).items():
        if _dig(facts.body, dotted) != wanted:
            return False
    for name, wanted in (match.headers or {}).items():
        if headers.get(name.lower()) != wanted:  # mitmproxy's Headers ignore case as well
            return False
    return True


class Stubs:
    """The rules of one run, in order, with how often each has answered; thread-safe.

    Args:
        rules: the rules, first match wins.
        seed: mixed into every id, timestamp and jitter.
        labels: a name for each rule, as reports show it (default `rule N`).
    """

    def __init__(
        self, rules: Iterable[Rule], seed: int = 0, labels: Iterable[str] | None = None
    ) -> None:
        rules = tuple(rules)
        names = (
            tuple(labels) if labels is not None else tuple(f"rule {i}" for i in range(len(rules)))
        )
        self._entries: list[tuple[str, Rule]] = list(zip(names, rules, strict=True))
        self._added = 0
        self.seed = seed
        self._used: Counter[int] = Counter()  # by id() of the rule: inserts move indexes
        self._answers: dict[int, Answer] = {}  # by id() of an AnswerSpec the rules hold
        self._lock = threading.Lock()
        self._stamps = Stamps(write, STAMPED)
        self.usage: Callable[[str, int], tuple[int | None, int | None]] | None = None
        """Draws (input, output) tokens for an answer whose rule sets no usage, from the
        request key and occurrence (`--profile`: a profile's [usage] table)."""

    @classmethod
    def from_files(cls, paths: Iterable[str | Path], seed: int = 0) -> Stubs:
        """Every rule of the files, in the order given, labelled `FILE#INDEX`."""
        rules, labels = [], []
        for path in paths:
            for index, rule in enumerate(load_rules(path)):
                rules.append(rule)
                labels.append(f"{Path(path).name}#{index}")
        return cls(rules, seed, labels)

    @property
    def rules(self) -> tuple[Rule, ...]:
        with self._lock:
            return tuple(rule for _, rule in self._entries)

    def __bool__(self) -> bool:
        return bool(self._entries)

    def _neutral(self, spec: AnswerSpec) -> Answer:
        """A rule's answer as a neutral one, made once per answer spec."""
        found = self._answers.get(id(spec))
        if found is None:
            found = self._answers[id(spec)] = spec.neutral()
        return found

    def labels(self) -> list[str]:
        """The rules' labels, in order."""
        with self._lock:
            return [label for label, _ in self._entries]

    def add(self, rule: Rule, label: str) -> None:
        """Add a rule ahead of the rules given at the start (after those added before it):
        rules a test adds for itself come first."""
        with self._lock:
            self._entries.insert(self._added, (label, rule))
            self._added += 1

    def find(self, facts: RequestFacts, headers: Mapping[str, str]) -> tuple[str, Rule] | None:
        """The first rule that matches, with its label, or None."""
        with self._lock:
            entries = tuple(self._entries)
        for label, rule in entries:
            if _matches(rule.match, facts, headers):
                return label, rule
        return None

    def answer(
        self, facts: RequestFacts, headers: Mapping[str, str], key: str, occurrence: int
    ) -> StubAnswer | None:
        """The answer of the first matching rule, written for this request; None when no
        rule matches.

        Args:
            headers: the request's headers, names lower-cased.
            key: the request key (ids derive from it).
            occurrence: how many times this key was asked before (0 the first time).
        """
        found = self.find(facts, headers)
        if found is None:
            return None
        label, rule = found
        with self._lock:
            n = self._used[id(rule)]
            self._used[id(rule)] += 1
        ids = Ids(f"{self.seed}\0{key}\0{occurrence}".encode())
        spec = rule.nth(n)
        answer = self._neutral(spec)
        sets_usage = answer.input_tokens is not None or answer.output_tokens is not None
        if self.usage is not None and answer.error is None and not sets_usage:
            inp, out = self.usage(key, occurrence)
            answer = replace(answer, input_tokens=inp, output_tokens=out)
        identity = (id(spec), answer.input_tokens, answer.output_tokens)
        written = self._stamps.write(facts, answer, ids, identity)
        offsets = None
        if rule.stream is not None and written.streamed:
            offsets = _offsets(rule.stream, len(written.events), ids)
        if answer.error is not None:
            return StubAnswer(label, written, offsets, rule_id=id(rule))
        used = (
            input_tokens(answer, facts),
            0 if facts.endpoint == "embeddings" else output_tokens(answer),
        )
        return StubAnswer(label, written, offsets, *used, rule_id=id(rule))

    def give_back(self, answer: StubAnswer) -> None:
        """The answer was not served (a fault was, instead): the rule's next match gets the
        same scripted answer again, as the client's retry should."""
        with self._lock:
            if self._used[answer.rule_id] > 0:
                self._used[answer.rule_id] -= 1


def _offsets(stream: StreamSpec, count: int, ids: Ids) -> tuple[float, ...]:
    gap = 1000.0 / stream.tokens_per_s if stream.tokens_per_s else 0.0
    out, at = [], stream.ttft_ms
    for i in range(count):
        if i:
            at += gap * (1.0 + stream.jitter * (2.0 * ids.unit() - 1.0))
        out.append(round(at, 3))
    return tuple(out)
