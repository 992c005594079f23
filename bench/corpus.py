"""The same recorded traffic in each tool's format: tapeproxy cassette, mitmdump flows, vcrpy YAML.

Interaction `i` is `bench.payloads` request and answer `i`; even indexes were "recorded" over
HTTP and odd ones over HTTPS, so one cassette of N interactions serves both replay runs
(each client draws its own half, the proxy looks up in all N). Files are built directly in
each format with the tool's own writer (tapeproxy's `store.save`, mitmproxy's `FlowWriter`,
vcrpy's serializer), cached under the run's work folder by a hash of the generating code.
"""

from __future__ import annotations

import concurrent.futures
import datetime
import functools
import hashlib
import multiprocessing
import uuid
from collections.abc import Callable
from pathlib import Path

from bench import payloads

__all__ = [
    "Corpus",
    "build_tapeproxy",
    "scheme_of",
    "stream_exchange",
    "url_of",
]

STREAM_CHUNKS = 20
STREAM_GAP_MS = 50.0
STREAM_TTFB_MS = 50.0


def scheme_of(i: int) -> str:
    """Interaction `i` was recorded over HTTP when even, HTTPS when odd."""
    return "http" if i % 2 == 0 else "https"


def url_of(i: int) -> str:
    """The URL request `i` was sent to."""
    return f"{scheme_of(i)}://api.bench.test{payloads.PATH}"


def stream_exchange(i: int = 0) -> tuple[list[tuple[str, str]], list[bytes], list[float]]:
    """A streamed answer: headers, the SSE events, and when each arrived (ms from sending)."""
    events = payloads.sse_chunks(i, STREAM_CHUNKS)
    offsets = [STREAM_TTFB_MS + n * STREAM_GAP_MS for n in range(len(events))]
    return payloads.sse_headers(i), events, offsets


def _code_hash() -> str:
    h = hashlib.sha256()
    for name in ("payloads.py", "corpus.py"):
        h.update((Path(__file__).parent / name).read_bytes())
    return h.hexdigest()[:12]


def _writer_hash() -> str:
    """A hash of tapeproxy's cassette code: its files are rebuilt when the way it writes does."""
    import tapeproxy.cassettes

    h = hashlib.sha256()
    for source in sorted(Path(tapeproxy.cassettes.__file__).parent.glob("*.py")):
        h.update(source.read_bytes())
    return h.hexdigest()[:12]


