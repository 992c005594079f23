"""The cassette secret linter: findings for zstd cassettes and plain JSON, YAML and text files.

Cassettes are scanned structure first (every interaction through the recorder's own scanner,
so the linter and the redaction agree), then as raw text. Test folders are never discounted:
cassettes live in tests/. A file that should be a cassette but cannot be read as one (not zstd,
truncated, not JSON, not a `tapeproxy/1` document) is reported as damaged, and whatever text
can be got out of it is scanned all the same: a gate that skipped it would pass its secrets.
"""

from __future__ import annotations

import binascii
import contextlib
import gzip
import json
import operator
import os
import re
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zstandard

from tapeproxy.cassettes.model import Interaction
from tapeproxy.cassettes.store import ZSTD_MAGIC, decompress, from_document, read_json
from tapeproxy.errors import BadInputError, CassetteError
from tapeproxy.redaction.bodies import body_edits
from tapeproxy.redaction.layers import wide_text
from tapeproxy.redaction.redactor import Redactor
from tapeproxy.redaction.scanner import Hit, fingerprint
from tapeproxy.redaction.streams import joined_texts, may_hold_events

__all__ = [
    "LINTED_SUFFIXES",
    "LINT_MAX_BYTES",
    "Damaged",
    "Finding",
    "Linter",
    "collect_files",
    "mask",
]

LINT_MAX_BYTES = 256 << 20
"""Largest file the linter reads, decompressed (256 MiB; `lint_max_bytes` to change): a
hostile cassette in a pull request must not exhaust a CI runner through the lint gate. A
larger file fails the gate (exit 2), as a damaged one does."""

LINTED_SUFFIXES = (
    ".zst",
    ".json",
    ".jsonl",
    ".ndjson",
    ".yaml",
    ".yml",
    ".toml",
    ".txt",
    ".har",
    ".env",
)
"""File name endings a directory scan picks up (a file named explicitly is always linted)."""

_SKIPPED_DIRS = frozenset({".git", ".hg", ".venv", "venv", "node_modules", "__pycache__", ".tox"})
_INTERACTION = re.compile(r"^\.?interactions\[(\d+)\]")
_LINE = re.compile(r"^line (\d+)")


