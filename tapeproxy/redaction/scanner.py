"""The scanning engine shared by the recorder's redaction and the linter.

It walks structure first (headers, URL parts, JSON literals, form pairs, SSE events joined per
field across chunks), decodes what it meets (JSON inside strings, base64, percent-encoding),
runs the detectors and context rules on every decoded string, then keeps a raw-text pass as a
safety net. It returns edits on the text it was given (so callers can keep bytes and chunk
sizes exact) and hits (what was found, where).
"""

from __future__ import annotations

import base64
import binascii
import bisect
import hashlib
import itertools
import json
import re
from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus, unquote_plus

from tapeproxy.cassettes.model import Header
from tapeproxy.providers.generated import is_generated
from tapeproxy.redaction.context import (
    ASSIGNMENT_WORDS,
    Names,
    assignment_name,
    assignments,
    context_detector,
    is_secret_value,
    strip_scheme,
)
from tapeproxy.redaction.detectors import LONGEST, TRIGGERS, Match, TokenFinder, looks_random
from tapeproxy.redaction.jsonscan import decode_literal, literals, parses_as_json
from tapeproxy.redaction.layers import (
    ENTITIES,
    ENTITY,
    ENTITY_SIGNAL,
    PERCENT,
    Layer,
    encoded_like,
    may_be_wide,
    printable,
    wide_text,
)
from tapeproxy.redaction.placeholders import MARKER_RE, is_placeholder, marker
from tapeproxy.redaction.quickscan import Words, b64_spans, has_run, run_holders

__all__ = ["Edit", "Hit", "Scanner", "apply_edits", "fingerprint", "printable_text"]

_MAX_DEPTH = 4
_URL_LONG_RUN = re.compile(r"[A-Za-z0-9+_-]{24}")
_PERCENT = re.compile(r"%[0-9A-Fa-f]{2}")
_AWS_SECRET = re.compile(r"(?<![A-Za-z0-9/+])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])")
_CREDENTIAL_WORDS = (
    "key",
    "secret",
    "token",
    "passw",
    "credential",
    "auth",
    "session",
    "cookie",
    "sig",
)
_NAME_TAIL = r"[a-z0-9_]{0,20}['\"\\]{0,8}(?:\s*[:=>]|\s+[a-z_:.-]{1,40}\s*=)"
"""After a credential word, what makes it a name: an operator, the ``>`` closing an element
(`context.ASSIGNMENT_RE`), or the next attribute of one (``<password type="...">``,
``name="api_key" value="..."``)."""
_NAMES_TRIGGER = f"(?:{'|'.join(_CREDENTIAL_WORDS)}){_NAME_TAIL}"
_NAME_TAIL_RE = re.compile(_NAME_TAIL)
_KEY_TAIL = re.compile(r'([^"\\]{0,60})"\s*:')
"""The rest of a `_CREDENTIAL_KEY` after its word: the end of the key and its colon."""
_NAME_ONLY = re.compile(r"[a-z0-9_.-]*")
"""A key `assignment_name` reads whole (it stops at its quotes)."""
_PAIR_WORDS = ('"value', '"equalto', '"contains', '"matches', '"exact', '"prefix')
"""Where a `_PAIR_VALUE` key can start in lower-cased text."""
_ANSWER_HEADERS = re.compile(r"\.response\.headers\b")
"""Where other tools' files (vcrpy, HAR, WireMock) keep an answer's headers."""
_ESCAPE = re.compile(r"u[0-9a-fA-F]{4}|[nrtbf/]")
_SESSION_COOKIE = re.compile(
    r"(?i)sess|sid|auth|token|jwt|login|remember|secret|key|csrf|xsrf|pass|cred"
)
_HIDDEN = re.compile(r"\\u00[0-7][0-9A-Fa-f]|\\/")
_STRING_JSON = re.compile(r'"\s*[\[{]')
_PAIR_VALUE = re.compile(
    r'"(?:values?|equalTo|contains|matches|equalToJson|exact|prefix)"\s*:', re.IGNORECASE
)
_CREDENTIAL_KEY = re.compile(
    r'"([^"\\]{0,60}(?:key|secret|token|passw|credential|auth|session|cookie|sig)[^"\\]{0,60})"\s*:'
)
"""A key (lower-cased) with a credential word in it: `Names.field_kind` says if it is one."""
_ASSIGNMENT_WORD = re.compile(ASSIGNMENT_WORDS)
"""The words `context.ASSIGNMENT_RE` starts a free-text assignment with."""
_CAMEL_KEY = re.compile(r"[a-z0-9]key$")
"""A lower-cased name that may have been camelCase with ``Key`` for its last word
(``AzureOpenAIKey``): a credential's name in its own case (`Names.field_kind`), so the
quick checks, which see it lower-cased, let it through."""
_NUMBER = re.compile(r"\s*-?\d[\d.eE+-]*\s*(?:[,}\]\r\n]|$)")
_PLAIN_KEY = re.compile(r'"([a-z0-9_.-]{0,60})"\s*:')
"""From its opening quote, a key of name characters only: a `_KEY_TAIL` key that
`_NAME_ONLY` reads whole."""
_MEMO_MAX = 1 << 16  # entries a scanner remembers (clean headers, kinds of keys)
_ESCAPED_BYTE = re.compile(f"[{chr(0xDC80)}-{chr(0xDCFF)}]")  # (mypyc: no surrogate literal)
"""A byte that was not UTF-8, as the ``surrogateescape`` error handler decodes it."""
_CLEAN_VALUE_MAX = 1024
_SCHEME_WORD = re.compile(r"^\s*(?:Bearer|Basic|Token|Bot|ApiKey)\s+", re.IGNORECASE)


