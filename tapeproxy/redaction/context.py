"""Context rules: which header, parameter and field names hold credentials, and when a value
found there (or after ``NAME=`` in free text) is a secret rather than an id or a word.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from tapeproxy.cassettes.key import CREDENTIAL_HEADERS, CREDENTIAL_QUERY_PARAMS
from tapeproxy.redaction.detectors import looks_random
from tapeproxy.redaction.placeholders import is_placeholder

__all__ = [
    "ASSIGNMENT_RE",
    "ASSIGNMENT_WORDS",
    "Names",
    "assignment_name",
    "assignments",
    "context_detector",
    "is_secret_value",
    "names_metadata",
    "strip_scheme",
]

_STRONG_FIELDS = frozenset(
    {
        "api_key",
        "apikey",
        "api-key",
        "x-api-key",
        "x-goog-api-key",
        "access_token",
        "refresh_token",
        "id_token",
        "auth_token",
        "authtoken",
        "bearer_token",
        "client_secret",
        "clientsecret",
        "password",
        "passwd",
        "secret",
        "secret_key",
        "secretkey",
        "private_key",
        "aws_secret_access_key",
        "secretaccesskey",
        "aws_session_token",
        "sessiontoken",
        "authorization",
        "openai_api_key",
        "anthropic_api_key",
        "session_token",
        "webhook_secret",
    }
)
_WEAK_NAME = re.compile(
    r"(?i)(?:^|[_.-])(?:[a-z]*api[_-]?key|key|token|secret|passw(?:or)?d|auth|credentials?|sig|"
    r"signature|session|cookie)$|(?:api[_-]?key|secret|passw(?:or)?d|credential|token)"
)
_STRONG_NAME = re.compile(
    r"(?i)(?:api[_-]?key|secret|passw(?:or)?d|access[_-]?key|private[_-]?key|"
    r"(?:auth|access|refresh|bearer|api|session)[_-]?token)"
)
_PASSWORD = re.compile(r"passw(?:or)?d|(?:^|[_.-])pwd$|^pass$")
_IDENTIFIER = re.compile(r"[A-Za-z_.-]+")
_WORD = re.compile(r"[a-z]+(?:[A-Z][a-z]+)*|[A-Z][a-z]+(?:[A-Z][a-z]+)*|[A-Z]+")


def _is_reference(value: str) -> bool:
    """A name in code (``os.environ``, ``settings.API_KEY``, ``config.apiKey``): letters in
    parts joined by ``.`` or ``_``, each part a word in one of code's cases. Random letters
    mix case inside a part (``ePYBhgbecGRbP_N``) and are not a reference."""
    if not _IDENTIFIER.fullmatch(value) or not ("." in value or "_" in value):
        return False
    return all(_WORD.fullmatch(p) for p in re.split(r"[._-]+", value) if p)


_NOT_CREDENTIAL = re.compile(
    r"(?i)(?:max_?(?:completion_|output_|new_)?tokens|tokens?_?(?:count|usage|limit|type|ids?)|"
    r"(?:prompt|completion|input|output|total|cached|reasoning)_tokens?|token_?logprobs|"
    r"top_?logprobs|stop_?token|^key$|^keys$|idempotency|cache_?key|primary_?key|sort_?key|"
    r"partition_?key|signature$|thought_?signature|^sig$|public_?key|^tokens$|_id$)"
)
_ID_SHAPES = re.compile(
    r"^(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{40}|[0-9a-f]{64}|"
    r"(?:chatcmpl|cmpl|gen|run|msg|req|resp|call|toolu|fp|org|proj|file|asst|thread|batch|"
    r"ft|evt|step|span|trace|srvtoolu|rs|ws|sess_req)[-_][A-Za-z0-9_-]+|"
    r"\d{4}-\d\d-\d\d[T ][\d:.]+Z?|[\d.]+|W/\".*\"|\".*\")$",
    re.IGNORECASE,
)
_SCHEME = re.compile(
    r"^(?:Bearer|Basic|Token|token|Bot|Digest|ApiKey|Api-Key|key|AWS4-HMAC-SHA256\s+Credential=)\s*",
    re.IGNORECASE,
)

_VALUE = r"[^\s'\"\\<>,;&()\[\]{}]"
"""A character of a free-text assignment's value."""
_ATTRIBUTE = r"""\s+[\w:.-]{1,40}\s*=\s*\\{0,3}(?:"[^"<>]{0,200}"|'[^'<>]{0,200}')"""