def mask(secret: str) -> str:
    """A preview that never shows the whole secret: its first few characters and its length."""
    shown = secret[: min(6, len(secret) // 4)]
    return f"{shown}…({len(secret)} chars)"


@dataclass(frozen=True)
class Finding:
    """One secret in one place of one file."""

    file: str
    interaction: int | None
    location: str
    detector: str
    secret: str = field(repr=False)
    line: int | None = None

    @property
    def fingerprint(self) -> str:
        """sha256 hex of the secret (what allow-lists hold)."""
        return fingerprint(self.secret)

    @property
    def preview(self) -> str:
        """The masked secret."""
        return mask(self.secret)

    def __reduce__(self) -> tuple[Any, ...]:
        # Lint workers send findings to the main process; compiled (tapeproxy.native), a
        # frozen dataclass is not rebuilt by pickle's field-by-field default.
        fields = (self.file, self.interaction, self.location, self.detector, self.secret)
        return (Finding, (*fields, self.line))

    def to_dict(self, reveal: bool = False) -> dict[str, Any]:
        """The finding as the JSON Lines object of ``--format json``."""
        out: dict[str, Any] = {
            "file": self.file,
            "interaction": self.interaction,
            "location": self.location,
            "detector": self.detector,
            "fingerprint": self.fingerprint,
            "preview": self.preview,
        }
        if self.line is not None:
            out["line"] = self.line
        if reveal:
            out["secret"] = self.secret
        return out


@dataclass(frozen=True)
class Damaged:
    """A file that could not be read as what its name says (lint exits 2 for it)."""

    file: str
    problem: str

    def __reduce__(self) -> tuple[Any, ...]:
        return (Damaged, (self.file, self.problem))  # (see Finding.__reduce__)


class Linter:
    """Lints files and blobs with a report-only `Redactor` (same detectors as recording).

    Args:
        redactor: built with ``report_only=True`` (see `Redactor.from_config`).
    """

    def __init__(self, redactor: Redactor, max_bytes: int = LINT_MAX_BYTES) -> None:
        self.redactor = redactor
        self.scanner = redactor.scanner
        self.max_bytes = max_bytes
        self.damaged: list[Damaged] = []
        self._clean_names: set[str] = set()  # header names with no token in them

    def lint_paths(
        self, paths: Sequence[Path], progress: Callable[[Path], None] | None = None
    ) -> list[Finding]:
        """Findings for files and directories (recursively).

        Raises:
            BadInputError: a path does not exist or cannot be read.
            CassetteError: a zstd file is damaged or a cassette does not fit its schema.
        """
        findings: list[Finding] = []
        for path in collect_files(paths):
            try:
                if self.over_limit(str(path), path.stat().st_size):
                    continue
                data = path.read_bytes()
            except OSError as e:
                raise BadInputError(f"{path}: cannot read ({e.strerror or e})") from e
            findings += self.lint_bytes(str(path), data)
            if progress is not None:
                progress(path)
        return findings

    def over_limit(self, name: str, size: int) -> bool:
        """Whether a file of `size` bytes is over the limit: then it is noted as damaged
        (the gate fails) and must not be read."""
        if size <= self.max_bytes:
            return False
        self._damage(
            name,
            f"{size} bytes, over the lint limit of {self.max_bytes} "
            "(lint_max_bytes, --max-bytes); not scanned",
        )
        return True

    def lint_bytes(self, name: str, data: bytes) -> list[Finding]:
        """Findings for the content of one file called `name`; damage goes to `damaged`."""
        data = self._decompressed(name, data)
        text = _as_text(data)
        stripped = text.lstrip()
        hits: list[tuple[Hit, int | None]] = []
        doc: Any = text
        if stripped[:1] in ("{", "["):
            hits, doc = self._json(name, text)
        elif name.endswith((".yaml", ".yml")) or name.endswith((".yaml.zst", ".yml.zst")):
            hits, doc = self._yaml(name, text)
        if _is_cassette_name(name) and stripped[:1] not in ("{", "["):
            self._damage(name, "empty" if not data else "not a JSON document")
        seen = {h.secret for h, _ in hits}
        if isinstance(doc, _Scanned):  # a cassette: only its bodies are left to join
            for path, body in doc.bodies:
                hits += self._streams(body, seen, path)
        else:
            hits += self._streams(doc, seen)
            hits += self._text(text, seen, by_line=doc is text)
        return _findings(name, hits)

    def _streams(self, doc: Any, seen: set[str], at: str = "") -> list[tuple[Hit, int | None]]:
        """Secrets split across the events of a stream, in any shape that holds one.

        The joined text goes through the token detectors only (and base64 ``user:password``
        pairs): a join of values that were not pieces of one text (a list of records rather
        than events) then cannot make up a ``name=value`` that was never written."""
        out: list[tuple[Hit, int | None]] = []
        for path, joined, pieces in joined_texts(doc, at):
            where = f"{path.lstrip('.') or '$'} (joined across {pieces} events)"
            hits = self.scanner.tokens_only(joined, where)[1]
            hits += [Hit(m.detector, m.secret, where) for m in self.scanner.pair_matches(joined)]
            for hit in hits:
                if hit.secret not in seen:
                    seen.add(hit.secret)
                    out.append((hit, _interaction_of(path)))
        return out

    def _damage(self, name: str, problem: str) -> None:
        """Note the first thing wrong with file `name` (what follows from it adds nothing)."""
        if not any(d.file == name for d in self.damaged[-1:]):
            self.damaged.append(Damaged(name, problem.removeprefix(f"{name}: ")))

    def _decompressed(self, name: str, data: bytes) -> bytes:
        """The bytes to scan: decompressed when zstd; as much as can be got when damaged."""
        if not data.startswith(ZSTD_MAGIC):
            if name.endswith(".zst"):
                self._damage(name, "empty file" if not data else "not a zstd file")
            return data
        try:
            return decompress(data, source=name, limit=self.max_bytes)
        except CassetteError as e:
            self._damage(name, str(e))
        # As much as a damaged frame gives, never more than the limit (a bomb stays defused).
        return _unpacked(data, self.max_bytes) or data[: self.max_bytes]

    def _json(self, name: str, text: str) -> tuple[list[tuple[Hit, int | None]], Any]:
        """Hits in a JSON document, and the document (the text when it is not JSON; a
        `_Scanned` when it is a cassette)."""
        try:
            doc = read_json(text)
        except (ValueError, RecursionError) as e:
            if _is_cassette_name(name):
                self._damage(name, f"not valid JSON ({e})")
            return (self._lines(text) if name.endswith((".jsonl", ".ndjson")) else []), text
        if isinstance(doc, dict) and str(doc.get("format", "")).startswith("tapeproxy/"):
            items = doc.get("interactions")
            # (validation empties the list it is given: on failure `doc` is scanned whole)
            shell = {**doc, "interactions": list(items) if isinstance(items, list) else items}
            try:
                cassette = from_document(shell, source=name)
            except CassetteError as e:
                self._damage(name, str(e))
            else:
                return self._cassette(cassette.interactions, doc)
        elif _is_cassette_name(name):
            self._damage(name, "not a tapeproxy cassette (no 'format': 'tapeproxy/1' object)")
        edits_hits = self.scanner.json_edits(text, "")
        return [(h, _interaction_of(h.path)) for h in edits_hits[1]], doc

    def _cassette(
        self, interactions: Sequence[Interaction], doc: dict[str, Any]
    ) -> tuple[list[tuple[Hit, int | None]], _Scanned]:
        """Hits in a cassette: each interaction through the recorder's own scanner (every
        part of it: URL, headers, bodies, each with its raw pass), then what is left of the
        document (meta, fields a newer version added) as JSON with its raw pass. Scanning
        the whole text again would only repeat that work, and would report what the
        recorder keeps on purpose (a password a model wrote for a tool call)."""
        out: list[tuple[Hit, int | None]] = []
        self.redactor.prove_clean_headers(interactions)
        for i, interaction in enumerate(interactions):
            _, hits = self.redactor.scan_interaction(interaction, f"interactions[{i}].")
            out += [(h, i) for h in hits]
        out += self._header_names(interactions)
        out += self._packed_bodies(interactions)
        top = {k: v for k, v in doc.items() if k != "interactions"}
        unread = [_unread(ix) for ix in doc.get("interactions", ())]
        rest = {**top, "interactions": unread}
        rest_text = json.dumps(rest, ensure_ascii=False)
        if self.scanner.json_suspicious(rest_text):
            _, hits = self.scanner.json_edits(rest_text, "")
            seen = {h.secret for h in hits}
            raw = [m for m in self.scanner.matches(rest_text) if m.secret not in seen]
            hits += [Hit(m.detector, m.secret, "(raw, outside the interactions)") for m in raw]
            out += [(h, _interaction_of(h.path)) for h in hits]
        bodies = [
            (f".interactions[{i}].{part}.{k}", ix[part][k])
            for i, ix in enumerate(doc.get("interactions", ()))
            if isinstance(ix, dict)
            for part in ("request", "response")
            if isinstance(ix.get(part), dict)
            for k in _BODY_KEYS
            if _joinable(ix[part].get(k), part)
        ]
        # What is left may hold a stream too (events a newer version keeps in a field of its
        # own, or a string of them): the top level, and each interaction's on its own.
        _to_join(top, "", bodies)
        for i, left in enumerate(unread):
            _to_join(left, f".interactions[{i}]", bodies)
        return out, _Scanned(bodies)

    def _packed_bodies(self, interactions: Sequence[Interaction]) -> list[tuple[Hit, int | None]]:
        """Secrets in binary bodies that are gzip or zstd data (an uploaded ``.gz`` file, a
        tool that kept the bytes of the wire): the recorder's scan sees their compressed
        bytes only. Each is unpacked up to the lint limit and scanned as a body."""
        out: list[tuple[Hit, int | None]] = []
        for i, ix in enumerate(interactions):
            for part, message in (("request", ix.request), ("response", ix.response)):
                body = message.body if message is not None else None
                if body is None or not body.base64:
                    continue
                if binascii.a2b_base64(body.base64[:8])[:4] not in _PACKED_MAGIC:
                    continue
                if data := _unpacked(body.to_bytes(), self.max_bytes):
                    text = _as_text(data)
                    where = f"interactions[{i}].{part}.body<unpacked>"
                    out += [(h, i) for h in body_edits(self.scanner, text, "", where)[1]]
        return out

    def _header_names(self, interactions: Sequence[Interaction]) -> list[tuple[Hit, int | None]]:
        """Tokens in header names, which the recorder's scan reads only to weigh a value by:
        a name is an HTTP token (no space, quote, ``=`` or ``:``), so a token is all that one
        can hold. Each name is looked at once (the same few dozen come in every cassette)."""
        names: set[str] = set()
        for ix in interactions:
            names.update(map(_NAME, ix.request.headers))
            if ix.response is not None:
                names.update(map(_NAME, ix.response.headers))
        names -= self._clean_names
        text = "\n".join(names)
        found = [m for m in self.scanner.finder.find(text) if not self.scanner.allowed(m.secret)]
        if not found:
            if len(self._clean_names) > _CLEAN_NAMES_MAX:
                self._clean_names.clear()
            self._clean_names |= names
            return []
        out: list[tuple[Hit, int | None]] = []
        for i, ix in enumerate(interactions):
            for part, message in (("request", ix.request), ("response", ix.response)):
                for j, (name, _) in enumerate(message.headers if message else ()):
                    at = f"interactions[{i}].{part}.headers[{j}] (its name)"
                    out += [(Hit(m.detector, m.secret, at), i) for m in found if m.secret in name]
        return out

    def _yaml(self, name: str, text: str) -> tuple[list[tuple[Hit, int | None]], Any]:
        """Hits in a YAML document, and the document (the text when it is not YAML)."""
        import yaml  # (13 ms at start, for YAML files only)

        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError:
            return [], text
        as_json = json.dumps(doc, default=_yaml_text, ensure_ascii=False)
        _, hits = self.scanner.json_edits(as_json, "")
        return [(h, _interaction_of(h.path)) for h in hits], doc

    def _lines(self, text: str) -> list[tuple[Hit, int | None]]:
        out: list[tuple[Hit, int | None]] = []
        for n, line in enumerate(text.splitlines(), 1):
            _, hits = body_edits(self.scanner, line, "", f"line {n}")
            out += [(h, None) for h in hits]
        return out

    def _text(self, text: str, seen: set[str], by_line: bool) -> list[tuple[Hit, int | None]]:
        """The raw-text safety net: every match not already found structurally; line by line
        too (decoding each line) when the file had no structure to walk. A parsed YAML file's
        ``!!binary`` blocks were decoded whole: one line of one is a fragment, not a value."""
        out: list[tuple[Hit, int | None]] = []
        for m in self.scanner.matches(text):
            if m.secret not in seen:
                seen.add(m.secret)
                line = text.count("\n", 0, m.start) + 1
                out.append((Hit(m.detector, m.secret, f"line {line}"), None))
        if by_line and "\n" in text and not text.lstrip().startswith(("{", "[")):
            for hit, idx in self._lines(text):
                if hit.secret not in seen:
                    seen.add(hit.secret)
                    out.append((hit, idx))
        return out


_READ = {
    "request": frozenset({"url", "headers", "body"}),
    "response": frozenset({"headers", "body", "messages", "chunks"}),
    "error": frozenset({"message"}),
}
"""What of each part of an interaction the recorder's scan reads (`Redactor.scan_interaction`):
URL, header values, the text or base64 of bodies and WebSocket messages, an error's message;
and chunk sizes, which are numbers. The rest (method, reason, fields a newer version added at
any level) is linted as JSON."""
_NAME = operator.itemgetter(0)
_CLEAN_NAMES_MAX = 1 << 14


def _unread(ix: Any) -> Any:
    """An interaction of a cassette's document without what the recorder's scan reads (see
    `_READ`); what a body or a message holds beside its text or base64 is kept."""
    if not isinstance(ix, dict):
        return ix
    out = {k: v for k, v in ix.items() if k not in _READ}
    for part, read in _READ.items():
        value = ix.get(part)
        if not isinstance(value, dict):
            if part in ix:
                out[part] = value
            continue
        left = {k: v for k, v in value.items() if k not in read}
        if (body := _beside_content(value.get("body"))) is not None:
            left["body"] = body
        messages = value.get("messages")
        if isinstance(messages, list):
            beside = {
                str(j): extra
                for j, m in enumerate(messages)
                if isinstance(m, list) and (extra := _beside_content(m[-1])) is not None
            }
            if beside:
                left["messages"] = beside
        if left:
            out[part] = left
    return out


def _to_join(value: Any, path: str, out: list[tuple[str, Any]]) -> None:
    """Append the lists and strings in `value` that `joined_texts` looks into, each with its
    path: what it gives for them is what it gives for `value` (it walks through objects
    without going deeper, and passes over numbers and strings under 12 characters), without
    stepping through the fields of every interaction's rest, which hold none but its key."""
    if not isinstance(value, dict):
        if isinstance(value, list) or (isinstance(value, str) and len(value) >= 12):
            out.append((path, value))
        return
    for k, v in value.items():
        if isinstance(v, (dict, list)) or (isinstance(v, str) and len(v) >= 12):
            _to_join(v, f"{path}.{k}", out)


_GZIP = b"\x1f\x8b\x08"
_PACKED_MAGIC = {ZSTD_MAGIC, *(_GZIP + bytes([flags]) for flags in range(256))}


def _unpacked(data: bytes, limit: int) -> bytes:
    """What gzip or zstd `data` unpacks to, as much as it gives before any damage and at
    most `limit` bytes (a bomb stays defused)."""
    out = bytearray()
    try:
        if data.startswith(_GZIP):
            out += zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data, limit)
        else:
            reader = zstandard.ZstdDecompressor().stream_reader(data, read_across_frames=True)
            while len(out) < limit and (piece := reader.read(1 << 20)):
                out += piece[: limit - len(out)]
    except (zlib.error, zstandard.ZstdError):
        pass  # (what unpacked before the damage is kept)
    return bytes(out)


def _beside_content(body: Any) -> Any:
    """What a body holds beside its text or base64 (None: nothing)."""
    if not isinstance(body, dict):
        return None
    extra = {k: v for k, v in body.items() if k not in ("text", "base64")}
    return extra or None


_BODY_KEYS = ("body", "messages")


@dataclass(frozen=True)
class _Scanned:
    """A cassette scanned part by part: what is left is joining its bodies' streams, each
    body apart (interactions are separate exchanges, not the events of one stream), and
    those of what the recorder's scan does not read."""

    bodies: list[tuple[str, Any]]
    """``(path, value)``: each body (or WebSocket messages), and each part of the rest, that
    may hold a stream."""


def _joinable(value: Any, part: str) -> bool:
    """Whether a cassette's body (or messages) may hold a stream to join: a plain JSON
    answer does not (`may_hold_events`), nor a JSON request whose only lists are of objects:
    a stream is what a server sends, and a client writes its messages, tools and inputs
    whole (each is scanned whole with its interaction). A request that carries event text
    (SSE, NDJSON, JSON or base64 in a string) is joined as an answer is."""
    if isinstance(value, dict) and isinstance(value.get("text"), str) and len(value) == 1:
        return may_hold_events(value["text"], object_lists=part != "request")
    return value is not None


def _yaml_text(value: Any) -> str:
    """What a YAML value JSON cannot hold stands for: a ``!!binary`` block's bytes (gunzipped
    when gzip) as text, anything else (dates) as its string."""
    if not isinstance(value, bytes):
        return str(value)
    data: bytes = value
    if data[:2] == b"\x1f\x8b":
        with contextlib.suppress(OSError, EOFError):
            data = gzip.decompress(data)
    return _as_text(data)


def _as_text(data: bytes) -> str:
    """Bytes as the linter reads them: UTF-16 or UTF-32 text decoded (`layers.wide_text`),
    else UTF-8, or latin-1 when they are not (every byte a character, so a token in them is
    still seen)."""
    if (wide := wide_text(data)) is not None:
        return wide[0]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _is_cassette_name(name: str) -> bool:
    return name.endswith(".json.zst")


def _interaction_of(path: str) -> int | None:
    m = _INTERACTION.match(path)
    return int(m.group(1)) if m else None


def _findings(name: str, hits: Iterable[tuple[Hit, int | None]]) -> list[Finding]:
    out: list[Finding] = []
    seen: set[tuple[str, str]] = set()
    for hit, idx in hits:
        location = hit.path.lstrip(".") or "$"
        if hit.secret in location:
            location = location.replace(hit.secret, mask(hit.secret))
        if (location, hit.secret) in seen:
            continue
        seen.add((location, hit.secret))
        # "line N" may be followed by where in the line (a JSON path, a decoded part)
        at_line = _LINE.match(location)
        line = int(at_line.group(1)) if at_line else None
        out.append(Finding(name, idx, location, hit.detector, hit.secret, line))
    return out


def collect_files(paths: Sequence[Path]) -> list[Path]:
    """The files to lint: given files as they are, directories walked for linted suffixes
    (in path order, without descending into `_SKIPPED_DIRS` nor symlinked directories).

    Raises:
        BadInputError: a path does not exist.
    """
    out: list[Path] = []
    for path in paths:
        if path.is_file():
            out.append(path)
        elif path.is_dir():
            # os.walk reads each directory's entries once (pathlib's rglob made a Path, a stat
            # and a relative path of every file: 45 ms for 1,000 cassettes, before any lint)
            found: list[str] = []
            for top, dirs, _ in os.walk(path):
                dirs[:] = [d for d in dirs if d not in _SKIPPED_DIRS]
                with os.scandir(top) as entries:
                    found += [
                        e.path for e in entries if e.name.endswith(LINTED_SUFFIXES) and e.is_file()
                    ]
            out += sorted(map(Path, found), key=operator.attrgetter("parts"))
        else:
            raise BadInputError(f"{path}: no such file or directory")
    return out
