"""The default strategy: move only the bytes a side lacks, over the executor itself.

Two small POSIX ``sh`` scripts (``fetch.sh``, ``store.sh``) run through
``Executor.run``, so the sync rides the executor's own connection (the SSH
master connection for ``SSHExecutor``), needs nothing on the remote beyond
``sh``, ``wc``, ``tail``, ``head`` and ``find``, and works for any executor.

A pull is one round trip in the common case: for each file the local side
already has, the remote sends its size and the bytes from a window before the
local end (see :mod:`._reconcile`); files it lacks come whole; files with the
same size on both sides (other than the transcript itself) are only listed.
Only files whose window does not match are fetched whole, in a second round
trip, and compared byte by byte. What does not fit the listing's in-memory
budget is streamed to disk by a process of its own (``fetch.sh stream``),
counted against what the listing announced; files over the size limits are
not read at all. The local file list goes over stdin, never as arguments.
A push first pulls (so the decision is made on what the remote holds now),
then sends each file's missing bytes; the remote script installs them by
renaming a complete copy into place, and only if the file still has the size
the decision was made on.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import time
from collections.abc import Mapping
from importlib import resources
from pathlib import Path

import anyio
import attrs

from remote_executors.errors import (
    SessionConflict,
    SyncDiskFull,
    SyncError,
    SyncPermissionDenied,
)
from remote_executors.executors.base import CommandResult, Executor, SpawnOptions
from remote_executors.sync._decide import Kind
from remote_executors.sync._lock import session_lock
from remote_executors.sync._reconcile import (
    MAX_CONFLICT_COPIES,
    WINDOW,
    RemoteCopy,
    Request,
    file_size,
    is_session_file,
    local_error,
    pull_files,
    too_large,
)
from remote_executors.sync.base import (
    MAX_FILE_BYTES,
    MAX_SESSION_BYTES,
    FileSync,
    Limits,
    SessionPaths,
    SyncReport,
)

__all__ = ["TailSessionSync", "lock_path", "raise_conflicts"]

_HEADER = re.compile(rb"RX-(FILE|BIG) ([0-9]{1,20}) ([0-9]{1,20}) ([0-9]{1,20}) (.+)", re.DOTALL)
_SAME = re.compile(rb"RX-SAME ([0-9]{1,20}) (.+)", re.DOTALL)
_CHANGED = re.compile(rb"RX-CHANGED ([0-9]{1,20}) (.+)", re.DOTALL)
_TOOBIG = re.compile(rb"RX-TOOBIG (file|session) ([0-9]{1,20}) (.+)", re.DOTALL)
_EOF = b"RX-EOF\n"
_FETCH = resources.files(__package__).joinpath("fetch.sh").read_text("utf-8")
_STORE = resources.files(__package__).joinpath("store.sh").read_text("utf-8")


class TailSessionSync:
    """Sync by sending only new bytes, verified against an overlap window.

    ``timeout`` bounds each remote command; ``lock_timeout`` how long a sync
    waits for another sync of the same session to finish.
    """

    def __init__(
        self,
        *,
        timeout: float = 120.0,
        lock_timeout: float = 60.0,
        max_file_bytes: int = MAX_FILE_BYTES,
        max_session_bytes: int = MAX_SESSION_BYTES,
    ) -> None:
        self.timeout = timeout
        self.lock_timeout = lock_timeout
        self.limits = Limits(max_file_bytes=max_file_bytes, max_session_bytes=max_session_bytes)

    def __repr__(self) -> str:
        return f"TailSessionSync(timeout={self.timeout})"

    async def pull(self, executor: Executor, paths: SessionPaths) -> SyncReport:
        return await self._pull_report(executor, paths, partial=False)

    async def pull_recent(self, executor: Executor, paths: SessionPaths) -> SyncReport:
        """A pull of what changed since the last pull of this session (when that was
        recent): the transcript, the files that were not in step, and files modified
        since. What a session does after each turn; the report lists just those files.
        Falls back to a full :meth:`pull` when there is no recent pull on record."""
        return await self._pull_report(executor, paths, partial=True)

    async def _pull_report(
        self, executor: Executor, paths: SessionPaths, *, partial: bool
    ) -> SyncReport:
        started = time.monotonic()
        async with session_lock(lock_path(paths), timeout=self.lock_timeout):
            files, _ = await self._pull(executor, paths, partial=partial)
        report = SyncReport("pull", executor.name, paths, files, time.monotonic() - started)
        raise_conflicts(report)
        return report

    async def push(self, executor: Executor, paths: SessionPaths) -> SyncReport:
        started = time.monotonic()
        async with session_lock(lock_path(paths), timeout=self.lock_timeout):
            files, sizes = await self._pull(executor, paths)
            done: list[FileSync] = []
            for f in files:
                if f.kind is Kind.PUSH:
                    f = await self._store(executor, paths, f.path, sizes.get(f.path))
                done.append(f)
        report = SyncReport("push", executor.name, paths, tuple(done), time.monotonic() - started)
        raise_conflicts(report)
        return report

    # -- pull -------------------------------------------------------------

    async def _pull(
        self, executor: Executor, paths: SessionPaths, *, partial: bool = False
    ) -> tuple[tuple[FileSync, ...], dict[str, int]]:
        """Fast-forward local files; return every file's outcome and remote sizes.
        ``partial``: only what changed since a recent pull (not before a push)."""

        async def fetch(request: Request) -> tuple[dict[str, RemoteCopy], list[SyncError]]:
            return await self._fetch(executor, paths, request)

        return await pull_files(
            paths, executor.name, _side(executor.name), fetch, self.limits, partial=partial
        )

    async def _fetch(
        self, executor: Executor, paths: SessionPaths, request: Request
    ) -> tuple[dict[str, RemoteCopy], list[SyncError]]:
        copies, errors, changed = await self._fetch_once(executor, paths, request)
        if changed:
            # Modified lately but not listed by us: now ask for their tails.
            sizes = {rel: size for rel in changed
                     if (size := file_size(paths.local_dir / rel)) is not None}  # fmt: skip
            tails = attrs.evolve(
                request, mode="some", local_sizes={rel: sizes.get(rel, 0) for rel in changed}
            )
            more, more_errors, _ = await self._fetch_once(executor, paths, tails, known=sizes)
            copies.update(more)
            errors += more_errors
        return copies, errors

    async def _fetch_once(
        self,
        executor: Executor,
        paths: SessionPaths,
        request: Request,
        known: Mapping[str, int] | None = None,
    ) -> tuple[dict[str, RemoteCopy], list[SyncError], dict[str, int]]:
        """One run of fetch.sh (and the streams of what it announced as big)."""
        limits = request.limits
        args = [paths.remote_project, paths.session_id or "", request.mode,
                str(limits.inline_bytes), str(limits.max_file_bytes),
                str(limits.max_session_bytes), str(request.minutes)]  # fmt: skip
        present = request.local_sizes if known is None else known
        # SKIP 1: the remote may leave the file out if it still has this size.
        # FROM: where its tail starts (Request.offset).
        listing = b"".join(
            b"%d %d %d %s\n"
            % (
                size,
                rel in present and request.skippable(rel, size),
                request.offset(rel),
                rel.encode("utf-8", "surrogateescape"),
            )
            for rel, size in request.local_sizes.items()
            if "\n" not in rel
        )
        result = await executor.run(
            ["/bin/sh", "-c", _FETCH, "rx-sync-fetch", *args],
            env=_env(paths),
            input=listing,
            timeout=self.timeout,
        )
        _check(result, executor.name, paths, "read")
        copies, errors, big, changed = _parse_fetch(result.stdout, executor.name, paths, request)
        for rel, (size, offset, head_size) in big.items():
            copies[rel] = await self._stream(executor, paths, request, rel, size, offset, head_size)
        return copies, errors, changed

    async def _stream(
        self,
        executor: Executor,
        paths: SessionPaths,
        request: Request,
        rel: str,
        size: int,
        offset: int,
        head_size: int,
    ) -> RemoteCopy:
        """Stream ``rel``'s head and bytes ``[offset, size)`` into a spool file."""
        host = executor.name
        expected = head_size + size - offset
        args = [paths.remote_project, paths.session_id or "", "stream", rel,
                str(offset), str(head_size), str(size)]  # fmt: skip
        try:
            spool = request.spool(rel)
        except OSError as exc:
            raise local_error(exc, host=host, what=f"session file {rel}") from exc
        process = await executor.spawn(
            SpawnOptions("/bin/sh", ["-c", _FETCH, "rx-sync-fetch", *args], env=_env(paths))
        )
        try:
            stdin = process.stdin
            if stdin is not None:
                await stdin.aclose()
            assert process.stdout is not None
            while True:
                # A stall, not the whole transfer, is what the timeout bounds.
                with anyio.fail_after(self.timeout):
                    try:
                        piece = await process.stdout.receive(1 << 20)
                    except (anyio.EndOfStream, anyio.ClosedResourceError):
                        break
                if spool.size + len(piece) > expected:
                    raise _garbled(host, paths, f"{rel} sent more bytes than it announced")
                try:
                    spool.write(piece)
                except OSError as exc:
                    raise local_error(exc, host=host, what=f"session file {rel}") from exc
            with anyio.fail_after(self.timeout):
                code = await process.wait()
        except TimeoutError:
            raise SyncError(
                f"Reading {paths.remote_dir}/{rel} from {host} stalled for {self.timeout:g} s; "
                "nothing was changed locally. Sync again.",
                host=host,
            ) from None
        finally:
            with anyio.CancelScope(shield=True):
                if process.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        process.kill()
                    with anyio.move_on_after(5):
                        await process.wait()
                with contextlib.suppress(Exception):
                    await process.aclose()
        if code != 0 or spool.size != expected:
            raise _garbled(host, paths, f"{rel} was cut short (it shrank while being read?)")
        blob = spool.blob()
        return RemoteCopy(size, offset, blob.slice(head_size), blob.read(0, head_size))

    # -- push -------------------------------------------------------------

    async def _store(
        self, executor: Executor, paths: SessionPaths, rel: str, remote_size: int | None
    ) -> FileSync:
        host = executor.name
        try:
            data = (paths.local_dir / rel).read_bytes()
        except OSError as exc:
            raise local_error(exc, host=host, what=f"session file {rel}") from exc
        start = remote_size or 0
        expected = -1 if remote_size is None else remote_size
        result = await executor.run(
            ["/bin/sh", "-c", _STORE, "rx-sync-store", paths.remote_project, rel,
             str(expected), str(len(data))],
            env=_env(paths),
            input=data[start:],
            timeout=self.timeout,
        )  # fmt: skip
        _check(result, host, paths, "write")
        reply = result.stdout.strip()
        if reply != b"RX-OK":
            raise SyncError(
                f"{paths.remote_dir}/{rel} on {host} changed while it was being pushed "
                f"({reply.decode('ascii', 'replace')}); nothing was overwritten. Sync again.",
                host=host,
            )
        return FileSync(rel, Kind.PUSH, moved=len(data) - start)


