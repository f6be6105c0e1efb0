"""Run Claude Code sessions on another machine over SSH, as if they ran locally.

Public names are imported on first use (PEP 562): ``import remote_executors``
alone loads nothing else, so the command line and the pytest plugin start
without paying for ``claude_agent_sdk`` (and ``mcp``) until they need them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._check import CheckReport, CheckStep, check
    from .browse import Completion, DirEntry, Listing, complete_dirs, complete_path, list_dir
    from .errors import (
        AuthenticationFailed,
        ClaudeNotFound,
        ClaudeNotResponding,
        CommandTimeout,
        ConnectionFailed,
        ExecutorError,
        ExecutorUnavailable,
        HostKeyError,
        HostUnreachable,
        InstallFailed,
        InvalidInput,
        OptionPathError,
        OutputTooLarge,
        ProcessLost,
        RemotePathNotFound,
        RemoteSetupError,
        SessionConflict,
        SessionNotRunning,
        SyncDiskFull,
        SyncError,
        SyncPermissionDenied,
        SyncTooLarge,
        SyncToolMissing,
        UnsupportedPlatform,
    )
    from .executors.base import (
        Attachment,
        CommandResult,
        Executor,
        FindsClaude,
        ReportsClosed,
        ReportsLoss,
        ReportsPlacement,
        RsyncShell,
        SftpChannel,
        SharesLocalFilesystem,
        SpawnOptions,
    )
    from .executors.docker import DockerExecutor
    from .executors.kubernetes import KubernetesExecutor
    from .executors.link_status import LINK_SUBTYPE, LinkStatus
    from .executors.local import LocalExecutor
    from .executors.registry import executor_from_spec, register_executor
    from .executors.ssh import SSHExecutor
    from .host_sessions import HostSession, import_session, list_host_sessions
    from .install import InstallResult, install_cli, remote_platform
    from .paths import project_dir_from_cwd
    from .records import SessionRecord, SessionRecords, get_session_record, list_session_records
    from .running import RunningSession, follow_running_session, list_running_sessions
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
    from .transcripts import follow_transcript

#: Where each public name lives (the module is imported when the name is first used).
_WHERE: dict[str, str] = {
    **dict.fromkeys(
        ["Completion", "DirEntry", "Listing", "complete_dirs", "complete_path", "list_dir"],
        ".browse",
    ),
    **dict.fromkeys(["CheckReport", "CheckStep", "check"], "._check"),
    **dict.fromkeys(
        [
            "AuthenticationFailed",
            "ClaudeNotFound",
            "ClaudeNotResponding",
            "CommandTimeout",
            "ConnectionFailed",
            "ExecutorError",
            "ExecutorUnavailable",
            "HostKeyError",
            "HostUnreachable",
            "InstallFailed",
            "InvalidInput",
            "OptionPathError",
            "OutputTooLarge",
            "ProcessLost",
            "RemotePathNotFound",
            "RemoteSetupError",
            "SessionConflict",
            "SessionNotRunning",
            "SyncDiskFull",
            "SyncError",
            "SyncPermissionDenied",
            "SyncTooLarge",
            "SyncToolMissing",
            "UnsupportedPlatform",
        ],
        ".errors",
    ),
    **dict.fromkeys(
        [
            "Attachment",
            "CommandResult",
            "Executor",
            "FindsClaude",
            "ReportsClosed",
            "ReportsLoss",
            "ReportsPlacement",
            "RsyncShell",
            "SftpChannel",
            "SharesLocalFilesystem",
            "SpawnOptions",
        ],
        ".executors.base",
    ),
    **dict.fromkeys(["executor_from_spec", "register_executor"], ".executors.registry"),
    "LocalExecutor": ".executors.local",
    "SSHExecutor": ".executors.ssh",
    **dict.fromkeys(["InstallResult", "install_cli", "remote_platform"], ".install"),
    **dict.fromkeys(["HostSession", "import_session", "list_host_sessions"], ".host_sessions"),
    **dict.fromkeys(
        ["RunningSession", "follow_running_session", "list_running_sessions"], ".running"
    ),
    "DockerExecutor": ".executors.docker",
    "KubernetesExecutor": ".executors.kubernetes",
    **dict.fromkeys(
        ["SessionRecord", "SessionRecords", "get_session_record", "list_session_records"],
        ".records",
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
    "follow_transcript": ".transcripts",
    **dict.fromkeys(["LINK_SUBTYPE", "LinkStatus"], ".executors.link_status"),
}

__all__ = [
    "Attachment",
    "AuthenticationFailed",
    "ClaudeSDKClient",
    "ExecutorTransport",
    "LocalExecutor",
    "SSHExecutor",
    "DockerExecutor",
    "KubernetesExecutor",
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
    "ExecutorUnavailable",
    "FindsClaude",
    "ReportsClosed",
    "ReportsLoss",
    "ReportsPlacement",
    "RsyncShell",
    "SftpChannel",
    "SharesLocalFilesystem",
    "executor_from_spec",
    "register_executor",
    "HostKeyError",
    "HostSession",
    "import_session",
    "list_host_sessions",
    "RunningSession",
    "follow_running_session",
    "list_running_sessions",
    "SessionNotRunning",
    "HostUnreachable",
    "InstallFailed",
    "InstallResult",
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
    "Completion",
    "DirEntry",
    "Listing",
    "complete_dirs",
    "complete_path",
    "list_dir",
    "HostSettings",
    "RsyncSessionSync",
    "Settings",
    "SettingsError",
    "SettingsStore",
    "check",
    "executor_for",
    "FileSync",
    "follow_transcript",
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
    "UnsupportedPlatform",
    "get_session_record",
    "install_cli",
    "list_session_records",
    "pull_session",
    "push_session",
    "remote_platform",
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
