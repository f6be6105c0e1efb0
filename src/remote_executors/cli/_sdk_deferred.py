"""Start the command without running ``claude_agent_sdk``'s package ``__init__``.

That ``__init__`` imports ``mcp`` (pydantic models for every MCP schema):
about 0.7 s, several times what ``--help``, ``executors …`` and ``sessions``
need in all. Those commands only touch the SDK's error classes (the bases of
ours) and its session lister, which live in modules that import nothing heavy.

:func:`defer` puts the package into ``sys.modules`` with its ``__init__`` not
yet run. Its submodules import as usual. The names in :data:`LIGHT` are served
from their own modules; any other attribute runs the real ``__init__`` first,
once, under a lock, so ``from claude_agent_sdk import query`` works as ever.
Objects are never duplicated: the real ``__init__`` re-imports the very
submodules already loaded. Called only by the console script, before any
other import of the SDK; a process that already imported it is left alone.
``tests/unit/test_cli_startup.py`` pins this against the installed SDK.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
from typing import Any

__all__ = ["LIGHT", "defer"]

_PACKAGE = "claude_agent_sdk"

#: SDK names the fast commands use -> the submodule that defines them.
LIGHT: dict[str, str] = {
    "ClaudeSDKError": "._errors",
    "CLIConnectionError": "._errors",
    "CLINotFoundError": "._errors",
    "ProcessError": "._errors",
    "CLIJSONDecodeError": "._errors",
    "list_sessions": "._internal.sessions",
    "SDKSessionInfo": ".types",
}


def defer() -> bool:
    """Install the deferred package; False (nothing done) if the SDK is already imported."""
    if _PACKAGE in sys.modules:
        return False
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        return False
    loader = spec.loader
    module = importlib.util.module_from_spec(spec)
    lock = threading.RLock()
    state = ["new"]  # new -> loading -> done (or failed)

    def complete() -> None:
        with lock:
            if state[0] != "new":
                return  # done, or this thread is inside the real __init__ right now
            state[0] = "loading"
            try:
                loader.exec_module(module)
            except BaseException:
                state[0] = "failed"
                sys.modules.pop(_PACKAGE, None)  # as a failed import would leave it
                raise
            state[0] = "done"
            if module.__dict__.get("__getattr__") is deferred_getattr:
                del module.__dict__["__getattr__"]

    def deferred_getattr(name: str) -> Any:
        where = LIGHT.get(name)
        if where is not None and state[0] == "new":
            try:
                return getattr(importlib.import_module(where, _PACKAGE), name)
            except (ImportError, AttributeError):
                pass  # moved in this SDK version: the real __init__ knows
        complete()
        try:
            return module.__dict__[name]
        except KeyError:
            raise AttributeError(f"module {_PACKAGE!r} has no attribute {name!r}") from None

    module.__dict__["__getattr__"] = deferred_getattr
    sys.modules[_PACKAGE] = module
    return True
