"""Applying the live follower's frames to the local copy of a session.

The same rules as the turn-end sync (see :mod:`._reconcile`), one frame at a
time: a frame is only ever appended after what the local file already holds,
and only when its bytes that overlap the local ones are equal to them (the
follower re-sends a window before the local end, and the file's first bytes,
before the first new byte of each file); so the local file is a byte-prefix of
the remote one at every instant. A ``.jsonl`` file only gets complete lines:
the bytes of a line still being written wait here (up to a bound) for the
rest. An existing file grows in place (same inode, as the CLI's own appends);
a new one is created whole, atomically.

Anything that does not fit (a gap, bytes that differ, a file that shrank or
is too large, a local file changed by someone else) marks the file *stale*:
the follower leaves it alone and the turn-end pull, which keeps conflicts and
reports limits, takes over. Nothing is ever overwritten here.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import attrs

from remote_executors.sync._install import append_exactly, install_atomically
from remote_executors.sync._live_frames import Data, Head, Problem
from remote_executors.sync._reconcile import file_size, pread

__all__ = ["LiveFiles"]

log = logging.getLogger("remote_executors.sync")

#: The bytes of unfinished lines held per file before it is left to the pull.
MAX_PENDING = 16 << 20


@attrs.define
class _File:
    base: int | None
    """The local size the pending bytes follow (None: no local file yet)."""
    pending: bytearray = attrs.field(factory=bytearray)
    """Received bytes after ``base`` not written yet (an unfinished line)."""


class LiveFiles:
    """The local side of one session's live follow. ``local_dir`` is its project dir."""

    def __init__(
        self,
        local_dir: Path,
        *,
        max_file_bytes: int,
        host: str,
        max_session_bytes: int | None = None,
    ) -> None:
        self.local_dir = local_dir
        self._max_file = max_file_bytes
        self._max_session = max_session_bytes
        self.total = 0
        """The session's bytes here (set at start, grown by every write)."""
        self._host = host
        self._files: dict[str, _File] = {}
        self.stale: dict[str, str] = {}
        """rel -> why the follower left it to the turn-end pull."""
        self.landed = 0
        """Bytes written to local files so far."""

    def head(self, frame: Head) -> None:
        if frame.rel in self.stale:
            return
        if pread(self.local_dir / frame.rel, 0, len(frame.data)) != frame.data:
            self._stale(frame.rel, "its first bytes differ")

    def problem(self, frame: Problem) -> None:
        self._stale(frame.rel, f"{frame.kind} on the remote")

    def data(self, frame: Data) -> int:
        """Apply one data frame; return the bytes written locally."""
        rel = frame.rel
        if rel in self.stale:
            return 0
        path = self.local_dir / rel
        state = self._rebased(rel, path)
        if state is None:
            return 0
        end = (state.base or 0) + len(state.pending)
        if frame.offset > end:
            return self._stale(rel, "bytes are missing before the ones received")
        overlap = end - frame.offset
        if overlap and self._read(path, state, frame.offset, overlap) != frame.data[:overlap]:
            return self._stale(rel, "the copies differ")
        new = frame.data[overlap:]
        if not new:
            return 0
        if end + len(new) > self._max_file:
            return self._stale(rel, "too large to follow")
        if self._max_session is not None and self.total + len(new) > self._max_session:
            return self._stale(rel, "the session is too large to follow")
        state.pending += new
        cut = state.pending.rfind(b"\n") + 1 if rel.endswith(".jsonl") else len(state.pending)
        if len(state.pending) - cut > MAX_PENDING:
            return self._stale(rel, "an unfinished line is too long to hold")
        if not cut:
            return 0
        ready = bytes(state.pending[:cut])
        if state.base is None:
            if file_size(path) is not None:
                return self._stale(rel, "a local file appeared meanwhile")
            install_atomically(path, ready)
        elif not append_exactly(path, state.base, ready):
            return self._stale(rel, "the local file changed meanwhile")
        del state.pending[:cut]
        state.base = (state.base or 0) + cut
        self.landed += cut
        self.total += cut
        return cut

    def reset(self) -> None:
        """After a pull: look at every file afresh (pending bytes are kept if they still fit)."""
        self.stale.clear()

    @property
    def in_step(self) -> bool:
        """No file was left to the pull."""
        return not self.stale

    # -- internals ------------------------------------------------------------

    def _rebased(self, rel: str, path: Path) -> _File | None:
        """The file's state, matched against its local size now (a pull may have
        appended what was pending, or more)."""
        size = file_size(path)
        state = self._files.get(rel)
        if state is None:
            state = self._files[rel] = _File(size)
            return state
        if size == state.base:
            return state
        if size is None or (state.base is not None and size < state.base):
            self._stale(rel, "the local file shrank or vanished")
            return None
        base = state.base or 0
        grown = size - base
        held = min(grown, len(state.pending))
        if pread(path, base, held) != bytes(state.pending[:held]):
            self._stale(rel, "the local file changed meanwhile")
            return None
        del state.pending[:held]
        if grown > held:
            state.pending.clear()
        state.base = size
        return state

    def _read(self, path: Path, state: _File, offset: int, length: int) -> bytes:
        """Bytes ``[offset, offset + length)`` of the local file followed by its pending bytes."""
        base = state.base or 0
        got = b""
        if offset < base:
            got = pread(path, offset, min(length, base - offset))
        start = max(0, offset - base)
        return got + bytes(state.pending[start : start + length - len(got)])

    def _stale(self, rel: str, why: str) -> int:
        if rel not in self.stale:
            log.info("%s: live follow leaves %s to the turn-end sync: %s", self._host, rel, why)
        self.stale[rel] = why
        self._files.pop(rel, None)
        return 0


def local_sizes(local_dir: Path, rels: list[str]) -> dict[str, int]:
    """Local sizes of ``rels`` that exist (what the follower is told at start)."""
    sizes: dict[str, int] = {}
    for rel in rels:
        try:
            sizes[rel] = os.stat(local_dir / rel).st_size
        except (FileNotFoundError, NotADirectoryError):
            continue
    return sizes
