"""Run Claude Code sessions on another machine over SSH, as if they ran locally.

Public names are imported on first use (PEP 562): ``import remote_executors``
alone loads nothing else, so the command line and the pytest plugin start
without paying for ``claude_agent_sdk`` (and ``mcp``) until they need them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .check import CheckReport, CheckStep, check
    from .errors import (
        AuthenticationFailed,
        ClaudeNotFound,
        ClaudeNotResponding,
        CommandTimeout,
        ConnectionFailed,
        ExecutorError,
        HostKeyError,
        HostUnreachable,
        InvalidInput,
        OptionPathError,
        OutputTooLarge,
        ProcessLost,
        RemotePathNotFound,
        RemoteSetupError,
        SessionConflict,
        SyncDiskFull,
        SyncError,
        SyncPermissionDenied,
        SyncTooLarge,
        SyncToolMissing,
    )
    from .executors.base import Attachment, CommandResult, Executor, SpawnOptions
    from .executors.link_status import LINK_SUBTYPE, LinkStatus
    from .executors.local import LocalExecutor
    from .executors.ssh import SSHExecutor
    from .metadata import SessionRecord, SessionRecords, get_session_record, list_session_records
    from .paths import project_dir_from_cwd
    from .sdk import (
        ClaudeSDKClient,
        ExecutorTransport,
        SpawnFunction,
        query,
        spawn_claude_code_process,
    )
    from .settings import HostSettings, Settings, SettingsError, SettingsStore, executor_for
    from .sync import (
        FileSync,
        Limits,
        RsyncSessionSync,
        SessionPaths,
        SessionSync,
        SftpSessionSync,
        SyncReport,
        TailSessionSync,
        pull_session,
        push_session,
    )
    from .sync.status import SYNC_SUBTYPE, SessionSyncStatus

#: Where each public name lives (the module is imported when the name is first used).
_WHERE: dict[str, str] = {
    **dict.fromkeys(["CheckReport", "CheckStep", "check"], ".check"),
    **dict.fromkeys(
        [
            "AuthenticationFailed",
            "ClaudeNotFound",
            "ClaudeNotResponding",
            "CommandTimeout",
            "ConnectionFailed",
            "ExecutorError",
            "HostKeyError",
            "HostUnreachable",
            "InvalidInput",
            "OptionPathError",
            "OutputTooLarge",
            "ProcessLost",
            "RemotePathNotFound",
            "RemoteSetupError",
            "SessionConflict",
            "SyncDiskFull",
            "SyncError",
            "SyncPermissionDenied",
            "SyncTooLarge",
            "SyncToolMissing",
        ],
        ".errors",
    ),
    **dict.fromkeys(["Attachment", "CommandResult", "Executor", "SpawnOptions"], ".executors.base"),
    "LocalExecutor": ".executors.local",
    "SSHExecutor": ".executors.ssh",
    **dict.fromkeys(
        ["SessionRecord", "SessionRecords", "get_session_record", "list_session_records"],
        ".metadata",
    ),
    "project_dir_from_cwd": ".paths",
    **dict.fromkeys(
        [
            "ClaudeSDKClient",
            "ExecutorTransport",
            "SpawnFunction",
            "query",
            "spawn_claude_code_process",
        ],
        ".sdk",
    ),
    **dict.fromkeys(
        ["HostSettings", "Settings", "SettingsError", "SettingsStore", "executor_for"],
        ".settings",
    ),
    **dict.fromkeys(
        [
            "FileSync",
            "Limits",
            "RsyncSessionSync",
            "SessionPaths",
            "SessionSync",
            "SftpSessionSync",
            "SyncReport",
            "TailSessionSync",
            "pull_session",
            "push_session",
        ],
        ".sync",
    ),
    **dict.fromkeys(["SYNC_SUBTYPE", "SessionSyncStatus"], ".sync.status"),
    **dict.fromkeys(["LINK_SUBTYPE", "LinkStatus"], ".executors.link_status"),
}

__all__ = [
    "Attachment",
    "AuthenticationFailed",
    "ClaudeSDKClient",
    "ExecutorTransport",
    "LocalExecutor",
    "SSHExecutor",
    "SpawnFunction",
    "project_dir_from_cwd",
    "query",
    "spawn_claude_code_process",
    "ClaudeNotFound",
    "ClaudeNotResponding",
    "CommandResult",
    "CommandTimeout",
    "ConnectionFailed",
    "Executor",
    "ExecutorError",
    "HostKeyError",
    "HostUnreachable",
    "InvalidInput",
    "OptionPathError",
    "OutputTooLarge",
    "ProcessLost",
    "RemotePathNotFound",
    "RemoteSetupError",
    "SpawnOptions",
    "SYNC_SUBTYPE",
    "CheckReport",
    "CheckStep",
    "HostSettings",
    "RsyncSessionSync",
    "Settings",
    "SettingsError",
    "SettingsStore",
    "check",
    "executor_for",
    "FileSync",
    "Limits",
    "SessionConflict",
    "SessionPaths",
    "SessionRecord",
    "SessionRecords",
    "SessionSync",
    "SessionSyncStatus",
    "LinkStatus",
    "LINK_SUBTYPE",
    "SftpSessionSync",
    "SyncDiskFull",
    "SyncError",
    "SyncPermissionDenied",
    "SyncReport",
    "SyncTooLarge",
    "SyncToolMissing",
    "TailSessionSync",
    "get_session_record",
    "list_session_records",
    "pull_session",
    "push_session",
]


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(where, __name__), name)
    globals()[name] = value  # once is enough
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
