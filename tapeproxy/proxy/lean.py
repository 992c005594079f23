"""The lean Master's parts: only the mitmproxy modules the proxy runs, and a hook table.

`mitmproxy.addons/__init__.py` imports all ~37 default addons (the onboarding web app,
flow filters, client playback...): about a second of start-up that tapeproxy's lean Master
never uses. The three addons it does use are imported with that package's module standing
in unexecuted; the stand-in is removed afterwards, so a later `import mitmproxy.addons`
anywhere in the process still gets the whole package.

`HookTable` dispatches the per-flow hooks from a table made once per addon set, where
mitmproxy walks its whole addon tree on every event.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

from mitmproxy import exceptions, flow, hooks
from mitmproxy.addonmanager import AddonManager, safecall, traverse

__all__ = ["HookTable", "lean_mitmproxy"]

_NEEDED = (
    "mitmproxy.addons.proxyserver",
    "mitmproxy.addons.next_layer",
    "mitmproxy.addons.tlsconfig",
    "mitmproxy.master",
)


def lean_mitmproxy() -> dict[str, ModuleType]:
    """The modules the lean Master needs, by name, imported without the default addons."""
    if "mitmproxy.addons" in sys.modules:
        return {name: importlib.import_module(name) for name in _NEEDED}
    spec = importlib.util.find_spec("mitmproxy.addons")
    assert spec is not None
    sys.modules["mitmproxy.addons"] = importlib.util.module_from_spec(spec)
    try:
        return {name: importlib.import_module(name) for name in _NEEDED}
    finally:
        del sys.modules["mitmproxy.addons"]


class HookTable:
    """Flow hooks dispatched from a table of each hook's callables, found once.

    mitmproxy's `AddonManager.handle_lifecycle` walks the addon tree for every event (four
    hooks and four `update` events per request): a generator, a `getattr` per addon and a
    context manager per chain entry, hooks or not. Here each hook name maps to the callables
    that implement it, in mitmproxy's order, and an event no addon handles costs a lookup.
    Errors are handled as mitmproxy does (`safecall`: logged as "Addon error", AddonHalt
    stops the event), but per callable, so one failing addon does not skip the next.

    Args:
        addons: the Master's addon manager; its `handle_lifecycle` is replaced.
    """

    def __init__(self, addons: AddonManager) -> None:
        self._addons = addons
        self._table: dict[str, tuple[Callable[..., Any], ...]] = {}
        addons.handle_lifecycle = self.handle_lifecycle  # type: ignore[method-assign]

    def clear(self) -> None:
        """Forget the table: call after adding or removing an addon anywhere in the tree."""
        self._table.clear()

    def _hooks(self, name: str) -> tuple[Callable[..., Any], ...]:
        found = self._table.get(name)
        if found is None:
            funcs = (getattr(a, name, None) for a in traverse(self._addons.chain))
            found = self._table[name] = tuple(f for f in funcs if callable(f))
        return found

    async def handle_lifecycle(self, event: hooks.Hook) -> None:
        """Trigger a hook, then `update` for its flow (what mitmproxy does, faster)."""
        args = event.args()
        await self._trigger(event.name, args)
        message = args[0]
        if isinstance(message, flow.Flow) and self._hooks("update"):
            await self._trigger("update", hooks.UpdateHook([message]).args())

    async def _trigger(self, name: str, args: list[Any]) -> None:
        for func in self._hooks(name):
            try:
                with safecall():
                    result = func(*args)
                    if result is not None and inspect.isawaitable(result):
                        await result
            except exceptions.AddonHalt:
                return
