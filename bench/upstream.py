"""The fake upstream: a small, fast HTTP/1.1 server on 127.0.0.1 answering like OpenAI.

``POST /v1/chat/completions`` answers request `i` (found by its ``#i#`` marker) with the
plain JSON of `bench.payloads.exchange`, or, when the body asks for ``"stream":true``, with
SSE events written one by one `--delay-ms` apart (`--chunks` of them). Sizes and delays can
also be set per request with the ``x-bench-size``, ``x-bench-chunks`` and
``x-bench-delay-ms`` headers. It serves plain HTTP and HTTPS (with the run's throwaway CA) at
once; run it as ``python -m bench.upstream``: it prints ``{"http": PORT, "https": PORT}``
when listening and stops on SIGINT/SIGTERM or when stdin closes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import ssl
import sys

from bench import payloads

__all__ = ["main"]

_MAX_HEAD = 64 * 1024
_MAX_BODY = 16 * 1024 * 1024


class _Settings:
    def __init__(self, chunks: int, delay_ms: float, size: int) -> None:
        self.chunks = chunks
        self.delay_ms = delay_ms
        self.size = size


def _head(status: int, reason: str, headers: list[tuple[str, str]]) -> bytes:
    lines = [f"HTTP/1.1 {status} {reason}"] + [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class _Connection(asyncio.Protocol):
    """One client connection: parses pipelined requests and answers them in order."""

    def __init__(self, settings: _Settings) -> None:
        self._settings = settings
        self._buf = b""
        self._busy = False
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self._buf += data
        if not self._busy:
            self._drain()

    def _drain(self) -> None:
        while self._transport is not None and not self._transport.is_closing():
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buf) > _MAX_HEAD:
                    self._transport.close()
                return
            head = self._buf[:end].decode("latin-1").split("\r\n")
            fields = {}
            for line in head[1:]:
                name, _, value = line.partition(":")
                fields[name.strip().lower()] = value.strip()
            length = int(fields.get("content-length", "0") or 0)
            if length > _MAX_BODY:
                self._transport.close()
                return
            if len(self._buf) < end + 4 + length:
                return
            body = self._buf[end + 4 : end + 4 + length]
            self._buf = self._buf[end + 4 + length :]
            if not self._answer(head[0], fields, body):
                return

    def _answer(self, request_line: str, fields: dict[str, str], body: bytes) -> bool:
        """Answer one request; False when the answer is streamed (parsing resumes after)."""
        assert self._transport is not None
        parts = request_line.split(" ")
        path = parts[1] if len(parts) > 1 else "/"
        if not path.split("?")[0].endswith(payloads.PATH):
            text = b"ok\n"
            heads = [("content-type", "text/plain"), ("content-length", str(len(text)))]
            self._transport.write(_head(200, "OK", heads) + text)
            return True
        i = payloads.index_of(body)
        if b'"stream":true' in body or b'"stream": true' in body:
            chunks = int(fields.get("x-bench-chunks", self._settings.chunks))
            delay = float(fields.get("x-bench-delay-ms", self._settings.delay_ms))
            self._busy = True
            asyncio.get_running_loop().create_task(self._stream(i, chunks, delay))
            return False
        size = int(fields.get("x-bench-size", self._settings.size))
        ex = payloads.exchange(i, size)
        self._transport.write(_head(ex.status, "OK", ex.headers) + ex.body)
        return True

    async def _stream(self, i: int, chunks: int, delay_ms: float) -> None:
        assert self._transport is not None
        loop = asyncio.get_running_loop()
        start = loop.time()
        self._transport.write(_head(200, "OK", payloads.sse_headers(i)))
        for n, event in enumerate(payloads.sse_chunks(i, chunks)):
            # Sleep to an absolute schedule so that drift does not accumulate.
            await asyncio.sleep(max(0.0, start + (n + 1) * delay_ms / 1000 - loop.time()))
            if self._transport.is_closing():
                return
            self._transport.write(b"%x\r\n%s\r\n" % (len(event), event))
        self._transport.write(b"0\r\n\r\n")
        self._busy = False
        self._drain()


async def _serve(args: argparse.Namespace) -> None:
    settings = _Settings(args.chunks, args.delay_ms, args.size)
    loop = asyncio.get_running_loop()
    http = await loop.create_server(lambda: _Connection(settings), "127.0.0.1", args.http_port)
    ports = {"http": http.sockets[0].getsockname()[1], "https": None}
    servers = [http]
    if args.cert:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(args.cert, args.key)
        https = await loop.create_server(
            lambda: _Connection(settings), "127.0.0.1", args.https_port, ssl=ctx
        )
        ports["https"] = https.sockets[0].getsockname()[1]
        servers.append(https)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    loop.add_reader(sys.stdin.fileno(), lambda: stop.set() if not sys.stdin.read(1) else None)
    print(json.dumps(ports), flush=True)
    await stop.wait()
    for server in servers:
        server.close()


def main(argv: list[str] | None = None) -> None:
    """Run the fake upstream until SIGINT/SIGTERM or end of stdin."""
    parser = argparse.ArgumentParser(prog="python -m bench.upstream", description=__doc__)
    parser.add_argument("--http-port", type=int, default=0)
    parser.add_argument("--https-port", type=int, default=0)
    parser.add_argument("--cert", help="PEM certificate for HTTPS (omit: HTTP only)")
    parser.add_argument("--key", help="PEM key of --cert")
    parser.add_argument("--size", type=int, default=1500, help="JSON answer size in bytes")
    parser.add_argument("--chunks", type=int, default=20, help="SSE events per stream")
    parser.add_argument("--delay-ms", type=float, default=50.0, help="gap between SSE events")
    asyncio.run(_serve(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
