"""``remote-executors sync HOST --cwd DIR``: an explicit transcript sync."""

from __future__ import annotations

import anyio
import click

from ..errors import SessionConflict
from ..settings import executor_for
from ..sync import SyncReport, pull_session, push_session
from ._output import Output


def _report_dict(report: SyncReport) -> dict[str, object]:
    return {
        "direction": report.direction,
        "host": report.host,
        "session_id": report.paths.session_id,
        "local_dir": str(report.paths.local_dir),
        "remote_dir": report.paths.remote_dir,
        "moved": report.moved,
        "seconds": round(report.seconds, 3),
        "files": [
            {
                "path": f.path,
                "kind": f.kind.value,
                "moved": f.moved,
                "conflict_copy": str(f.conflict_copy) if f.conflict_copy else None,
            }
            for f in report.files
        ],
    }


@click.command("sync")
@click.argument("host")
@click.option("--cwd", required=True, help="The local project directory.")
@click.option("--session", "session_id", help="One session id (default: every session).")
@click.option("--push", is_flag=True, help="Send what only the local copy has to HOST.")
@click.option("--json", "json_mode", is_flag=True, help="Print the report as JSON.")
def sync(host: str, cwd: str, session_id: str | None, push: bool, json_mode: bool) -> None:
    """Bring the local copy of HOST's sessions up to date (or, with --push, HOST's copy).

    Never overwrites: diverged copies are both kept and reported (exit 5).
    """
    out = Output(json_mode=json_mode)

    async def go() -> SyncReport:
        executor = executor_for(host)
        try:
            out.progress(f"syncing with {host}…")
            run = push_session if push else pull_session
            return await run(executor, cwd=cwd, session_id=session_id)
        finally:
            await executor.aclose()

    try:
        report = anyio.run(go)
    except SessionConflict as exc:
        if json_mode:
            out.json({"error": "SessionConflict", "message": exc.message, "copies": exc.copies})
        raise
    out.clear_progress()
    if json_mode:
        out.json(_report_dict(report))
        return
    changed = [f for f in report.files if f.moved]
    verb = "pushed to" if push else "pulled from"
    for f in changed:
        out.status("ok", f"{f.path}: {f.moved} bytes {verb} {host}")
    ahead = [] if push else report.local_ahead
    for f in ahead:
        out.status("warn", f"{f.path}: the local copy is ahead", "send it: add --push")
    out.line(
        f"{len(report.files)} file(s) in step with {host} "
        f"({report.moved} bytes moved in {report.seconds:.2f} s)."
    )
