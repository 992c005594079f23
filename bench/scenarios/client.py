"""The client's own ceiling: the load generator straight at the fake upstream, no proxy."""

from __future__ import annotations

from bench.env import Env
from bench.report import Figure, Report

__all__ = ["run"]


def run(env: Env, report: Report) -> None:
    """Measure req/s going direct over HTTP and HTTPS (the most any proxy figure can show)."""
    with env.upstream() as up:
        for scheme, port in (("http", up.http), ("https", up.https)):
            fig = report.add(
                Figure(
                    "client",
                    f"direct {scheme.upper()} req/s (client ceiling)",
                    "req/s",
                    subject_name="direct",
                )
            )
            ca = str(env.upstream_certs.ca) if scheme == "https" else None
            p50 = []
            for _ in range(env.rounds):
                res = env.load(f"{scheme}://127.0.0.1:{port}", interactions=1000, ca=ca)
                fig.subject.append(res["rps"])
                p50.append(res["p50_ms"])
            fig.note = f"p50 {sorted(p50)[len(p50) // 2]:.2f} ms at concurrency 16"
