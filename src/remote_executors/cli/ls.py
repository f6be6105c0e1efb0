"""``remote-executors ls HOST[:PATH]``: browse directories on HOST."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
import click

from ._hosts import HostType
from ._output import Output

if TYPE_CHECKING:
    from ..browse import Listing

_HOST = HostType(local_ok=False, not_local="use ls here.")


def split_target(text: str) -> tuple[str, str]:
    """``box:~/code`` -> ``("box", "~/code")``; ``box`` -> ``("box", "~")``."""
    scheme = "ssh://" if text.startswith("ssh://") else ""
    host, colon, path = text[len(scheme) :].partition(":")
    return scheme + host, (path if colon else "") or "~"


def _shown(name: str) -> str:
    """A name as it can be shown safely: control characters (a hostile host's
    terminal escapes, newlines) quoted instead of printed."""
    return name if name.isprintable() else repr(name)


@click.command("ls")
@click.argument("target", metavar="HOST[:PATH]")
@click.option("-a", "--all", "hidden", is_flag=True, help="Include names starting with '.'.")
@click.option(
    "--complete", is_flag=True, help="Complete PATH as a partial path: print matching directories."
)
@click.option("--limit", default=1000, show_default=True, help="List at most this many entries.")
@click.option("--timeout", default=15.0, show_default=True, help="Seconds to wait for HOST.")
@click.option("--json", "json_mode", is_flag=True, help="Print JSON.")
def ls(
    target: str, hidden: bool, complete: bool, limit: int, timeout: float, json_mode: bool
) -> None:
    """List directory PATH on HOST (default: the home directory there).

    PATH is absolute, or relative to the home directory on HOST (~, ~/code,
    code). Directories end in '/'; those Claude Code already has sessions for
    are marked. With --complete, PATH is a partial path and only the
    directories it could be are printed, one per line (for shell completion
    and cwd pickers); -a offers hidden ones too.
    """
    from ..browse import complete_dirs, list_dir
    from ..settings import executor_for

    out = Output(json_mode=json_mode)
    raw_host, path = split_target(target)
    host = _HOST.convert(raw_host, None, click.get_current_context())
    assert isinstance(host, str)

    async def go() -> Listing | list[str]:
        executor = executor_for(host)
        try:
            if complete:
                given = split_target(target)[1] if ":" in target.removeprefix("ssh://") else ""
                found = await complete_dirs(
                    executor, given, hidden=hidden, limit=limit, timeout=timeout
                )
                return [c.path for c in found]
            return await list_dir(executor, path, hidden=hidden, limit=limit, timeout=timeout)
        finally:
            await executor.aclose()

    found = anyio.run(go)
    if isinstance(found, list):
        if json_mode:
            out.json(found)
        for item in found:
            out.line(_shown(item))
        return
    if json_mode:
        data: dict[str, Any] = {
            "host": found.host,
            "path": found.path,
            "has_sessions": found.has_sessions,
            "truncated": found.truncated,
            "entries": [
                {"name": e.name, "dir": e.is_dir, "has_sessions": e.has_sessions}
                for e in found.entries
            ],
        }
        out.json(data)
        return
    here = " (has sessions)" if found.has_sessions else ""
    out.line(f"{found.path} on {host}{here}", bold=True)
    for entry in sorted(found.entries, key=lambda e: (not e.is_dir, e.name)):
        name = _shown(entry.name) + ("/" if entry.is_dir else "")
        out.line(f"  {name}" + ("   [sessions]" if entry.has_sessions else ""))
    if found.truncated:
        out.line(f"  … more than {limit} entries; raise --limit to see more", fg="yellow")
