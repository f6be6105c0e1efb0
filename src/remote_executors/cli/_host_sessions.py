"""``sessions --on HOST``: the sessions a host has, and ``--import`` of one of them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio

from ._output import Output

if TYPE_CHECKING:
    from ..host_sessions import HostSession
    from ..records import SessionRecord


def host_sessions(host: str, cwd: str | None, import_id: str | None, json_mode: bool) -> None:
    from ..host_sessions import import_session, list_host_sessions
    from ..settings import executor_for

    out = Output(json_mode=json_mode)

    async def listing() -> list[HostSession]:
        executor = executor_for(host)
        try:
            out.progress(f"reading the sessions on {host}…")
            return await list_host_sessions(executor, cwd=cwd)
        finally:
            await executor.aclose()

    async def importing(session_id: str) -> SessionRecord:
        executor = executor_for(host)
        try:
            out.progress(f"pulling {session_id} from {host}…")
            return await import_session(executor, session_id, local_cwd=cwd)
        finally:
            await executor.aclose()

    try:
        if import_id is not None:
            record = anyio.run(importing, import_id)
        else:
            found = anyio.run(listing)
    finally:
        out.clear_progress()
    if import_id is not None:
        if json_mode:
            out.json(
                {
                    "session_id": record.session_id,
                    "executor": record.executor,
                    "local_cwd": record.local_cwd,
                    "remote_cwd": record.remote_cwd,
                }
            )
            return
        out.status("ok", f"{record.session_id} pulled from {host} into {record.local_cwd}")
        out.line(
            f"  continue it on {host} (in {record.remote_cwd}): "
            f"remote-executors run --resume {record.session_id} PROMPT"
        )
        return
    rows: list[dict[str, Any]] = [
        {
            "session_id": s.session_id,
            "host": s.host,
            "cwd": s.cwd,
            "project_dir": s.project_dir,
            "size": s.size,
            "updated": s.modified.isoformat(),
            "first_prompt": s.first_prompt,
            "here": s.here,
            "recorded_on": s.recorded_on,
        }
        for s in found
    ]
    if json_mode:
        out.json(rows)
        return
    if not found:
        out.line(f"No sessions on {host}" + (f" for {cwd}." if cwd else "."))
        return
    out.table(
        [
            {
                "updated": s.modified.astimezone().strftime("%Y-%m-%d %H:%M"),
                "session": s.session_id,
                "here": "yes" if s.here else "",
                "cwd": _shown(s.cwd or "?"),
                "prompt": _shown(s.first_prompt[:50]),
            }
            for s in found
        ],
        ["updated", "session", "here", "cwd", "prompt"],
    )


def _shown(text: str) -> str:
    """Control characters (a hostile host's terminal escapes) quoted, not printed."""
    return text if text.isprintable() else repr(text)