def fingerprint(secret: str) -> str:
    """The stable id of a secret for allow-lists: sha256 hex of the secret string."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Edit:
    """Replace ``text[start:end]`` by `new`."""

    start: int
    end: int
    new: str


@dataclass(frozen=True)
class Hit:
    """A secret found: detector id, the secret, and its location below the scanned unit."""

    detector: str
    secret: str
    path: str


def apply_edits(text: str, edits: Iterable[Edit]) -> str:
    """`text` with non-overlapping edits applied."""
    out, pos = [], 0
    for e in sorted(edits, key=lambda e: e.start):
        out.append(text[pos : e.start])
        out.append(e.new)
        pos = e.end
    out.append(text[pos:])
    return "".join(out)


class Scanner:
    """Finds (and computes the redaction of) secrets in strings, JSON, forms, URLs and SSE.

    Args:
        finder: the compiled detectors.
        names: credential header / field / parameter names.
        allowlist: fingerprints never reported nor redacted.
        redact: True for the recorder (credential-named values are always replaced, so a
            request's key does not depend on them); False for the linter (only report values
            that are not placeholders).
        answers: scans answers, which are never keyed: a placeholder under a credential
            name stays as the server sent it, and a header whose name only hints at a
            credential is kept unless a detector proves its value one (see `header`). What
            the model wrote there (`tapeproxy.providers.generated`) goes to `model`.
        model_text: scans what a model wrote: a value is a secret when a detector or a
            credential name proves it, never because of a password-ish name nor forced.
    """

    def __init__(
        self,
        finder: TokenFinder,
        names: Names,
        allowlist: frozenset[str],
        redact: bool,
        answers: bool = False,
        model_text: bool = False,
    ) -> None:
        self.finder = finder
        self.names = names
        self.allowlist = allowlist
        self.redact = redact
        self.answers = answers
        self.model_text = model_text
        self._clean_headers: set[tuple[str, str]] = set()
        self._clean_urls: set[str] = set()
        self._key_kinds: dict[str, str | None] = {}
        self._header_kinds: dict[str, str | None] = {}
        self.model: Scanner | None = None
        """The scanner for what a model wrote in an answer (None: scanned as the rest)."""
        if answers and not model_text:
            self.model = Scanner(
                finder, names.without_passwords(), allowlist, redact, True, model_text=True
            )
        extra = sorted(names.fields - names.default_fields)
        # Matched against the lower-cased text: much faster than an IGNORECASE alternation.
        alternatives = "".join(f"|{re.escape(f)}" for f in extra)
        self._names_trigger = re.compile(f"(?:{_NAMES_TRIGGER}{alternatives})")
        self._name_words = Words((*_CREDENTIAL_WORDS, *extra))  # (as `_names_trigger`)
        # json_suspicious's words: credential words, pair keys, then configured field names
        self._json_words = Words((*_CREDENTIAL_WORDS, *_PAIR_WORDS, *extra))

    def allowed(self, secret: str) -> bool:
        """Whether `secret` is allow-listed (by its fingerprint)."""
        return fingerprint(secret) in self.allowlist

    def suspicious(self, text: str) -> bool:
        """False only when nothing in `text` can be a secret (the cheap path for most bodies):
        nothing `_marked`, and no long run (`quickscan.has_run`)."""
        return self._marked(text) or has_run(text)

    def _marked(self, text: str) -> bool:
        """`suspicious` but for long runs: a trigger, a credential name, percent-encoding."""
        return bool(
            self.finder.always
            or TRIGGERS.search(text)
            or self._has_credential_name(text.lower())
            or ("%" in text and _PERCENT.search(text))  # (`in` first: 30 ns, a search 500)
            or ("&" in text and ENTITY_SIGNAL.search(text))
        )

    def json_suspicious(self, text: str) -> bool:
        """`suspicious` for a JSON document, without counting its long runs: every answer has
        ids and fingerprints, and a long run only matters to `json_edits` as base64 of text,
        as JSON in a string, or as a value under a credential name, which are looked for
        here. False only when `json_edits` and the raw pass can find nothing in `text`."""
        if (
            self.finder.always
            or TRIGGERS.search(text)
            or ("%" in text and _PERCENT.search(text))
            or ("\\" in text and _HIDDEN.search(text))  # an escape may hide a trigger
            or ("&" in text and ENTITY_SIGNAL.search(text))  # so may a character reference
            or _STRING_JSON.search(text)  # JSON in a string: its own names and layers
            # a value named by a sibling or an outer key (found below in ASCII text, where
            # the lower-cased text is the same match: not so for ſ or K, which fold to s, k)
            or (not text.isascii() and _PAIR_VALUE.search(text))
        ):
            return True
        low = text.lower()
        for name, end in self._json_names(low, with_passed_over=False):
            if name is None:
                return True  # a pair key
            kind = self._key_kind(name)
            # a number under a name that only hints (audio_tokens: 0) is never a secret
            if kind is not None and not (kind == "weak" and _NUMBER.match(low, end)):
                return True
        return _holds_b64_text(text)

    def _json_names(
        self, low: str, with_passed_over: bool = True
    ) -> Iterator[tuple[str | None, int]]:
        """The names json_suspicious weighs in lower-cased text, with where each one's
        assignment ends: every match of `_names_trigger` and of `_CREDENTIAL_KEY` (and more:
        overlapping ones too), found from where their words are; ``(None, end)`` for a
        `_PAIR_VALUE` key.

        Args:
            with_passed_over: also the plain keys (name characters only) that json_suspicious
                passes over: a name that is no credential's (``completion_tokens_details``)
                or one that only hints at one with a number for its value. Every answer's
                usage has several, and one regex from the key's quote tells them apart for
                half of the cost.
        """
        pairs = len(_CREDENTIAL_WORDS)
        extra = pairs + len(_PAIR_WORDS)
        words = self._json_words.words
        for at, i in self._json_words.hits(low):
            end = at + len(words[i])
            if i >= extra:  # a configured field name: a trigger by itself
                yield assignment_name(low, at).strip("'\"\\"), end
            elif i >= pairs:
                if (m := _PAIR_VALUE.match(low, at)) is not None:
                    yield None, m.end()
            else:
                quote = low.rfind('"', max(0, at - 61), at)
                if (
                    not with_passed_over
                    and 0 <= quote >= at - 41
                    and (m := _PLAIN_KEY.match(low, quote)) is not None
                    and (
                        (kind := self._key_kind(m.group(1))) is None
                        or (kind == "weak" and _NUMBER.match(low, m.end()) is not None)
                    )
                ):
                    continue  # what the lines below yield for it, json_suspicious passes
                if (
                    quote >= 0
                    and low.find("\\", quote + 1, at) < 0
                    and (m := _KEY_TAIL.match(low, end)) is not None
                ):
                    key = low[quote + 1 : m.end(1)]
                    yield key, m.end()
                    if at - quote <= 41 and _NAME_ONLY.fullmatch(key):
                        continue  # the assignment below would be this key again
                if (m := _NAME_TAIL_RE.match(low, end)) is not None:
                    yield assignment_name(low, at).strip("'\"\\"), m.end()

    def _key_kind(self, name: str) -> str | None:
        """What `name` is to `json_edits` (`Names.field_kind`; ``strong`` for cookies, which
        `_named` always looks into) or to `matches` in free text (`Names.param_kind` when an
        assignment can name it), remembered: the same keys come in every answer."""
        kind = self._key_kinds.get(name, "")
        return _remembered(self._key_kinds, name, self._kind_of_key) if kind == "" else kind

    def _kind_of_key(self, name: str) -> str | None:
        if name in ("cookie", "set-cookie"):
            return "strong"
        kind = self.names.field_kind(name)
        if kind is None and _ASSIGNMENT_WORD.search(name):
            kind = self.names.param_kind(name)
        if kind is None and _CAMEL_KEY.search(name):
            kind = "weak"
        return kind

    def _has_credential_name(self, low: str) -> bool:
        """Whether lower-cased `low` names a credential where `_names_trigger` matches: a
        credential word with what makes it a name after it (`_NAME_TAIL`), or a configured
        field name. The words are found by one automaton pass, at every place they stand (a
        superset of the places the regex's scan reached, which tried its alternation at
        every position: 18 us for 2.8 KB of header values, now 4)."""
        words = self._name_words.words
        credential_words = len(_CREDENTIAL_WORDS)
        for at, i in self._name_words.hits(low):
            end = at + len(words[i])
            if i < credential_words and _NAME_TAIL_RE.match(low, end) is None:
                continue
            name = assignment_name(low, at).strip("'\"\\")
            if self.names.field_kind(name) or self.names.param_kind(name):
                return True
            if _CAMEL_KEY.search(name):
                return True
        return False

    # ---- strings ------------------------------------------------------------------------

    def matches(self, text: str) -> list[Match]:
        """Token detectors, then ``NAME=value`` context rules, then AWS secret keys near ids."""
        found = [m for m in self.finder.find(text) if not self.allowed(m.secret)]
        for at, s, e in assignments(text):
            if s > 0 and text[s - 1] == "\\" and (escape := _ESCAPE.match(text, s, e)):
                s = escape.end()  # "\u2581word": the value starts after the escape
            value, name = text[s:e], assignment_name(text, at)
            if _overlaps(found, s, e) or self.allowed(value):
                continue
            kind = self.names.field_kind(name) or self.names.param_kind(name)
            if kind is not None and is_secret_value(value, kind):
                found.append(Match(s, e, context_detector(name, fallback="generic"), value))
        if any(m.detector == "aws" for m in found):
            found += self._aws_secrets(text, found)
        return sorted(found, key=lambda m: m.start)

    def pair_matches(self, text: str) -> list[Match]:
        """Base64 runs that decode to ``user:password`` (Basic credentials without a scheme)."""
        out = []
        for start, end in b64_spans(text):
            run = text[start:end]
            decoded = _b64_text(run)
            if decoded is not None and _is_credential_pair(decoded) and not self.allowed(run):
                out.append(Match(start, end, "basic-auth", run))
        return out

    def _aws_secrets(self, text: str, found: list[Match]) -> list[Match]:
        out = []
        for m in _AWS_SECRET.finditer(text):
            if not _overlaps(found, *m.span()) and looks_random(m.group(), 40, 4.0):
                out.append(Match(m.start(), m.end(), "aws", m.group()))
        return out

    def string(self, value: str, path: str, depth: int = 0) -> tuple[str, list[Hit]]:
        """The redacted value and what was found in it, decoding nested layers."""
        if len(value) < 6 or depth > _MAX_DEPTH:
            return value, []
        if depth < _MAX_DEPTH and parses_as_json(value):
            edits, hits = self.json_edits(value, path, depth + 1)
            return apply_edits(value, edits), hits
        found = self.matches(value)
        hits = [Hit(m.detector, m.secret, path) for m in found]
        new = apply_edits(value, [Edit(m.start, m.end, marker(m.detector)) for m in found])
        if "%" in new and _PERCENT.search(new):
            new, more = self._layer(PERCENT, new, path, depth)
            hits += more
        if "&" in new and ENTITY.search(new):
            new, more = self._layer(ENTITIES, new, path, depth)
            hits += more
        if len(new) >= 24:
            new, more = self._base64_layer(new, path, depth)
            hits += more
        return new, hits

    def _layer(self, layer: Layer, value: str, path: str, depth: int) -> tuple[str, list[Hit]]:
        """`value` with what its decoding by `layer` holds taken out: each secret where it is
        spelled, character by character; when that leaves one behind (it was found in a layer
        further down, a base64 run), the redacted decoded text, re-encoded."""
        decoded = layer.decode(value)
        if decoded == value:
            return value, []
        redacted, hits = self.string(decoded, path, depth + 1)
        if not hits:
            return value, []
        for h in hits:
            mark = layer.marker(marker(h.detector)).replace("\\", r"\\")  # (a template)
            value = layer.spelled(h.secret).sub(mark, value)
        secrets = {h.secret for h in hits}
        _, left = self.string(layer.decode(value), path, depth + 1)
        if any(h.secret in secrets for h in left):
            value = layer.encode(redacted)
        return value, hits

    def _base64_layer(self, value: str, path: str, depth: int) -> tuple[str, list[Hit]]:
        edits, hits = [], []
        budget = _MAX_RUNS  # runs decoded one by one, at most
        for lines in _wrapped(value, b64_spans(value)):
            if len(lines) > 1:  # one base64 text wrapped over lines: decoded whole
                start, end = lines[0][0], lines[-1][1]
                decoded = _b64_text("".join(value[s:e] for s, e in lines))
                new: str = ""
                found: list[Hit] = []
                if decoded is not None:
                    new, found = self.string(decoded, f"{path}<base64>", depth + 1)
                if found:  # (else each run is still weighed alone: a Basic pair is one run)
                    hits += found
                    width, sep = lines[0][1] - start, value[lines[0][1] : lines[1][0]]
                    raw = _b64_bytes("".join(value[s:e] for s, e in lines))
                    encoded = base64.b64encode(encoded_like(raw, new)).decode()
                    wrapped = sep.join(
                        encoded[i : i + width] for i in range(0, len(encoded), width)
                    )
                    edits.append(Edit(start, end, wrapped))
                    continue
            for start, end in lines[: max(budget, 0)]:
                run = value[start:end]
                decoded = _b64_text(run)
                if decoded is None:
                    continue
                if _is_credential_pair(decoded) and not self.allowed(run):
                    edits.append(Edit(start, end, marker("basic-auth")))
                    hits.append(Hit("basic-auth", run, path))
                    continue
                new, found = self.string(decoded, f"{path}<base64>", depth + 1)
                if found:
                    hits += found
                    urlsafe = "-" in run or "_" in run
                    enc = base64.urlsafe_b64encode if urlsafe else base64.b64encode
                    edits.append(Edit(start, end, enc(encoded_like(_b64_bytes(run), new)).decode()))
            budget -= len(lines)
        return apply_edits(value, edits), hits

    # ---- structures ---------------------------------------------------------------------

    def json_edits(
        self, text: str, path: str, depth: int = 0, pre: dict[int, list[Edit]] | None = None
    ) -> tuple[list[Edit], list[Hit]]:
        """Edits and hits for a JSON text; `pre` holds edits inside literals (by literal start)."""
        edits: list[Edit] = []
        hits: list[Hit] = []
        for lit in literals(text):
            raw = text[lit.start : lit.end]
            value = decode_literal(raw)
            if pre and lit.start in pre:
                value = apply_edits(value, pre[lit.start])
            if lit.is_key:
                new, found_hits = self.tokens_only(value, f"{path}{lit.path}")
            else:
                scanner = self.model if self.model and is_generated(lit.path) else self
                kind = scanner.names.field_kind(lit.name)
                if kind == "weak" and _ANSWER_HEADERS.search(lit.path):
                    kind = None  # an answer's header named like a bucket or a session: as header()
                new, found_hits = scanner._named(value, kind, lit.name, f"{path}{lit.path}", depth)
            hits += found_hits
            if new != decode_literal(raw):
                edits.append(Edit(lit.start, lit.end, json.dumps(new, ensure_ascii=False)))
        return edits, hits

    def tokens_only(self, value: str, path: str) -> tuple[str, list[Hit]]:
        """The token detectors alone (no context rules): the redacted value and the hits."""
        found = self.finder.find(value) if len(value) >= 6 else []
        found = [m for m in found if not self.allowed(m.secret)]
        if not found:
            return value, []
        new = apply_edits(value, [Edit(m.start, m.end, marker(m.detector)) for m in found])
        return new, [Hit(m.detector, m.secret, path) for m in found]

    def _named(
        self,
        value: str,
        kind: str | None,
        name: str,
        path: str,
        depth: int,
        host: str = "",
        fallback: str = "credential-field",
    ) -> tuple[str, list[Hit]]:
        """A value under a field / parameter name: context rules first, then detectors."""
        if name.lower() in ("cookie", "set-cookie"):  # a header, or one kept as a JSON field
            return self._cookie(value, path, every_pair=name.lower() == "cookie")
        if kind is None or not value or MARKER_RE.fullmatch(strip_scheme(value)):
            return self.string(value, path, depth)
        secret = strip_scheme(value)
        if self.allowed(secret):
            return value, []
        is_secret = is_secret_value(value, kind)
        forced = self.redact and kind == "strong" and not self.model_text
        if forced and self.answers and is_placeholder(secret):
            forced = False
        if not is_secret and not forced:
            return self.string(value, path, depth)
        tokens = self.finder.find(secret)
        det = tokens[0].detector if tokens else context_detector(name, host, fallback)
        if self.redact and kind == "strong" and fallback == "credential-field":
            det = context_detector(name, host)  # independent of the value: keys stay stable
        scheme = _SCHEME_WORD.match(value)
        new = (scheme.group() if scheme else "") + marker(det)
        return new, [Hit(det, secret, path)] if is_secret else []

    def form_edits(self, text: str, path: str, depth: int = 0) -> tuple[list[Edit], list[Hit]]:
        """Edits and hits for ``a=b&c=d`` (form bodies and URL queries): each value weighed by
        its name, each name (and a part without ``=``) given the token detectors."""
        edits: list[Edit] = []
        hits: list[Hit] = []
        pos = 0
        for part in text.split("&"):
            name_raw, eq, value_raw = part.partition("=")
            at, start = pos, pos + len(name_raw) + 1
            pos += len(part) + 1
            # a value is weighed by its name; a token may be the name too, or a part with no
            # `=` (a bare `?<key>`): decoded, it gets the detectors
            name = unquote_plus(name_raw)
            tokens = [m for m in self.finder.find(name) if not self.allowed(m.secret)]
            tokens += self.pair_matches(name)  # (base64 of `user:password`)
            if tokens:
                edits.append(Edit(at, at + len(name_raw), marker(tokens[0].detector)))
                hits += [Hit(m.detector, m.secret, path) for m in tokens]
            if not eq:
                continue
            value = unquote_plus(value_raw)
            kind = self.names.param_kind(name)
            new, found = self._named(value, kind, name, f"{path}.{name}", depth)
            hits += found
            if new != value:
                edits.append(Edit(start, start + len(value_raw), quote_plus(new, safe="<>:")))
        return edits, hits

    def multipart_edits(self, text: str, boundary: str, path: str) -> tuple[list[Edit], list[Hit]]:
        """Edits and hits for the fields of a ``multipart/form-data`` body: each field's value
        weighed by its name, as a form's is (``name="api_key"`` then the value on its own
        lines, where no ``name=value`` rule can see it); files are left to the body's other
        passes."""
        edits: list[Edit] = []
        hits: list[Hit] = []
        delimiter = "--" + boundary
        at = text.find(delimiter)
        while at >= 0:
            head = at + len(delimiter)
            blank_line = _BLANK_LINE.search(text, head)  # the end of the part's headers
            if blank_line is None:
                break
            blank, start = blank_line.span()
            following = text.find(delimiter, start)
            if following < 0:
                break
            end = following - (2 if text.startswith("\r\n", following - 2) else 1)
            field = _FIELD_NAME.search(text, head, blank)
            if field is not None and end >= start and "filename" not in text[head:blank].lower():
                name, value = field.group(1), text[start:end]
                kind = self.names.param_kind(name) or self.names.field_kind(name)
                new, found = self._named(value, kind, name, f"{path}.{name}", 0)
                hits += found
                if new != value:
                    edits.append(Edit(start, end, new))
            at = following
        return edits, hits

    def url_edits(self, url: str, path: str) -> tuple[list[Edit], list[Hit]]:
        """Edits and hits for a URL: userinfo, each query value, the path and host, and the
        fragment (``#access_token=...`` where OAuth's implicit flow puts one)."""
        if url in self._clean_urls:
            return [], []  # (a cassette's interactions go to a few URLs, mostly one)
        rest = url.split("://", 1)[-1]
        # `suspicious`, with long runs counted within a path segment or parameter (`/`
        # separates there)
        if (
            "@" not in rest.split("/", 1)[0]
            and not self._marked(rest)
            and _URL_LONG_RUN.search(rest) is None
        ):
            _remember(self._clean_urls, url)
            return [], []  # the cheap path for ordinary URLs (replay keys every request)
        edits: list[Edit] = []
        hits: list[Hit] = []
        q = url.find("?")
        base, query = (url, "") if q < 0 else (url[:q], url[q + 1 :])
        query, _, fragment = query.partition("#")  # (without a query, `base` holds it)
        new_base, found = self.string(base, f"{path}.path")
        segments = new_base.split("/")
        for i, segment in enumerate(segments[3:], 3):  # each path segment on its own too
            segments[i], more = (
                self.string(segment, f"{path}.path") if len(segment) >= 16 else (segment, [])
            )
            found += [h for h in more if h.secret not in {f.secret for f in found}]
        new_base = "/".join(segments)
        hits += [
            Hit(h.detector, h.secret, f"{path}.userinfo") if h.detector == "url-credentials" else h
            for h in found
        ]
        if new_base != base:
            edits.append(Edit(0, len(base), new_base))
        if query:
            qe, qh = self.form_edits(query, f"{path}.query")
            edits += [Edit(e.start + q + 1, e.end + q + 1, e.new) for e in qe]
            hits += qh
        if fragment:
            new, more = self.string(fragment, f"{path}.fragment")
            if new != fragment:
                edits.append(Edit(len(url) - len(fragment), len(url), new))
            hits += more
        return edits, hits

    def headers(
        self, headers: tuple[Header, ...], where: str, host: str = ""
    ) -> tuple[tuple[Header, ...], list[Hit]]:
        """Each header through `header`, but for the ordinary ones that `_prove_clean` passes
        (remembered: the same headers come on every exchange)."""
        memo = self._clean_headers
        if memo.issuperset(headers):
            return headers, []  # all seen before, and clean (asked in one C loop)
        fresh = [i for i, h in enumerate(headers) if h not in memo]
        proved = self._prove_clean([headers[i] for i in fresh])
        hits: list[Hit] = []
        changed: dict[int, Header] = {}
        for k, i in enumerate(fresh):
            if k in proved:
                continue
            name, value = headers[i]
            new, found = self.header(name, value, where, host)
            hits += found
            if new != value:
                changed[i] = (name, new)
        if not changed:
            return headers, hits
        return tuple([changed.get(i, h) for i, h in enumerate(headers)]), hits

    def prove_clean(self, headers: Iterable[Header]) -> None:
        """Remember the headers of many messages that `headers` would pass as clean, proved
        together (the linter gives a cassette's at once: one pass of each check instead of
        one per message, whose own pass then finds them remembered)."""
        fresh = set(headers)
        fresh -= self._clean_headers  # (in C: most are remembered from other cassettes)
        self._prove_clean(list(fresh))

    def _prove_clean(self, headers: list[Header]) -> set[int]:
        """The positions in `headers` of those proved clean, each remembered: the ordinary
        ones (no credential name) checked together, one pass of each of `suspicious`'s
        checks over their values joined by newlines, where one pass per header cost about
        2 us each. When the joined text holds no trigger, credential name nor
        percent-encoding, neither does any value (each check finds a match inside one value
        in the joined text too: a newline ends a name or a run as the end of a value does),
        and a value is then clean unless a long run (an id, maybe base64) holds it."""
        plain = [k for k, (name, _) in enumerate(headers) if self._header_kind(name) is None]
        if len(plain) < 2:
            return set()  # (`header` decides one alone as cheaply)
        joined = "\n".join([headers[k][1] for k in plain])
        if self._marked(joined):
            return set()
        # unmarked too, but with a long run or an escape
        ran = {plain[k] for k in run_holders([headers[k][1] for k in plain])}
        escapes = [m.start() for m in _HIDDEN.finditer(joined)]
        if escapes:  # the values the escapes are in
            starts = list(itertools.accumulate((len(headers[k][1]) + 1 for k in plain), initial=0))
            ran.update(plain[bisect.bisect(starts, at) - 1] for at in escapes)
        proved: set[int] = set()
        for k in plain:
            name, value = headers[k]
            if k not in ran or self._runs_hide_nothing(name, value):
                self._remember_clean(name, value)
                proved.add(k)
        return proved

    def _header_kind(self, name: str) -> str | None:
        """`Names.header_kind`, remembered, as `header` weighs it: in an answer a weak name
        counts for nothing."""
        kind = self._header_kinds.get(name, "")
        return _remembered(self._header_kinds, name, self._kind_of_header) if kind == "" else kind

    def _kind_of_header(self, name: str) -> str | None:
        kind = self.names.header_kind(name)
        return None if self.answers and kind == "weak" else kind

    def _remember_clean(self, name: str, value: str) -> None:
        if len(value) <= _CLEAN_VALUE_MAX:
            _remember(self._clean_headers, (name, value))  # (host and path only name hits)

    def header(self, name: str, value: str, where: str, host: str = "") -> tuple[str, list[Hit]]:
        """The redacted header value and what was found in it (located at `where`, then the
        lower-cased name).

        In an answer (a scanner for `answers`), a header whose name only hints at a credential
        (weak: ``x-ratelimit-key``, ``azureml-model-session``) is kept unless a detector proves
        its value is one: servers name rate-limit buckets and sessions so, and a replay must send
        what they sent. Credential headers proper (``set-cookie``, ``x-api-key``...) are
        still redacted."""
        if (name, value) in self._clean_headers:
            return value, []  # seen before, and clean: the same headers come on every exchange
        kind = self._header_kind(name)
        hits: list[Hit] = []
        if kind is None and not self._marked(value) and self._runs_hide_nothing(name, value):
            new = value  # the cheap path for ordinary headers, as for bodies
        else:
            path = f"{where}.{name.lower()}"
            new, hits = self._named(value, kind, name, path, 0, host, "credential-header")
        if new == value and not hits:
            self._remember_clean(name, value)
        return new, hits

    def _runs_hide_nothing(self, name: str, value: str) -> bool:
        """For a header value with no trigger, credential name nor percent-encoding (not
        `_marked`), whether `_named` would find nothing in it: it has no long run nor escape
        (``\\u0041`` in a JSON value may hide a trigger), or it is neither JSON nor a cookie
        and its runs (ids, mostly: ``req_7f3a…``) decode to no text, so `string` has no layer
        left to look into (1-3 us, where `string` took 14)."""
        if not has_run(value) and _HIDDEN.search(value) is None:
            return True
        return (
            name.lower() not in ("cookie", "set-cookie")
            and not parses_as_json(value)
            and not _holds_b64_text(value)
        )

    def _cookie(self, value: str, path: str, every_pair: bool) -> tuple[str, list[Hit]]:
        """Cookie values are redacted: every pair of a Cookie header, the first pair of a
        Set-Cookie (the rest are attributes), and a bare value as a whole. A pair is reported
        as a secret when its name says it carries a session or a credential, or a detector
        proves its value a token: cookies named for tracking, load balancing or bot checks
        (``_ga``, ``__cf_bm``, ``AWSALB``) are not credentials."""
        parts = value.split(";")
        hits: list[Hit] = []
        for i, part in enumerate(parts if every_pair else parts[:1]):
            cname, eq, cval = part.partition("=")
            secret = (cval if eq else cname).strip()
            if not secret or secret.startswith("<redacted:"):
                continue
            if self.allowed(secret):
                continue
            if is_secret_value(secret, "weak") and (
                not eq or _SESSION_COOKIE.search(cname) or self.finder.find(secret)
            ):
                hits.append(Hit("cookie", secret, path))
            if self.redact:
                parts[i] = f"{cname}={marker('cookie')}" if eq else marker("cookie")
        return ";".join(parts), hits

    def text_edits(self, text: str, path: str) -> tuple[list[Edit], list[Hit]]:
        """Edits and hits for free text: the whole text through `string`, as one edit."""
        new, hits = self.string(text, path)
        if new == text:
            return [], hits
        head = 0
        while head < min(len(new), len(text)) and new[head] == text[head]:
            head += 1
        tail = 0
        while tail < min(len(new), len(text)) - head and new[-1 - tail] == text[-1 - tail]:
            tail += 1
        return [Edit(head, len(text) - tail, new[head : len(new) - tail])], hits


def _remembered(
    memo: dict[str, str | None], name: str, kind_of: Callable[[str], str | None]
) -> str | None:
    """`kind_of(name)`, kept in `memo` (emptied when it holds `_MEMO_MAX`): the same names come
    in every exchange. The caller looks `memo` up first (a call less on the hot path)."""
    if len(memo) >= _MEMO_MAX:
        memo.clear()
    kind = memo[name] = kind_of(name)
    return kind


def _remember(memo: set[Any], item: Hashable) -> None:
    """Add `item` to a set kept as `_remembered` keeps its dict (emptied when full)."""
    if len(memo) >= _MEMO_MAX:
        memo.clear()
    memo.add(item)


def _overlaps(found: list[Match], start: int, end: int) -> bool:
    return any(m.start < end and start < m.end for m in found)


_PAIR = re.compile(rf"[A-Za-z0-9._@+~-]{{1,64}}:(?P<password>\S{{6,{LONGEST}}})")
_JSON_PUNCTUATION = re.compile(r'"[:,}\]]|[:,{\[]"')


def _is_credential_pair(text: str) -> bool:
    """Whether decoded base64 is ``user:password`` (a Basic credential without its scheme).

    A user name is a name, an id or an address; a piece of compact JSON (base64 of a
    streamed event cut at a line end: ``a":{"text":"Paris",...``) is neither user nor password.
    """
    m = _PAIR.fullmatch(text)
    if m is None or "://" in text or _JSON_PUNCTUATION.search(m.group("password")):
        return False
    return looks_random(m.group("password"), 8, 3.0)


def _wrapped(text: str, spans: list[tuple[int, int]]) -> list[list[tuple[int, int]]]:
    """Base64 runs grouped as they are read: the lines of one wrapped text together (MIME and
    PEM wrap base64 at 76 or 64 characters: runs a line each, every line as long as the
    first, a multiple of 4, but the last, which may be shorter; the standard alphabet), every
    other run alone. A secret in such a text is cut at line ends, and each line decoded alone
    gives pieces of it."""
    groups: list[list[tuple[int, int]]] = []
    for i, (start, end) in enumerate(spans):
        lines = groups[-1] if groups else None
        if (
            lines is not None
            and text[lines[-1][1] : start] in ("\n", "\r\n")
            and (width := lines[0][1] - lines[0][0]) % 4 == 0
            and lines[-1][1] - lines[-1][0] == width
            and end - start <= width
            and end - lines[0][0] <= _B64_MAX  # (longer, it is not decoded: see below)
            and all(c not in text[s:e] for s, e in (lines[0], (start, end)) for c in "-_")
        ):
            lines.append((start, end))
        elif i >= _MAX_RUNS:
            break  # (the base64 layer reads the first `_MAX_RUNS` runs only)
        else:
            groups.append([(start, end)])
    for lines in groups:  # a last line too short to be a run of its own (22 characters + "==")
        width = lines[0][1] - lines[0][0]
        if width % 4 == 0 and lines[-1][1] - lines[-1][0] == width:
            tail = _LAST_LINE.match(text, lines[-1][1])
            if tail is not None and tail.end(1) - tail.start(1) < width:
                lines.append(tail.span(1))
    return groups


_MAX_RUNS = 64
"""Base64 runs (or wrapped texts) of one string the base64 layer decodes, at most."""
_BLANK_LINE = re.compile(r"\r?\n\r?\n")
_FIELD_NAME = re.compile(r'\bname="([^"\r\n]*)"', re.IGNORECASE)
"""A multipart part's field name, in its Content-Disposition (not a ``filename=``)."""
_LAST_LINE = re.compile(r"\r?\n([A-Za-z0-9+/]+={0,2})(?![A-Za-z0-9+/=_-])")


def _holds_b64_text(text: str) -> bool:
    """Whether a base64 run in `text` stands for text (a layer `string` decodes), or runs
    follow one another across an escaped line break (``\\n`` in a JSON string: a wrapped
    base64 text, which `string` decodes whole, see `_wrapped`; its lines alone may not be
    text, a character cut at a line end, and an escape's ``n`` starts the next run)."""
    spans = b64_spans(text)
    for i, (start, end) in enumerate(spans):
        if _b64_text(text[start:end]) is not None:
            return True
        escaped_break = text.startswith(("\\n", "\\r\\n"), end)
        if escaped_break and i + 1 < len(spans) and spans[i + 1][0] - end <= 3:
            return True
    return False


def _b64_text(run: str) -> str | None:
    """The UTF-8 text a base64 run stands for, or None (binary, not base64, too big).

    Short runs are remembered: they are mostly names and ids that come back in every answer
    (``completion_tokens_details``, a model's fingerprint). A dict, emptied when full, where
    an lru_cache's call through Python cost more than most decodings it saved."""
    if len(run) > _REMEMBERED_RUN:
        return _decoded_b64_text(run)
    text = _B64_TEXTS.get(run, "")  # ("": not decoded yet; text that is found is printable)
    return _remembered(_B64_TEXTS, run, _decoded_b64_text) if text == "" else text


_REMEMBERED_RUN = 64
_B64_TEXTS: dict[str, str | None] = {}


_B64_MAX = 65536
"""Longest base64 run decoded to look into (a larger one is data, not a credential's layer)."""


def _decoded_b64_text(run: str) -> str | None:
    if len(run) > _B64_MAX:
        return None
    try:  # binascii itself: base64's wrappers took longer than the decoding
        if "-" in run or "_" in run:  # base64.urlsafe_b64decode
            data = _b64_bytes(run)
        else:  # base64.b64decode(validate=True)
            data = binascii.a2b_base64(run + "=" * (-len(run) % 4), strict_mode=True)
    except ValueError:  # (binascii.Error is a ValueError)
        return None
    # (after the decoding, which most runs, ids, fail sooner; a prefix's distinct characters
    # are the run's too, and most runs have 10 in their first 16)
    if len(set(run[:16])) < 10 and len(set(run)) < 10:
        return None
    return printable_text(data)


def _b64_bytes(run: str) -> bytes:
    """The bytes a base64 run (standard or URL-safe) decodes to (`_b64_text` read it)."""
    padded = run + "=" * (-len(run) % 4)
    return binascii.a2b_base64(padded.replace("-", "+").replace("_", "/"))


def printable_text(data: bytes) -> str | None:
    """`data` as text when it is UTF-8 (or UTF-16 or UTF-32, `layers.wide_text`) and 95% of
    it printable (what base64 that holds a layer to look into stands for), else None."""
    # (no exception for what is not UTF-8, as most runs are not: raising one cost more than
    # the decoding; a byte that is not UTF-8 decodes to a lone surrogate, which UTF-8 never
    # does)
    text = data.decode("utf-8", "surrogateescape")
    if not text.isascii() and _ESCAPED_BYTE.search(text) is not None:
        text = ""
    if printable(text):
        return text
    if not may_be_wide(data):
        return None
    if (wide := wide_text(data)) is not None:
        text = wide[0]  # (UTF-16 of ASCII text is UTF-8 too, NULs and all)
    return text if printable(text) else None
