"""Secret detectors: one small declarative rule per provider family, compiled into one pass.

Each `Detector` is a name, a regex for the token itself and an optional extra check. Prefix
rules never depend on what follows the token beyond "the next character is outside the
token's charset", so a token before ``&``, an escaped quote or a chunk boundary is found.
Tokens preceded by an escape (``\\n``), a percent-encoded byte (``%3D``) or a word that starts a
URL path segment (``/bot<token>``) are found too.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import itertools
import math
import re
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from ahocorasick_rs import AhoCorasick, BytesAhoCorasick

from tapeproxy.redaction.placeholders import is_placeholder

__all__ = [
    "DETECTORS",
    "LONGEST",
    "TRIGGERS",
    "Detector",
    "Match",
    "TokenFinder",
    "checksum_note",
    "entropy",
    "github_checksum_ok",
    "looks_random",
]

# Left boundary: not inside a word, except right after an escape, a percent-encoded byte or
# a URL path word (``/bot<token>/sendMessage``: a path gives no word boundary before a token).
_PATH_WORD = "|".join(f"(?<=/[A-Za-z]{{{n}}})" for n in range(1, 9))
_LB = rf"(?:(?<![A-Za-z0-9])|(?<=\\[nrt])|(?<=%[0-9A-Fa-f]{{2}})|{_PATH_WORD})"


@dataclass(frozen=True)
class Detector:
    """One rule: a detector id, the token's regex (its charset ends it) and an extra check.

    Attributes:
        name: short lower-case id shown in findings and markers (``openai``).
        pattern: regex of the whole token; group ``s``, if present, is the secret part.
        prefix: the fixed prefix, used to judge placeholders on the body after it.
        check: extra test on the secret (checksum, randomness); False drops the match.
    """

    name: str
    pattern: str
    prefix: str = ""
    check: Callable[[str], bool] | None = None
    bounded: bool = True


@dataclass(frozen=True)
class Match:
    """A secret found in a string: its span there, the detector and the secret itself."""

    start: int
    end: int
    detector: str
    secret: str


def entropy(s: str) -> float:
    """Shannon entropy of `s` in bits per character."""
    if not s:
        return 0.0
    counts: dict[str, int] = {}
    for ch in s:
        counts[ch] = counts.get(ch, 0) + 1
    n = len(s)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def looks_random(s: str, min_len: int = 8, min_entropy: float = 3.0) -> bool:
    """Whether `s` has the length, character mix and entropy of a generated credential."""
    if len(s) < min_len or any(c.isspace() for c in s):
        return False
    classes = sum(
        (
            any(c.islower() for c in s),
            any(c.isupper() for c in s),
            any(c.isdigit() for c in s),
        )
    )
    return classes >= 2 and entropy(s) >= min(min_entropy, math.log2(len(s)) - 0.5)


_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def github_checksum_ok(token: str) -> bool:
    """Whether a classic GitHub token's last 6 chars are base62(CRC32(random part))."""
    body = token.split("_", 1)[-1]
    random_part, check = body[:-6], body[-6:]
    n = zlib.crc32(random_part.encode())
    digits = ""
    while n:
        n, r = divmod(n, 62)
        digits = _B62[r] + digits
    return digits.rjust(6, "0") == check


def _fine_grained_ok(token: str) -> bool:
    head, tail = token[:-16], token[-16:-8]
    digest = base64.b32encode(hashlib.sha256(head.encode()).digest()).decode()
    return digest[:8] == tail


_WORD_PART = re.compile(r"(?:^|-)[a-z]{2,}(?=-|$)")


def _is_slug(body: str) -> bool:
    """A lower-case run of hyphenated words (``boosts-lung-cancer-portfolio``): a URL slug or
    a name, where a generated key mixes case or has at most a word or two by chance."""
    return body == body.lower() and len(_WORD_PART.findall(body)) >= 3


def _random_body(min_entropy: float) -> Callable[[str], bool]:
    def check(secret: str) -> bool:
        body = re.sub(r"^[a-z]+[_-](?:[a-z0-9]+[_-])?", "", secret)
        if _is_slug(body or secret):
            return False
        return looks_random(body or secret, min_len=8, min_entropy=min_entropy)

    return check


def _basic_ok(secret: str) -> bool:
    try:
        decoded = base64.b64decode(secret + "=" * (-len(secret) % 4), validate=True)
        text = decoded.decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return False
    _user, sep, password = text.partition(":")
    return bool(sep) and bool(password) and text.isprintable() and not is_placeholder(password)


def _d(
    name: str,
    pattern: str,
    prefix: str = "",
    check: Callable[[str], bool] | None = None,
    bounded: bool = True,
) -> Detector:
    return Detector(name, pattern, prefix, check, bounded)


