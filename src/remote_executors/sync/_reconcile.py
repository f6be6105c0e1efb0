"""Applying what a strategy fetched to the local side, one file at a time.

Every strategy fetches a remote file either whole or as a *tail*: the bytes
from some offset before the end of the local copy, plus its first bytes. A
tail starts with an overlap window (the remote bytes at the end of what the
local side already has); when that window and the first bytes match the local
ones and the remote is not shorter,
the rest of the tail is exactly what the local copy lacks, and syncing costs
the new bytes, not the file's size. Transcripts are append-only, so copies
diverge at or after the point they were last in step, which is where the
window sits. When the window does not match, the caller fetches the file
whole and :func:`~remote_executors.sync._decide.decide` compares every byte.
:func:`pull_files` is that two-step pull for strategies that read byte ranges
(TailSessionSync, SftpSessionSync): they decide alike by construction.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

import attrs

from remote_executors.errors import SyncDiskFull, SyncError, SyncPermissionDenied
from remote_executors.sync._decide import Kind, complete_lines, decide
from remote_executors.sync._install import append_exactly, install_atomically, save_conflict_copy
from remote_executors.sync.base import FileSync, SessionPaths

__all__ = [
    "RemoteCopy",
    "file_size",
    "is_session_file",
    "local_error",
    "local_files",
    "pread",
    "pull_files",
    "reconcile",
    "window_offset",
]

#: Bytes of overlap fetched before the end of the local copy.
WINDOW = 4096


@attrs.frozen
class RemoteCopy:
    """Remote bytes ``[offset, size)`` of one file (``offset == 0``: the whole file).

    ``head`` is the file's first bytes (up to a window) for a tail: checked too,
    it catches copies that diverged early, e.g. two sessions that share an id
    and a length but not a history.
    """

    size: int
    offset: int
    data: bytes
    head: bytes = b""

    @property
    def whole(self) -> bool:
        return self.offset == 0


Fetch = Callable[[str, Mapping[str, int]], Awaitable[tuple[dict[str, RemoteCopy], list[SyncError]]]]
"""How :func:`pull_files` reads the remote: ``fetch("all", offsets)`` returns every
remote file of the session, each from its offset in ``offsets`` (0 for files not
listed) with its first bytes; ``fetch("only", {rel: 0, ...})`` just those files,
whole. Errors for single files (unreadable) come back in the list."""


def window_offset(local_size: int | None) -> int:
    """Where a tail fetch should start for a local copy of ``local_size`` bytes."""
    return 0 if local_size is None else max(0, local_size - WINDOW)


def is_session_file(rel: str, session_id: str | None) -> bool:
    """Whether ``rel`` (a path inside a project dir) belongs to the synced set.

    The set is ``<sid>.jsonl`` and everything under ``<sid>/`` (subagents,
    tool results); never hidden names (temp files) or conflict copies.
    """
    parts = rel.split("/")
    if any(not p or p.startswith(".") or p == ".." or ".conflict-" in p for p in parts):
        return False
    if any(c in rel for c in "\n\r\x00"):
        return False
    if session_id is None:
        head = parts[0]
        stem = head[: -len(".jsonl")] if len(parts) == 1 and head.endswith(".jsonl") else head
        return _looks_like_uuid(stem)
    if len(parts) == 1:
        return parts[0] == f"{session_id}.jsonl"
    return parts[0] == session_id


def local_files(local_dir: Path, session_id: str | None) -> list[str]:
    """The session's files under ``local_dir``, as relative POSIX paths."""
    found: list[str] = []
    if not local_dir.is_dir():
        return found
    for root, dirs, files in os.walk(local_dir):
        rel_root = Path(root).relative_to(local_dir).as_posix()
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            rel = name if rel_root == "." else f"{rel_root}/{name}"
            if is_session_file(rel, session_id):
                found.append(rel)
    return sorted(found)


def reconcile(
    local_dir: Path, rel: str, remote: RemoteCopy | None, *, side: str
) -> FileSync | None:
    """Bring local ``rel`` in step with ``remote`` (None: missing remotely).

    Returns what was done, or None when ``remote`` is a tail whose window does
    not prove the local copy a prefix (or the local file changed meanwhile):
    fetch the whole file and call again. A partial last line of a ``.jsonl``
    (the CLI may be half-way through writing it) is never installed.
    """
    path = local_dir / rel
    local_size = file_size(path)
    if remote is None:
        return FileSync(rel, Kind.SAME if local_size is None else Kind.PUSH)
    jsonl = rel.endswith(".jsonl")
    if not remote.whole:
        return _fast_forward(path, rel, local_size, remote, jsonl)
    data = complete_lines(remote.data) if jsonl else remote.data
    if local_size is None and jsonl and not data:
        return FileSync(rel, Kind.SAME)  # not one complete line yet
    local = None if local_size is None else path.read_bytes()
    decision = decide(local, data)
    if decision.kind is Kind.PUSH and len(data) < len(remote.data):
        # The remote ends in a partial line (its CLI died mid-write) and local
        # went on past the complete ones: a push may only extend the remote if
        # those partial bytes are in local too; appending after them would make
        # up a line neither side wrote.
        decision = decide(local, remote.data)
        if decision.kind is Kind.PULL:  # local stops inside that partial line
            return FileSync(rel, Kind.SAME)
    if decision.kind is Kind.PULL:
        if local is None:
            install_atomically(path, data)
            return FileSync(rel, Kind.PULL, moved=len(data))
        if not append_exactly(path, len(local), data[len(local) :]):
            return None
        return FileSync(rel, Kind.PULL, moved=len(data) - len(local))
    if decision.kind is Kind.CONFLICT:
        # Every remote byte is kept, partial line included.
        copy = _existing_copy(path, remote.data, side) or save_conflict_copy(
            path, remote.data, side=side
        )
        return FileSync(rel, Kind.CONFLICT, conflict_copy=copy)
    return FileSync(rel, decision.kind)


