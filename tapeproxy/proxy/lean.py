"""Importing only the parts of mitmproxy the proxy runs.

`mitmproxy.addons/__init__.py` imports all ~37 default addons (the onboarding web app,
flow filters, client playback...): about a second of start-up that tapeproxy's lean Master
never uses. The three addons it does use are imported with that package's module standing
in unexecuted; the stand-in is removed afterwards, so a later `import mitmproxy.addons`
anywhere in the process still gets the whole package.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from types import ModuleType

__all__ = ["lean_mitmproxy"]

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