ASSIGNMENT_WORDS = (
    r"api[_-]?key|secret|token|passw(?:or)?d|credentials?|auth|(?<=[a-z0-9_.-])key(?![a-z0-9_])"
)
"""The words (lower-case) a free-text assignment's name holds, one of which starts a match."""

ASSIGNMENT_RE = re.compile(
    rf"(?i)(?:{ASSIGNMENT_WORDS})[a-z0-9_]{{0,20}}"
    rf"(?:['\"\\]{{0,8}}\s{{0,3}}(?:=>|:=|=|:)|(?P<tag>(?:{_ATTRIBUTE}){{0,4}}\s{{0,3}}>))\s{{0,3}}"
    r"['\"\\]{0,8}(?:bearer\s+)?['\"\\]{0,8}"
    rf"(?P<s>{_VALUE}{{6,}})(?(tag)(?=\s{{0,3}}</))"
)
"""``NAME = value`` / ``"name": "value"`` in free text with a credential-ish name (one with a
credential word in it, or whose last word is ``key`` after others: ``AZURE_OPENAI_KEY``,
``AzureOpenAIKey``; a bare ``key`` is Google's query parameter, a word in prose); quotes may
be escaped a few times over (JSON in a string in a JSON document). Or ``<name>value</name>``:
an element named for a credential whose whole text is the value (`_opens_element` checks that
the name is the element's: ``<span class=token>Word</span>`` is no assignment). The value
runs to the end of its characters: no credential is cut short."""

_ASSIGNMENT_LOWER = re.compile(ASSIGNMENT_RE.pattern.removeprefix("(?i)"))
_VALUE_RUN = re.compile(f"{_VALUE}*")
_ATTRIBUTE_PAIR = re.compile(
    r"""\b(?:name|key)\s*=\s*\\{0,3}["'](?P<n>[\w.:-]{1,80})\\{0,3}["']"""
    rf"""[^<>]{{0,120}}?\bvalue\s*=\s*\\{{0,3}}["'](?P<s>{_VALUE}{{6,}})"""
)
"""``<add key="OpenAIKey" value="..."/>``, ``<input name="api_key" value="...">``: a value
named by its element's ``name`` or ``key`` attribute (matched in lower-cased text)."""
_ATTRIBUTE_PAIR_ANY_CASE = re.compile(_ATTRIBUTE_PAIR.pattern, re.IGNORECASE)
_ELEMENT_OPEN = re.compile(r"<(?:[A-Za-z_][\w.-]{0,40}:)?$")


def assignments(text: str) -> Iterator[tuple[int, int, int]]:
    """``(start of the name, value start, value end)`` of each `ASSIGNMENT_RE` match in `text`
    and each `_ATTRIBUTE_PAIR`.

    Matched on the lower-cased text when lower-casing keeps every offset (it does but for a
    few non-ASCII letters): about 6 times faster than an IGNORECASE pass."""
    if text.isascii() or len(text) <= _WINDOW:
        yield from _assignments(text, 0, len(text))
        return
    # Lower-casing non-ASCII text takes 12 bytes a character while it runs (CPython): a
    # 64 MiB binary body would take 768 MiB. Long text goes in overlapping windows.
    done = 0  # where the last value ended: the next window may see its name's end again
    for at in range(0, len(text), _WINDOW):
        found = _assignments(text[at : at + _WINDOW + _OVERLAP], at, _WINDOW)
        for start, s, e in sorted(found, key=lambda m: m[1]):
            if s < done:
                continue
            # a value the window's end cut runs on to the end of its characters
            done = _VALUE_RUN.match(text, e).end()  # type: ignore[union-attr]
            yield start, s, done


_WINDOW = 1 << 20
_OVERLAP = 1024  # longer than any name, operator and value start a window could cut


def _assignments(text: str, at: int, before: int) -> Iterator[tuple[int, int, int]]:
    """`assignments` in `text` (which starts at offset `at`) that start before `before`."""
    low = text.lower()
    aligned = len(low) == len(text)
    regex = _ASSIGNMENT_LOWER if aligned else ASSIGNMENT_RE
    for m in regex.finditer(low if aligned else text):
        if m.start() >= before:
            break
        if m.group("tag") is not None and not _opens_element(text, m.start()):
            continue
        s, e = m.span("s")
        if text[s - 1] in "'\"" and text[e : e + 1].isspace():
            continue  # a word of a quoted text ("ssh-ed25519 AAAA... dev@host"), not all of it
        yield at + m.start(), at + s, at + e
    if "value" in low:
        pairs = _ATTRIBUTE_PAIR if aligned else _ATTRIBUTE_PAIR_ANY_CASE
        for m in pairs.finditer(low if aligned else text):
            if m.start() >= before:
                return
            s, e = m.span("s")
            yield at + m.start("n"), at + s, at + e


