"""A local server of one binary body, for recording large answers (tests and the bench):
GET gives the body, POST the sha256 of what was sent. Listens on 127.0.0.1 only."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["serving"]


class _Blob(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    blob = b""

    def do_GET(self) -> None:
        self._answer("application/octet-stream", self.blob)

    def do_POST(self) -> None:
        sent = self.rfile.read(int(self.headers["content-length"]))
        self._answer("text/plain", hashlib.sha256(sent).hexdigest().encode())

    def _answer(self, content_type: str, body: bytes) -> None:
        self.send_response(200)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def serving(blob: bytes) -> Iterator[str]:
    """The base URL of a server of `blob` for the duration of the block."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), type("Blob", (_Blob,), {"blob": blob}))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