class Corpus:
    """Builds (once) and returns the paths of the benchmark cassettes in every format."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder / f"corpus-{_code_hash()}"
        self.folder.mkdir(parents=True, exist_ok=True)

    def _cached(self, name: str, build: Callable[[Path], None]) -> Path:
        path = self.folder / name
        if not path.exists():
            _build(path, build)
        return path

    def tapeproxy(self, n: int, *, stream: bool = False) -> Path:
        """A tapeproxy cassette of interactions 0..n-1 (or the one streamed answer)."""
        name = (
            f"stream.{_writer_hash()}.json.zst" if stream else f"tp-{n}.{_writer_hash()}.json.zst"
        )
        indexes = range(1 if stream else n)
        return self._cached(name, lambda p: build_tapeproxy(p, indexes, stream=stream))

    def mitm(self, n: int, *, stream: bool = False) -> Path:
        """A mitmproxy flow file of the same interactions."""
        name = "stream.flows" if stream else f"mitm-{n}.flows"
        return self._cached(name, lambda p: _write_mitm(p, n, stream))

    def prepare(self, n: int) -> None:
        """Build the missing tapeproxy and mitmproxy files of n interactions side by side, in
        two processes (at 100,000: about 60 s and 40 s, one after the other otherwise)."""
        jobs: dict[Path, Callable[[Path], None]] = {
            self.folder / f"tp-{n}.{_writer_hash()}.json.zst": functools.partial(
                build_tapeproxy, indexes=range(n)
            ),
            self.folder / f"mitm-{n}.flows": functools.partial(_write_mitm, n=n, stream=False),
        }
        missing = {path: build for path, build in jobs.items() if not path.exists()}
        if len(missing) < 2:
            return  # one file or none: built on first use, in this process
        spawn = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(len(missing), mp_context=spawn) as pool:
            for done in [pool.submit(_build, path, build) for path, build in missing.items()]:
                done.result()

    def vcr(self, n: int) -> Path:
        """A vcrpy YAML cassette of the same interactions (as vcrpy records them)."""
        return self._cached(f"vcr-{n}.yaml", lambda p: _write_vcr(p, n))


def _build(path: Path, build: Callable[[Path], None]) -> None:
    tmp = path.with_name(path.name + ".part")
    build(tmp)
    tmp.replace(path)


def _request_parts(i: int, stream: bool) -> tuple[str, list[tuple[str, str]], bytes]:
    body = payloads.request_body(i, stream=stream)
    return url_of(i), payloads.request_headers(len(body)), body


def build_tapeproxy(path: Path, indexes: range, *, stream: bool = False) -> None:
    """Write a tapeproxy cassette of the given interactions with tapeproxy's own store."""
    from tapeproxy import __version__
    from tapeproxy.cassettes import model as m
    from tapeproxy.cassettes import store
    from tapeproxy.cassettes.key import request_key

    rules = m.MatchRules()
    created = datetime.datetime(2024, 11, 21, tzinfo=datetime.UTC).isoformat()
    interactions = []
    for i in indexes:
        url, req_headers, req_body = _request_parts(i, stream)
        if stream:
            headers, events, offsets = stream_exchange(i)
            body = b"".join(events)
            chunks = tuple((off, len(ev)) for off, ev in zip(offsets, events, strict=True))
            timing = m.Timing(ttfb_ms=STREAM_TTFB_MS, total_ms=offsets[-1])
        else:
            ex = payloads.exchange(i)
            headers, body, chunks = ex.headers, ex.body, None
            timing = m.Timing(ttfb_ms=round(ex.ttfb_ms, 1), total_ms=round(ex.total_ms, 1))
        interactions.append(
            m.Interaction(
                key=request_key("POST", url, req_headers, req_body, rules),
                request=m.Request(
                    method="POST",
                    url=url,
                    headers=tuple(req_headers),
                    body=m.Body.from_bytes(req_body),
                ),
                response=m.Response(
                    status=200,
                    reason="OK",
                    headers=tuple(headers),
                    body=m.Body.from_bytes(body),
                    chunks=chunks,
                ),
                timing=timing,
            )
        )
    cassette = m.new_cassette(__version__, created, rules)
    store.save(path, cassette.model_copy(update={"interactions": tuple(interactions)}))


def _write_mitm(path: Path, n: int, stream: bool) -> None:
    from mitmproxy import http
    from mitmproxy.io import tnetstring
    from mitmproxy.test import tflow

    template = http.HTTPFlow(tflow.tclient_conn(), tflow.tserver_conn())
    template.request = http.Request.make("POST", url_of(0), b"", {})
    template.response = http.Response.make(200, b"", {})
    state = template.get_state()
    with path.open("wb") as f:
        for i in range(1 if stream else n):
            _, req_headers, req_body = _request_parts(i, stream)
            if stream:
                headers, events, _ = stream_exchange(i)
                body = b"".join(events)
            else:
                ex = payloads.exchange(i)
                headers, body = ex.headers, ex.body
            # Editing a template state is what FlowWriter.add would write for a flow made with
            # Request.make / Response.make, at a tenth of the cost (100,000 flows are built).
            scheme = scheme_of(i)
            flow_state = dict(state, id=str(uuid.uuid4()))
            flow_state["request"] = dict(
                state["request"],
                scheme=scheme.encode(),
                port=80 if scheme == "http" else 443,
                content=req_body,
                headers=_mitm_headers(req_headers),
            )
            flow_state["response"] = dict(
                state["response"], content=body, headers=_mitm_headers(headers)
            )
            tnetstring.dump(flow_state, f)


def _mitm_headers(headers: list[tuple[str, str]]) -> tuple[tuple[bytes, bytes], ...]:
    return tuple((k.encode(), v.encode()) for k, v in headers)


def _write_vcr(path: Path, n: int) -> None:
    from vcr.request import Request
    from vcr.serialize import serialize
    from vcr.serializers import yamlserializer

    requests, responses = [], []
    for i in range(n):
        url, req_headers, req_body = _request_parts(i, False)
        ex = payloads.exchange(i)
        requests.append(Request("POST", url, req_body, dict(req_headers)))
        headers: dict[str, list[str]] = {}
        for name, value in ex.headers:
            headers.setdefault(name, []).append(value)
        responses.append(
            {
                "status": {"code": 200, "message": "OK"},
                "headers": headers,
                "body": {"string": ex.body},
            }
        )
    text = serialize({"requests": requests, "responses": responses}, yamlserializer)
    path.write_text(text, encoding="utf-8")
