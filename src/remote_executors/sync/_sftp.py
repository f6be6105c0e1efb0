"""A third strategy: SFTP on the fabric backend's own connection, byte ranges only.

``SftpSessionSync`` reads and writes transcripts with SFTP requests on the
pooled connection of an ``SSHExecutor(..., backend="fabric")``: no shell
and no tools on the remote beyond its sftp-server. It makes every decision
exactly as :class:`~remote_executors.sync.TailSessionSync` does, through the
same :func:`~remote_executors.sync._reconcile.pull_files`; only the transport
differs.

Pull
    One ``sftp_call`` (one worker-thread hop): the session's files are found
    (``<sid>.jsonl`` and every regular file under ``<sid>/``, or every
    session's for a whole project; listed level by level), opened all at
    once, and read as TailSessionSync's fetch script sends them: for a file
    the local side has, its first 4 KiB and the bytes from a window before the
    local end up to the size the listing gave; others whole. Requests are
    pipelined (up to 4 MiB in flight), so a turn costs a handful of round
    trips and the new bytes, whatever the transcript's size (see Cost).
    Files whose window does not prove the local copy a prefix are read whole
    in a second call. A file that turns out shorter than listed (it shrank, or the read
    was cut) fails the pull before anything is installed.

Push
    A pull first, under the same lock, so the decision is made on what the
    remote holds now; then one call for every file decided PUSH. The new copy
    is built beside the file, in a hidden temp (``.<name>.rx-sftp-<hex>.tmp``,
    created exclusively, 0600): the remote's own bytes are copied there by the
    server (``copy-data``; without it they are uploaded from the local copy,
    which holds exactly those bytes), then only the missing bytes travel; the
    temp is fsynced (``fsync@openssh.com``) and its size checked. Then, only
    if the file still has the size the decision was made on (checked on the
    path and on a handle held open on the old file), ``posix-rename`` puts the
    copy in place. A file the remote lacks is placed with a plain SFTP rename,
    which OpenSSH does by link+unlink: it never replaces a file created
    meanwhile. This is TailSessionSync's guarantee (readers there see the old
    file or the new one, never a torn line, and a failed or cut push changes
    nothing), kept over SFTP.

    Why not append in place (cheaper: no copy): a cut link or a full disk
    half-way would leave the remote ending in part of a line, which a CLI
    resumed there would continue after, and a writer appending between the
    size check and the write would get our lines interleaved with its own.

    The window left between the last check and the rename is closed after
    the fact: the handle on the old file sees it grow. The old bytes are then
    put back (a copy of the old file renamed over ours, if ours was not
    written to meanwhile) and the push reports that the remote changed;
    if both were written, ours stays and the old file's bytes are saved here
    as a conflict copy. Either way every line the remote wrote is kept on one
    side. What no rename-based replace can keep: a line appended within those
    few milliseconds when this process or the link dies at that very moment,
    and lines written by a writer that keeps the old file open across the
    rename. Pushes happen before a resume, when no CLI of the session should
    be running there.

    A temp left by a push whose link died is removed by the next push of that
    file (under the session lock, no push from this machine can be using it;
    a push from another machine at that moment would fail its rename and say
    so, losing nothing).

Cost
    A pull is one worker-thread hop and a few round trips (the listing's
    depth, then one each to open, read and close all files), moving the new
    bytes and 8 KiB per file the local side has. Reads and writes use the
    largest requests the server allows (``limits@openssh.com``: 255 KiB on
    OpenSSH, else 32 KiB). A push decides on the remote file read whole, as
    TailSessionSync's does, and its remote copy costs the server a copy of
    the file (measured in ``bench/bench_sync_strategies.py``).

Errors
    Permission denied (SFTP ``PERMISSION_DENIED``): :class:`SyncPermissionDenied`.
    OpenSSH's sftp-server reports a full disk only as a generic failure, so a
    failed write is followed by ``statvfs@openssh.com`` on the directory (or
    ``df -P`` through ``Executor.run`` where the server lacks it): no room for
    the file is :class:`SyncDiskFull`, a read-only file system
    :class:`SyncPermissionDenied`, anything else :class:`SyncError`. All name
    the host, say what to do, and have ``.side`` set to the host (local file
    errors: ``"local"``). A dead link is the executor's ``ConnectionFailed``,
    a slow one its ``CommandTimeout``.

paramiko's SFTP client has no pipelining for reads it does not prefetch, and
its pipelined writes drop failure replies; the wire layer below (``_Wire``)
sends requests through the client's ``_async_request`` and collects the
replies itself, as paramiko's own prefetch does.
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import functools
import posixpath
import re
import secrets
import stat
import time
import weakref
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol, TypeVar, cast

import attrs

from remote_executors.errors import (
    SyncDiskFull,
    SyncError,
    SyncPermissionDenied,
)
from remote_executors.executors.base import Executor, SftpChannel, sftp_channel_of
from remote_executors.sync._decide import Kind
from remote_executors.sync._install import save_conflict_copy
from remote_executors.sync._lock import session_lock
from remote_executors.sync._reconcile import (
    WINDOW,
    RemoteCopy,
    Request,
    is_session_file,
    local_error,
    pull_files,
    too_large,
)
from remote_executors.sync._tail import _side, lock_path, raise_conflicts
from remote_executors.sync.base import (
    MAX_FILE_BYTES,
    MAX_SESSION_BYTES,
    FileSync,
    Limits,
    SessionPaths,
    SyncReport,
)

__all__ = ["SftpSessionSync"]

T = TypeVar("T")

# SFTP protocol numbers (draft-ietf-secsh-filexfer-02, as paramiko.sftp has them).
_OPEN, _CLOSE, _READ, _WRITE, _LSTAT, _FSTAT = 3, 4, 5, 6, 7, 8
_OPENDIR, _READDIR, _REMOVE, _MKDIR, _STAT, _RENAME = 11, 12, 13, 14, 17, 18
_EXTENDED = 200
_STATUS, _EXTENDED_REPLY = 101, 201  # the replies read by type; the rest by position
_OK, _EOF, _NO_SUCH_FILE, _PERMISSION_DENIED, _OP_UNSUPPORTED = 0, 1, 2, 3, 8
_FLAG_READ, _FLAG_WRITE, _FLAG_CREATE, _FLAG_EXCL = 0x01, 0x02, 0x08, 0x20
_ST_RDONLY = 0x1  # statvfs@openssh.com f_flag

_CHUNK = 32768  # what every SFTP server takes in one read or write
_MAX_CHUNK = 255 * 1024  # OpenSSH's own limit; larger requests cost less Python per byte
_IN_FLIGHT = 128  # requests outstanding at most
_IN_FLIGHT_BYTES = 4 << 20  # data outstanding at most: half the channel's window
_SPOOL_STEP = 4 << 20  # one request's worth of a file read into a spool
_OPEN_AT_ONCE = 256  # files open at a time (servers cap handles: OpenSSH at 512)
_TEMP = re.compile(r"\.(.+)\.rx-sftp-[0-9a-f]{12}\.tmp")
_SLACK = 64 * 1024  # free space below need + this: the failed write was the disk filling up
_DF = 'cd && df -P -k -- "$1" | tail -n 1'


class _SftpExecutor(SftpChannel, Protocol):
    """What this strategy needs of an executor: an SFTP channel (e.g.
    ``SSHExecutor(..., backend="fabric")``) and a name for messages."""

    @property
    def name(self) -> str: ...


# -- the wire ----------------------------------------------------------------------


class _Status(OSError):
    """An SFTP status reply other than OK; ``errno`` as paramiko maps it, ``code`` SFTP's."""

    def __init__(self, code: int, text: str) -> None:
        number = {_NO_SUCH_FILE: errno.ENOENT, _PERMISSION_DENIED: errno.EACCES}.get(code)
        if number is None:
            super().__init__(text or f"SFTP status {code}")
        else:
            super().__init__(number, text)
        self.code = code

    @property
    def text(self) -> str:
        return str(self.strerror or self.args[0])