def _opens_element(text: str, at: int) -> bool:
    """Whether the name around `at` is an element's, right after ``<`` (or ``<prefix:``)."""
    start = _name_start(text, at)
    return _ELEMENT_OPEN.search(text, max(0, start - 42), start) is not None


_PROVIDER_WORDS = (
    ("aws", "aws"),
    ("amz", "aws"),
    ("mistral", "mistral"),
    ("cohere", "cohere"),
    ("co_api", "cohere"),
    ("deepseek", "deepseek"),
    ("azure", "azure-openai"),
    ("together", "together"),
    ("openai", "openai"),
    ("anthropic", "anthropic"),
    ("gemini", "google"),
    ("google", "google"),
    ("groq", "groq"),
    ("github", "github"),
    ("slack", "slack"),
    ("stripe", "stripe"),
    ("hf_", "huggingface"),
    ("huggingface", "huggingface"),
)
_HOST_WORDS = (
    ("mistral.ai", "mistral"),
    ("openai.azure.com", "azure-openai"),
    ("cognitiveservices.azure.com", "azure-openai"),
    ("together.xyz", "together"),
    ("together.ai", "together"),
    ("cohere.", "cohere"),
    ("deepseek.com", "deepseek"),
    ("amazonaws.com", "aws"),
)


@dataclass(frozen=True)
class Names:
    """The credential names in force: built-in plus configured extras (compared lower-case).

    Args:
        headers: extra header names whose values are credentials.
        fields: extra JSON / form field and query parameter names whose values are credentials.
    """

    headers: frozenset[str] = CREDENTIAL_HEADERS
    fields: frozenset[str] = _STRONG_FIELDS
    params: frozenset[str] = _STRONG_FIELDS | CREDENTIAL_QUERY_PARAMS
    passwords: bool = True

    @classmethod
    def build(cls, headers: Iterable[str] = (), fields: Iterable[str] = ()) -> Names:
        """Built-in names plus the given extras."""
        extra = {f.lower() for f in fields}
        return cls(
            CREDENTIAL_HEADERS | {h.lower() for h in headers},
            _STRONG_FIELDS | extra,
            _STRONG_FIELDS | CREDENTIAL_QUERY_PARAMS | extra,
        )

    def without_passwords(self) -> Names:
        """These names but for passwords, for what a model wrote: a password a model made up
        for a tool call (``{"password": "..."}``) is test data, not a leaked secret;
        a key under an API-key name still is."""
        return dataclasses.replace(self, passwords=False)

    @property
    def default_fields(self) -> frozenset[str]:
        """The built-in field names (extras are the difference)."""
        return _STRONG_FIELDS

    def param_kind(self, name: str) -> str | None:
        """``strong`` for a credential query / form parameter, ``weak`` for a credential-ish one."""
        low = name.lower()
        if not self.passwords and _PASSWORD.search(low):
            return None
        if low in self.params:
            return "strong"
        return self.field_kind(name)  # (its case splits camelCase words: ``tokenExpiry``)

    def header_kind(self, name: str) -> str | None:
        """``strong`` for a credential header, ``weak`` for a credential-ish one, else None.

        The same rule as for fields: a header whose name says it holds a key or a token
        (``X-Acme-Api-Key``) is strong, so an id-shaped value (a UUID) under it is a secret
        when recording, importing and linting alike."""
        low = name.lower()
        if low in self.headers:
            return "strong"
        if not _credentialish(name):
            return None
        return "strong" if _STRONG_NAME.search(low) else "weak"

    def field_kind(self, name: str) -> str | None:
        """``strong`` for a credential field / parameter, ``weak`` for a credential-ish one."""
        low = name.lower()
        if not self.passwords and _PASSWORD.search(low):
            return None
        if low in self.fields:
            return "strong"
        if not _credentialish(name):
            return None
        return "strong" if _STRONG_NAME.search(low) else "weak"


_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


def assignment_name(text: str, at: int) -> str:
    """The whole name of an assignment whose match starts at `at` (extended left and right
    over name chars), or "" when it is one segment of a colon-separated identifier
    (``arn:aws:secretsmanager:...``, ``urn:...:token:...``): no assignment there."""
    start = _name_start(text, at)
    end = at
    while end < len(text) and (text[end] in _NAME_CHARS):
        end += 1
    if start > 0 and text[start - 1] == ":" and text[end : end + 1] == ":":
        return ""
    return text[start:end]