_ALNUM = "A-Za-z0-9"
_URLSAFE = "A-Za-z0-9_-"
LONGEST = 4096
"""The most characters a token of a format without a fixed length is matched to (Google's
OAuth access tokens are documented up to 2,048 bytes; AWS session tokens and PyPI macaroons
grow with what they carry). Every such match runs to the end of its characters, never stops
inside them: a match cut at a cap leaves the rest of the token in the cassette."""

DETECTORS: tuple[Detector, ...] = (
    _d(
        "private-key",
        r"-----BEGIN[A-Z ]{0,30}PRIVATE KEY(?: BLOCK)?-----[\s\S]{16,20000}?"
        r"-----END[A-Z ]{0,30}PRIVATE KEY(?: BLOCK)?-----",
    ),
    _d(
        "anthropic",
        rf"sk-ant-(?:api|admin|oat|ort|sid)\d\d-[{_URLSAFE}]{{20,{LONGEST}}}",
        "sk-ant-api03-",
    ),
    _d("openrouter", r"sk-or-v\d-[A-Za-z0-9]{32,80}", "sk-or-v1-"),
    _d("openai", rf"sk-(?:proj|svcacct|admin|None)-[{_URLSAFE}]{{20,{LONGEST}}}", "sk-proj-"),
    _d("deepseek", r"sk-[a-f0-9]{32}(?![A-Za-z0-9_-])", "sk-"),
    _d("openai", rf"sk-[{_URLSAFE}]{{20,{LONGEST}}}", "sk-", _random_body(3.0)),
    _d("anthropic", rf"sk-ant-[{_URLSAFE}]{{20,{LONGEST}}}", "sk-ant-"),
    _d("stripe", r"(?:sk|rk)_(?:live|test|prod)_[A-Za-z0-9]{10,120}", "sk_live_"),
    _d("stripe", r"whsec_[A-Za-z0-9]{24,80}", "whsec_"),
    _d("elevenlabs", r"sk_[a-f0-9]{48}", "sk_"),
    _d("google", rf"AIza[{_URLSAFE}]{{35}}", "AIza"),
    _d("gemini", rf"AQ\.Ab8RN6[{_URLSAFE}]{{30,80}}", "AQ.Ab8RN6"),
    _d("google", rf"ya29\.[{_URLSAFE}]{{16,{LONGEST}}}", "ya29.", _random_body(3.0)),
    _d("aws", r"(?:AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9])[A-Z2-7]{16}", "AKIA"),
    _d("aws", rf"ABSK[A-Za-z0-9+/]{{40,{LONGEST}}}={{0,2}}", "ABSK"),
    _d("github", r"github_pat_[A-Za-z0-9_]{70,100}", "github_pat_"),
    _d("github", r"gh[pousr]_[A-Za-z0-9]{30,80}", "ghp_"),
    _d(
        "gitlab",
        rf"gl(?:pat|dt|rt|ptt|cbt|imt|oas|soat|ft|ffct|agent)-[{_URLSAFE}]{{20,{LONGEST}}}"
        rf"(?:\.[0-9a-z]{{2}}\.[0-9a-z]{{7,9}})?(?![A-Za-z0-9_-])",
        "glpat-",
    ),
    _d("slack", rf"xox[abposre]-(?:\d-)?[A-Za-z0-9-]{{10,{LONGEST}}}", "xoxb-", _random_body(2.5)),
    _d("slack", rf"xoxe\.xox[bp]-\d-[A-Za-z0-9-]{{20,{LONGEST}}}", "xoxe.xoxp-1-"),
    _d("slack", r"xapp-\d-[A-Z0-9]{6,16}-\d{6,16}-[a-z0-9]{32,80}", "xapp-1-"),
    _d(
        "slack",
        rf"hooks\.slack\.com/(?:services|workflows|triggers)/(?P<s>[A-Za-z0-9_/-]{{20,{LONGEST}}})"
        r"(?![A-Za-z0-9_-])",
        "",
    ),
    _d("huggingface", r"hf_[A-Za-z0-9]{30,40}", "hf_", _random_body(3.0)),
    _d("huggingface", r"api_org_[A-Za-z0-9]{30,40}", "api_org_"),
    _d("groq", r"gsk_[A-Za-z0-9]{40,60}", "gsk_"),
    _d("replicate", r"r8_[A-Za-z0-9]{30,45}", "r8_"),
    _d("xai", rf"xai-[{_URLSAFE}]{{60,120}}", "xai-"),
    _d("perplexity", r"pplx-[A-Za-z0-9]{40,60}", "pplx-"),
    _d("together", rf"tgp_v1_[{_URLSAFE}]{{30,60}}", "tgp_v1_"),
    _d("fireworks", r"fw_[A-Za-z0-9]{20,48}", "fw_", _random_body(3.0)),
    _d("langsmith", r"lsv2_(?:pt|sk)_[a-f0-9]{32}_[a-f0-9]{10}", "lsv2_pt_"),
    _d("nvidia", rf"nvapi-[{_URLSAFE}]{{50,80}}", "nvapi-"),
    _d("cerebras", r"csk-[a-z0-9]{40,56}", "csk-"),
    _d("telegram", rf"\d{{5,16}}:A[{_URLSAFE}]{{33,36}}", "", _random_body(3.0)),
    _d("sendgrid", rf"SG\.[{_URLSAFE}]{{22}}\.[{_URLSAFE}]{{43}}", "SG."),
    _d("npm", r"npm_[A-Za-z0-9]{36}", "npm_"),
    _d("pypi", rf"pypi-AgEIcHlwaS5vcmc[{_URLSAFE}]{{50,{LONGEST}}}", "pypi-AgEIcHlwaS5vcmc"),
    _d("voyage", rf"pa-[{_URLSAFE}]{{40,50}}", "pa-", _random_body(3.5)),
    _d("firecrawl", r"fc-[a-f0-9]{32}", "fc-"),
    _d("jwt", rf"eyJ[{_URLSAFE}]{{8,}}\.eyJ[{_URLSAFE}]{{8,}}\.[{_URLSAFE}]{{8,}}", ""),
    _d(
        "url-credentials",
        rf"://[^\s:/?#@\"'<>\\]{{1,100}}:(?P<s>[^\s/?#@\"'<>\\]{{1,{LONGEST}}})@[A-Za-z0-9.\[\]-]+",
        bounded=False,
    ),
    _d(
        "basic-auth",
        rf"(?i:basic)\s+(?P<s>[A-Za-z0-9+/]{{8,{LONGEST}}}={{0,2}})(?![A-Za-z0-9+/=])",
        "",
        _basic_ok,
    ),
)
"""Every built-in detector, most specific first (the first that matches at a place wins)."""

