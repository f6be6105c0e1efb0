"""New transcript entries as they land in the local copy: a small file follower.

One function, :func:`follow_entries`, so a live iterator from the sync layer
can replace it later without touching the API. It polls the file (``interval``
seconds), yields only whole lines, and bounds memory: a line longer than
``max_line`` bytes is skipped (reported as an ``oversize`` marker) instead of
being buffered.
"""

from __future__ import annotations

import collections
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio

__all__ = ["MAX_LINE", "first_value", "follow_entries", "read_entries"]

#: Longest transcript line read into memory (tool results can be big; not unbounded).
MAX_LINE = 4 * 1024 * 1024
_CHUNK = 64 * 1024


def _parse(line: bytes) -> dict[str, Any] | None:
    try:
        entry = json.loads(line)
    except ValueError:
        return None
    return entry if isinstance(entry, dict) else None


class _LineReader:
    """Whole lines from ``offset`` on; a partial last line waits for its newline."""

    def __init__(self, path: Path, offset: int, max_line: int) -> None:
        self.path = path
        self.offset = offset
        self.max_line = max_line
        self._skipping = False  # inside an oversize line: drop bytes up to its newline
        self.seen = 0  # entries read so far

    def read(self, keep: int | None = None) -> list[dict[str, Any]]:
        """The new whole entries; with ``keep``, only the last ``keep`` of them
        (``seen`` counts them all), so a huge file never sits in memory whole."""
        out: collections.deque[dict[str, Any]] = collections.deque(maxlen=keep)
        try:
            handle = self.path.open("rb")
        except FileNotFoundError:
            return []
        with handle:
            size = os.fstat(handle.fileno()).st_size
            if size < self.offset:  # replaced by a shorter file: start again
                self.offset = 0
            handle.seek(self.offset)
            pending = b""
            while True:
                chunk = handle.read(_CHUNK)
                if not chunk:
                    break
                pending += chunk
                while True:
                    newline = pending.find(b"\n")
                    if newline < 0:
                        break
                    line, pending = pending[:newline], pending[newline + 1 :]
                    self.offset += newline + 1
                    if self._skipping:
                        self._skipping = False
                        continue
                    if len(line) > self.max_line:
                        out.append({"type": "oversize", "bytes": len(line)})
                        continue
                    entry = _parse(line)
                    if entry is not None:
                        out.append(entry)
                        if keep is not None:
                            self.seen += 1
                if len(pending) > self.max_line:
                    # Drop it; remember to skip the rest of this line (one marker per line).
                    self.offset += len(pending)
                    if not self._skipping:
                        out.append({"type": "oversize", "bytes": len(pending)})
                    pending = b""
                    self._skipping = True
        self.seen += len(out) if keep is None else 0
        return list(out)


def read_entries(
    path: Path, *, max_line: int = MAX_LINE, keep: int | None = None
) -> tuple[list[dict[str, Any]], int, int]:
    """The whole entries in ``path`` now (the last ``keep`` of them when given),
    how many there are, and the offset to follow the file from."""
    reader = _LineReader(path, 0, max_line)
    entries = reader.read(keep)
    return entries, reader.seen, reader.offset


def first_value(path: Path, key: str, *, lines: int = 200) -> str | None:
    """The first string ``key`` among the first ``lines`` entries (e.g. a session's cwd)."""
    try:
        handle = path.open("rb")
    except OSError:
        return None
    with handle:
        for _ in range(lines):
            line = handle.readline(MAX_LINE)
            if not line:
                break
            entry = _parse(line)
            if entry is not None and isinstance(entry.get(key), str):
                return str(entry[key])
    return None


async def follow_entries(
    path: Path, offset: int = 0, *, interval: float = 0.025, max_line: int = MAX_LINE
) -> AsyncIterator[list[dict[str, Any]]]:
    """Yield batches of entries appended to ``path`` after ``offset``, forever.

    A missing file is waited for. Each poll is one ``stat``; reads run in a
    worker thread so a slow disk never stalls the event loop.
    """
    reader = _LineReader(path, offset, max_line)
    while True:
        try:
            size = os.stat(path).st_size  # cheap: read only when the file changed
        except FileNotFoundError:
            size = reader.offset
        if size != reader.offset:
            batch = await anyio.to_thread.run_sync(reader.read)
            if batch:
                yield batch
        await anyio.sleep(interval)
