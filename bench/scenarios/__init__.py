"""The scenarios of issues 7 and 14 (`lint_peers`, `record_memory`), each a module with
`run(env, report)`, in the order they run."""

from __future__ import annotations

from collections.abc import Callable

from bench.env import Env
from bench.report import Report
from bench.scenarios import (
    client,
    faults,
    heavy_client,
    latency,
    lint,
    lint_peers,
    pytest_suite,
    record,
    record_memory,
    replay,
    routes,
    size,
    startup,
    stream,
    stubs,
)

__all__ = ["SCENARIOS", "Scenario"]

Scenario = Callable[[Env, Report], None]

SCENARIOS: dict[str, Scenario] = {
    "size": size.run,
    "client": client.run,
    "latency": latency.run,
    "stream": stream.run,
    "startup": startup.run,
    "replay": replay.run,
    "heavy_client": heavy_client.run,
    "routes": routes.run,
    "record": record.run,
    "record_memory": record_memory.run,
    "lint": lint.run,
    "lint_peers": lint_peers.run,
    "pytest_suite": pytest_suite.run,
    "stubs": stubs.run,
    "faults": faults.run,
}