def lock_path(paths: SessionPaths) -> Path:
    """The lock file serializing syncs of one session (or project) on this machine."""
    from remote_executors._store_file import data_dir

    digest = hashlib.sha256(str(paths.local_dir).encode("utf-8", "surrogateescape")).hexdigest()
    return data_dir() / "locks" / f"{digest[:24]}.{paths.session_id or 'project'}.lock"


def raise_conflicts(report: SyncReport) -> None:
    """Raise :class:`SessionConflict` if any file of ``report`` diverged."""
    conflicts = report.conflicts
    if not conflicts:
        return
    local_dir = report.paths.local_dir
    copies = tuple(
        (str(local_dir / f.path), str(f.conflict_copy)) for f in conflicts if f.conflict_copy
    )
    listing = "; ".join(f"{local} (local) and {copy} ({report.host}'s)" for local, copy in copies)
    unsaved = [str(local_dir / f.path) for f in conflicts if f.conflict_copy is None]
    kept = f"Both copies were kept: {listing}. " if copies else ""
    if unsaved:
        kept += (
            f"{report.host}'s copy of {', '.join(unsaved)} was not saved again: "
            f"{MAX_CONFLICT_COPIES} conflict copies of it from {report.host} are kept "
            "already (remove ones you do not need). "
        )
    raise SessionConflict(
        f"Session {report.paths.session_id or '(project)'} diverged between local and "
        f"{report.host}: neither copy is a prefix of the other, so nothing was overwritten. "
        f"{kept}Continue from one of them with ClaudeAgentOptions(resume=..., "
        "fork_session=True), or move the copy you do not want aside on its side, then "
        "sync again.",
        host=report.host,
        session_id=report.paths.session_id,
        copies=copies,
    )


