"""``remote-executors sync HOST``: an explicit transcript sync."""

from __future__ import annotations

import os

import anyio
import click

from ._hosts import HostType
from ._output import Output

_HOST = HostType(local_ok=False, not_local="its sessions are already here.")


def _report_dict(report: object) -> dict[str, object]:
    from ..sync import SyncReport

    assert isinstance(report, SyncReport)
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
@click.argument("host", type=_HOST)
@click.option("--cwd", default=".", show_default=True, help="The local project directory.")
@click.option("--session", "session_id", help="One session id (default: every session).")
@click.option("--push", is_flag=True, help="Also send what only the local copy has to HOST.")
@click.option("--json", "json_mode", is_flag=True, help="Print the report as JSON.")
def sync(host: str, cwd: str, session_id: str | None, push: bool, json_mode: bool) -> None:
    """Bring the local copy of HOST's sessions up to date (and, with --push, HOST's copy).

    Each file that moved is listed as pulled from or pushed to HOST. Sessions
    that had no record are recorded as HOST's. Never overwrites: diverged
    copies are both kept and reported (exit 5).
    """
    from ..settings import executor_for
    from ..sync import Kind, SyncReport, pull_session, push_session

    out = Output(json_mode=json_mode)
    directory = os.path.abspath(os.path.expanduser(cwd))

    async def go() -> SyncReport:
        executor = executor_for(host)
        try:
            out.progress(f"syncing with {host}…")
            run = push_session if push else pull_session
            return await run(executor, cwd=directory, session_id=session_id)
        finally:
            await executor.aclose()

    try:
        report = anyio.run(go)
    finally:
        out.clear_progress()
    if json_mode:
        out.json(_report_dict(report))
        return
    for f in report.files:
        if not f.moved:
            continue
        # A push pulls first: the direction is the file's own.
        verb = "pulled from" if f.kind is Kind.PULL else "pushed to"
        out.status("ok", f"{f.path}: {f.moved} bytes {verb} {host}")
    if not push:
        for f in report.local_ahead:
            out.status("warn", f"{f.path}: the local copy is ahead", "send it: add --push")
    out.line(
        f"{len(report.files)} file(s) in step with {host} "
        f"({report.moved} bytes moved in {report.seconds:.2f} s)."
    )