_TRIGGER_WORDS = (
    *("sk-", "sk_", "rk_", "whsec_", "AIza", "AQ.Ab8", "ya29.", "AKIA", "ASIA", "ABIA", "ACCA"),
    *("A3T", "ABSK", "github_pat_", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "xox", "xapp-"),
    *("hooks.slack", "hf_", "api_org_", "gsk_", "r8_", "xai-", "pplx-", "tgp_", "fw_", "lsv2_"),
    *("nvapi-", "csk-", "SG.", "npm_", "pypi-", "pa-", "fc-", "eyJ", "-----BEGIN", "://", ":A"),
)


_GITLAB = ("pat", "dt", "rt", "ptt", "cbt", "imt", "oas", "soat", "ft", "ffct", "agent")


class Triggers:
    """A cheap superset of where a built-in detector can match: its literal prefixes.

    Every built-in detector's match holds one of them at most `_LEAD` characters from its
    start (all at its start but Telegram's, which has up to 16 digits before ``:A``).

    One Aho-Corasick pass (the ``ahocorasick_rs`` package) finds every prefix at once, at
    over 200 MB/s; `re`'s alternation of the same words runs at about 20 MB/s over prose,
    trying its words at every position whose character one of them starts with, and it ran
    over every body recorded, replayed or linted. ``basic`` in any case is among the words in
    its 32 ASCII spellings (a regex over the text took longer than the automaton); a text
    that is not ASCII also gets the regex, which folds case as Unicode does (``Baſic``).
    """

    def __init__(self, words: Sequence[str]) -> None:
        self._words = AhoCorasick(list(words))
        self._ascii = BytesAhoCorasick([w.encode() for w in words])
        self._overlap = max(len(w) for w in words) - 1
        # for text the automaton cannot take: lone surrogates (undecodable bytes kept)
        self._regex = re.compile("(?=" + "|".join(re.escape(w) for w in words) + ")")

    def _in(self, text: str, overlapping: bool) -> list[int]:
        """Where the words start in `text`, which is at most `_WINDOW` (+ overlap) long."""
        if text.isascii():  # (its bytes: the str automaton's conversion cost a third more)
            found = self._ascii.find_matches_as_indexes(text.encode("ascii"), overlapping)
            return [s for _, s, _ in found]
        try:
            return [s for _, s, _ in self._words.find_matches_as_indexes(text, overlapping)]
        except UnicodeEncodeError:
            return [m.start() for m in self._regex.finditer(text)]

    def _found(self, text: str, overlapping: bool) -> Iterator[int]:
        """Where the words start in `text`, read in overlapping windows of `_WINDOW`
        characters: the automaton keeps about 7 bytes per character of what it is given,
        7 GB for a 1 GiB text in one piece."""
        for at in range(0, len(text), _WINDOW):
            window = text[at : at + _WINDOW + self._overlap]
            yield from (at + start for start in self._in(window, overlapping))

    def search(self, text: str) -> bool:
        """Whether `text` holds a trigger."""
        if len(text) <= _WINDOW:
            found = bool(self._in(text, False))
        else:
            found = next(self._found(text, False), None) is not None
        return found or (not text.isascii() and _has_basic(text))

    def starts(self, text: str) -> list[int]:
        """Where each trigger in `text` starts, in order, each place once."""
        found = set(self._in(text, True) if len(text) <= _WINDOW else self._found(text, True))
        if not text.isascii():  # the automaton has the ASCII spellings of "basic" only
            found.update(m.start() for m in _BASIC.finditer(text))
        return sorted(found)


