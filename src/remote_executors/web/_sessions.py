"""A project's sessions as the API lists them, and where one session's transcript is.

The local transcripts (``claude_agent_sdk.list_sessions``) joined with the
records of where each ran (:mod:`remote_executors.records`) and with the
sessions this server is running (their state).
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

from ..executors.registry import short_name
from ..records import LOCAL, SessionRecord, SessionRecords
from ..sync._locate import local_project_dir, local_projects_dir
from ._runs import Runs

__all__ = ["list_sessions_for", "sync_state", "transcript_path"]

_LIMIT = 500


def sync_state(record: SessionRecord | None) -> str | None:
    """``"conflict"`` or ``"sync failed"`` from the record's last sync, else None."""
    if record is None or record.sync_error is None:
        return None
    text = record.sync_error.lower()
    return "conflict" if ("diverged" in text or "conflict" in text) else "sync failed"


def _executor_info(record: SessionRecord | None) -> dict[str, Any]:
    """``executor`` and, for a remote one, ``remote_cwd`` (the tooltip adds the host)."""
    if record is None or not record.is_remote:
        return {"executor": LOCAL}
    where = record.remote_cwd or "(remote directory not recorded)"
    return {
        "executor": short_name(record.executor),  # as Run on / --on names it
        "spec": record.executor,
        "remote_cwd": where,
        "ssh_config": _ssh_config(record.executor),
    }


def _ssh_config(spec: str) -> str | None:
    """The ssh_config an ``ssh://`` spec names (None: ssh's default, or not SSH)."""
    from ..executors.ssh._spec import options_from_spec

    if not spec.startswith("ssh://"):
        return None
    config = options_from_spec(spec)[1].get("ssh_config")
    return config if isinstance(config, str) else None


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).isoformat(timespec="seconds")


def list_sessions_for(cwd: str, records: SessionRecords, runs: Runs) -> list[dict[str, Any]]:
    """Sessions of project ``cwd`` (a real path), newest first, at most 500.

    Remote rows carry ``remote_cwd`` and ``ssh_config`` until
    :meth:`~._hostnames.HostNames.fill` turns them into ``host``/``host_detail``.
    """
    from claude_agent_sdk import list_sessions

    by_id = {r.session_id: r for r in records.list(local_cwd=cwd)}
    rows: list[dict[str, Any]] = []
    for info in list_sessions(directory=cwd)[:_LIMIT]:
        record = by_id.pop(info.session_id, None)
        updated = dt.datetime.fromtimestamp(info.last_modified / 1000, dt.timezone.utc)
        rows.append(
            {
                "session_id": info.session_id,
                "title": info.custom_title or info.summary or info.first_prompt or "",
                "cwd": cwd,
                **_executor_info(record),
                "updated": _iso(updated),
                "marks": [m for m in (sync_state(record),) if m],
                "local_copy": True,
            }
        )
    for record in by_id.values():  # ran elsewhere, not pulled (yet)
        rows.append(
            {
                "session_id": record.session_id,
                "title": "",
                "cwd": cwd,
                **_executor_info(record),
                "updated": _iso(record.updated_at),
                "marks": [sync_state(record) or "sync failed"],
                "local_copy": False,
            }
        )
    for row in rows:
        run = runs.get(row["session_id"])
        state = run.state if run is not None else "idle"
        row["state"] = "running" if state in ("running", "starting") else "idle"
    rows.sort(key=lambda r: r["updated"], reverse=True)
    return rows[:_LIMIT]


def transcript_path(session_id: str, cwd: str | None) -> Path | None:
    """The local transcript of ``session_id`` (a validated id): in ``cwd``'s project
    dir when known, else wherever the projects dir holds it; None if nowhere."""
    if cwd is not None:
        return local_project_dir(cwd) / f"{session_id}.jsonl"  # may not exist yet
    root = local_projects_dir()
    try:
        projects = list(os.scandir(root))
    except OSError:
        return None
    for project in projects:
        candidate = Path(project.path) / f"{session_id}.jsonl"
        if candidate.is_file():
            return candidate
    return None
