"""Tests for tapeproxy/proxy/lean.py: the hook table dispatches as mitmproxy's addon manager
does, on a real mitmproxy Master."""

from __future__ import annotations

import asyncio
import logging

import pytest
from mitmproxy import exceptions, options
from mitmproxy.proxy.layers.http import HttpRequestHook
from mitmproxy.test import tflow

from tapeproxy.proxy.lean import HookTable, lean_mitmproxy


class _Calls:
    def __init__(self, name: str, log: list[str]) -> None:
        self.name = name
        self.log = log


class _Failing(_Calls):
    def request(self, flow: object) -> None:
        self.log.append(f"{self.name}.request")
        raise ValueError("boom")


class _Async(_Calls):
    async def request(self, flow: object) -> None:
        await asyncio.sleep(0)
        self.log.append(f"{self.name}.request")

    def update(self, flows: list[object]) -> None:
        self.log.append(f"{self.name}.update({len(flows)})")


class _Halting(_Calls):
    def request(self, flow: object) -> None:
        self.log.append(f"{self.name}.request")
        raise exceptions.AddonHalt()


class _Group:
    def __init__(self, *addons: object) -> None:
        self.addons = list(addons)


def _run(*addons: object) -> tuple[HookTable, object]:
    async def main() -> tuple[HookTable, object]:
        master = lean_mitmproxy()["mitmproxy.master"].Master(options.Options())
        master.addons.add(*addons)
        table = HookTable(master.addons)
        await master.addons.handle_lifecycle(HttpRequestHook(tflow.tflow()))
        return table, master

    return asyncio.run(main())


def test_hooks_run_in_tree_order_then_update_and_errors_are_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log: list[str] = []
    with caplog.at_level(logging.ERROR):
        _run(_Failing("a", log), _Group(_Failing("b", log), _Async("c", log)), _Async("d", log))
    # An error is logged as mitmproxy logs it, and the next addon still runs, even in the
    # same group (mitmproxy's own manager skips the rest of the group).
    assert log == [
        "a.request",
        "b.request",
        "c.request",
        "d.request",
        "c.update(1)",
        "d.update(1)",
    ]
    assert [r.getMessage() for r in caplog.records] == ["Addon error: boom"] * 2


def test_addon_halt_stops_the_hook_but_not_the_update() -> None:
    log: list[str] = []
    _run(_Async("a", log), _Halting("b", log), _Async("c", log))
    assert log == ["a.request", "b.request", "a.update(1)", "c.update(1)"]


def test_the_table_follows_the_addons_once_cleared() -> None:
    async def main() -> list[str]:
        log: list[str] = []
        master = lean_mitmproxy()["mitmproxy.master"].Master(options.Options())
        group = _Group(_Async("a", log))
        master.addons.add(group)
        table = HookTable(master.addons)
        await master.addons.handle_lifecycle(HttpRequestHook(tflow.tflow()))
        group.addons.append(_Async("b", log))
        table.clear()
        await master.addons.handle_lifecycle(HttpRequestHook(tflow.tflow()))
        return log

    assert asyncio.run(main()) == [
        "a.request",
        "a.update(1)",
        "a.request",
        "b.request",
        "a.update(1)",
        "b.update(1)",
    ]