_WINDOW = 1 << 18
_BASIC = re.compile(r"[Bb](?i:asic)")


def _has_basic(text: str) -> bool:
    return _BASIC.search(text) is not None


TRIGGERS = Triggers(
    (
        *_TRIGGER_WORDS,
        *(f"gl{kind}-" for kind in _GITLAB),
        *map("".join, itertools.product(*(c + c.upper() for c in "basic"))),  # as `_BASIC`
    )
)
"""The built-in detectors' triggers."""

_LEAD = 16

_CHARSET_TAIL = re.compile(r"\[([^\]]+)\]\{[^}]*\}(?:=\{0,2\})?$")


def _anchored(det: Detector) -> str:
    tail = _CHARSET_TAIL.search(det.pattern)
    end = f"(?![{tail.group(1)}])" if tail else ""
    return "(?:" + det.pattern + ")" + end


class TokenFinder:
    """All detectors (built-in and configured) compiled into one regex pass over a string.

    Args:
        extra: configured detectors (``redact_patterns``) appended after the built-in ones.
    """

    def __init__(self, extra: Sequence[Detector] = ()) -> None:
        self.detectors = (*DETECTORS, *extra)
        self.always = bool(extra)  # configured patterns have no known trigger
        # Named groups `s` repeat across detectors; give each alternative its own.
        parts = [
            (d.bounded, f"(?P<d{i}>{_anchored(d)})".replace("(?P<s>", f"(?P<s{i}>"))
            for i, d in enumerate(self.detectors)
        ]
        bounded = "|".join(p for b, p in parts if b)
        free = "".join(f"|{p}" for b, p in parts if not b)
        # The boundary is tested once per position, before any bounded alternative is tried.
        self._regex = re.compile(f"{_LB}(?:{bounded}){free}")
        self._glued = re.compile(f"(?:{bounded}){free}")  # no left boundary: binary data

    def find(self, text: str, glued: bool = False) -> list[Match]:
        """The secrets in `text`, placeholders and failed checks left out.

        Args:
            glued: find tokens right after any character, letters and digits included. Binary
                data has no words: a protobuf string's length byte may be a letter.
        """
        out: list[Match] = []
        regex = self._glued if glued else self._regex
        for m in regex.finditer(text) if self.always else self._near_triggers(text, regex):
            i = int((m.lastgroup or "d0")[1:])
            det = self.detectors[i]
            span = m.span(f"s{i}") if f"s{i}" in m.re.groupindex else m.span()
            if span[0] < 0:
                span = m.span()
            secret = text[span[0] : span[1]]
            if is_placeholder(secret, det.prefix):
                continue
            if det.check is not None and not det.check(secret):
                continue
            out.append(Match(span[0], span[1], det.name, secret))
        return out

    def matches_anywhere(self, text: str, glued: bool = False) -> bool:
        """Whether any detector's regex matches in `text`, placeholders and failed checks
        included: unlike `find`'s, this answer holds for every stretch of a text scanned
        piece by piece (a match left out by `find` still moves on where the next is tried)."""
        regex = self._glued if glued else self._regex
        found = regex.finditer(text) if self.always else self._near_triggers(text, regex)
        return next(found, None) is not None

    def _near_triggers(self, text: str, regex: re.Pattern[str]) -> Iterator[re.Match[str]]:
        """What `regex.finditer(text)` yields, trying only the places a match can start:
        up to `_LEAD` characters before each trigger. A long text with one URL in it (a whole
        cassette, in lint's raw pass) costs a few dozen tries instead of a pass over it all."""
        end = 0  # where the last match ended: matches do not overlap, as with finditer
        tried = -1  # the last place tried
        for at in TRIGGERS.starts(text):
            if at < end:
                continue
            p = max(end, tried + 1, at - _LEAD)
            while p <= at:
                tried = p
                m = regex.match(text, p)
                if m is None:
                    p += 1
                    continue
                yield m
                end = p = m.end()


def checksum_note(detector: str, secret: str) -> bool | None:
    """For GitHub tokens, whether the embedded checksum is valid (None: no checksum)."""
    if detector != "github":
        return None
    if secret.startswith("github_pat_"):
        return _fine_grained_ok(secret)
    return github_checksum_ok(secret)
