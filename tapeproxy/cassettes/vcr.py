"""Importing vcrpy / pytest-recording YAML cassettes (format version 1) as tapeproxy cassettes.

What is read: request ``method``, ``uri``, ``headers`` (values as lists or scalars) and
``body`` (plain string, ``!!binary`` bytes, or pydantic-ai's ``parsed_body`` mapping, which
that project's serializer turns back into ``json.dumps(parsed_body)``); response ``status``
(``{code, message}``), ``headers`` and ``body: {string: ...}`` (or ``parsed_body``).

Response bodies are stored decoded: a ``Content-Encoding`` (gzip, detected by its magic
bytes; deflate, br, zstd) is undone and the header dropped, as the stored body is what a
replay sends. A body already decoded by the recording tool but still labelled gzip keeps its
bytes and loses the stale header. Other headers are kept as recorded, in order.

Timing: vcrpy records none, so ``ttfb_ms`` and ``total_ms`` are 0 and streamed bodies (SSE,
NDJSON, a JSON array from ``:streamGenerateContent``, AWS eventstream) get synthetic chunks,
one per event (`tapeproxy.cassettes.framing`), all at offset 0 ms: a replay sends each event
as its own write, as fast as the client reads, because no real pacing is known.

Keys are computed over the request as redacted by the given redactor, with the given
match rules, exactly as a live recording would. A file that is not a readable vcrpy v1
cassette raises `CassetteError` naming it; nothing is written unless every input converts.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import yaml

from tapeproxy import __version__
from tapeproxy.cassettes.encoding import EncodingError, decode, split_codings
from tapeproxy.cassettes.framing import split_events, stream_kind
from tapeproxy.cassettes.index import canonical_of
from tapeproxy.cassettes.key import key_of
from tapeproxy.cassettes.model import (
    Body,
    Cassette,
    Header,
    Interaction,
    MatchRules,
    Request,
    Response,
    new_cassette,
)
from tapeproxy.cassettes.store import MAX_DECOMPRESSED_BYTES, load, save
from tapeproxy.errors import BadInputError, CassetteError

__all__ = [
    "Imported",
    "Redacts",
    "convert_file",
    "decode_content",
    "import_vcr",
    "output_path",
    "pytest_recording_files",
    "read_vcr",
]


class Redacts(Protocol):
    """What import needs of a redactor (`tapeproxy.redaction.Redactor` is one); it comes in
    as an argument because redaction sits above the cassette format."""

    def redact_interaction(self, interaction: Interaction, /) -> Interaction: ...


_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True, slots=True)
class Imported:
    """One converted file: where it came from, where it went, and whether it was written."""

    source: Path
    target: Path
    interactions: int
    written: bool


def output_path(
    source: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    base: str | os.PathLike[str] | None = None,
) -> Path:
    """Where `import_vcr` writes a converted file: ``<out_dir>/<folder>/<stem>.json.zst``,
    ``<folder>`` being the source's folder relative to `base` (none when `base` is None)."""
    src = Path(source)
    name = src.name
    for suffix in (".yaml", ".yml"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    folder = src.parent.relative_to(base) if base is not None else Path()
    return Path(out_dir) / folder / f"{name}.json.zst"


def pytest_recording_files(root: str | os.PathLike[str]) -> list[Path]:
    """The vcrpy cassettes of a pytest-recording suite under `root`: YAML files in a
    ``cassettes`` folder (its default ``<test dir>/cassettes/<module>/<test>.yaml``), sorted."""
    return sorted(
        p
        for p in Path(root).rglob("*")
        if p.suffix.lower() in (".yaml", ".yml") and "cassettes" in p.parent.parts and p.is_file()
    )


def import_vcr(
    paths: Iterable[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    *,
    rules: MatchRules | None = None,
    redactor: Redacts,
    in_place: bool = False,
) -> list[Imported]:
    """Convert vcrpy cassettes into ``.json.zst`` files under `out_dir`.

    The inputs' folders are mirrored below their common folder (two ``sync.yaml`` in two
    folders stay two files); inputs of one folder land directly in `out_dir`. Every input is
    converted before anything is written, so one bad file writes nothing. A target that
    already holds the same interactions is left untouched. With `in_place`, each converted
    file is written beside its source instead (`out_dir` is not used).

    Raises:
        CassetteError: an input is not a vcrpy v1 cassette, or an existing target is not a
            readable tapeproxy cassette (it is never overwritten).
        BadInputError: two inputs would be written to the same target.
        CassetteWriteError: a target could not be written.
    """
    rules = rules or MatchRules()
    sources = [Path(raw) for raw in paths]
    folders = {str(s.resolve().parent) for s in sources}
    base = Path(os.path.commonpath(sorted(folders))) if folders else None
    planned: dict[Path, tuple[Path, Cassette]] = {}
    for source in sources:
        target = (
            output_path(source, source.parent)
            if in_place
            else output_path(source.resolve(), out_dir, base)
        )
        if target in planned:
            raise BadInputError(
                f"{source} and {planned[target][0]} would both be written to {target}; "
                "import them into different --out folders"
            )
        interactions = read_vcr(source, rules=rules, redactor=redactor)
        planned[target] = (source, _new_or_existing(target, interactions, rules))
    return [
        Imported(source, target, len(cassette.interactions), save(target, cassette))
        for target, (source, cassette) in planned.items()
    ]


def convert_file(
    path: str | os.PathLike[str],
    *,
    rules: MatchRules | None = None,
    redactor: Redacts,
    created: str | None = None,
) -> Cassette:
    """One vcrpy cassette as a tapeproxy cassette (in memory; nothing is written)."""
    rules = rules or MatchRules()
    cassette = new_cassette(__version__, created or _now(), rules)
    interactions = read_vcr(path, rules=rules, redactor=redactor)
    return cassette.model_copy(update={"interactions": interactions})


def read_vcr(
    path: str | os.PathLike[str],
    *,
    rules: MatchRules | None = None,
    redactor: Redacts,
) -> tuple[Interaction, ...]:
    """The interactions of a vcrpy cassette, redacted and keyed.

    Raises:
        CassetteError: the file cannot be read or is not a vcrpy v1 cassette.
    """
    source = Path(path)
    doc = _load_yaml(source)
    rules = rules or MatchRules()
    if not isinstance(doc, dict) or not isinstance(doc.get("interactions"), list):
        raise CassetteError(f"{source}: not a vcrpy cassette (no 'interactions' list)")
    # vcrpy itself reads a mapping of interactions with no version as version 1.
    if doc.get("version", 1) != 1:
        raise CassetteError(
            f"{source}: vcrpy cassette format version {doc.get('version')!r}; "
            "only version 1 (vcrpy >= 2) can be imported"
        )
    return tuple(
        _interaction(item, f"{source}: interactions[{i}]", rules, redactor)
        for i, item in enumerate(doc["interactions"])
    )


def _load_yaml(source: Path) -> Any:
    try:
        data = source.read_bytes()
    except OSError as e:
        raise CassetteError(f"{source}: cannot read vcrpy cassette ({e.strerror or e})") from e
    try:
        return yaml.load(data, Loader=_Loader)  # CSafeLoader or SafeLoader
    except (yaml.YAMLError, RecursionError) as e:
        raise CassetteError(f"{source}: not valid YAML ({e})") from e


def _new_or_existing(
    target: Path, interactions: tuple[Interaction, ...], rules: MatchRules
) -> Cassette:
    # Re-importing the same file keeps the existing cassette (and its creation time) as is.
    if target.exists():
        try:
            existing = load(target)
        except CassetteError as e:
            raise CassetteError(f"{e}\n(not overwriting {target}; move it away first)") from e
        if existing.interactions == interactions and existing.meta.match == rules:
            return existing
    cassette = new_cassette(__version__, _now(), rules)
    return cassette.model_copy(update={"interactions": interactions})


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _interaction(item: Any, where: str, rules: MatchRules, redactor: Redacts) -> Interaction:
    if not isinstance(item, dict):
        raise CassetteError(f"{where}: expected a mapping with 'request' and 'response'")
    try:
        request = _request(item.get("request"), f"{where}.request")
        response = _response(item.get("response"), request.url, f"{where}.response")
        return redacted_and_keyed(
            Interaction(key="0" * 64, request=request, response=response), rules, redactor
        )
    except (ValueError, TypeError) as e:  # pydantic's ValidationError, json.dumps failures
        raise CassetteError(f"{where}: {e}") from e


def redacted_and_keyed(raw: Interaction, rules: MatchRules, redactor: Redacts) -> Interaction:
    """An imported interaction redacted as one (an answer that repeats a secret of its
    request loses it too) and keyed by its redacted request."""
    out = redactor.redact_interaction(raw)
    return out.model_copy(update={"key": key_of(canonical_of(out, rules))})


def _request(raw: Any, where: str) -> Request:
    if not isinstance(raw, dict):
        raise CassetteError(f"{where}: expected a mapping")
    method, uri = raw.get("method"), raw.get("uri")
    if not isinstance(method, str) or not method:
        raise CassetteError(f"{where}.method: expected a string, got {method!r}")
    if not isinstance(uri, str) or not uri:
        raise CassetteError(f"{where}.uri: expected a string, got {uri!r}")
    if raw.get("parsed_body") is not None:
        body = json.dumps(raw["parsed_body"]).encode("utf-8")
    else:
        body = _bytes(raw.get("body"), f"{where}.body")
    return Request(
        method=method.upper(),
        url=uri,
        headers=_headers(raw.get("headers"), f"{where}.headers"),
        body=Body.from_bytes(body),
    )


def _response(raw: Any, url: str, where: str) -> Response:
    if not isinstance(raw, dict):
        raise CassetteError(f"{where}: expected a mapping")
    if "status_code" in raw and "status" not in raw:
        # What vcrpy's httpx stubs wrote before vcrpy 5 (and still read): status_code,
        # http_version, headers and content at the top of the response.
        raw = {
            "status": {"code": raw["status_code"]},
            "headers": raw.get("headers"),
            "body": {"string": raw.get("content")},
        }
    status, reason = _status(raw.get("status"), f"{where}.status")
    headers = _headers(raw.get("headers"), f"{where}.headers")
    if raw.get("parsed_body") is not None:
        body = json.dumps(raw["parsed_body"]).encode("utf-8")
    else:
        container = raw.get("body")
        if container is not None and not isinstance(container, dict):
            raise CassetteError(f"{where}.body: expected a mapping with 'string'")
        body = _bytes((container or {}).get("string"), f"{where}.body.string")
    body, headers = decode_content(body, headers, where)
    kind = stream_kind(headers, url, body)
    pieces = split_events(kind, body) if kind else []
    return Response(
        status=status,
        reason=reason,
        headers=headers,
        body=Body.from_bytes(body),
        chunks=tuple((0.0, len(p)) for p in pieces) if pieces else None,
    )


def _status(raw: Any, where: str) -> tuple[int, str]:
    code, message = (
        (raw.get("code"), raw.get("message", "")) if isinstance(raw, dict) else (raw, "")
    )
    if isinstance(code, bool) or not isinstance(code, int) or not 100 <= code <= 999:
        raise CassetteError(f"{where}: expected {{code: <100-999>, message: ...}}, got {raw!r}")
    return code, "" if message is None else str(message)


def _headers(raw: Any, where: str) -> tuple[Header, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        raise CassetteError(f"{where}: expected a mapping of header names to values")
    out: list[Header] = []
    for name, value in raw.items():
        values = value if isinstance(value, list) else [value]
        out.extend((str(name), _scalar(v, f"{where}.{name}")) for v in values)
    return tuple(out)


def _scalar(value: Any, where: str) -> str:
    # vcrpy quotes header values, but hand-edited YAML may let numbers or booleans through.
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("latin-1")
    raise CassetteError(f"{where}: expected a string header value, got {value!r}")


def _bytes(raw: Any, where: str) -> bytes:
    if raw is None:
        return b""
    if isinstance(raw, bytes):
        return raw
    if isinstance(raw, str):
        return raw.encode("utf-8", "surrogatepass")
    if isinstance(raw, dict | list):
        # A serializer that keeps JSON bodies as YAML structure (as parsed_body does, under
        # `body` itself): the JSON text they stand for, as the serializer turns them back.
        return json.dumps(raw).encode("utf-8")
    raise CassetteError(f"{where}: expected a string or !!binary, got {type(raw).__name__}")


def decode_content(
    body: bytes, headers: tuple[Header, ...], where: str
) -> tuple[bytes, tuple[Header, ...]]:
    """A body with its Content-Encoding undone and the header dropped; a body already decoded
    but still labelled keeps its bytes and loses the stale header (lenient)."""
    codings = split_codings([v for name, v in headers if name.lower() == "content-encoding"])
    if not codings:
        return body, headers
    try:
        body = decode(body, codings, limit=MAX_DECOMPRESSED_BYTES, lenient=True)
    except EncodingError as e:
        raise CassetteError(f"{where}.body: {e}") from e
    return body, tuple(h for h in headers if h[0].lower() != "content-encoding")
