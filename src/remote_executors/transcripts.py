"""Reading a session's transcript as it grows on the local disk.

The local files are the contract: a session's transcript is
``<config>/projects/<project dir>/<session id>.jsonl`` on this machine
whether the CLI runs here or on another machine (then the library keeps the
copy in step while the turn runs). It only ever grows, by whole lines, in
place. :func:`follow_transcript` yields its entries as they land, for any
session, local or remote alike.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Literal

import anyio

from .errors import InvalidInput
from .paths import validate_session_id
from .sync._locate import local_project_dir, local_projects_dir

__all__ = ["follow_transcript"]

log = logging.getLogger("remote_executors.transcripts")

_READ = 1 << 20


async def follow_transcript(
    session_id: str,
    *,
    directory: str | os.PathLike[str] | None = None,
    since: Literal["start", "now"] = "start",
    poll_interval: float = 0.05,
    max_line_bytes: int = 256 << 20,
) -> AsyncIterator[dict[str, Any]]:
    """Yield the entries of ``session_id``'s local transcript as they land, without end.

    ``directory`` is the session's working directory on this machine (as
    ``ClaudeAgentOptions.cwd``); without it the session is looked for in
    every project of the local config dir (``$CLAUDE_CONFIG_DIR`` or
    ``~/.claude``). ``since="start"`` yields every entry the file holds, then
    new ones; ``"now"`` only entries that land after the call. The file may
    not exist yet: it is waited for. The file is looked at every
    ``poll_interval`` seconds. Each entry is one JSON object (a line that is
    not one is skipped with a warning); a line is only read once complete.
    Stop by leaving the loop (or cancelling). A line longer than
    ``max_line_bytes`` raises :class:`~remote_executors.InvalidInput`.
    """
    validate_session_id(session_id)
    if since not in ("start", "now"):
        raise ValueError(f"since must be 'start' or 'now', got {since!r}")
    offset: int | None = None if since == "now" else 0
    inode: int | None = None
    pending = bytearray()
    while True:
        path = _find(session_id, directory)
        info = _stat(path) if path is not None else None
        if path is None or info is None:
            offset = offset if offset is not None else 0  # it did not exist "now"
            await anyio.sleep(poll_interval)
            continue
        if offset is None:  # "now": from the end of the last complete line
            offset = _last_line_end(path, info.st_size)
        if inode is not None and info.st_ino != inode and info.st_size < offset:
            log.warning("%s was replaced by a shorter file: reading it from its start", path)
            offset, pending = 0, bytearray()
        inode = info.st_ino
        while info.st_size > offset:
            chunk = _read(path, offset, min(_READ, info.st_size - offset))
            if not chunk:
                break
            offset += len(chunk)
            pending += chunk
            end = pending.rfind(b"\n")
            if end < 0:
                if len(pending) > max_line_bytes:
                    raise InvalidInput(
                        f"A line of {path} is longer than {max_line_bytes} bytes; "
                        "raise max_line_bytes to read it.",
                        host="local",
                    )
                continue
            lines = bytes(pending[: end + 1])
            del pending[: end + 1]
            for line in lines.splitlines():
                entry = _entry(line, path)
                if entry is not None:
                    yield entry
        await anyio.sleep(poll_interval)


def _find(session_id: str, directory: str | os.PathLike[str] | None) -> Path | None:
    name = f"{session_id}.jsonl"
    if directory is not None:
        return local_project_dir(directory) / name
    root = local_projects_dir()
    try:
        for project in os.scandir(root):
            candidate = Path(project.path) / name
            if candidate.is_file():
                return candidate
    except FileNotFoundError:
        pass
    return None


def _stat(path: Path) -> os.stat_result | None:
    try:
        return os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


def _read(path: Path, offset: int, length: int) -> bytes:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read(length)
    except FileNotFoundError:
        return b""


def _last_line_end(path: Path, size: int) -> int:
    """Where the last complete line of the file's first ``size`` bytes ends."""
    start = size
    while start > 0:
        step = min(start, 1 << 16)
        block = _read(path, start - step, step)
        end = block.rfind(b"\n")
        if end >= 0:
            return start - step + end + 1
        start -= step
    return 0


def _entry(line: bytes, path: Path) -> dict[str, Any] | None:
    if not line.strip():
        return None
    try:
        entry = json.loads(line)
    except ValueError:
        log.warning("%s: skipping a line that is not JSON", path)
        return None
    return entry if isinstance(entry, dict) else None