class _Wire:
    """Pipelined SFTP requests on a paramiko ``SFTPClient`` (in the worker thread).

    Requests are sent with the client's ``_async_request`` and this object as
    their owner: the client's ``_read_response`` hands each reply to
    :meth:`_async_response`, whatever order they come in. The client keeps
    owners by weak reference, so a wire lives as long as its call.
    """

    def __init__(self, sftp: Any) -> None:
        self.sftp = sftp
        self._replies: dict[int, tuple[int, Any]] = {}

    def _async_response(self, t: int, msg: Any, num: int) -> None:
        self._replies[num] = (t, msg)

    def send(self, cmd: int, *args: Any) -> int:
        return int(self.sftp._async_request(self, cmd, *args))

    def wait(self, num: int) -> tuple[int, Any]:
        """The reply to request ``num``; a status other than OK raises :class:`_Status`."""
        while num not in self._replies:
            self.sftp._read_response()
        t, msg = self._replies.pop(num)
        if t == _STATUS:
            code = msg.get_int()
            text = msg.get_text()
            if code != _OK:
                raise _Status(code, text)
        return t, msg

    def call(self, cmd: int, *args: Any) -> tuple[int, Any]:
        return self.wait(self.send(cmd, *args))

    def gather(
        self, requests: Iterable[tuple[Any, ...]], in_flight: int = _IN_FLIGHT
    ) -> list[tuple[int, Any] | _Status]:
        """Send ``(cmd, *args)`` requests, at most ``in_flight`` outstanding; replies in order."""
        out: list[tuple[int, Any] | _Status] = []
        pending: deque[int] = deque()

        def take() -> None:
            num = pending.popleft()
            try:
                out.append(self.wait(num))
            except _Status as exc:
                out.append(exc)

        for cmd, *args in requests:
            if len(pending) >= in_flight:
                take()
            pending.append(self.send(cmd, *args))
        while pending:
            take()
        return out

    # -- requests --------------------------------------------------------------

    def stats(self, paths: Sequence[bytes]) -> list[Any | _Status]:
        """Attributes of each path (symlinks followed)."""
        return self.attributes((_STAT, p) for p in paths)

    def attributes(self, requests: Iterable[tuple[Any, ...]]) -> list[Any | _Status]:
        """Attributes from STAT, LSTAT or FSTAT requests, in one round trip."""
        return [r if isinstance(r, _Status) else _attrs(r[1]) for r in self.gather(requests)]

    def fstat(self, handle: bytes) -> Any:
        return _attrs(self.call(_FSTAT, handle)[1])

    def open(
        self, paths: Sequence[bytes], flags: int, mode: int | None = None
    ) -> list[bytes | _Status]:
        attrs = _sftp_attributes(mode)
        return [
            r if isinstance(r, _Status) else bytes(r[1].get_binary())
            for r in self.gather((_OPEN, p, flags, attrs) for p in paths)
        ]

    def close(self, handles: Iterable[bytes]) -> None:
        self.gather((_CLOSE, h) for h in handles)  # a failed close changes nothing of ours

    def listdirs(self, paths: Sequence[bytes]) -> list[list[tuple[bytes, Any]] | _Status]:
        """Every entry (name, lstat attributes) of each directory, ``.`` and ``..`` left out."""
        handles = self.open_dirs(paths)
        entries: list[list[tuple[bytes, Any]] | _Status] = [
            h if isinstance(h, _Status) else [] for h in handles
        ]
        reading = [i for i, h in enumerate(handles) if not isinstance(h, _Status)]
        try:
            while reading:
                # Two reads per directory: a session's directories fit in one
                # reply, and the second brings the end (one round trip).
                asked = [i for i in reading for _ in range(2)]
                replies = self.gather((_READDIR, handles[i]) for i in asked)
                done: set[int] = set()
                for i, reply in zip(asked, replies, strict=True):
                    if i in done:
                        continue
                    if isinstance(reply, _Status):
                        if reply.code != _EOF:
                            entries[i] = reply
                        done.add(i)
                        continue
                    got = entries[i]
                    assert isinstance(got, list)
                    msg = reply[1]
                    for _ in range(msg.get_int()):
                        name = bytes(msg.get_string())
                        msg.get_string()  # the "ls -l" line
                        got.append((name, _attrs(msg)))
                reading = [i for i in reading if i not in done]
        finally:
            self.close(h for h in handles if not isinstance(h, _Status))
        for got in entries:
            if isinstance(got, list):
                got[:] = [(n, a) for n, a in got if n not in (b".", b"..")]
        return entries

    def open_dirs(self, paths: Sequence[bytes]) -> list[bytes | _Status]:
        return [
            r if isinstance(r, _Status) else bytes(r[1].get_binary())
            for r in self.gather((_OPENDIR, p) for p in paths)
        ]

    def read(self, regions: Sequence[tuple[bytes, int, int]]) -> list[bytes | None]:
        """Bytes ``[offset, offset + length)`` of each ``(handle, offset, length)``.

        None for a region the file ends before: it is shorter than was listed.
        A reply shorter than asked (allowed anywhere) is completed by more reads.
        """
        chunk = self.sizes()[0] if regions else _CHUNK
        chunks = [
            (k, offset + n, min(chunk, offset + length - (offset + n)))
            for k, (_, offset, length) in enumerate(regions)
            for n in range(0, length, chunk)
        ]
        replies = self.gather(
            ((_READ, regions[k][0], _int64(at), size) for k, at, size in chunks),
            _in_flight(chunk),
        )
        pieces: dict[tuple[int, int], bytes | None] = {}
        for (k, at, _size), reply in zip(chunks, replies, strict=True):
            if isinstance(reply, _Status):
                if reply.code != _EOF:
                    raise reply
                pieces[k, at] = None
            else:
                pieces[k, at] = bytes(reply[1].get_string())
        out: list[bytes | None] = []
        for k, (handle, offset, length) in enumerate(regions):
            data = bytearray()
            end = offset + length
            while offset + len(data) < end:
                at = offset + len(data)
                piece = pieces.pop((k, at), b"")
                if piece == b"":  # a gap after a short reply: ask for the rest of that chunk
                    boundary = offset + ((at - offset) // chunk + 1) * chunk
                    try:
                        _, msg = self.call(_READ, handle, _int64(at), min(boundary, end) - at)
                        piece = bytes(msg.get_string())
                    except _Status as exc:
                        if exc.code != _EOF:
                            raise
                        piece = None
                if not piece:
                    break
                data += piece[: end - at]
            out.append(bytes(data) if len(data) == length else None)
        return out

    def write(self, handle: bytes, offset: int, data: bytes) -> None:
        """Write ``data`` at ``offset``, pipelined; the first failure raises."""
        view = memoryview(data)
        chunk = self.sizes()[1]
        for reply in self.gather(
            (
                (_WRITE, handle, _int64(offset + n), bytes(view[n : n + chunk]))
                for n in range(0, len(data), chunk)
            ),
            _in_flight(chunk),
        ):
            if isinstance(reply, _Status):
                raise reply

    def extended(self, name: str, *args: Any) -> tuple[int, Any]:
        return self.call(_EXTENDED, name, *args)

    def sizes(self) -> tuple[int, int]:
        """(read, write) request sizes: what ``limits@openssh.com`` allows (up to
        ``_MAX_CHUNK``), else 32 KiB. Asked once per SFTP session."""
        with contextlib.suppress(KeyError, TypeError):
            return _SIZES[self.sftp]
        read = write = _CHUNK
        try:
            t, msg = self.extended("limits@openssh.com")
        except _Status:
            pass
        else:
            if t == _EXTENDED_REPLY:
                msg.get_int64()  # the longest packet
                # 0 means no limit.
                read = min(msg.get_int64() or _MAX_CHUNK, _MAX_CHUNK)
                write = min(msg.get_int64() or _MAX_CHUNK, _MAX_CHUNK)
        with contextlib.suppress(TypeError):
            _SIZES[self.sftp] = (read, write)
        return read, write

    def copy_data(self, src: bytes, length: int, dst: bytes) -> bool:
        """Copy ``src``'s first ``length`` bytes to ``dst`` on the server; False if unsupported."""
        try:
            self.extended("copy-data", src, _int64(0), _int64(length), dst, _int64(0))
        except _Status as exc:
            if exc.code == _OP_UNSUPPORTED:
                return False
            raise
        return True

    def fsync(self, handle: bytes) -> None:
        try:
            self.extended("fsync@openssh.com", handle)
        except _Status as exc:
            if exc.code != _OP_UNSUPPORTED:
                raise  # a server that has fsync and fails it: the data may not be there

    def statvfs(self, path: bytes) -> tuple[int, int, bool] | None:
        """(bytes free for the login user, inodes free, read-only) of ``path``'s file
        system; None when the server does not say."""
        try:
            t, msg = self.extended("statvfs@openssh.com", path)
        except _Status:
            return None
        if t != _EXTENDED_REPLY:
            return None
        values = [msg.get_int64() for _ in range(11)]
        frsize, bavail, favail, flag = values[1], values[4], values[7], values[9]
        return frsize * bavail, favail, bool(flag & _ST_RDONLY)

    def mkdirs(self, directory: bytes) -> None:
        """Create ``directory`` and missing parents (0700), as ``mkdir -p`` would."""
        missing: list[bytes] = []
        at = directory
        while at not in (b"", b"/", b"."):
            [found] = self.stats([at])
            if not isinstance(found, _Status):
                break
            if found.errno != errno.ENOENT:
                raise found
            missing.append(at)
            at = posixpath.dirname(at)
        for new in reversed(missing):
            try:
                self.call(_MKDIR, new, _sftp_attributes(0o700))
            except _Status:
                [now] = self.stats([new])
                if isinstance(now, _Status) or not stat.S_ISDIR(now.st_mode or 0):
                    raise  # not made meanwhile by someone else: a real failure
        return

    def remove(self, paths: Iterable[bytes]) -> None:
        self.gather((_REMOVE, p) for p in paths)


#: Request sizes per SFTP session (see :meth:`_Wire.sizes`).
_SIZES: weakref.WeakKeyDictionary[Any, tuple[int, int]] = weakref.WeakKeyDictionary()


def _in_flight(chunk: int) -> int:
    return max(1, min(_IN_FLIGHT, _IN_FLIGHT_BYTES // chunk))


# paramiko is imported when SFTP is used, not with the package (as ssh.py does).


def _attrs(msg: Any) -> Any:
    from paramiko import SFTPAttributes

    return SFTPAttributes._from_msg(msg)


def _sftp_attributes(mode: int | None) -> Any:
    from paramiko import SFTPAttributes

    attributes = SFTPAttributes()
    if mode is not None:
        attributes.st_mode = mode
    return attributes


def _int64(n: int) -> Any:
    from paramiko.sftp import int64

    return int64(n)


def _b(path: str) -> bytes:
    return path.encode("utf-8", "surrogateescape")


def _s(path: bytes) -> str:
    return path.decode("utf-8", "surrogateescape")


# -- pull (in the worker thread) ---------------------------------------------------


@attrs.frozen
class _Fetched:
    copies: dict[str, RemoteCopy]
    unreadable: list[str]
    """Files (or ``"."``: the project dir) the login user may not read."""
    short: list[str]
    """Files that ended before their listed size."""
    failure: _Status | None = None
    too_big: list[tuple[str, int]] = attrs.field(factory=list)
    """Files over the size limits, not read: ``(rel, size)``."""
    streamed: dict[str, tuple[int, int]] = attrs.field(factory=dict)
    """Files past the in-memory budget, to read into spools: ``rel -> (size, offset)``."""
    """What stopped the read (returned, not raised: the backend would take some for the link)."""


def _fetch(sftp: Any, base: str, session_id: str | None, request: Request) -> _Fetched:
    """Read the session's files as fetch.sh sends them (see the module docstring)."""
    try:
        return _fetch_files(_Wire(sftp), base, session_id, request)
    except _Status as exc:
        return _Fetched({}, [], [], exc)


def _fetch_files(wire: _Wire, base: str, session_id: str | None, request: Request) -> _Fetched:
    unreadable: list[str] = []
    if request.mode == "only":
        sizes = _sizes_of(wire, base, list(request.local_sizes), unreadable)
    else:
        sizes = _find(wire, base, session_id, unreadable)
    sizes = {rel: size for rel, size in sizes.items() if is_session_file(rel, session_id)}
    admitted, too_big = request.admit(sizes, "", "")
    copies: dict[str, RemoteCopy] = {}
    wanted: list[str] = []
    for rel, size in admitted.items():
        if request.skippable(rel, size):
            copies[rel] = RemoteCopy(size, size, None)  # same size: nothing new to read
        else:
            wanted.append(rel)
    short: list[str] = []
    streamed: dict[str, tuple[int, int]] = {}
    budget = request.limits.inline_bytes
    # In batches: a server allows only so many open handles (OpenSSH's: 512),
    # and a session may hold 100k files.
    for start in range(0, len(wanted), _OPEN_AT_ONCE):
        batch = wanted[start : start + _OPEN_AT_ONCE]
        budget = _read_batch(
            wire, base, batch, sizes, request, budget, copies, unreadable, short, streamed
        )
    return _Fetched(
        copies, unreadable, short, too_big=[(e.path, e.size) for e in too_big], streamed=streamed
    )


def _read_batch(
    wire: _Wire,
    base: str,
    batch: list[str],
    sizes: Mapping[str, int],
    request: Request,
    budget: int,
    copies: dict[str, RemoteCopy],
    unreadable: list[str],
    short: list[str],
    streamed: dict[str, tuple[int, int]],
) -> int:
    """Read one batch of files (their tails, or whole) into ``copies``; files past
    the in-memory ``budget`` go to ``streamed``. Returns the budget left."""
    handles = wire.open([_b(posixpath.join(base, rel)) for rel in batch], _FLAG_READ)
    opened: dict[str, bytes] = {}
    try:
        for rel, handle in zip(batch, handles, strict=True):
            if not isinstance(handle, _Status):
                opened[rel] = handle
            else:  # gone since the listing: missing
                _skip_missing(handle, rel, unreadable)
        regions: list[tuple[bytes, int, int]] = []
        plan: dict[str, tuple[int, int]] = {}
        for rel, handle in opened.items():
            size = sizes[rel]
            offset = request.offset(rel)
            if offset > size:
                offset = 0
            need = min(offset, WINDOW) + size - offset
            if need <= budget:
                budget -= need
                plan[rel] = (size, offset)
                regions += [(handle, 0, min(offset, WINDOW)), (handle, offset, size - offset)]
            else:
                streamed[rel] = (size, offset)
        data = wire.read(regions)
        for n, (rel, (size, offset)) in enumerate(plan.items()):
            first, tail = data[2 * n], data[2 * n + 1]
            if first is None or tail is None:
                short.append(rel)
            else:
                copies[rel] = RemoteCopy(size, offset, tail, first)
    finally:
        wire.close(opened.values())
    return budget


def _read_range(sftp: Any, *, path: str, offset: int, length: int) -> bytes | None:
    """Bytes ``[offset, offset + length)`` of ``path`` (None: the file ended first)."""
    wire = _Wire(sftp)
    [handle] = wire.open([_b(path)], _FLAG_READ)
    if isinstance(handle, _Status):
        raise handle
    try:
        [data] = wire.read([(handle, offset, length)])
    finally:
        wire.close([handle])
    return data


def _skip_missing(status: _Status, rel: str, unreadable: list[str]) -> None:
    """A file or dir that is not there is skipped; one we may not read is noted
    (reported after the rest syncs); any other failure is raised."""
    if status.errno == errno.EACCES:
        unreadable.append(rel)
    elif status.errno != errno.ENOENT:
        raise status


def _sizes_of(wire: _Wire, base: str, rels: list[str], unreadable: list[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for rel, attrs_ in zip(
        rels, wire.stats([_b(posixpath.join(base, r)) for r in rels]), strict=True
    ):
        if isinstance(attrs_, _Status):
            _skip_missing(attrs_, rel, unreadable)
        elif stat.S_ISREG(attrs_.st_mode or 0):
            found[rel] = int(attrs_.st_size or 0)
    return found


def _find(wire: _Wire, base: str, session_id: str | None, unreadable: list[str]) -> dict[str, int]:
    """The session's regular files and their sizes (fetch.sh's listing).

    Symlinks are followed for top-level transcripts only (``[ -f ]``), never
    inside session directories (``find`` without ``-L``).
    """
    found: dict[str, int] = {}
    dirs: list[str] = []
    top = _b(base)
    if session_id is not None:
        transcript = f"{session_id}.jsonl"
        base_attrs, file_attrs, dir_attrs = wire.attributes(
            [
                (_STAT, top),
                (_STAT, _b(posixpath.join(base, transcript))),
                (_LSTAT, _b(posixpath.join(base, session_id))),
            ]
        )
        if isinstance(base_attrs, _Status):
            _skip_missing(base_attrs, ".", unreadable)
            return found
        if isinstance(file_attrs, _Status):
            _skip_missing(file_attrs, transcript, unreadable)
        elif stat.S_ISREG(file_attrs.st_mode or 0):
            found[transcript] = int(file_attrs.st_size or 0)
        if not isinstance(dir_attrs, _Status) and stat.S_ISDIR(dir_attrs.st_mode or 0):
            dirs.append(session_id)
    else:
        [listing] = wire.listdirs([top])
        if isinstance(listing, _Status):
            _skip_missing(listing, ".", unreadable)
            return found
        links: list[str] = []
        for raw, a in listing:
            name = _s(raw)
            kind = a.st_mode or 0
            if name.startswith("."):
                continue
            if name.endswith(".jsonl"):
                if stat.S_ISREG(kind):
                    found[name] = int(a.st_size or 0)
                elif stat.S_ISLNK(kind):
                    links.append(name)
            elif (
                stat.S_ISDIR(kind)
                and fnmatch.fnmatchcase(name, "*-*-*-*-*")
                and is_session_file(f"{name}/x", None)
            ):
                dirs.append(name)
        for name, a in zip(
            links, wire.stats([_b(posixpath.join(base, n)) for n in links]), strict=True
        ):
            if not isinstance(a, _Status) and stat.S_ISREG(a.st_mode or 0):
                found[name] = int(a.st_size or 0)
    while dirs:
        listings = wire.listdirs([_b(posixpath.join(base, d)) for d in dirs])
        deeper: list[str] = []
        for rel_dir, listing in zip(dirs, listings, strict=True):
            if isinstance(listing, _Status):
                _skip_missing(listing, rel_dir, unreadable)
                continue
            for raw, a in listing:
                name = _s(raw)
                if name.startswith("."):
                    continue  # never synced (temp files), nor anything under it
                rel = f"{rel_dir}/{name}"
                if stat.S_ISDIR(a.st_mode or 0):
                    deeper.append(rel)
                elif stat.S_ISREG(a.st_mode or 0):
                    found[rel] = int(a.st_size or 0)
        dirs = deeper
    return found


# -- push (in the worker thread) ----------------------------------------------------


@attrs.frozen
class _Want:
    rel: str
    expected: int | None
    """The remote size the decision was made on (None: missing there)."""
    data: bytes
    """The whole local file."""


@attrs.frozen
class _Stored:
    """One file's push.

    ``kind``: "ok"; "moved" (the remote changed before the rename: ``size`` is
    its size now, -1 gone); "raced" (a writer appended during the rename: its
    copy, ``size`` bytes, was put back); "kept" (that, and ours was written to
    as well or could not be replaced: ``keep`` holds the bytes no longer at the
    path); "failed" (``error``; ``free`` from statvfs of ``where``).
    """

    rel: str
    kind: str
    size: int = 0
    keep: bytes | None = None
    error: _Status | None = None
    free: tuple[int, int, bool] | None = None
    where: str = ""


def _store(sftp: Any, base: str, wants: Sequence[_Want]) -> list[_Stored]:
    """Push each file in turn; stop at the first that did not go in."""
    wire = _Wire(sftp)
    done: list[_Stored] = []
    cleaned: set[str] = set()
    for want in wants:
        target = posixpath.join(base, want.rel)
        directory = posixpath.dirname(target)
        try:
            wire.mkdirs(_b(directory))
            if directory not in cleaned:
                cleaned.add(directory)
                mine = {
                    posixpath.basename(w.rel)
                    for w in wants
                    if posixpath.dirname(posixpath.join(base, w.rel)) == directory
                }
                _remove_leftovers(wire, directory, mine)
            outcome = _store_one(wire, target, want)
        except _Status as exc:
            outcome = _Stored(want.rel, "failed", error=exc, where=directory)
        if outcome.error is not None and outcome.error.errno != errno.EACCES:
            with contextlib.suppress(_Status):
                outcome = attrs.evolve(outcome, free=wire.statvfs(_b(directory)))
        done.append(outcome)
        if outcome.kind != "ok":
            break
    return done


def _remove_leftovers(wire: _Wire, directory: str, names: set[str]) -> None:
    """Remove temps an interrupted push of these files left (see the module docstring)."""
    [listing] = wire.listdirs([_b(directory)])
    if isinstance(listing, _Status):
        return  # the push itself meets (and reports) what is wrong there
    stale = []
    for raw, _ in listing:
        name = _s(raw)
        match = _TEMP.fullmatch(name)
        if match and any(match[1] == n[:200] for n in names):
            stale.append(_b(posixpath.join(directory, name)))
    wire.remove(stale)


def _temp_name(target: str) -> bytes:
    directory, name = posixpath.split(target)
    return _b(posixpath.join(directory, f".{name[:200]}.rx-sftp-{secrets.token_hex(6)}.tmp"))


def _store_one(wire: _Wire, target: str, want: _Want) -> _Stored:
    path = _b(target)
    if want.expected is None:
        [there] = wire.stats([path])
        if not isinstance(there, _Status):
            return _Stored(want.rel, "moved", size=int(there.st_size or 0))
        tmp = _temp_name(target)
        try:
            _fill(wire, tmp, None, want, 0o600)
            try:
                wire.call(_RENAME, tmp, path)  # OpenSSH: link + unlink, never over a file
            except _Status:
                [there] = wire.stats([path])
                if isinstance(there, _Status):
                    raise
                return _Stored(want.rel, "moved", size=int(there.st_size or 0))
            tmp = b""
        finally:
            _remove_quietly(wire, tmp)
        return _Stored(want.rel, "ok")
    [old] = wire.open([path], _FLAG_READ)
    if isinstance(old, _Status):
        if old.errno == errno.ENOENT:
            return _Stored(want.rel, "moved", size=-1)
        raise old
    try:
        now = wire.fstat(old)
        if now.st_size != want.expected:
            return _Stored(want.rel, "moved", size=int(now.st_size or 0))
        mode = ((now.st_mode or 0) & 0o700) | 0o600
        tmp = _temp_name(target)
        try:
            _fill(wire, tmp, old, want, mode)
            # The last look before the rename, on the path and on the old file.
            at_path, held = wire.attributes([(_STAT, path), (_FSTAT, old)])
            if isinstance(at_path, _Status) or at_path.st_size != want.expected:
                return _Stored(want.rel, "moved", size=_size_or_missing(at_path))
            if isinstance(held, _Status):
                raise held
            if held.st_size != want.expected:
                return _Stored(want.rel, "moved", size=int(held.st_size or 0))
            _posix_rename(wire, tmp, path)
            tmp = b""
        finally:
            _remove_quietly(wire, tmp)
        if wire.fstat(old).st_size != want.expected:
            return _put_back(wire, target, old, want, mode)
        return _Stored(want.rel, "ok")
    finally:
        wire.close([old])


def _posix_rename(wire: _Wire, src: bytes, dst: bytes) -> None:
    try:
        wire.extended("posix-rename@openssh.com", src, dst)
    except _Status as exc:
        if exc.code == _OP_UNSUPPORTED:
            raise _Status(
                _OP_UNSUPPORTED,
                "the SFTP server has no posix-rename@openssh.com, which SftpSessionSync "
                "needs to replace a file (TailSessionSync does not)",
            ) from exc
        raise


def _remove_quietly(wire: _Wire, path: bytes) -> None:
    if path:
        with contextlib.suppress(_Status):
            wire.remove([path])


def _size_or_missing(found: Any) -> int:
    return -1 if isinstance(found, _Status) else int(found.st_size or 0)


def _fill(wire: _Wire, tmp: bytes, old: bytes | None, want: _Want, mode: int) -> None:
    """Write the new copy into a fresh ``tmp``: the remote's bytes, then the missing ones."""
    [handle] = wire.open([tmp], _FLAG_WRITE | _FLAG_CREATE | _FLAG_EXCL, mode)
    if isinstance(handle, _Status):
        raise handle
    try:
        start = want.expected or 0
        if old is not None and start and not wire.copy_data(old, start, handle):
            wire.write(handle, 0, want.data[:start])  # the same bytes, from here
        wire.write(handle, start, want.data[start:])
        wire.fsync(handle)
        written = wire.fstat(handle).st_size
        if written != len(want.data):
            raise _Status(4, f"the new copy has {written} bytes, not {len(want.data)}")
    finally:
        wire.close([handle])


def _put_back(wire: _Wire, target: str, old: bytes, want: _Want, mode: int) -> _Stored:
    """The old file grew between the last look and the rename: a writer appended
    to it. Put its bytes back at ``target``, unless ours was written to as well;
    whatever is no longer at the path comes back in ``keep``."""
    path = _b(target)
    total = len(want.data)
    try:
        [ours] = wire.open([path], _FLAG_READ)
        if isinstance(ours, _Status):
            raise ours
    except _Status:
        return _Stored(want.rel, "kept", keep=_read_all(wire, old))
    tmp = b""
    try:
        if wire.fstat(ours).st_size != total:
            return _Stored(want.rel, "kept", keep=_read_all(wire, old))
        size = int(wire.fstat(old).st_size or 0)
        tmp = _temp_name(target)
        [handle] = wire.open([tmp], _FLAG_WRITE | _FLAG_CREATE | _FLAG_EXCL, mode)
        if isinstance(handle, _Status):
            raise handle
        try:
            if not wire.copy_data(old, size, handle):
                wire.write(handle, 0, _read_all(wire, old)[:size])
            wire.fsync(handle)
        finally:
            wire.close([handle])
        at_path, now_ours = wire.attributes([(_STAT, path), (_FSTAT, ours)])
        if (
            isinstance(at_path, _Status)
            or isinstance(now_ours, _Status)
            or at_path.st_size != total
            or now_ours.st_size != total
        ):
            return _Stored(want.rel, "kept", keep=_read_all(wire, old))
        _posix_rename(wire, tmp, path)
        tmp = b""
        if wire.fstat(ours).st_size != total:
            # Written to between that look and the rename: ours is off the path now.
            return _Stored(want.rel, "kept", keep=_read_all(wire, ours))
        return _Stored(want.rel, "raced", size=size)
    except _Status:
        return _Stored(want.rel, "kept", keep=_read_all(wire, old))
    finally:
        _remove_quietly(wire, tmp)
        wire.close([ours])


def _read_all(wire: _Wire, handle: bytes) -> bytes:
    size = int(wire.fstat(handle).st_size or 0)
    [data] = wire.read([(handle, 0, size)])
    if data is None:
        raise _Status(4, "the file shrank while it was being read")
    return data


# -- the strategy --------------------------------------------------------------------


class SftpSessionSync:
    """Sync over SFTP on an ``SSHExecutor(..., backend="fabric")``'s own connection.

    The same decisions as :class:`~remote_executors.sync.TailSessionSync`, with
    pipelined SFTP byte ranges instead of shell scripts: nothing on the remote
    but its sftp-server. ``timeout`` bounds each batch of SFTP requests (and
    the one command that finds the remote's default config dir);
    ``lock_timeout`` how long a sync waits for another sync of the same session.
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
        self._configs: weakref.WeakKeyDictionary[Executor, str] = weakref.WeakKeyDictionary()

    def __repr__(self) -> str:
        return f"SftpSessionSync(timeout={self.timeout})"

    async def pull(self, executor: Executor, paths: SessionPaths) -> SyncReport:
        started = time.monotonic()
        sftp = _sftp_executor(executor)
        async with session_lock(lock_path(paths), timeout=self.lock_timeout):
            base = await self._base(executor, paths)
            files, _ = await self._pull(sftp, paths, base)
        report = SyncReport("pull", executor.name, paths, files, time.monotonic() - started)
        raise_conflicts(report)
        return report

    async def push(self, executor: Executor, paths: SessionPaths) -> SyncReport:
        started = time.monotonic()
        sftp = _sftp_executor(executor)
        async with session_lock(lock_path(paths), timeout=self.lock_timeout):
            base = await self._base(executor, paths)
            files, sizes = await self._pull(sftp, paths, base)
            wanted = [f.path for f in files if f.kind is Kind.PUSH]
            stored = await self._store(executor, sftp, paths, base, wanted, sizes) if wanted else {}
        done = tuple(stored.get(f.path, f) for f in files)
        report = SyncReport("push", executor.name, paths, done, time.monotonic() - started)
        raise_conflicts(report)
        return report

    # -- where ----------------------------------------------------------------------

    async def _base(self, executor: Executor, paths: SessionPaths) -> str:
        """The remote project dir, as fetch.sh finds it: ``$CLAUDE_CONFIG_DIR`` (the
        session's, else the login's) or ``~/.claude``; relative paths are relative to
        the login dir for SFTP as for a command there."""
        config = paths.remote_config_dir
        if config is None:
            try:
                config = self._configs.get(executor)
            except TypeError:  # not weak-referenceable: ask every time
                config = None
        if config is None:
            result = await executor.run(
                ["/bin/sh", "-c", 'printf "%s" "${CLAUDE_CONFIG_DIR:-$HOME/.claude}"'],
                timeout=min(self.timeout, 60.0),
            )
            config = result.stdout.decode("utf-8", "surrogateescape")
            if not result.ok or not config:
                raise SyncError(
                    f"Could not find the Claude config dir on {executor.name} (exit "
                    f"{result.returncode}). Nothing was changed; sync again.",
                    host=executor.name,
                    detail=result.stderr.decode("utf-8", "replace"),
                )
            with contextlib.suppress(TypeError):
                self._configs[executor] = config
        return posixpath.join(config, "projects", paths.remote_project)

    # -- pull -----------------------------------------------------------------------

    async def _pull(
        self, sftp: _SftpExecutor, paths: SessionPaths, base: str
    ) -> tuple[tuple[FileSync, ...], dict[str, int]]:
        host = sftp.name

        async def fetch(request: Request) -> tuple[dict[str, RemoteCopy], list[SyncError]]:
            got = await sftp.sftp_call(
                lambda client: _fetch(client, base, paths.session_id, request),
                timeout=self.timeout,
            )
            if got.failure is not None:
                raise _read_failure(got.failure, host, paths)
            copies = dict(got.copies)
            short = list(got.short)
            for rel, (size, offset) in got.streamed.items():
                copy = await self._spool(sftp, request, base, rel, size, offset, host)
                if copy is None:
                    short.append(rel)
                else:
                    copies[rel] = copy
            if short:
                raise SyncError(
                    f"Reading session files from {paths.remote_dir} on {host} failed: "
                    f"{', '.join(short)} ended before the size listed (it shrank while "
                    "being read, or the read was cut). Nothing was changed locally; sync again.",
                    host=host,
                )
            errors: list[SyncError] = [
                SyncPermissionDenied(
                    f"Cannot read {paths.remote_dir}/{rel} on {host}: permission denied. "
                    "Make it readable by the SSH login user, then sync again.",
                    host=host,
                )
                for rel in got.unreadable
            ]
            errors += [
                too_large(rel, size, which, request.limits, host, paths.remote_dir)
                for rel, size, which in _which_limit(got.too_big, request.limits)
            ]
            return copies, errors

        return await pull_files(paths, host, _side(host), fetch, self.limits)

    async def _spool(
        self,
        sftp: _SftpExecutor,
        request: Request,
        base: str,
        rel: str,
        size: int,
        offset: int,
        host: str,
    ) -> RemoteCopy | None:
        """Read a file past the in-memory budget into a spool, a bounded step per
        request (None: it ended before its listed size)."""
        path = posixpath.join(base, rel)
        head = await sftp.sftp_call(
            functools.partial(_read_range, path=path, offset=0, length=min(offset, WINDOW)),
            timeout=self.timeout,
        )
        if head is None:
            return None
        try:
            spool = request.spool(rel)
        except OSError as exc:
            raise local_error(exc, host=host, what=f"session file {rel}") from exc
        at = offset
        while at < size:
            step = min(_SPOOL_STEP, size - at)
            piece = await sftp.sftp_call(
                functools.partial(_read_range, path=path, offset=at, length=step),
                timeout=self.timeout,
            )
            if piece is None:
                return None
            try:
                spool.write(piece)
            except OSError as exc:
                raise local_error(exc, host=host, what=f"session file {rel}") from exc
            at += step
        return RemoteCopy(size, offset, spool.blob(), head)

    # -- push -----------------------------------------------------------------------

    async def _store(
        self,
        executor: Executor,
        sftp: _SftpExecutor,
        paths: SessionPaths,
        base: str,
        rels: list[str],
        sizes: dict[str, int],
    ) -> dict[str, FileSync]:
        host = sftp.name
        wants: list[_Want] = []
        for rel in rels:
            try:
                data = (paths.local_dir / rel).read_bytes()
            except OSError as exc:
                raise local_error(exc, host=host, what=f"session file {rel}") from exc
            wants.append(_Want(rel, sizes.get(rel), data))
        results = await sftp.sftp_call(
            lambda client: _store(client, base, wants), timeout=self.timeout
        )
        done: dict[str, FileSync] = {}
        for result, want in zip(results, wants, strict=False):
            if result.kind == "ok":
                moved = len(want.data) - (want.expected or 0)
                done[want.rel] = FileSync(want.rel, Kind.PUSH, moved=moved)
            elif result.kind == "kept" and result.keep is not None:
                # Both the remote's late lines and ours are on record: a conflict, reported
                # with the others once the push is over.
                try:
                    copy = save_conflict_copy(
                        paths.local_dir / want.rel, result.keep, side=_side(host)
                    )
                except OSError as exc:
                    raise local_error(exc, host=host, what=f"session file {want.rel}") from exc
                done[want.rel] = FileSync(want.rel, Kind.CONFLICT, conflict_copy=copy)
            else:
                raise await self._store_failure(executor, result, want, host, paths)
        return done

    async def _store_failure(
        self, executor: Executor, result: _Stored, want: _Want, host: str, paths: SessionPaths
    ) -> SyncError:
        where = f"{paths.remote_dir} on {host}"
        if result.kind == "moved":
            now = "it is gone" if result.size < 0 else f"it now has {result.size} bytes"
            return SyncError(
                f"{paths.remote_dir}/{want.rel} on {host} changed while it was being pushed "
                f"({now}, not {want.expected if want.expected is not None else 'none'}); "
                "nothing was overwritten. Sync again.",
                host=host,
            )
        if result.kind == "raced":
            return SyncError(
                f"{paths.remote_dir}/{want.rel} on {host} was written to while the push replaced "
                f"it; its own copy ({result.size} bytes) was put back, nothing was overwritten. "
                "Sync again.",
                host=host,
            )
        exc = result.error
        assert exc is not None
        text = exc.text
        if exc.errno == errno.EACCES:
            return SyncPermissionDenied(
                f"Cannot write session files in {where}: permission denied. Make that "
                "directory and its files belong to the SSH login user, then sync again.",
                host=host,
                detail=text,
            )
        free = result.free
        if free is None:
            free = await self._df(executor, result.where)
        if free is not None and free[2]:
            return SyncPermissionDenied(
                f"Cannot write session files in {where}: its file system is read-only. "
                "Make it writable there, then sync again (nothing was lost).",
                host=host,
                detail=text,
            )
        if free is not None and (free[0] < len(want.data) + _SLACK or free[1] == 0):
            return SyncDiskFull(
                f"No space left on {host} to write session files in {where} "
                f"({len(want.data)} bytes needed, {free[0]} free): free some disk space there, "
                "then sync again (nothing was lost).",
                host=host,
                detail=text,
            )
        return SyncError(
            f"Could not write session files in {where} ({text}). Nothing was lost; sync "
            "again once fixed.",
            host=host,
            detail=text,
        )

    async def _df(self, executor: Executor, directory: str) -> tuple[int, int, bool] | None:
        """Free bytes in ``directory`` as ``df`` says (servers without statvfs@openssh.com)."""
        with contextlib.suppress(Exception):
            result = await executor.run(
                ["/bin/sh", "-c", _DF, "rx-df", directory], timeout=min(self.timeout, 30.0)
            )
            fields = result.stdout.split()
            if result.ok and len(fields) >= 4 and fields[3].isdigit():
                return int(fields[3]) * 1024, 1, False
        return None


def _sftp_executor(executor: Executor) -> _SftpExecutor:
    if sftp_channel_of(executor) is None:
        raise SyncError(
            f"SftpSessionSync needs SSHExecutor(host, backend='fabric'), whose connection "
            f"carries SFTP (or another executor with an SFTP channel); {executor!r} is not "
            "one. Create the executor with backend='fabric', or use the default "
            "TailSessionSync, which works with any executor.",
            host=executor.name,
        )
    return cast(_SftpExecutor, executor)


def _which_limit(too_big: list[tuple[str, int]], limits: Limits) -> list[tuple[str, int, str]]:
    return [(rel, size, "file" if size > limits.max_file_bytes else "session")
            for rel, size in too_big]  # fmt: skip


def _read_failure(exc: _Status, host: str, paths: SessionPaths) -> SyncError:
    if exc.errno == errno.EACCES:
        return SyncPermissionDenied(
            f"Cannot read session files in {paths.remote_dir} on {host}: permission denied. "
            "Make them readable by the SSH login user, then sync again.",
            host=host,
            detail=exc.text,
        )
    return SyncError(
        f"Reading session files from {paths.remote_dir} on {host} failed: {exc.text}. "
        "Nothing was changed locally; sync again.",
        host=host,
        detail=exc.text,
    )
