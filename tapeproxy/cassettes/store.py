"""Reading and writing cassette files: one zstd frame holding one deterministic JSON document.

Writes are atomic (temp file in the same folder, fsync, `os.replace`) and deterministic
(sorted keys, fixed separators, a fresh compressor per write with checksum and content size);
a save that would not change the file does not touch it; a symlinked cassette is written
through to its target, and an existing file keeps its mode. `update` is the read-merge-write of
concurrent recorders (parallel CI jobs, pytest-xdist workers), serialised by a lock on the
cassette's folder so that no writer's interactions vanish. Reads refuse anything that is not a
complete, checksummed `tapeproxy/1` cassette, and cap the decompressed size against zstd bombs.
"""

from __future__ import annotations

import binascii
import contextlib
import dataclasses
import fcntl
import filecmp
import gc
import io
import json
import os
import re
import secrets
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import pydantic_core
import zstandard
from pydantic import ValidationError

from tapeproxy.cassettes.model import FORMAT, SHARED_HEADERS, Body, Cassette, Interaction
from tapeproxy.errors import BadInputError, CassetteError, CassetteWriteError

__all__ = [
    "MAX_DECOMPRESSED_BYTES",
    "OPTIMAL_PARSE_LIMIT",
    "ZSTD_MAGIC",
    "Known",
    "Stamp",
    "check_writable",
    "compression",
    "decompress",
    "dumps",
    "from_document",
    "gc_paused",
    "load",
    "loads",
    "read_json",
    "save",
    "stamp",
    "to_json_bytes",
    "update",
    "write_atomic",
]

MAX_DECOMPRESSED_BYTES = 1 << 30
"""Largest decompressed cassette accepted (1 GiB): a guard against zstd bombs."""

OPTIMAL_PARSE_LIMIT = 4 << 20
"""Largest JSON document (4 MiB, about 1,200 chat interactions) compressed with zstd's optimal
parser; larger ones use level 10, so that saving stays within seconds (see `compression`)."""

