"""Syncing a session (or a project) on demand, outside a running session.

A sync that completes also updates the session records: a session the
executor's machine held and no record knew is recorded as that machine's
(so it is listed, and resumed, there), and a session recorded there whose
last sync failed is marked in step again.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

from remote_executors.errors import ExecutorError
from remote_executors.executors.base import Executor, shares_local_filesystem
from remote_executors.paths import validate_session_id
from remote_executors.sync._decide import Kind
from remote_executors.sync._default import default_sync
from remote_executors.sync._locate import locate
from remote_executors.sync.base import SessionSync, SyncReport

__all__ = ["pull_session", "push_session"]

log = logging.getLogger("remote_executors.sync")


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
    report = await (sync or default_sync(executor)).pull(executor, paths)
    _note_in_records(executor, cwd, report)
    return report


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
    report = await (sync or default_sync(executor)).push(executor, paths)
    _note_in_records(executor, cwd, report)
    return report


def _held_there(report: SyncReport) -> list[str]:
    """Sessions whose transcript the executor's machine holds (now), by the report."""
    # A pull reports a local-only file as PUSH (the remote lacks it); after a
    # push every file is on both sides.
    there = {Kind.SAME, Kind.PULL} | ({Kind.PUSH} if report.direction == "push" else set())
    found = []
    for entry in report.files:
        name = entry.path
        if "/" in name or not name.endswith(".jsonl") or entry.kind not in there:
            continue
        try:
            found.append(validate_session_id(name[: -len(".jsonl")]))
        except ExecutorError:
            continue  # not a session transcript
    return found


def _note_in_records(executor: Executor, cwd: str | os.PathLike[str], report: SyncReport) -> None:
    if shares_local_filesystem(executor):
        return  # nothing moved between machines
    from remote_executors.records import SessionRecords

    paths = report.paths
    remote_dir = paths.remote_dir if (paths.remote_config_dir or "").startswith("/") else None
    try:
        changed = SessionRecords().note_synced(
            _held_there(report),
            executor=executor.spec,
            local_cwd=os.path.realpath(os.path.expanduser(os.fspath(cwd))),
            remote_project_dir=remote_dir,
        )
    except (OSError, ExecutorError) as exc:
        log.warning("could not record the sessions synced with %s: %s", executor.name, exc)
        return
    if changed:
        log.info("recorded after the sync with %s: %s", executor.name, ", ".join(changed))
