"""Run Claude Code sessions on another machine over SSH, as if they ran locally."""

from __future__ import annotations

from .errors import (
    AuthenticationFailed,
    ClaudeNotFound,
    CommandTimeout,
    ConnectionFailed,
    ExecutorError,
    HostKeyError,
    HostUnreachable,
    InvalidInput,
    ProcessLost,
    RemotePathNotFound,
    RemoteSetupError,
)
from .executors.base import CommandResult, Executor, SpawnOptions
from .executors.local import LocalExecutor
from .executors.ssh import SSHExecutor
from .paths import project_dir_from_cwd
from .sdk import (
    ClaudeSDKClient,
    ExecutorTransport,
    SpawnFunction,
    query,
    spawn_claude_code_process,
)

__all__ = [
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
    "ProcessLost",
    "RemotePathNotFound",
    "RemoteSetupError",
    "SpawnOptions",
]
