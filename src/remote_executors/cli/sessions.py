"""``remote-executors sessions``: a project's sessions and where each ran."""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

import click
from claude_agent_sdk import list_sessions

from ..executors.registry import short_name
from ..records import LOCAL, SessionRecords
from ._hosts import HostType
from ._output import Output


@click.command("sessions")
@click.option(
    "--cwd",
    help="The local project directory (default: the current one; with --on: every project).",
)
@click.option(
    "--on",
    "host",
    type=HostType(local_ok=False, not_local="leave out --on to list this machine's sessions."),
    metavar="HOST",
    help="List the sessions HOST has (all its projects, or --cwd's), marking those also here.",
)
@click.option(
    "--import",
    "import_id",
    metavar="SESSION_ID",
    help="With --on: pull this session here and record it as HOST's, so "
    "`run --resume SESSION_ID` continues it there.",
)
@click.option(
    "--running",
    is_flag=True,
    help="List the sessions whose Claude Code CLI still runs on HOST (default: on every "
    "configured host), e.g. after the app that started them stopped.",
)
@click.option(
    "--follow",
    "follow_id",
    metavar="SESSION_ID",
    help="With --on: show a session still running on HOST until its turn's result (its "
    "transcript kept here), then let its CLI end so `run --resume` continues it.",
)
@click.option(
    "--from-now",
    is_flag=True,
    help="With --follow: show only what the session prints from now on, not its history.",
)
@click.option("--json", "json_mode", is_flag=True, help="Print JSON.")
def sessions(
    cwd: str | None,
    host: str | None,
    import_id: str | None,
    running: bool,
    follow_id: str | None,
    from_now: bool,
    json_mode: bool,
) -> None:
    """List a project's sessions, newest first, with the executor each ran on.

    With --on HOST: the sessions HOST has (every project there, or only the
    one --cwd maps to), newest first; "here" marks those this machine has a
    copy of. --import SESSION_ID pulls one of them here.

    --running lists the sessions whose CLI still runs on a host (the app that
    started them may be gone); --follow SESSION_ID --on HOST shows one of them
    to the end of its turn, with its transcript kept here.
    """
    if import_id is not None and host is None:
        raise click.UsageError("--import takes a session from a host: give --on HOST too.")
    if from_now and follow_id is None:
        raise click.UsageError("--from-now goes with --follow SESSION_ID --on HOST.")
    if follow_id is not None:
        if host is None:
            raise click.UsageError("--follow takes a session on a host: give --on HOST too.")
        from ._running import follow_session

        follow_session(host, follow_id, cwd, json_mode, from_now=from_now)
        return
    if running:
        from ._running import running_sessions

        running_sessions(host, json_mode)
        return
    if host is not None:
        from ._host_sessions import host_sessions

        host_sessions(host, cwd, import_id, json_mode)
        return
    out = Output(json_mode=json_mode)
    directory = os.path.realpath(os.path.expanduser(cwd or "."))
    records = {r.session_id: r for r in SessionRecords().list(directory)}
    rows: list[dict[str, Any]] = []
    for info in list_sessions(directory=directory):
        record = records.pop(info.session_id, None)
        rows.append(
            {
                "session_id": info.session_id,
                "executor": short_name(record.executor) if record else LOCAL,
                "spec": record.executor if record else LOCAL,
                "updated": dt.datetime.fromtimestamp(info.last_modified / 1000, dt.timezone.utc),
                "summary": info.summary,
                "synced": record is None or record.sync_error is None,
                "sync_error": record.sync_error if record else None,
                "local_copy": True,
            }
        )
    for record in records.values():  # ran remotely, never pulled (yet)
        rows.append(
            {
                "session_id": record.session_id,
                "executor": short_name(record.executor),
                "spec": record.executor,
                "updated": record.updated_at,
                "summary": "",
                "synced": False,
                "sync_error": record.sync_error or "not pulled yet",
                "local_copy": False,
            }
        )
    rows.sort(key=lambda r: r["updated"], reverse=True)
    if json_mode:
        out.json([{**r, "updated": r["updated"].isoformat()} for r in rows])
        return
    if not rows:
        out.line(f"No sessions for {directory}.")
        return
    out.table(
        [
            {
                "updated": r["updated"].astimezone().strftime("%Y-%m-%d %H:%M"),
                "executor": f"[{r['executor']}]" + ("" if r["synced"] else " ⚠"),
                "session": r["session_id"],
                "summary": (r["summary"] or "")[:60],
            }
            for r in rows
        ],
        ["updated", "executor", "session", "summary"],
    )
