"""The test bed: a scripted model, a real loopback sshd, link faults, conformance suites,
and an in-memory executor for host applications' unit tests.

The everyday names are importable from here and load their module on first
use, so ``import remote_executors.testing`` (and the pytest plugin) costs
nothing until they are used::

    from remote_executors.testing import ScriptedModel, SSHTestBed, text, tool_use

Modules: :mod:`.fakes` (``FakeExecutor``: scripted, in memory, no processes),
:mod:`.model` (the stand-in Messages API), :mod:`.sshd` (the sshd
bed), :mod:`.link` (``LinkProxy``), :mod:`.plugin` (the pytest fixtures),
:mod:`.executor_conformance` and :mod:`.sync_conformance` (suites to run
against your own executors and sync strategies), :mod:`.stub_cli` (a stand-in
CLI for load tests).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .fakes import FakeExecutor, FakeProcess, FakeRun, claude_cli
    from .link import LinkProxy, LinkProxyError
    from .model import (
        ApiError,
        ModelRequest,
        Reply,
        ScriptedModel,
        api_error,
        echo,
        overloaded,
        reply,
        slow,
        text,
        tool_use,
    )
    from .sshd import RemoteAccount, SSHClientConfig, SSHFault, SSHTestBed, SSHTestBedError

_WHERE: dict[str, str] = {
    **dict.fromkeys(["FakeExecutor", "FakeProcess", "FakeRun", "claude_cli"], ".fakes"),
    **dict.fromkeys(
        [
            "ApiError",
            "ModelRequest",
            "Reply",
            "ScriptedModel",
            "api_error",
            "echo",
            "overloaded",
            "reply",
            "slow",
            "text",
            "tool_use",
        ],
        ".model",
    ),
    **dict.fromkeys(
        ["RemoteAccount", "SSHClientConfig", "SSHFault", "SSHTestBed", "SSHTestBedError"],
        ".sshd",
    ),
    **dict.fromkeys(["LinkProxy", "LinkProxyError"], ".link"),
}

__all__ = [
    "ApiError",
    "FakeExecutor",
    "FakeProcess",
    "FakeRun",
    "claude_cli",
    "LinkProxy",
    "LinkProxyError",
    "ModelRequest",
    "RemoteAccount",
    "Reply",
    "SSHClientConfig",
    "SSHFault",
    "SSHTestBed",
    "SSHTestBedError",
    "ScriptedModel",
    "api_error",
    "echo",
    "overloaded",
    "reply",
    "slow",
    "text",
    "tool_use",
]


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(where, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