def _env(paths: SessionPaths) -> dict[str, str]:
    return {} if paths.remote_config_dir is None else {"CLAUDE_CONFIG_DIR": paths.remote_config_dir}


def _side(host: str) -> str:
    """A host alias as a conflict copy's side label (letters, digits, ``_.@-``)."""
    cleaned = "".join(c if c.isascii() and (c.isalnum() or c in "_.@-") else "_" for c in host)
    return (cleaned.lstrip("_.@-") or "remote")[:64]


def _check(result: CommandResult, host: str, paths: SessionPaths, verb: str) -> None:
    if result.ok:
        return
    text = result.stderr.decode("utf-8", "replace").strip()
    where = f"{paths.remote_dir} on {host}"
    if "No space left" in text or "Disk quota" in text:
        raise SyncDiskFull(
            f"No space left on {host} to {verb} session files in {where}: free some disk "
            "space there, then sync again (nothing was lost).",
            host=host,
            detail=text,
        )
    if "Permission denied" in text or "Read-only file system" in text:
        raise SyncPermissionDenied(
            f"Cannot {verb} session files in {where}: permission denied. Make that "
            "directory and its files belong to the SSH login user, then sync again.",
            host=host,
            detail=text,
        )
    raise SyncError(
        f"Could not {verb} session files in {where} (exit {result.returncode}). "
        "Nothing was lost; sync again once fixed.",
        host=host,
        detail=text,
    )


