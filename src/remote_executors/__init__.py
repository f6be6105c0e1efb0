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

__all__ = [
    "AuthenticationFailed",
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
