"""One positive and one negative example per detector rule (gitleaks-style), checksums, and
the boundary rules: a token is found before ``&``, an escaped quote or a chunk boundary."""

from __future__ import annotations

import random

import pytest

from tapeproxy.redaction.context import Names
from tapeproxy.redaction.detectors import (
    TRIGGERS,
    Detector,
    TokenFinder,
    checksum_note,
    github_checksum_ok,
)
from tapeproxy.redaction.placeholders import is_placeholder
from tapeproxy.redaction.scanner import Scanner
from tests.redaction.corpus import FORMATS, Fmt

_SCANNER = Scanner(TokenFinder(), Names(), frozenset(), redact=False)


@pytest.mark.parametrize("fmt", FORMATS, ids=[f.name for f in FORMATS])
def test_each_format_is_found_in_text(fmt: Fmt) -> None:
    secret = fmt.make(random.Random(fmt.name))
    text = f"{fmt.keyword}={secret}" if fmt.keyword else f"key: {secret}&next=1"
    found = {m.secret for m in _SCANNER.matches(text)}
    found |= {m.secret for m in _SCANNER.pair_matches(text)}
    assert any(secret in s or s in secret for s in found if len(s) >= 8), (text, found)


@pytest.mark.parametrize(
    "text",
    [
        "sk-proj-" + "X" * 156,
        "sk-ant-api03-" + "*" * 93 + "AA",
        "AKIAIOSFODNN7EXAMPLE",
        "ghp_" + "x" * 36,
        "AIza" + "0" * 35,
        "<redacted:openai>",
        "sk-...ab12",
        "chatcmpl-9xYzAbCdEfGhIjKlMnOpQrStUvWx",
        "call_Ab3dEf9hIjKlMnOpQrStUvWx toolu_01AbCdEfGhIjKlMnOpQrStUv",
        "d2c8f0e7a1b34c5d9e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5",
        "claude-3-5-sonnet-20241022 gpt-4o-2024-08-06",
        "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0\n-----END PUBLIC KEY-----",
        "api_key=os.environ['OPENAI_API_KEY'] password: <your password>",
        "The secret to bread is patience; tokens are counted per request.",
        "max_tokens: 1024, prompt_tokens=12",
        "task-manager-for-everyone and desk-organizer-tools",
    ],
)
def test_hard_negatives_are_not_flagged(text: str) -> None:
    assert _SCANNER.matches(text) == []


def test_boundaries_do_not_depend_on_what_follows() -> None:
    token = "AIzaSy" + "Ab3dEf9hIj" * 3 + "Xy_"
    for text in (f"k={token}&x=1", f'\\"{token}\\"', f"{token}\n", f"x%3D{token}", f"\\n{token}"):
        assert [m.secret for m in _SCANNER.matches(text)] == [token], text
    assert _SCANNER.matches(token + "Z") == []  # longer than the format: not this token


def test_github_checksums() -> None:
    good = FORMATS[[f.name for f in FORMATS].index("github-pat")].make(random.Random(1))
    assert github_checksum_ok(good)
    bad = good[:-1] + ("A" if good[-1] != "A" else "B")
    assert not github_checksum_ok(bad)
    fine = FORMATS[[f.name for f in FORMATS].index("github-fine-grained")].make(random.Random(2))
    assert checksum_note("github", fine) is True
    assert checksum_note("openai", "sk-x") is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("<redacted:openai>", True),
        ("${OPENAI_API_KEY}", True),
        ("{{ token }}", True),
        ("REDACTED", True),
        ("sk-proj-XXXXXXXXXXXXXXXX", True),
        ("your-api-key", True),
        ("sk-proj-Ab3dEf9hIjKlMnOp", False),
    ],
)
def test_placeholder_grammar(value: str, expected: bool) -> None:
    assert is_placeholder(value, "sk-proj-") is expected


def _full_pass() -> TokenFinder:
    """A finder that runs its regex over the whole text (a configured pattern turns the
    trigger shortcut off); this one never matches, so the findings are the built-ins'."""
    return TokenFinder((Detector("never", r"(?!x)x"),))