def _parse_fetch(
    out: bytes, host: str, paths: SessionPaths, request: Request
) -> tuple[dict[str, RemoteCopy], list[SyncError], dict[str, tuple[int, int, int]], dict[str, int]]:
    """fetch.sh's answer: the copies it carried, per-file errors, the files announced
    as too big to carry (``rel -> (size, offset, head)``) to stream, and the files
    announced as modified lately (``rel -> size``) to ask for."""
    copies: dict[str, RemoteCopy] = {}
    errors: list[SyncError] = []
    big: dict[str, tuple[int, int, int]] = {}
    changed: dict[str, int] = {}
    pos = 0
    while True:
        end = out.find(b"\n", pos)
        if end < 0:
            raise _garbled(host, paths, "the listing was cut short")
        line = out[pos:end]
        pos = end + 1
        if line == b"RX-END":
            if pos != len(out):
                raise _garbled(host, paths, "unexpected bytes after the end")
            return copies, errors, big, changed
        if line == b"RX-NODIR":
            continue
        if line.startswith(b"RX-ERR perm "):
            rel = line[len(b"RX-ERR perm ") :].decode("utf-8", "surrogateescape")
            errors.append(
                SyncPermissionDenied(
                    f"Cannot read {paths.remote_dir}/{rel} on {host}: permission denied. "
                    "Make it readable by the SSH login user, then sync again.",
                    host=host,
                )
            )
            continue
        same = _SAME.fullmatch(line)
        if same is not None:
            rel = same[2].decode("utf-8", "surrogateescape")
            size = int(same[1])
            if is_session_file(rel, paths.session_id) and request.skippable(rel, size):
                copies[rel] = RemoteCopy(size, size, None)
            elif is_session_file(rel, paths.session_id):
                raise _garbled(host, paths, f"{rel} was left out though it may have changed")
            continue
        moved = _CHANGED.fullmatch(line)
        if moved is not None:
            rel = moved[2].decode("utf-8", "surrogateescape")
            if request.minutes > 0 and is_session_file(rel, paths.session_id):
                changed[rel] = int(moved[1])
            continue
        toobig = _TOOBIG.fullmatch(line)
        if toobig is not None:
            rel = toobig[3].decode("utf-8", "surrogateescape")
            if is_session_file(rel, paths.session_id):
                which, size = toobig[1].decode(), int(toobig[2])
                errors.append(too_large(rel, size, which, request.limits, host, paths.remote_dir))
            continue
        header = _HEADER.fullmatch(line)
        if header is None:
            raise _garbled(host, paths, f"unexpected line {line[:80]!r}")
        size, offset, head_size = int(header[2]), int(header[3]), int(header[4])
        rel = header[5].decode("utf-8", "surrogateescape")
        if offset > size or head_size > offset or head_size > WINDOW:
            raise _garbled(host, paths, f"bad header {line[:80]!r}")
        if size > request.limits.max_file_bytes:
            # The remote announced more than the limit it was given: never read it.
            errors.append(too_large(rel, size, "file", request.limits, host, paths.remote_dir))
            if header[1] == b"FILE":
                raise _garbled(host, paths, f"{rel} was sent though over the size limit")
            continue
        if header[1] == b"BIG":
            if is_session_file(rel, paths.session_id):
                big[rel] = (size, offset, head_size)
            continue
        end = pos + head_size + size - offset
        if out[end : end + len(_EOF)] != _EOF:
            raise _garbled(host, paths, "a file was cut short (it shrank while being read?)")
        head = out[pos : pos + head_size]
        data = out[pos + head_size : end]
        pos = end + len(_EOF)
        if is_session_file(rel, paths.session_id):
            copies[rel] = RemoteCopy(size, offset, data, head)


def _garbled(host: str, paths: SessionPaths, what: str) -> SyncError:
    return SyncError(
        f"Reading session files from {paths.remote_dir} on {host} failed: {what}. "
        "Nothing was changed locally; sync again.",
        host=host,
    )
