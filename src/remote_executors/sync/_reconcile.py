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

import contextlib
import errno
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from typing import Literal

import attrs

from remote_executors.errors import SyncDiskFull, SyncError, SyncPermissionDenied, SyncTooLarge
from remote_executors.sync._blob import Blob, Spool, common_prefix
from remote_executors.sync._decide import Kind, decide_file
from remote_executors.sync._install import append_exactly, install_atomically, save_conflict_copy
from remote_executors.sync._state import SyncState, load_state, save_state
from remote_executors.sync._sweep import Sweeper, is_our_temp
from remote_executors.sync.base import FileSync, Limits, SessionPaths

__all__ = [
    "MAX_CONFLICT_COPIES",
    "RemoteCopy",
    "Request",
    "changed_meanwhile",
    "file_size",
    "is_session_file",
    "local_error",
    "local_files",
    "pread",
    "pull_files",
    "prefixes",
    "reconcile",
    "tail_offset",
    "window_offset",
]

#: Bytes of overlap fetched before the end of the local copy.
WINDOW = 4096
#: Conflict copies kept per file and side; past it a new divergence is reported
#: but not saved again (a remote that rewrites its files cannot fill the disk).
MAX_CONFLICT_COPIES = 5


def _blob(data: bytes | Blob | None) -> Blob | None:
    return None if data is None else Blob.of(data)


@attrs.frozen
class RemoteCopy:
    """Remote bytes ``[offset, size)`` of one file (``offset == 0``: the whole file).

    ``head`` is the file's first bytes (up to a window) for a tail: checked too,
    it catches copies that diverged early, e.g. two sessions that share an id
    and a length but not a history. ``data`` is in memory or spooled to a local
    file (see :mod:`~remote_executors.sync._blob`); ``None`` means it was not
    read because the file has the same size on both sides and is not a main
    transcript (see :class:`Request`).
    """

    size: int
    offset: int
    data: Blob | None = attrs.field(converter=_blob)
    head: bytes = b""

    @property
    def whole(self) -> bool:
        return self.offset == 0


@attrs.frozen
class Request:
    """What :func:`pull_files` asks a strategy to read.

    ``mode="all"``: every remote file of the session; a file listed in
    ``local_sizes`` from :meth:`offset` with its first bytes, one that is not
    from 0; a file that :meth:`skippable` allows may come back unread
    (``data=None``; see :mod:`~remote_executors.sync._state`). ``mode="some"``:
    just the files in ``local_sizes``, as ``"all"`` reads them. ``mode="only"``: just the
    files in ``local_sizes``, whole. Files over the ``limits`` come back as
    :class:`~remote_executors.SyncTooLarge` errors, never read. Data past
    ``limits.inline_bytes`` goes to :meth:`spool` files, not memory.
    """

    mode: Literal["all", "only", "some"]
    local_sizes: Mapping[str, int]
    limits: Limits = attrs.field(factory=lambda: Limits())
    main: frozenset[str] = frozenset()
    local_dir: Path | None = None
    settled: Mapping[str, int] = attrs.field(factory=dict)
    """rel -> the size both copies had when the last sync saw them equal."""
    verified: Mapping[str, int] = attrs.field(factory=dict)
    """rel -> a local size the last sync saw to be a prefix of the remote copy:
    a tail starts at or before it (see :func:`tail_offset`)."""
    minutes: int = 0
    """More than 0: list only files modified in the last ``minutes`` minutes, plus
    the transcript and the files in ``local_sizes`` (the rest are as last seen)."""
    spools: list[Spool] = attrs.field(factory=list, eq=False, repr=False)

    def offset(self, rel: str) -> int:
        if self.mode == "only":
            return 0
        return tail_offset(self.local_sizes.get(rel), self.verified.get(rel))

    def skippable(self, rel: str, size: int) -> bool:
        """Whether ``rel`` may be left unread: not a main transcript, and both copies
        still have the size at which the last sync saw them equal."""
        return (
            self.mode in ("all", "some")
            and rel not in self.main
            and self.local_sizes.get(rel) == size
            and self.settled.get(rel) == size
        )

    def spool(self, rel: str) -> Spool:
        """A temp file beside the local ``rel`` to stream its remote bytes into;
        removed when the pull ends."""
        if self.local_dir is None:
            raise ValueError("this request has no local directory to spool into")
        spool = Spool(self.local_dir / rel)
        self.spools.append(spool)
        return spool

    def admit(
        self, sizes: Mapping[str, int], host: str, where: str
    ) -> tuple[dict[str, int], list[SyncTooLarge]]:
        """The files within the limits (in name order, as fetch.sh applies them),
        and an error for each one that is not."""
        admitted: dict[str, int] = {}
        errors: list[SyncTooLarge] = []
        total = 0
        for rel in sorted(sizes, key=lambda r: r.encode("utf-8", "surrogateescape")):
            size = sizes[rel]
            if size > self.limits.max_file_bytes:
                errors.append(too_large(rel, size, "file", self.limits, host, where))
            elif total + size > self.limits.max_session_bytes:
                errors.append(too_large(rel, size, "session", self.limits, host, where))
            else:
                total += size
                admitted[rel] = size
        return admitted, errors


