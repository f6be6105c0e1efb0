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
@click.option(
    "--max-file-size",
    "max_file",
    metavar="SIZE",
    help="Copy session files up to SIZE (e.g. 8G; default 1G).",
)
@click.option(
    "--max-session-size",
    "max_session",
    metavar="SIZE",
    help="Copy sessions up to SIZE in all (e.g. 32G; default 4G).",
)
@click.option("--json", "json_mode", is_flag=True, help="Print the report as JSON.")
def sync(
    host: str,
    cwd: str,
    session_id: str | None,
    push: bool,
    max_file: str | None,
    max_session: str | None,
    json_mode: bool,
) -> None:
    """Bring the local copy of HOST's sessions up to date (and, with --push, HOST's copy).

    Each file that moved is listed as pulled from or pushed to HOST. Sessions
    that had no record are recorded as HOST's. Never overwrites: diverged
    copies are both kept and reported (exit 5). A file over the size limits
    is not copied (exit 5); --max-file-size and --max-session-size raise them.
    """
    from ..settings import executor_for
    from ..sync import Kind, SyncReport, pull_session, push_session
    from ..sync._default import default_sync
    from ..sync.base import MAX_FILE_BYTES, MAX_SESSION_BYTES

    out = Output(json_mode=json_mode)
    directory = os.path.abspath(os.path.expanduser(cwd))
    file_limit = _size(max_file, "--max-file-size") if max_file else MAX_FILE_BYTES
    session_limit = (
        _size(max_session, "--max-session-size")
        if max_session
        else max(MAX_SESSION_BYTES, file_limit)
    )

    async def go() -> SyncReport:
        executor = executor_for(host)
        try:
            out.progress(f"syncing with {host}…")
            run = push_session if push else pull_session
            strategy = default_sync(
                executor, max_file_bytes=file_limit, max_session_bytes=session_limit
            )
            return await run(executor, cwd=directory, session_id=session_id, sync=strategy)
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


_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def _size(text: str, flag: str) -> int:
    """``8G``, ``512M``, ``1000``: a size in bytes (a usage error otherwise)."""
    number, unit = text.strip().upper().rstrip("B"), ""
    if number and number[-1] in _UNITS:
        number, unit = number[:-1], number[-1]
    try:
        value = float(number) * _UNITS[unit]
    except ValueError:
        value = -1
    if value < 1:
        raise click.BadParameter(f"{text!r} is not a size (e.g. 8G, 512M)", param_hint=flag)
    return int(value)