_FAST_LEVEL = 10
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
"""The first four bytes of every zstd frame."""


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """The cyclic garbage collector off for the block (restored as it was after it).

    Building a large cassette allocates millions of objects, none of them cyclic garbage:
    the cyclic collector's passes over them were over half of the load time (10,000
    interactions: 0.6-0.9 s with, 0.2-0.3 s without)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def to_json_bytes(cassette: Cassette) -> bytes:
    """The cassette as canonical JSON: sorted keys, fixed separators, empty fields left out."""
    return b"".join(_pieces(*_document(cassette)))


_LARGE = 1 << 20
"""A body at least this long is set aside while the document is dumped (`_document`)."""
_PIECE = 1 << 20
_MARK = secrets.token_hex(16)
"""Stands in the dumped document for a large string set aside (random: no body holds it)."""
_MARKED = re.compile(f'"{_MARK}:(\\d+)"')


def _document(cassette: Cassette) -> tuple[str, list[str | bytes]]:
    """The canonical JSON text, with the strings of large bodies set aside, each replaced
    by a mark that `_pieces` puts it back at, and likewise the bytes of bodies kept as bytes.

    `json.dumps` holds each string it writes twice over (its escaped copy, then the joined
    document): for a 64 MiB answer, 170 MiB more than the cassette already holds. Set
    aside, a large body is escaped and encoded a piece at a time instead."""
    data = cassette.model_dump(mode="json", exclude_none=True)
    large: list[str | bytes] = []
    for model, dumped in zip(cassette.interactions, data.get("interactions", ()), strict=True):
        bodies = _bodies(model)
        if any(b.kept_as_bytes for b in bodies):
            _mark_kept_bytes(model, dumped, large)
        if any(len(b.text or b.base64 or "") >= _LARGE for b in bodies):
            _set_aside(dumped, large)
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text, large


def _bodies(interaction: Interaction) -> list[Body]:
    bodies = [interaction.request.body]
    if (response := interaction.response) is not None:
        bodies += [response.body, *(m[3] for m in response.messages or ())]
    return [b for b in bodies if b is not None]


def _mark_kept_bytes(model: Interaction, dumped: dict[str, Any], large: list[str | bytes]) -> None:
    """Give each body kept as bytes (`Body.kept_as_bytes`, dumped as ``{}``) its ``base64``:
    a mark that `_pieces` writes the base64 of the bytes at, a piece at a time."""

    def mark(body: Body | None, into: dict[str, Any]) -> None:
        if body is not None and body.kept_as_bytes:
            into["base64"] = f"{_MARK}:{len(large)}"
            large.append(body.to_bytes())

    mark(model.request.body, dumped["request"].get("body", {}))
    if (response := model.response) is not None:
        mark(response.body, dumped["response"].get("body", {}))
        messages = dumped["response"].get("messages", ())
        for message, out in zip(response.messages or (), messages, strict=True):
            mark(message[3], out[3])


def _set_aside(node: Any, large: list[str | bytes]) -> None:
    """Replace every string of `_LARGE` characters or more under `node` with a mark."""
    items = node.items() if isinstance(node, dict) else enumerate(node)
    for k, v in list(items):
        if isinstance(v, str) and len(v) >= _LARGE:
            node[k] = f"{_MARK}:{len(large)}"
            large.append(v)
        elif isinstance(v, (dict, list)):
            _set_aside(v, large)


def _pieces(text: str, large: list[str | bytes]) -> Iterator[bytes]:
    """The document as UTF-8, a piece at a time, each large string back in its place as
    `json.dumps` would have written it (its escapes are per character, so the escaped
    pieces of a string join to the escaped string).

    Lone surrogates (mitmproxy decodes undecodable header bytes with surrogateescape) can
    only sit inside JSON strings, where the "\\udcXX" escape reads back as the same string.
    A slice of a str never splits a character, so the pieces join to the whole encoding."""
    parts = _MARKED.split(text) if large else [text]
    for i, part in enumerate(parts):
        if i % 2 and isinstance(data := large[int(part)], bytes):  # a body kept as bytes
            yield b'"'
            for at in range(0, len(data), _PIECE // 4 * 3):  # whole quads: pieces join
                yield binascii.b2a_base64(data[at : at + _PIECE // 4 * 3], newline=False)
            yield b'"'
        elif i % 2:  # the number of a string set aside
            value = large[int(part)]
            assert isinstance(value, str)
            yield b'"'
            for at in range(0, len(value), _PIECE):
                escaped = json.dumps(value[at : at + _PIECE], ensure_ascii=False)[1:-1]
                yield escaped.encode("utf-8", "backslashreplace")
            yield b'"'
        else:
            for at in range(0, len(part), _PIECE):
                yield part[at : at + _PIECE].encode("utf-8", "backslashreplace")


def compression(size: int) -> zstandard.ZstdCompressionParameters:
    """The zstd parameters for a JSON document of `size` bytes (they depend on nothing else).

    Cassettes live in git, where every re-recording adds a whole new blob, and are saved far
    less often than they are read, so a save may spend some time on size. Up to
    `OPTIMAL_PARSE_LIMIT` the document gets the optimal parser (`btopt`) over level 19's
    window and tables: on 1,000 chat interactions (3.3 MiB) that is 9% smaller than level 10
    (455 against 501 KiB) for about 1 s instead of 0.1 s; level 19 itself gains nothing more
    and takes 1.6 s. The cost grows faster than the size (15 s at 33 MiB), so larger
    documents get level 10, which saves 100,000 interactions in a few seconds.
    """
    if size > OPTIMAL_PARSE_LIMIT:
        return zstandard.ZstdCompressionParameters.from_level(
            _FAST_LEVEL, source_size=size, write_checksum=True, write_content_size=True
        )
    tables = zstandard.ZstdCompressionParameters.from_level(19, source_size=size)
    return zstandard.ZstdCompressionParameters(
        window_log=tables.window_log,
        chain_log=tables.chain_log,
        hash_log=tables.hash_log,
        search_log=5,
        min_match=5,
        target_length=999,
        strategy=zstandard.STRATEGY_BTOPT,
        write_checksum=True,
        write_content_size=True,
    )


def dumps(cassette: Cassette) -> bytes:
    """Serialise a cassette to the bytes of a `.json.zst` file."""
    out = io.BytesIO()
    _write_compressed(cassette, out)
    return out.getvalue()


def _write_compressed(cassette: Cassette, out: BinaryIO) -> None:
    """Write a cassette's `.json.zst` bytes to `out` as they are made.

    The JSON text is encoded and compressed a piece at a time, large bodies escaped a piece
    at a time, and the compressed bytes go straight to `out`: saving a cassette with a 64 MiB
    answer holds little more than the cassette itself (192 MiB more before)."""
    text, large = _document(cassette)
    if large or not text.isascii():  # (the pieces are made twice: the size comes first)
        size = sum(len(piece) for piece in _pieces(text, large))
    else:
        size = len(text)
    compressor = zstandard.ZstdCompressor(compression_params=compression(size))
    with compressor.stream_writer(out, size=size, closefd=False) as writer:
        for piece in _pieces(text, large):
            writer.write(piece)


def loads(data: bytes, *, source: str = "<bytes>", limit: int = MAX_DECOMPRESSED_BYTES) -> Cassette:
    """Parse the bytes of a `.json.zst` file.

    Raises:
        CassetteError: the bytes are not a complete zstd frame, exceed `limit` once
            decompressed, are not JSON, are a newer format, or do not fit the schema.
    """
    # Nested so that the decompressed bytes are freed before the models are built.
    return _validate(_parse_document(decompress(data, source=source, limit=limit), source), source)


def decompress(data: bytes, *, source: str, limit: int = MAX_DECOMPRESSED_BYTES) -> bytes:
    """Decompress one zstd frame that must carry its content size, within `limit` bytes."""
    if not data.startswith(ZSTD_MAGIC):
        raise CassetteError(f"{source}: not a zstd file (a tapeproxy cassette is .json.zst)")
    try:
        params = zstandard.get_frame_parameters(data)
    except zstandard.ZstdError as e:
        raise CassetteError(f"{source}: damaged zstd header ({e})") from e
    size = params.content_size
    if size == zstandard.CONTENTSIZE_UNKNOWN:
        raise CassetteError(
            f"{source}: zstd frame without a content size; re-save it with tapeproxy"
        )
    if size > limit:
        raise CassetteError(
            f"{source}: decompresses to {size} bytes, over the limit of {limit}; refusing it"
        )
    decoder = zstandard.ZstdDecompressor().decompressobj()
    try:
        raw = decoder.decompress(data)
    except zstandard.ZstdError as e:
        raise CassetteError(f"{source}: truncated or damaged zstd data ({e})") from e
    if not decoder.eof:
        raise CassetteError(f"{source}: truncated zstd data (the frame does not end)")
    if decoder.unused_data:
        raise CassetteError(
            f"{source}: {len(decoder.unused_data)} unexpected bytes after the zstd frame"
        )
    return raw


def from_document(doc: Any, *, source: str) -> Cassette:
    """Validate a parsed cassette document, refusing newer formats by name. The document's
    interactions list is emptied on the way (see `_validate`)."""
    return _validate(_check_format(doc, source), source)


@gc_paused()
def _parse_document(raw: bytes, source: str) -> dict[str, Any]:
    """Parse the JSON document and check its format; `raw` can be freed once this returns."""
    try:
        doc = read_json(raw)
    except (ValueError, RecursionError) as e:
        raise CassetteError(f"{source}: not valid JSON inside the zstd frame ({e})") from e
    return _check_format(doc, source)


def read_json(raw: bytes | str) -> Any:
    """A JSON document, parsed once.

    pydantic-core's parser is used first: it is about twice as fast as the standard one, and
    it shares the many repeated short strings (header names and values) instead of holding
    one copy per interaction (10,000 interactions: 0.45 s and +51 MiB, against 0.63 s and
    +125 MiB). It refuses lone surrogates (``"\\udcXX"``, which cassettes hold for header
    bytes that were not UTF-8) and NaN, so those documents, and broken ones, go through the
    standard parser, which reads them and words the errors.

    Raises:
        ValueError, RecursionError: `raw` is not JSON.
    """
    try:
        return pydantic_core.from_json(raw, cache_strings="all")
    except ValueError:
        return json.loads(raw)


def _check_format(doc: Any, source: str) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise CassetteError(f"{source}: expected a JSON object with a 'format' field")
    fmt = doc.get("format")
    if fmt != FORMAT:
        if isinstance(fmt, str) and fmt.startswith("tapeproxy/"):
            raise CassetteError(
                f"{source}: format {fmt!r} is newer than this tapeproxy reads ({FORMAT!r}); "
                "upgrade tapeproxy"
            )
        raise CassetteError(
            f"{source}: not a tapeproxy cassette (format {fmt!r}, expected {FORMAT!r})"
        )
    return doc


@gc_paused()
def _validate(doc: dict[str, Any], source: str) -> Cassette:
    """Validate interaction by interaction, dropping each parsed dict once it is a model, so
    the parsed JSON and the models are never both whole in memory (peak RSS of a replay); equal
    headers across the cassette become one tuple (`model.SHARED_HEADERS`)."""
    items = doc.get("interactions")
    models: list[Interaction] = []
    shared: dict[str, Any] = {SHARED_HEADERS: {}}
    if isinstance(items, list):
        for i, item in enumerate(items):
            try:
                models.append(Interaction.model_validate(item, context=shared))
            except ValidationError as e:
                raise CassetteError(
                    f"{source}: interactions[{i}] does not match the {FORMAT} schema: {_why(e)}"
                ) from e
            items[i] = None
        doc = {**doc, "interactions": []}
    try:
        shell = Cassette.model_validate(doc)
    except ValidationError as e:
        raise CassetteError(f"{source}: does not match the {FORMAT} schema: {_why(e)}") from e
    return shell.model_copy(update={"interactions": tuple(models)})


def _why(error: ValidationError) -> str:
    """Each problem as ``field.path: message``, without pydantic's input dumps and links."""
    problems = []
    for e in error.errors(include_url=False):
        where = ".".join(str(p) for p in e["loc"]) or "document"
        problems.append(f"{where}: {e['msg'].removeprefix('Value error, ')}")
    return "; ".join(problems)


