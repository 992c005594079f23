"""A small fake LLM provider on 127.0.0.1: OpenAI chat completions and Responses, Anthropic
messages, plain and streamed (SSE), over HTTP or HTTPS, written by the same provider writers
as stub answers (`tapeproxy.providers`). Used by `tapeproxy demo` and the tests.

Answers are derived from the request (the reply echoes the last user message), so a changed
prompt gets a changed answer; `answer` (a template with `{prompt}`) lets a test make the same
request get another answer, as a model update would. Test knobs, all per request: header
`x-fake-status` (an error answer with that status), `x-fake-gap-ms` (pause between streamed
events, default 50), `x-fake-ttfb-ms` (pause before the headers), `x-fake-tail-ms` (after a
stream's last event, pause, then send a closing `: end` comment), `x-fake-split` (stream the
reply text in pieces of that many characters instead of word by word, so a token in it spans
several events), and the path `/reset` (the connection is cut). Plain answers carry a fresh
random Set-Cookie, like Cloudflare's in front of real APIs.
Ids derive from the request, so the same request gets the same answer bytes. It counts
connections and requests, so a test can tell that a replay never reached it.
"""

from __future__ import annotations

import gzip
import json
import random
import secrets
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tapeproxy.providers.answer import Answer, Failure, Ids, RequestFacts
from tapeproxy.providers.request import read_request
from tapeproxy.providers.write import write, write_failure

__all__ = ["DEFAULT_ANSWER", "Behaviour", "FakeProvider"]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, tls: ssl.SSLContext | None, answer: str, behaviour: Behaviour) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.tls = tls
        self.answer = answer
        self.behaviour = behaviour
        self.connections = 0
        self.requests = 0
        self.lock = threading.Lock()

    def finish_request(self, request: Any, client_address: Any) -> None:
        with self.lock:
            self.connections += 1
        if self.tls is None:
            super().finish_request(request, client_address)
            return
        try:
            wrapped = self.tls.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        try:
            super().finish_request(wrapped, client_address)
        finally:
            wrapped.close()


DEFAULT_ANSWER = "You said: {prompt}. This is the fake provider answering."


class Behaviour:
    """How the fake provider misbehaves on its own, drawn per request from a seeded random
    generator: a share of error answers by status (429 and 503 with `retry-after`), and a
    time to first byte drawn uniformly from a range. A recording of it has a known error
    mix and latency (what `tapeproxy profile` must recover).

    Args:
        errors: status -> share of requests answered with it (e.g. {429: 0.1, 500: 0.05}).
        ttfb_ms: (low, high) of the uniform pause before the headers.
        retry_after: seconds 429 and 503 answers tell the client to wait.
        seed: of the generator.
    """

    def __init__(
        self,
        errors: dict[int, float] | None = None,
        ttfb_ms: tuple[float, float] | None = None,
        retry_after: float = 0.2,
        seed: int = 0,
    ) -> None:
        self.errors = tuple((errors or {}).items())
        self.ttfb_ms = ttfb_ms
        self.retry_after = retry_after
        self._random = random.Random(seed)
        self._lock = threading.Lock()

    def draw(self) -> tuple[int | None, float]:
        """An error status for the next request (None: answer it) and its pause in seconds."""
        with self._lock:
            unit, pause = self._random.random(), self._random.random()
        status, at = None, 0.0
        for code, share in self.errors:
            at += share
            if unit < at:
                status = code
                break
        if self.ttfb_ms is None:
            return status, 0.0
        low, high = self.ttfb_ms
        return status, (low + (high - low) * pause) / 1000


