"""Run Claude Code sessions on another machine over SSH, as if they ran locally."""

from __future__ import annotations

from .check import CheckReport, CheckStep, check
from .errors import (
    AuthenticationFailed,
    ClaudeNotFound,
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
    SyncToolMissing,
)
from .executors.base import Attachment, CommandResult, Executor, SpawnOptions
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
    "SessionConflict",
    "SessionPaths",
    "SessionRecord",
    "SessionRecords",
    "SessionSync",
    "SessionSyncStatus",
    "SftpSessionSync",
    "SyncDiskFull",
    "SyncError",
    "SyncPermissionDenied",
    "SyncReport",
    "SyncToolMissing",
    "TailSessionSync",
    "get_session_record",
    "list_session_records",
    "pull_session",
    "push_session",
]
