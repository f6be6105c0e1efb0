"""Syncing a session (or a project) on demand, outside a running session."""

from __future__ import annotations

import os
from collections.abc import Mapping

from remote_executors.executors.base import Executor
from remote_executors.sync._default import default_sync
from remote_executors.sync._locate import locate
from remote_executors.sync.base import SessionSync, SyncReport

__all__ = ["pull_session", "push_session"]


async def pull_session(
    executor: Executor,
    *,
    cwd: str | os.PathLike[str],
    session_id: str | None = None,
    env: Mapping[str, str] | None = None,
    sync: SessionSync | None = None,
) -> SyncReport:
    """Bring the local copy of a session (``None``: every session of the project) up to date.

    ``cwd`` is the local project directory, mapped to the executor's machine
    as a session's would be; ``env`` is the session's ``ClaudeAgentOptions.env``
    (its ``CLAUDE_CONFIG_DIR`` says where that machine keeps sessions).
    Raises :class:`~remote_executors.SessionConflict` when copies diverged
    (both kept) and other :class:`~remote_executors.SyncError` or connection
    errors when the sync could not complete.
    """
    paths = await locate(executor, local_cwd=cwd, session_id=session_id, env=env)
    return await (sync or default_sync(executor)).pull(executor, paths)


async def push_session(
    executor: Executor,
    *,
    cwd: str | os.PathLike[str],
    session_id: str | None = None,
    env: Mapping[str, str] | None = None,
    sync: SessionSync | None = None,
) -> SyncReport:
    """Bring the executor's copy up to the local one: pull first, then send what only local has."""
    paths = await locate(executor, local_cwd=cwd, session_id=session_id, env=env)
    return await (sync or default_sync(executor)).push(executor, paths)