def test_trying_only_near_triggers_finds_what_a_full_pass_finds() -> None:
    rng = random.Random(8)
    fast, full = TokenFinder(), _full_pass()
    secrets = [fmt.make(rng) for fmt in FORMATS for _ in range(3)]
    pieces = [
        *secrets,
        *(s[: len(s) // 2] for s in secrets),
        "https://",
        "user:pw@",
        "gsk_",
        "sk_",
        ":A",
        "eyJ",
        "bAsIc ",
        "Basic ",
        "BASIC ",
        "dXNlcjpzZWNyZXRwdzE=",  # user:secretpw1
        "-----BEGIN",
        "1234567890123456",
        "12345",
        " ",
        "\n",
        "\\n",
        "%2F",
        '"',
        "é",
        "word",
    ]
    texts = ["".join(rng.choices(pieces, k=rng.randint(1, 12))) for _ in range(3000)]
    texts += [f"{'x' * n}{'7' * d}:A{'B' * 34}" for n in range(3) for d in range(3, 19)]
    texts += [f"Authorization: {b} dXNlcjpzZWNyZXRwdzE=" for b in ("bAsIc", "BaSiC", "basic")]
    found = 0
    for text in texts:
        got = fast.find(text)
        assert got == full.find(text), text
        assert fast.find(text, glued=True) == full.find(text, glued=True), text
        found += len(got)
    assert found > 2000


@pytest.mark.parametrize("word", ["bot", "key", "u", "token", "sendTo"])
def test_a_token_glued_to_a_url_path_word_is_found(word: str) -> None:
    rng = random.Random(word)
    for fmt in (f for f in FORMATS if f.name in ("telegram", "github-pat", "groq", "npm")):
        secret = fmt.make(rng)
        text = f"GET https://api.example.org/{word}{secret}/sendMessage?x=1"
        assert secret in {m.secret for m in _SCANNER.matches(text)}, text
    # a word glued to a token outside a path is still inside a word
    assert _SCANNER.matches(f"robot{FORMATS[0].make(rng)}") == []


@pytest.mark.parametrize(
    "name",
    ["secret_name", "key_id", "token_type", "password_policy", "privateKeyPath", "API_KEY_ENV"],
)
def test_a_name_that_describes_a_credential_does_not_make_its_value_one(name: str) -> None:
    value = f"prod-{random.Random(name).randrange(10**8)}-db-{name.lower()}"
    assert Names().field_kind(name) is None
    assert _SCANNER.matches(f'{{"{name}": "{value}"}}') == []
    assert _SCANNER.matches(f"{name}={value}") == []


@pytest.mark.parametrize("name", ["api_key", "clientSecret", "db_password", "secret_value"])
def test_a_name_that_holds_a_credential_still_does(name: str) -> None:
    value = "".join(random.Random(name).choices("abcdefXYZ0123456789", k=24))
    assert Names().field_kind(name) is not None
    assert [m.secret for m in _SCANNER.matches(f"{name}={value}")] == [value]


def test_a_segment_of_a_colon_separated_identifier_is_not_an_assignment() -> None:
    arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/db-AbC123"
    assert _SCANNER.matches(arn) == []
    assert _SCANNER.matches(f'\\\\\\"secret_arn\\\\\\": \\\\\\"{arn}\\\\\\"') == []


@pytest.mark.parametrize("quote", ['"', '\\"', '\\\\\\"'])
def test_an_echoed_bearer_header_is_found_at_any_escape_depth(quote: str) -> None:
    key = "".join(random.Random(quote).choices("0123456789abcdef", k=32))
    text = f"sent {{{quote}Authorization{quote}: {quote}Bearer {key}{quote}}} and got 401"
    assert [m.secret for m in _SCANNER.matches(text)] == [key]


@pytest.mark.parametrize(
    "text",
    [
        "https://example.com/news/gsk-boosts-lung-cancer-portfolio-with-10-6-billion-deal",
        "openai.AuthenticationError: Error code: 401 - {'error': {'code': 'invalid_api_key'}}",
        "extra-header-key: Extra-Header-Value",
        "x-ratelimit-key: default-bucket-name",
        "api_key=settings.OPENAI_API_KEY, token=config.apiKey",
    ],
)
def test_words_slugs_and_code_names_are_not_secrets(text: str) -> None:
    assert _SCANNER.matches(text) == []


def test_random_letters_joined_by_an_underscore_are_not_a_code_name() -> None:
    value = "".join(random.Random(3).choices("abcdefghijKLMNOPQRST", k=13)) + "_Q"
    assert [m.secret for m in _SCANNER.matches(f"Authorization: Bearer {value}")] == [value]


def test_base64_of_a_compact_json_fragment_is_not_a_basic_credential() -> None:
    import base64

    for fragment in ('a":{"text":"Paris","country":"France"}', 'x:{"p":"abcdefghijk"}'):
        run = base64.b64encode(fragment.encode()).decode()
        assert _SCANNER.pair_matches(f"chunk {run} end") == [], fragment
    pair = base64.b64encode(b"svc-user:Qm9vX7sLp2Zr").decode()
    assert [m.secret for m in _SCANNER.pair_matches(f"chunk {pair} end")] == [pair]


def test_words_under_a_header_name_that_only_hints_at_a_key_are_kept() -> None:
    assert _SCANNER.header("extra-header-key", "Extra-Header-Value", "h")[1] == []
    secret = "".join(random.Random(4).choices("abcdefghijKLMNOPQRST0123456789", k=24))
    assert _SCANNER.header("extra-header-key", secret, "h")[1] != []


def test_text_with_undecodable_bytes_kept_as_surrogates_is_still_scanned() -> None:
    rng = random.Random(9)
    secret = next(f for f in FORMATS if f.name == "github-pat").make(rng)
    text = b"\xc3 key ".decode("utf-8", "surrogateescape") + secret + " and basic"
    finder = TokenFinder()
    assert [m.secret for m in finder.find(text)] == [secret]
    assert TRIGGERS.search(text)
    assert TRIGGERS.starts(text) == [text.index(secret), len(text) - 5]


@pytest.mark.parametrize("cut", [1, 2, 5])
def test_a_token_across_the_boundary_of_two_search_windows_is_found(cut: int) -> None:
    # Large texts are searched in windows (bounded memory); the windows overlap.
    from tapeproxy.redaction.detectors import _WINDOW

    rng = random.Random(cut)
    secret = next(f for f in FORMATS if f.name == "github-pat").make(rng)
    text = " " * (_WINDOW - cut) + secret + " then sk-" + " " * 10
    assert TRIGGERS.starts(text) == [_WINDOW - cut, text.index("sk-")]
    assert [m.secret for m in TokenFinder().find(text)] == [secret]
    assert TRIGGERS.search(" " * (_WINDOW - cut) + "eyJ" + " " * 10)


@pytest.mark.parametrize("shift", [-40, -3, 0, 5])
def test_assignments_in_long_non_ascii_text_are_found_across_windows(shift: int) -> None:
    # Long non-ASCII text is lower-cased in windows (bounded memory); none is lost or doubled.
    from tapeproxy.redaction.context import _WINDOW, assignments

    rng = random.Random(shift)
    value = "".join(rng.choice("abcdefKLMNOP0123456789") for _ in range(24))
    filler = "é" * (_WINDOW + shift)
    text = f"{filler}API_KEY={value} {filler}password: {value}x end"
    got = [text[s:e] for _, s, e in assignments(text)]
    assert got == [value, value + "x"]


def test_a_value_longer_than_a_window_overlap_is_found_whole() -> None:
    # Long non-ASCII text is matched in windows; a value the window's end cuts runs on.
    from tapeproxy.redaction.context import _OVERLAP, _WINDOW, assignments

    rng = random.Random(7)
    value = "".join(rng.choice("abcdefKLMNOP0123456789+/") for _ in range(3 * _OVERLAP))
    text = "é" * (_WINDOW - 40) + f"AWS_SESSION_TOKEN={value} and more é"
    assert [text[s:e] for _, s, e in assignments(text)] == [value]