def _name_start(text: str, at: int) -> int:
    """Where the name holding ``text[at]`` starts: up to 40 name characters before `at`."""
    start = at
    while start > 0 and at - start < 40 and text[start - 1] in _NAME_CHARS:
        start -= 1
    return start


_NAME_WORDS = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")
_TRANSPARENT = frozenset(
    {"value", "val", "data", "material", "string", "str", "text", "raw", "plain", "encoded"}
    | {"b64", "base64", "hex", "bytes"}
)
_METADATA = frozenset(
    {"name", "names", "id", "ids", "type", "types", "kind", "policy", "policies", "path"}
    | {"paths", "file", "filename", "dir", "url", "uri", "arn", "ref", "version", "versions"}
    | {"length", "len", "size", "count", "at", "in", "expiry", "expires", "expiration", "ttl"}
    | {"age", "created", "updated", "rotated", "date", "time", "env", "var", "variable"}
    | {"field", "hint", "label", "prefix", "suffix", "format", "scope", "scopes", "provider"}
    | {"source", "location", "status", "mode", "method", "algorithm", "alg", "usage", "limit"}
    | {"limits", "required", "enabled", "set", "present", "configured", "exists", "valid"}
    | {"description", "placeholder", "example", "help", "title", "rule", "rules", "level"}
)
"""A name's last word that says the value describes a credential rather than holds it."""


def names_metadata(name: str) -> bool:
    """Whether `name` describes a credential rather than holding one: its head noun (last
    word, ignoring words such as ``value`` or ``b64`` that only say how it is held) is a
    name, an id, a type, a path, a policy, a time... (``secret_name``, ``key_id``,
    ``token_type``, ``password_policy``, ``privateKeyPath``), whatever credential word
    comes before it."""
    words = [w.lower() for w in _NAME_WORDS.findall(name)]
    while len(words) > 1 and words[-1] in _TRANSPARENT:
        words.pop()
    return len(words) > 1 and words[-1] in _METADATA


def _credentialish(name: str) -> bool:
    low = name.lower()
    return (
        bool(_WEAK_NAME.search(low) or _WEAK_NAME.search(_snake(name)))
        and not _NOT_CREDENTIAL.search(low)
        and not names_metadata(name)
    )


def _snake(name: str) -> str:
    """`name`'s camelCase words joined by ``_`` (``AzureOpenAIKey``: ``azure_open_ai_key``)."""
    return "_".join(w.lower() for w in _NAME_WORDS.findall(name))


def strip_scheme(value: str) -> str:
    """The credential without its scheme word (``Bearer``, ``Basic``, ``AWS4-HMAC-SHA256``)."""
    return _SCHEME.sub("", value.strip(), count=1).strip()


_FLOAT = re.compile(r"[-+]?(?:\d+\.\d*(?:[eE][-+]?\d+)?|\d+[eE][-+]?\d+)")


def is_secret_value(value: str, kind: str) -> bool:
    """Whether a value found under a credential name of `kind` (strong / weak) is a secret."""
    v = strip_scheme(value)
    if is_placeholder(v) or len(v) < 6 or any(c.isspace() for c in v):
        return False
    if _FLOAT.fullmatch(v):
        return False  # a decimal or scientific number (a price, a rate), never a credential
    if v.lower() in CREDENTIAL_HEADERS:
        return False  # the name of the header a key goes in (``"api_key_header": "x-api-key"``)
    if _is_reference(v):
        return False  # a reference such as os.environ or settings.API_KEY
    if kind == "strong":
        return (len(set(v)) >= 5 and not v.isalpha()) or looks_random(v, 6, 2.5)
    if all(len(p) > 1 and _WORD.fullmatch(p) for p in re.split(r"[._-]+", v)):
        return False  # words (Extra-Header-Value, default-bucket) under a name that hints
    return not _ID_SHAPES.match(v) and looks_random(v, 10, 3.0)


def context_detector(name: str, host: str = "", fallback: str = "credential-field") -> str:
    """The detector id for a context finding: the provider named by the name or host."""
    low = name.lower()
    for word, det in _PROVIDER_WORDS:
        if word in low:
            return det
    for word, det in _HOST_WORDS:
        if word in host.lower():
            return det
    return fallback
