"""When each piece of a streamed answer arrives, by kernel receive timestamps (SO_TIMESTAMPNS).

Client-side clocks on shared VMs jump by several ms now and then (MITMPROXY_NOTES.md), so
arrival times come from the kernel: every `recvmsg` carries the time its data reached the
socket. One request goes through the proxy on a plain socket; the answer is de-chunked while
keeping, for each body byte, the receive timestamp of the segment that carried it.
"""

from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass

from bench import payloads

__all__ = ["Arrival", "fetch"]

_SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux value; Python lacks the name
_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class Arrival:
    """A streamed answer as received: when the request left, the first byte, each body byte."""

    sent: float
    first_byte: float
    body: bytes
    byte_times: list[float]

    def time_of(self, offset: int) -> float:
        """Kernel receive time of body byte `offset`."""
        return self.byte_times[offset]


def _recv_all(sock: socket.socket) -> list[tuple[float, bytes]]:
    pieces: list[tuple[float, bytes]] = []
    deadline = time.monotonic() + _TIMEOUT
    while time.monotonic() < deadline:
        data, ancillary, _, _ = sock.recvmsg(65536, socket.CMSG_SPACE(16))
        if not data:
            break
        stamp = time.time()
        for level, kind, cdata in ancillary:
            if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS:
                sec, nsec = struct.unpack("qq", cdata[:16])
                stamp = sec + nsec / 1e9
        pieces.append((stamp, data))
        if b"data: [DONE]" in data or (b"0\r\n\r\n" in data and b"[DONE]" in data):
            break
    return pieces


def _dechunk(raw: bytes, times: list[float], start: int) -> tuple[bytes, list[float]]:
    body = bytearray()
    body_times: list[float] = []
    pos = start
    while pos < len(raw):
        eol = raw.find(b"\r\n", pos)
        if eol < 0:
            break
        size = int(raw[pos:eol].split(b";")[0] or b"0", 16)
        if size == 0:
            break
        body += raw[eol + 2 : eol + 2 + size]
        body_times += times[eol + 2 : eol + 2 + size]
        pos = eol + 2 + size + 2
    return bytes(body), body_times


def fetch(proxy_port: int, index: int = 0) -> Arrival:
    """Send streamed request `index` over plain HTTP through the proxy and time the answer."""
    body = payloads.request_body(index, stream=True)
    head = (
        f"POST {payloads.BASE_HTTP}{payloads.PATH} HTTP/1.1\r\nhost: api.bench.test\r\n"
        f"content-type: application/json\r\ncontent-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", proxy_port), timeout=_TIMEOUT) as sock:
        sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sent = time.time()
        sock.sendall(head + body)
        pieces = _recv_all(sock)
    if not pieces:
        raise RuntimeError("no answer to the streamed request")
    raw = b"".join(data for _, data in pieces)
    times = [stamp for stamp, data in pieces for _ in range(len(data))]
    end = raw.find(b"\r\n\r\n") + 4
    headers = raw[:end].lower()
    if not headers.startswith(b"http/1.1 200"):
        raise RuntimeError(f"streamed request answered {raw[:200]!r}")
    if b"transfer-encoding: chunked" in headers:
        data, body_times = _dechunk(raw, times, end)
    else:
        data, body_times = raw[end:], times[end:]
    return Arrival(sent, pieces[0][0], data, body_times)