def too_large(
    rel: str, size: int | None, which: str, limits: Limits, host: str, where: str
) -> SyncTooLarge:
    """The error for a remote file the limits keep from being copied here (``size``
    None: not known, only that it is over the limit)."""
    if which == "file":
        limit, knob, what = limits.max_file_bytes, "max_file_bytes", "one session file"
    else:
        limit, knob = limits.max_session_bytes, "max_session_bytes"
        what = "the session's files together"
    how_big = "larger than" if size is None else f"{_size(size)}, over"
    return SyncTooLarge(
        f"{where}/{rel} on {host} is {how_big} the {_size(limit)} limit for "
        f"{what}; it was not copied here (nothing was lost: it stays on {host}). If you "
        f"need it here, raise the sync strategy's {knob}, e.g. TailSessionSync({knob}=...).",
        host=host,
        path=rel,
        size=-1 if size is None else size,
        limit=limit,
    )


def _size(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


Fetch = Callable[[Request], Awaitable[tuple[dict[str, RemoteCopy], list[SyncError]]]]
"""How :func:`pull_files` reads the remote (see :class:`Request`). Errors for single
files (unreadable, too large) come back in the list, not raised."""


def window_offset(local_size: int | None) -> int:
    """Where a tail fetch should start for a local copy of ``local_size`` bytes."""
    return 0 if local_size is None else max(0, local_size - WINDOW)


def tail_offset(local_size: int | None, verified: int | None) -> int:
    """Where a tail fetch should start: a window before the local end, or earlier,
    at ``verified`` (the local size last seen to be a prefix of the remote copy),
    so that every local byte appended since is compared. Comparing only a
    window would take two copies that both grew by more than a window for one
    another's prefix whenever their last window's bytes agree (long lines of
    the same padding do)."""
    start = window_offset(local_size)
    if verified is not None and 0 <= verified < start:
        return verified
    return start


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


def local_files(
    local_dir: Path, session_id: str | None, *, sweep: Sweeper | None = None
) -> list[str]:
    """The session's files under ``local_dir``, as relative POSIX paths.

    Only the session's own files are visited (``<sid>.jsonl`` and ``<sid>/``),
    not the whole project. ``sweep``: shown every temp file of ours found on
    the way (see :mod:`~remote_executors.sync._sweep`).
    """
    found: list[str] = []
    if not local_dir.is_dir():
        return found
    if session_id is None:
        walked = [local_dir]
    else:
        walked = [local_dir / session_id] if (local_dir / session_id).is_dir() else []
        with os.scandir(local_dir) as top:
            for entry in top:
                name = entry.name
                if name == f"{session_id}.jsonl" and entry.is_file():
                    found.append(name)
                elif sweep and name.startswith(f".{session_id}.jsonl.") and is_our_temp(name):
                    sweep.see(entry.path)
    for start in walked:
        for root, dirs, files in os.walk(start):
            rel_root = Path(root).relative_to(local_dir).as_posix()
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            for name in files:
                rel = name if rel_root == "." else f"{rel_root}/{name}"
                if is_session_file(rel, session_id):
                    found.append(rel)
                elif sweep and is_our_temp(name):
                    sweep.see(os.path.join(root, name))
    return sorted(found)


def reconcile(
    local_dir: Path, rel: str, remote: RemoteCopy | None, *, side: str
) -> FileSync | None:
    """Bring local ``rel`` in step with ``remote`` (None: missing remotely).

    Returns what was done, or None when ``remote`` is a tail whose window does
    not prove the local copy a prefix (or the local file changed meanwhile):
    fetch the whole file and call again. A partial last line of a ``.jsonl``
    (the CLI may be half-way through writing it) is never installed. Memory
    stays bounded whatever the sizes: spooled data is compared and copied in
    chunks.
    """
    path = local_dir / rel
    local_size = file_size(path)
    if remote is None:
        return FileSync(rel, Kind.SAME if local_size is None else Kind.PUSH)
    if remote.data is None:  # not read: the same size on both sides
        return FileSync(rel, Kind.SAME) if local_size == remote.size else None
    jsonl = rel.endswith(".jsonl")
    if not remote.whole:
        return _fast_forward(path, rel, local_size, remote, jsonl)
    data = remote.data.slice(0, remote.data.complete_length()) if jsonl else remote.data
    if local_size is None and jsonl and not len(data):
        return FileSync(rel, Kind.SAME)  # not one complete line yet
    decision = decide_file(path if local_size is not None else None, data)
    if decision.kind is Kind.PUSH and len(data) < len(remote.data):
        # The remote ends in a partial line (its CLI died mid-write) and local
        # went on past the complete ones: a push may only extend the remote if
        # those partial bytes are in local too; appending after them would make
        # up a line neither side wrote.
        decision = decide_file(path, remote.data)
        if decision.kind is Kind.PULL:  # local stops inside that partial line
            return FileSync(rel, Kind.SAME)
    if decision.local_size != local_size:
        return None  # it changed under us: look again
    if decision.kind is Kind.PULL:
        if local_size is None:
            install_atomically(path, data)
            return FileSync(rel, Kind.PULL, moved=len(data))
        if not append_exactly(path, local_size, data.slice(local_size)):
            return None
        return FileSync(rel, Kind.PULL, moved=len(data) - local_size)
    if decision.kind is Kind.CONFLICT:
        # Every remote byte is kept, partial line included (up to the copy limit).
        copy = _existing_copy(path, remote.data, side) or _new_copy(path, remote.data, side)
        return FileSync(rel, Kind.CONFLICT, conflict_copy=copy)
    return FileSync(rel, decision.kind)


#: A per-turn pull asks only for what changed while the last pull is this recent...
PARTIAL_WITHIN = 30 * 60
#: ...and at most this many times in a row before one looks at everything again.
PARTIAL_AT_MOST = 50
#: How many of the files a pull moved the next one asks for by name.
RECENT = 256


async def pull_files(
    paths: SessionPaths,
    host: str,
    side: str,
    fetch: Fetch,
    limits: Limits | None = None,
    *,
    partial: bool = False,
) -> tuple[tuple[FileSync, ...], dict[str, int]]:
    """Fast-forward local files from what ``fetch`` reads; return every file's
    outcome and the remote sizes decisions were made on.

    The two-step decision every strategy makes: tails first (a window before
    the local end and the first bytes), then, for files whose tail does not
    prove the local copy a prefix, the whole file. Files both sides still
    hold as they were last seen in step are not read (see
    :mod:`~remote_executors.sync._state`). ``partial``: the strategy can list
    just what changed recently (``Request.minutes``); when the last pull is
    recent enough, only those files, the transcript and the files that were
    not in step are looked at, and the outcomes cover just them. Errors
    ``fetch`` returned are raised once every other file is synced. ``side``
    labels conflict copies. Temp files of ours left in the session's
    directories by a killed process are swept on a full pull.
    """
    limits = limits or Limits()
    started = time.time()
    state = load_state(paths, host, everything=False)
    sweeper = Sweeper(started)
    for temp in state.temps:  # seen before, too fresh then
        sweeper.see(temp)
    main = f"{paths.session_id}.jsonl"
    minutes = 0
    if (
        partial
        and paths.session_id is not None
        and state.pulled_at is not None
        and 0 <= started - state.pulled_at < PARTIAL_WITHIN
        and state.partial_pulls < PARTIAL_AT_MOST
    ):
        minutes = int((started - state.pulled_at) // 60) + 2  # a margin for clock drift
        sizes_here = _sizes(paths.local_dir, {main} | state.unsettled | state.recent)
    else:
        state = load_state(paths, host)  # the whole record: every file is looked at
        found = local_files(paths.local_dir, paths.session_id, sweep=sweeper)
        sizes_here = _sizes(paths.local_dir, found)
    mains = frozenset(rel for rel in sizes_here if "/" not in rel) | {main}
    results: dict[str, FileSync] = {}
    with contextlib.ExitStack() as cleanup:
        verified = state.verified()
        first = Request("all", sizes_here, limits, mains, paths.local_dir, state.settled,
                        verified, minutes=minutes)  # fmt: skip
        cleanup.callback(_close_spools, first)
        copies, errors = await fetch(first)
        again: dict[str, int] = {}
        for rel, copy in copies.items():
            if copy.data is None and sizes_here.get(rel) == copy.size:
                results[rel] = FileSync(rel, Kind.SAME)  # in step, unread: nothing to do
                continue
            outcome = _reconcile_one(paths, rel, copy, host, side)
            if outcome is None:
                again[rel] = 0
            else:
                results[rel] = outcome
        if again:
            retry = Request("only", again, limits, local_dir=paths.local_dir)
            cleanup.callback(_close_spools, retry)
            whole, more = await fetch(retry)
            errors.extend(more)
            for rel in again:
                outcome = _reconcile_one(paths, rel, whole.get(rel), host, side)
                if outcome is None:
                    raise changed_meanwhile(paths.local_dir / rel, host)
                results[rel] = outcome
    refused = {e.path for e in errors if isinstance(e, SyncTooLarge)}
    for rel in sizes_here:
        if rel not in copies and rel not in refused:
            results[rel] = FileSync(rel, Kind.PUSH)
    sizes = {rel: copy.size for rel, copy in copies.items()}
    now_settled = in_step(paths.local_dir, results, sizes, sizes_here)
    settled = dict(state.settled) if minutes else {}
    for rel in results:
        settled.pop(rel, None)
    settled.update(now_settled)
    unsettled = (set(state.unsettled) if minutes else set()) | set(results) | refused
    unsettled -= set(settled)
    # The files likely to keep growing (a subagent's transcript mid-turn): told to
    # the next pull so it fetches their tails, not their whole. A first pull
    # moves everything; a few hundred is plenty to follow what is active.
    moved = frozenset(sorted(rel for rel, outcome in results.items() if outcome.moved)[:RECENT])
    prefix = {rel: n for rel, n in state.prefix.items() if rel not in results} if minutes else {}
    # The transcript always: a partial pull after a full one has no settled list.
    prefix.update(prefixes(paths.local_dir, results, {main} | moved | unsettled, verified))
    save_state(
        paths,
        host,
        everything=not minutes,
        state=SyncState(
            settled,
            frozenset(unsettled),
            moved,
            started,
            state.partial_pulls + 1 if minutes else 0,
            frozenset(sweeper.kept),
            prefix,
        ),
    )
    if errors:
        raise errors[0]
    return tuple(results[rel] for rel in sorted(results)), sizes


def in_step(
    local_dir: Path,
    results: Mapping[str, FileSync],
    remote_sizes: Mapping[str, int],
    known_sizes: Mapping[str, int] | None = None,
) -> dict[str, int]:
    """The files both sides now hold the same size of, after a sync."""
    settled: dict[str, int] = {}
    for rel, outcome in results.items():
        size = remote_sizes.get(rel)
        if outcome.kind not in (Kind.SAME, Kind.PULL) or size is None:
            continue
        here = (known_sizes or {}).get(rel) if not outcome.moved else None
        if (here if here is not None else file_size(local_dir / rel)) == size:
            settled[rel] = size
    return settled


def prefixes(
    local_dir: Path,
    results: Mapping[str, FileSync],
    rels: Iterable[str],
    before: Mapping[str, int],
) -> dict[str, int]:
    """For those of ``rels`` a sync looked at, a local size known to be a prefix of
    the remote copy (see ``SyncState.prefix``): the size now when the sync left it
    one (SAME or PULL), else what was known ``before`` (a conflict changes neither
    copy, so the point where they were last in step stays where it was)."""
    found: dict[str, int] = {}
    for rel in rels:
        outcome = results.get(rel)
        if outcome is None:
            continue
        size = file_size(local_dir / rel) if outcome.kind in (Kind.SAME, Kind.PULL) else None
        if size is None:
            size = before.get(rel)
        if size is not None:
            found[rel] = size
    return found


def _sizes(local_dir: Path, rels: Iterable[str]) -> dict[str, int]:
    """Local sizes of the files of ``rels`` that exist."""
    base = os.fspath(local_dir)
    sizes: dict[str, int] = {}
    for rel in rels:
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            sizes[rel] = os.stat(os.path.join(base, rel)).st_size
    return sizes


def changed_meanwhile(path: Path, host: str) -> SyncError:
    """The error for a local file that kept changing while it was being synced."""
    return SyncError(
        f"{path} changed while it was being synced from {host}; nothing was lost. Sync again.",
        host=host,
        side="local",
    )


def _close_spools(request: Request) -> None:
    for spool in request.spools:
        spool.close()


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
    data = remote.data
    assert data is not None
    if local_size is None or remote.size < local_size or local_size < remote.offset:
        return None
    overlap = local_size - remote.offset
    if data.read(0, overlap) != pread(path, remote.offset, overlap):
        return None
    if remote.head and remote.head != pread(path, 0, len(remote.head)):
        return None
    new = data.slice(overlap)
    if jsonl:
        new = new.slice(0, new.complete_length())
    if not len(new):
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


def _conflict_copies(path: Path, side: str) -> list[Path]:
    prefix = f"{path.name}.conflict-{side}-"
    try:
        return sorted(p for p in path.parent.iterdir() if p.name.startswith(prefix))
    except FileNotFoundError:
        return []


def _existing_copy(path: Path, data: Blob, side: str) -> Path | None:
    """A conflict copy of ``path`` from ``side`` that holds ``data`` (extended if needed).

    While a pair stays diverged every sync finds the same conflict; saving
    the same bytes again each turn would only pile up copies. A copy that is
    a prefix of ``data`` (the other side grew since) is fast-forwarded.
    """
    for candidate in reversed(_conflict_copies(path, side)):
        try:
            size = candidate.stat().st_size
            if (
                size <= len(data)
                and common_prefix(candidate, data.slice(0, size)) == size
                and (size == len(data) or append_exactly(candidate, size, data.slice(size)))
            ):
                return candidate
        except OSError:
            continue
    return None


def _new_copy(path: Path, data: Blob, side: str) -> Path | None:
    """Save ``data`` as a new conflict copy, unless ``side`` already has
    :data:`MAX_CONFLICT_COPIES` of this file (then None: reported, not saved)."""
    if len(_conflict_copies(path, side)) >= MAX_CONFLICT_COPIES:
        return None
    return save_conflict_copy(path, data, side=side)


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