def load(path: str | os.PathLike[str], *, limit: int = MAX_DECOMPRESSED_BYTES) -> Cassette:
    """Read a cassette file.

    Raises:
        CassetteError: the file is missing, unreadable or not a valid cassette.
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise CassetteError(f"{p}: cannot read cassette ({e.strerror or e})") from e
    return loads(data, source=str(p), limit=limit)


def save(path: str | os.PathLike[str], cassette: Cassette) -> bool:
    """Write a cassette atomically; do nothing when the file already holds the same content.

    Returns:
        True when the file was written, False when it was already up to date.

    Raises:
        CassetteWriteError: the file could not be written; any previous file is untouched.
    """
    p = _target(Path(path))
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        return write_atomic(p, lambda f: _write_compressed(cassette, f), unless_same=True)
    except OSError as e:
        raise CassetteWriteError(f"{p}: cannot write cassette ({e.strerror or e})") from e


Stamp = tuple[int, int, int]
"""A file's identity: inode, size and modification time (ns). A save is an atomic rename, so
any write by anyone gives a new stamp."""


@dataclasses.dataclass(frozen=True)
class Known:
    """A cassette as this process last read or wrote it, with the file's stamp at that time
    (None, None: there was no file)."""

    stamp: Stamp | None = None
    cassette: Cassette | None = None


def stamp(path: str | os.PathLike[str]) -> Stamp | None:
    """The stamp of the cassette file at `path` (through a symlink), None when absent."""
    try:
        st = _target(Path(path)).stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


def update(
    path: str | os.PathLike[str],
    merge: Callable[[Cassette | None], Cassette],
    known: Known | None = None,
) -> tuple[bool, Known]:
    """Read, merge and write a cassette while holding its folder's lock.

    `merge` gets the cassette as it is on disk now (None when absent): another process may
    have saved it since this one loaded it. When the file still has the stamp of `known`, it
    is `known`'s cassette and is not read again (a session that saves every few seconds would
    otherwise reload its whole cassette each time). Writers of the same folder take turns;
    readers are never blocked (writes are atomic renames).

    Returns:
        Whether the file was written, and what is now known of it.

    Raises:
        CassetteError: the file on disk is not a valid cassette (it is left alone).
        CassetteWriteError: the file could not be written.
    """
    p = _target(Path(path))
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(p.parent, os.O_RDONLY)
    except OSError as e:
        raise CassetteWriteError(f"{p}: cannot write cassette ({e.strerror or e})") from e
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        now = stamp(p)
        if known is not None and now is not None and known.stamp == now:
            current = known.cassette
        else:
            current = load(p) if now is not None else None
        merged = merge(current)
        wrote = save(p, merged)
        return wrote, Known(stamp(p), merged)
    finally:
        os.close(fd)  # closing releases the lock


def check_writable(path: str | os.PathLike[str]) -> None:
    """Make sure a cassette can be saved at `path` before anything is recorded for it.

    A read-only or full destination found only at the end throws away a paid live run.

    Raises:
        BadInputError: the folder cannot be created or written, the file is read-only, or
            the file system has no space left.
    """
    p = _target(Path(path))
    folder = p.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent  # the folder a save would create the missing ones in
    probe = folder / f".{p.name}.{secrets.token_hex(4)}.probe"
    try:
        if not folder.is_dir():
            raise NotADirectoryError(20, f"{folder} is not a folder")
        if p.exists() and not os.access(p, os.W_OK):
            raise PermissionError(13, "the cassette file is read-only")
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, b"x")
        finally:
            os.close(fd)
            os.unlink(probe)
        free = os.statvfs(folder)
        if free.f_bavail * free.f_frsize < (1 << 20):
            raise OSError(28, "less than 1 MiB left on the file system")
    except OSError as e:
        raise BadInputError(
            f"{p}: the cassette could not be saved there ({e.strerror or e}); "
            "choose another --cassette or fix the folder before recording"
        ) from e


def _target(path: Path) -> Path:
    """Where writing `path` must go: a symlink's final target (the link itself is kept)."""
    return Path(os.path.realpath(path)) if path.is_symlink() else path


def write_atomic(
    path: Path, data: bytes | Callable[[BinaryIO], None], unless_same: bool = False
) -> bool:
    """Write a file whole or not at all (temp file, fsync, rename); a file that exists keeps
    its mode.

    Args:
        data: the content, or what writes it to the open temp file.
        unless_same: leave a file that already holds exactly this content untouched.

    Returns:
        False when `unless_same` found the content already there, else True.
    """
    # Not tempfile.mkstemp: its 0600 mode would stick to a new cassette; os.open with 0o666
    # lets the umask decide, as for any file the user writes. A file that exists keeps its mode.
    try:
        mode: int | None = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        mode = None
    tmp = path.parent / f".{path.name}.{secrets.token_hex(8)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            if mode is not None:
                os.fchmod(f.fileno(), mode)
            if isinstance(data, bytes):
                f.write(data)
            else:
                data(f)
            f.flush()
            if unless_same and mode is not None and _same_content(tmp, path):  # (it exists)
                os.unlink(tmp)
                return False
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return True


def _same_content(a: Path, b: Path) -> bool:
    """Whether two files hold the same bytes (read a block at a time)."""
    try:
        return filecmp.cmp(a, b, shallow=False)
    except OSError:
        return False