class FakeProvider:
    """Start with `start()` (or as a context manager); `url` is its base URL.

    Args:
        tls: serve HTTPS with this context (None: plain HTTP).
        answer: the assistant text, with `{prompt}` replaced by the last user message.
        behaviour: errors and latency of its own (default: none).
    """

    def __init__(
        self,
        tls: ssl.SSLContext | None = None,
        answer: str = DEFAULT_ANSWER,
        behaviour: Behaviour | None = None,
    ) -> None:
        self._server = _Server(tls, answer, behaviour or Behaviour())
        self._thread: threading.Thread | None = None
        self.scheme = "https" if tls else "http"

    @property
    def port(self) -> int:
        """The port it listens on."""
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Base URL, e.g. `https://localhost:PORT` (localhost matches the test certificate)."""
        return f"{self.scheme}://localhost:{self.port}"

    @property
    def answer(self) -> str:
        """The answer template; set it to make the same requests get other answers from now on."""
        return self._server.answer

    @answer.setter
    def answer(self, template: str) -> None:
        self._server.answer = template

    @property
    def connections(self) -> int:
        """Connections accepted so far."""
        return self._server.connections

    @property
    def requests(self) -> int:
        """Requests answered so far."""
        return self._server.requests

    def start(self) -> FakeProvider:
        """Serve in a background thread."""
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeProvider:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes: without this, Nagle's algorithm and
        # delayed ACKs add ~40 ms to every answer.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._answer({})

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            doc = json.loads(raw) if raw else {}
        except ValueError:
            doc = {}
        self._answer(doc if isinstance(doc, dict) else {})

    def _answer(self, doc: dict[str, Any]) -> None:
        with self.server.lock:
            self.server.requests += 1
        drawn, pause = self.server.behaviour.draw()
        time.sleep(int(self.headers.get("x-fake-ttfb-ms") or 0) / 1000 + pause)
        path = self.path.split("?")[0]
        if path.endswith("/reset"):
            self.connection.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )
            self.close_connection = True
            self.connection.close()
            return
        if drawn is not None:
            return self._drawn_error(drawn, doc)
        status = int(self.headers.get("x-fake-status") or 200)
        if status != 200:
            return self._error(status)
        text = self.server.answer.replace("{prompt}", _prompt(doc))
        chunks = _pieces(text, int(self.headers.get("x-fake-split") or 0))
        ids = Ids(b"fake\0%b\0%b" % (self.path.encode(), json.dumps(doc).encode()))
        written = write(self._facts(doc), Answer(text=text, chunks=tuple(chunks)), ids)
        if written.streamed:
            self._stream(iter(written.events))
        else:
            self._json(200, written.body)

    def _facts(self, doc: dict[str, Any]) -> RequestFacts:
        """What the request asks for, in the words of the provider writers (any path that
        names no known API is answered as a chat completion)."""
        raw = json.dumps(doc).encode()
        facts = read_request("POST", f"http://fake{self.path}", raw)
        if facts is None or facts.endpoint not in ("chat", "responses", "messages"):
            facts = RequestFacts(
                "fake",
                "chat",
                model=str(doc.get("model", "fake-model")),
                body=doc,
                stream=doc.get("stream") is True,
            )
        return facts

    def _json(self, status: int, payload: bytes) -> None:
        gz = "gzip" in self.headers.get("accept-encoding", "")
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("x-request-id", f"req_{self.server.requests:032d}")
        self.send_header("set-cookie", f"__cf_bm={secrets.token_hex(16)}; path=/; HttpOnly")
        if gz:
            payload = gzip.compress(payload, mtime=0)
            self.send_header("content-encoding", "gzip")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _error(self, status: int) -> None:
        """The error a test asked for (`x-fake-status`): not to be retried."""
        failure = Failure(status, message=f"fake error {status}")
        written = write_failure(self._facts({}), failure, Ids(b"fake\0%d" % status))
        payload = written.body
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("x-should-retry", "false")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _drawn_error(self, status: int, doc: dict[str, Any]) -> None:
        """An error of the provider's own `Behaviour`: in the shape of the request's API,
        with its headers (`retry-after` on 429 and 503)."""
        wait = self.server.behaviour.retry_after if status in (429, 503) else None
        failure = Failure(status, message=f"fake error {status}", retry_after=wait)
        written = write_failure(self._facts(doc), failure, Ids(b"fake\0%d" % self.server.requests))
        self.send_response(status)
        for name, value in written.headers:
            if name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("content-length", str(len(written.body)))
        self.end_headers()
        self.wfile.write(written.body)

    def _stream(self, events: Iterator[bytes]) -> None:
        gap = int(self.headers.get("x-fake-gap-ms") or 50) / 1000
        self.send_response(200)
        self.send_header("content-type", "text/event-stream; charset=utf-8")
        self.send_header("transfer-encoding", "chunked")
        self.send_header("cache-control", "no-cache")
        self.end_headers()
        try:
            for i, event in enumerate(events):
                if i:
                    time.sleep(gap)
                self.wfile.write(b"%x\r\n%b\r\n" % (len(event), event))
                self.wfile.flush()
            if tail := int(self.headers.get("x-fake-tail-ms") or 0):
                time.sleep(tail / 1000)
                self.wfile.write(b"7\r\n: end\n\n\r\n")
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            self.close_connection = True


def _prompt(doc: dict[str, Any]) -> str:
    prompt = ""
    messages = doc.get("messages") or []
    if isinstance(messages, list) and messages:
        content = messages[-1].get("content", "") if isinstance(messages[-1], dict) else ""
        prompt = content if isinstance(content, str) else json.dumps(content)
    elif isinstance(doc.get("input"), str):
        prompt = doc["input"]
    return prompt


def _words(text: str) -> list[str]:
    parts = text.split(" ")
    return [p if i == len(parts) - 1 else p + " " for i, p in enumerate(parts)]


def _pieces(text: str, size: int) -> list[str]:
    """The streamed pieces of a reply: words, or `size`-character slices when size > 0."""
    if size <= 0:
        return _words(text)
    return [text[i : i + size] for i in range(0, len(text), size)]