async def pull_files(
    paths: SessionPaths, host: str, side: str, fetch: Fetch
) -> tuple[tuple[FileSync, ...], dict[str, int]]:
    """Fast-forward local files from what ``fetch`` reads; return every file's
    outcome and the remote sizes decisions were made on.

    The two-step decision every strategy makes: tails first (a window before
    the local end and the first bytes), then, for files whose tail does not
    prove the local copy a prefix, the whole file. Errors ``fetch`` returned
    are raised once every other file is synced. ``side`` labels conflict copies.
    """
    mine = local_files(paths.local_dir, paths.session_id)
    offsets = {rel: window_offset(file_size(paths.local_dir / rel)) for rel in mine}
    copies, errors = await fetch("all", offsets)
    results: dict[str, FileSync] = {}
    again: dict[str, int] = {}
    for rel, copy in copies.items():
        outcome = _reconcile_one(paths, rel, copy, host, side)
        if outcome is None:
            again[rel] = 0
        else:
            results[rel] = outcome
    if again:
        whole, more = await fetch("only", again)
        errors.extend(more)
        for rel in again:
            outcome = _reconcile_one(paths, rel, whole.get(rel), host, side)
            if outcome is None:
                raise SyncError(
                    f"{paths.local_dir / rel} changed while it was being synced from "
                    f"{host}; nothing was lost. Sync again.",
                    host=host,
                    side="local",
                )
            results[rel] = outcome
    for rel in mine:
        if rel not in copies:
            results[rel] = FileSync(rel, Kind.PUSH)
    if errors:
        raise errors[0]
    sizes = {rel: copy.size for rel, copy in copies.items()}
    return tuple(results[rel] for rel in sorted(results)), sizes


def _reconcile_one(
    paths: SessionPaths, rel: str, copy: RemoteCopy | None, host: str, side: str
) -> FileSync | None:
    try:
        return reconcile(paths.local_dir, rel, copy, side=side)
    except OSError as exc:
        raise local_error(exc, host=host, what=f"session file {rel}") from exc


def _fast_forward(
    path: Path, rel: str, local_size: int | None, remote: RemoteCopy, jsonl: bool
) -> FileSync | None:
    if local_size is None or remote.size < local_size or local_size < remote.offset:
        return None
    overlap = local_size - remote.offset
    if remote.data[:overlap] != pread(path, remote.offset, overlap):
        return None
    if remote.head and remote.head != pread(path, 0, len(remote.head)):
        return None
    new = remote.data[overlap:]
    if jsonl:
        new = complete_lines(new)
    if not new:
        return FileSync(rel, Kind.SAME)
    if not append_exactly(path, local_size, new):
        return None
    return FileSync(rel, Kind.PULL, moved=len(new))


def local_error(exc: OSError, *, host: str, what: str) -> SyncError:
    """The typed error for a local file system failure while syncing."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return SyncDiskFull(
            f"No space left on local to store {what} from {host}: free some disk space, "
            "then run the sync again (nothing was lost; the remote copy is complete).",
            host=host,
            side="local",
            detail=str(exc),
        )
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return SyncPermissionDenied(
            f"Cannot write {what} from {host} on local: {exc.filename} is not writable. "
            "Fix its permissions (it should belong to you), then sync again.",
            host=host,
            side="local",
            detail=str(exc),
        )
    return SyncError(
        f"Could not store {what} from {host} on local: {exc}. Sync again once fixed.",
        host=host,
        side="local",
    )


def _existing_copy(path: Path, data: bytes, side: str) -> Path | None:
    """A conflict copy of ``path`` from ``side`` that holds ``data`` (extended if needed).

    While a pair stays diverged every sync finds the same conflict; saving
    the same bytes again each turn would only pile up copies. A copy that is
    a prefix of ``data`` (the other side grew since) is fast-forwarded.
    """
    prefix = f"{path.name}.conflict-{side}-"
    try:
        candidates = [p for p in path.parent.iterdir() if p.name.startswith(prefix)]
    except FileNotFoundError:
        return None
    for candidate in sorted(candidates, reverse=True):
        try:
            size = candidate.stat().st_size
            if (
                size <= len(data)
                and pread(candidate, 0, size) == data[:size]
                and (size == len(data) or append_exactly(candidate, size, data[size:]))
            ):
                return candidate
        except OSError:
            continue
    return None


def file_size(path: Path) -> int | None:
    """``path``'s size, None when it does not exist."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return None


def pread(path: Path, offset: int, length: int) -> bytes:
    """Up to ``length`` bytes of ``path`` from ``offset``."""
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(length)


def _looks_like_uuid(name: str) -> bool:
    parts = name.split("-")
    return [len(p) for p in parts] == [8, 4, 4, 4, 12] and all(
        c in "0123456789abcdef" for c in name.replace("-", "")
    )
