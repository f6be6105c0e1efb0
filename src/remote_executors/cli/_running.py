"""``sessions --running`` and ``sessions --follow``: sessions whose CLI still runs on a host."""

from __future__ import annotations

import datetime as dt
from contextlib import aclosing
from typing import TYPE_CHECKING, Any

import anyio

from ._output import Output

if TYPE_CHECKING:
    from ..running import RunningSession


def _hosts(host: str | None) -> list[str]:
    """``host``, or every configured host and every host a session was recorded on."""
    if host is not None:
        return [host]
    from ..records import SessionRecords
    from ..settings import SettingsStore

    names = [h.host for h in SettingsStore().list()]
    for record in SessionRecords().list():
        if record.executor.startswith("ssh://") and "?" not in record.executor:
            names.append(record.executor.removeprefix("ssh://"))
    return list(dict.fromkeys(names))


def running_sessions(host: str | None, json_mode: bool) -> None:
    from ..errors import ExecutorError
    from ..running import list_running_sessions
    from ..settings import executor_for

    out = Output(json_mode=json_mode)
    hosts = _hosts(host)

    async def listing() -> tuple[list[RunningSession], list[tuple[str, ExecutorError]]]:
        found: list[RunningSession] = []
        failed: list[tuple[str, ExecutorError]] = []
        for name in hosts:
            out.progress(f"looking for running sessions on {name}…")
            executor = executor_for(name)
            try:
                found += await list_running_sessions(executor)
            except ExecutorError as exc:
                if host is not None:
                    raise  # the one host asked for: its error is the answer
                failed.append((name, exc))
            finally:
                await executor.aclose()
        return found, failed

    try:
        found, failed = anyio.run(listing)
    finally:
        out.clear_progress()
    now = dt.datetime.now(dt.timezone.utc)
    if json_mode:
        out.json(
            [
                {
                    "session_id": s.session_id,
                    "host": s.host,
                    "cwd": s.cwd,
                    "state": s.state,
                    "attached": s.attached,
                    "started": s.started.isoformat(),
                    "running_seconds": round((now - s.started).total_seconds()),
                    "last_output": s.last_output.isoformat(),
                }
                for s in found
            ]
            + [
                {"type": "error", "host": name, "error": type(e).__name__, "message": e.message}
                for name, e in failed
            ]
        )
        return
    for name, exc in failed:
        out.status("warn", f"{name}: {exc.message}")
    if not found:
        where = host or ", ".join(hosts) or "any configured host"
        out.line(f"No sessions running on {where}.")
        return
    out.table(
        [
            {
                "host": s.host,
                "session": s.session_id,
                "state": s.state,
                "started": s.started.astimezone().strftime("%Y-%m-%d %H:%M"),
                "for": _duration(now - s.started),
                "attached": "yes" if s.attached else "",
                "cwd": s.cwd if s.cwd.isprintable() else repr(s.cwd),
            }
            for s in found
        ],
        ["host", "session", "state", "started", "for", "attached", "cwd"],
    )
    out.line(
        "Follow one to its result with `remote-executors sessions --follow SESSION_ID "
        "--on HOST`, then resume it with `remote-executors run --resume SESSION_ID PROMPT`.",
        fg="bright_black",
    )


def _duration(delta: dt.timedelta) -> str:
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def follow_session(
    host: str, session_id: str, cwd: str | None, json_mode: bool, *, from_now: bool = False
) -> None:
    from ..running import follow_running_session
    from ..settings import executor_for
    from ._render import Renderer
    from ._stream_json import to_stream_json

    out = Output(json_mode=json_mode)
    render = Renderer(out, host)

    async def follow() -> None:
        executor = executor_for(host)
        try:
            out.progress(f"following {session_id} on {host}…")
            messages: Any = follow_running_session(
                executor, session_id, cwd=cwd, since="now" if from_now else "start"
            )
            async with aclosing(messages) as stream:
                async for message in stream:
                    if json_mode:
                        render.note(message)
                        out.json_line(to_stream_json(message))
                    else:
                        render.show(message)
        finally:
            await executor.aclose()

    try:
        anyio.run(follow)
    finally:
        out.clear_progress()
    if not json_mode:
        out.line(
            f"Resume it with `remote-executors run --resume {session_id} PROMPT`.",
            fg="bright_black",
        )
