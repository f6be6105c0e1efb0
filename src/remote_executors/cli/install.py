"""``remote-executors install HOST``: put the CLI this SDK bundles on HOST."""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio
import click

from ._hosts import HostType
from ._output import Output

if TYPE_CHECKING:
    from ..install import InstallResult

_HOST = HostType(local_ok=False, not_local="the SDK runs the CLI it bundles here.")


@click.command("install")
@click.argument("host", type=_HOST)
@click.option("--force", is_flag=True, help="Replace a ~/.local/bin/claude that is not a link.")
@click.option("--json", "json_mode", is_flag=True, help="Print the result as JSON.")
def install(host: str, force: bool, json_mode: bool) -> None:
    """Install the Claude Code CLI that this SDK bundles on HOST (no network needed there).

    It goes where Claude Code's own installer puts it
    (~/.local/share/claude/versions/VERSION, linked from ~/.local/bin/claude),
    checksum-verified. HOST's OS, CPU and C library are checked first; a cut
    link or a failed check leaves HOST as it was. Exits 4 when the CLI cannot
    be installed there.
    """
    from ..install import install_cli
    from ..settings import executor_for

    out = Output(json_mode=json_mode)

    def progress(sent: int, total: int) -> None:
        out.progress(f"uploading to {host}: {sent >> 20} of {total >> 20} MiB")

    async def go() -> InstallResult:
        executor = executor_for(host)
        try:
            out.progress(f"looking at {host}…")
            return await install_cli(executor, force=force, on_progress=progress)
        finally:
            await executor.aclose()

    try:
        result = anyio.run(go)
    finally:
        out.clear_progress()
    if json_mode:
        out.json(
            {
                "host": result.host,
                "version": result.version,
                "path": result.path,
                "link": result.link,
                "uploaded": result.uploaded,
                "seconds": round(result.seconds, 3),
                "platform": result.platform,
            }
        )
        return
    sent = (
        f"{result.uploaded >> 20} MiB sent"
        if result.uploaded
        else "already there, checksum verified"
    )
    out.status("ok", f"Claude Code {result.version} on {host} ({result.platform}): {result.path}")
    out.line(f"  {result.link} -> {result.path} ({sent}, {result.seconds:.1f} s)")
