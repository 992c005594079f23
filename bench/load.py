"""The load generator: an aiohttp client at fixed concurrency, bounded in count and time.

Run as ``python -m bench.load ...`` (one process per measurement, so the client never
shares a core or a heap with the harness); it prints one JSON object: requests done, errors,
wrong bodies, seconds, req/s, p50 and p99 latency in ms. Every answer is checked against the
body the fake upstream would send, so a proxy that answers fast but wrong is caught. With
``--vcr CASSETTE`` the same loop runs in-process under ``vcr.use_cassette`` (the vcrpy peer).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import ssl
import sys
import time
from collections.abc import Iterator
from typing import Any

import aiohttp

from bench import payloads

__all__ = ["fake_secret", "main", "percentile"]

FAKE_KEY_HEADER = "authorization"
_CHAT: Any = None
"""The openai SDK's ChatCompletion, with --parse (imported only then)."""


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100) of `values` by nearest rank; 0.0 when empty."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def fake_secret() -> str:
    """The fake credential sent when recording (generated, fixed seed; never a real key)."""
    rng = random.Random(4242)
    alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    return "sk-proj-" + "".join(rng.choices(alnum, k=48))


def _indexes(args: argparse.Namespace) -> list[int]:
    total = args.warmup + args.count
    if args.unique:
        return [args.first + n for n in range(total)]
    rng = random.Random(args.seed)
    # Even interactions were recorded over HTTP, odd ones over HTTPS (bench.corpus).
    parity = 0 if args.url.startswith("http:") else 1
    half = max(1, (args.interactions - parity + 1) // 2)
    return [rng.randrange(half) * 2 + parity for _ in range(total)]


class _Run:
    """Shared state of one measurement: the work queue, deadlines and results."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.url = args.url.rstrip("/") + payloads.PATH
        self.work = _indexes(args)
        self.bodies = {i: payloads.request_body(i, stream=args.stream) for i in set(self.work)}
        self.expected = {i: payloads.exchange(i, args.size).body for i in set(self.work)}
        self.headers = {"content-type": "application/json"}
        if args.auth:
            self.headers[FAKE_KEY_HEADER] = "Bearer " + fake_secret()
        self.latencies: list[float] = []
        self.errors = 0
        self.wrong = 0
        self.first_error = ""
        self.next = 0
        self.deadline = 0.0

    def take(self) -> Iterator[int]:
        while self.next < len(self.work) and time.perf_counter() < self.deadline:
            self.next += 1
            yield self.work[self.next - 1]


async def _one(session: aiohttp.ClientSession, run: _Run, i: int, ssl_ctx: Any) -> float:
    start = time.perf_counter()
    async with session.post(
        run.url, data=run.bodies[i], headers=run.headers, proxy=run.args.proxy, ssl=ssl_ctx
    ) as resp:
        body = await resp.read()
        status = resp.status
    elapsed = time.perf_counter() - start
    if status != 200:
        raise RuntimeError(f"status {status}: {body[:200]!r}")
    if run.args.check and body != run.expected[i]:
        run.wrong += 1
    if run.args.parse:  # as an SDK does: JSON, then its typed model
        _CHAT.model_validate(json.loads(body))
    return elapsed


async def _worker(session: aiohttp.ClientSession, run: _Run, ssl_ctx: Any, record: bool) -> None:
    for i in run.take():
        try:
            elapsed = await _one(session, run, i, ssl_ctx)
        except Exception as e:
            run.errors += 1
            run.first_error = run.first_error or f"{type(e).__name__}: {e}"[:300]
            continue
        if record:
            run.latencies.append(elapsed)


async def _measure(run: _Run) -> dict[str, Any]:
    args = run.args
    ssl_ctx: Any = ssl.create_default_context(cafile=args.ca) if args.ca else None
    connector = aiohttp.TCPConnector(limit=args.concurrency, force_close=False)
    timeout = aiohttp.ClientTimeout(total=args.request_timeout)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        # Warm-up: open every connection (and its TLS) and let the proxy settle; not counted.
        warm_end = args.warmup
        run.deadline = time.perf_counter() + args.seconds
        saved, run.work = run.work, run.work[:warm_end]
        workers = range(args.concurrency)
        await asyncio.gather(*(_worker(session, run, ssl_ctx, False) for _ in workers))
        run.work, run.next = saved, warm_end
        run.errors = run.wrong = 0
        start = time.perf_counter()
        run.deadline = start + args.seconds
        await asyncio.gather(*(_worker(session, run, ssl_ctx, True) for _ in workers))
        seconds = time.perf_counter() - start
    done = len(run.latencies)
    return {
        "requests": done,
        "errors": run.errors,
        "wrong": run.wrong,
        "first_error": run.first_error,
        "seconds": round(seconds, 4),
        "rps": done / seconds if seconds > 0 else 0.0,
        "p50_ms": percentile(run.latencies, 50) * 1000,
        "p99_ms": percentile(run.latencies, 99) * 1000,
    }


def _run(args: argparse.Namespace) -> dict[str, Any]:
    run = _Run(args)
    if not args.vcr:
        return asyncio.run(_measure(run))
    import vcr  # the peer is imported only when measured, so it never patches other runs

    start = time.perf_counter()
    with vcr.use_cassette(
        args.vcr,
        record_mode="none",
        match_on=("method", "scheme", "host", "port", "path", "query", "body"),
        allow_playback_repeats=True,
    ):
        loaded = time.perf_counter() - start
        # Loaded once, measured `repeat` times: the load is not what is measured, and at
        # 10,000 interactions it is most of a run.
        results = [asyncio.run(_measure(run if n == 0 else _Run(args))) for n in range(args.repeat)]
    result = results[0]
    result["rps_runs"] = [r["rps"] for r in results]
    result["load_s"] = loaded
    return result


def main(argv: list[str] | None = None) -> None:
    """Parse the options, run one measurement, print its JSON result."""
    p = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__)
    p.add_argument("--url", required=True, help="base URL, e.g. http://api.bench.test")
    p.add_argument("--proxy", help="proxy URL (omit: go direct)")
    p.add_argument("--ca", help="CA file to trust for HTTPS")
    p.add_argument("--vcr", help="replay in-process from this vcrpy cassette instead")
    p.add_argument("--repeat", type=int, default=1, help="with --vcr: measurements, one load")
    p.add_argument("--interactions", type=int, default=10, help="indexes drawn from 0..N-1")
    p.add_argument("--unique", action="store_true", help="indexes first, first+1, ... instead")
    p.add_argument("--first", type=int, default=0, help="first index with --unique")
    p.add_argument("--count", type=int, default=2000, help="measured requests at most")
    p.add_argument("--seconds", type=float, default=3.0, help="measured time at most")
    p.add_argument("--warmup", type=int, default=64)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--size", type=int, default=1500, help="JSON answer size (for the check)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--auth", action="store_true", help="send a fake credential header")
    p.add_argument("--check", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument(
        "--parse",
        action="store_true",
        help="also parse every answer into the openai SDK's ChatCompletion (a heavier client)",
    )
    p.add_argument(
        "--stream", action="store_true", help='requests ask for a stream ("stream": true)'
    )
    p.add_argument("--request-timeout", type=float, default=30.0)
    args = p.parse_args(argv)
    if args.parse:
        global _CHAT
        from openai.types.chat import ChatCompletion

        _CHAT = ChatCompletion
    with contextlib.redirect_stdout(sys.stderr):
        result = _run(args)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
