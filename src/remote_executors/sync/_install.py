"""Writing the local side: atomic installs and conflict copies.

A new file (and a conflict copy) is written to a temp file in the target's
directory, fsynced, and renamed into place; the directory is then fsynced so
the rename itself survives a crash. A reader (the SDK's session listing, a
local UI) sees no file or the whole one, never a torn file, and no temp file
is left behind when anything fails. An existing transcript is extended with
:func:`append_exactly` instead: a reader may see a last line still being
written, exactly as while the CLI itself appends, and the file is a prefix of
the other side's at every instant. Temp names start with ``.`` and end with
``.tmp``, and conflict copies end with their timestamp, so neither looks like
a ``*.jsonl`` transcript to the CLI or the SDK.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import itertools
import os
import re
import stat
import tempfile
from pathlib import Path

import attrs

from remote_executors._store_file import _fsync, make_dirs
from remote_executors._store_file import fsync_dir as _fsync_dir
from remote_executors.sync._blob import Blob
from remote_executors.sync._decide import Decision, Kind, decide

__all__ = [
    "LocalResult",
    "append_exactly",
    "apply_local",
    "install_atomically",
    "make_dirs",
    "save_conflict_copy",
]

# The CLI creates transcripts 0600 and they hold whole conversations: a new
# file or directory made here is private too.
_FILE_MODE = 0o600
_SIDE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")
# errno values meaning "this file system cannot fsync a directory / hard-link".
_UNSUPPORTED = frozenset({errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS})
_NO_LINKS = _UNSUPPORTED | {errno.EPERM, errno.EMLINK, errno.EXDEV}


@attrs.frozen
class LocalResult:
    """What :func:`apply_local` did.

    ``kind`` is the decision acted on; it differs from the one passed in when
    the local file changed in between and was decided again. For a conflict,
    ``conflict_copy`` is where the remote copy was saved; the local file is
    untouched and the caller must report the conflict.
    """

    kind: Kind
    path: Path
    installed: bool
    conflict_copy: Path | None = None

    @property
    def conflict(self) -> bool:
        """True when both copies were kept and the caller must report it."""
        return self.kind is Kind.CONFLICT


def install_atomically(path: str | os.PathLike[str], data: bytes | Blob) -> None:
    """Replace ``path`` with ``data`` atomically and durably.

    Missing parent directories are created (0700). A new file is 0600; an
    existing file keeps its mode.
    """
    target = Path(path)
    make_dirs(target.parent)
    try:
        mode: int | None = stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        mode = None
    tmp = _write_temp(target, data, mode)
    try:
        os.replace(tmp, target)
    except BaseException:
        _unlink_quietly(tmp)
        raise
    _fsync_dir(target.parent)


def append_exactly(path: str | os.PathLike[str], expected_size: int, data: bytes | Blob) -> bool:
    """Append ``data`` to ``path`` if, and only if, it is ``expected_size`` bytes long now.

    This is how an existing transcript is fast-forwarded: ``data`` is exactly
    the bytes the other side holds after the local ones, so at every instant
    (and after a crash or a full disk half-way) the local file is still a
    byte-prefix of the other side's: nothing to lose, and the next sync simply
    continues. Rewriting the whole file through a temp file instead would make
    each turn's sync cost follow the transcript's size, and would swap the
    inode under readers that follow the file, which the CLI's own appends
    never do. Returns False, writing nothing, when the size differs (another
    writer got in): decide again on what is there.

    A write that fails half-way (a full disk) is undone: the file is cut back
    to ``expected_size``, so no reader is left with a torn last line.
    """
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        if os.fstat(fd).st_size != expected_size:
            return False
        _check_room(fd, len(data))
        try:
            _write_all(fd, data)
            _fsync(fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, expected_size)
            raise
    finally:
        os.close(fd)
    return True


def _check_room(fd: int, size: int) -> None:
    """Refuse up front (ENOSPC) a write the file system has no room for."""
    try:
        info = os.fstatvfs(fd)
    except OSError:
        return  # no figures: the write itself will say
    if info.f_frsize and size > info.f_bavail * info.f_frsize:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _write_all(fd: int, data: bytes | Blob) -> None:
    for piece in [data] if isinstance(data, bytes) else data.chunks():
        view = memoryview(piece)
        while view:
            view = view[os.write(fd, view) :]


def save_conflict_copy(
    path: str | os.PathLike[str],
    data: bytes | Blob,
    *,
    side: str,
    now: dt.datetime | None = None,
) -> Path:
    """Save ``data`` (the other side's diverged copy) beside ``path``; return where.

    The copy is named ``<name>.conflict-<side>-<YYYYmmddTHHMMSSZ>``, with
    ``-1``, ``-2``... appended when that name is taken: an existing conflict
    copy is never overwritten. ``side`` names whose copy it is (``"remote"``,
    a host alias); ``now`` defaults to the current time.
    """
    if not _SIDE.fullmatch(side):
        raise ValueError(f"side must match {_SIDE.pattern}, got {side!r}")
    target = Path(path)
    when = dt.datetime.now(dt.timezone.utc) if now is None else now.astimezone(dt.timezone.utc)
    base = f"{target.name}.conflict-{side}-{when:%Y%m%dT%H%M%SZ}"
    make_dirs(target.parent)
    tmp = _write_temp(target, data, None)
    try:
        for n in itertools.count():
            copy = target.parent / (base if n == 0 else f"{base}-{n}")
            if _claim(tmp, copy):
                break
    finally:
        _unlink_quietly(tmp)
    _fsync_dir(target.parent)
    return copy


def apply_local(
    decision: Decision,
    path: str | os.PathLike[str],
    remote_data: bytes | None,
    *,
    side: str = "remote",
) -> LocalResult:
    """Carry out ``decision`` on the local file ``path``.

    PULL installs ``remote_data`` atomically; SAME and PUSH leave the local
    file alone (pushing is the transfer layer's job); CONFLICT saves
    ``remote_data`` beside the local file (see :func:`save_conflict_copy`)
    and overwrites nothing. ``remote_data`` must be the bytes the decision
    was made on. If the local file's size is no longer the one decided on
    (something appended to it meanwhile), the decision is made again on what
    is there now, so a line written in between is never overwritten.
    """
    target = Path(path)
    if (None if remote_data is None else len(remote_data)) != decision.remote_size:
        raise ValueError("remote_data is not the data this decision was made on")
    try:
        local_size: int | None = os.stat(target).st_size
    except FileNotFoundError:
        local_size = None
    if local_size != decision.local_size:
        # Transcripts only grow, so an unchanged size means unchanged content;
        # a changed one means a writer got in between: look again.
        decision = decide(_read_or_none(target), remote_data)
    if decision.kind is Kind.SAME or decision.kind is Kind.PUSH:
        return LocalResult(decision.kind, target, installed=False)
    if remote_data is None:  # decide() never pulls or conflicts with a missing remote
        raise ValueError(f"{decision.kind.value} decided without remote data")
    if decision.kind is Kind.PULL:
        install_atomically(target, remote_data)
        return LocalResult(Kind.PULL, target, installed=True)
    copy = save_conflict_copy(target, remote_data, side=side)
    return LocalResult(Kind.CONFLICT, target, installed=False, conflict_copy=copy)


def _read_or_none(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _write_temp(target: Path, data: bytes | Blob, mode: int | None) -> str:
    """Write ``data`` to a fresh, fsynced temp file beside ``target``; return its path."""
    # Cut the name so prefix + random part + suffix stays within NAME_MAX.
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name[:200]}.", suffix=".tmp")
    try:
        try:
            _check_room(fd, len(data))
            _write_all(fd, data)
            if mode is not None and mode != _FILE_MODE:  # mkstemp made it 0600
                os.fchmod(fd, mode)
            _fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        _unlink_quietly(tmp)
        raise
    return tmp


def _claim(tmp: str, copy: Path) -> bool:
    """Give ``tmp``'s content the name ``copy`` unless that name exists."""
    try:
        # link() fails if the name exists, so this cannot overwrite anything.
        os.link(tmp, copy)
        return True
    except FileExistsError:
        return False
    except OSError as exc:
        if exc.errno not in _NO_LINKS:
            raise
    # No hard links on this file system: reserve the name exclusively, then
    # rename over the (empty, ours) reservation.
    try:
        os.close(os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _FILE_MODE))
    except FileExistsError:
        return False
    try:
        os.replace(tmp, copy)
    except BaseException:
        _unlink_quietly(copy)
        raise
    return True


def _unlink_quietly(path: str | Path) -> None:
    # Already gone, or the directory is unusable: either way nothing more to do.
    with contextlib.suppress(OSError):
        os.unlink(path)
