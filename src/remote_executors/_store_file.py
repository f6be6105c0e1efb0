"""Small private files written atomically and durably: the settings file and session records.

``install_atomically`` writes a temp file beside the target, fsyncs it, renames
it over the target and fsyncs the directory: a reader sees the whole old file
or the whole new one. New files are 0600 and new directories 0700 (the paths
in them say what the user works on). ``locked`` holds an exclusive ``flock``
on a lock file for a read-modify-write.

Settings and records use this rather than the transcript installer in
:mod:`remote_executors.sync`, so reading them (``remote-executors executors
list``, ``sessions``) does not import the sync strategies and, through them,
the SDK.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import platformdirs

__all__ = [
    "DATA_DIR_ENV",
    "data_dir",
    "fsync_dir",
    "install_atomically",
    "locked",
    "make_dirs",
    "user_dir",
]

_APP_NAME = "remote-executors"

_FILE_MODE = 0o600
_DIR_MODE = 0o700
# errno values meaning "this file system cannot fsync a directory".
_UNSUPPORTED = frozenset({errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS})


def user_dir(env_var: str, kind: Literal["data", "config"]) -> Path:
    """``$env_var`` when set and non-empty (``~`` expanded, made absolute now so a
    later ``chdir`` cannot move the store), else platformdirs' user data or
    config directory for remote-executors."""
    override = os.environ.get(env_var)
    if override:
        return Path(os.path.abspath(os.path.expanduser(override)))
    find = platformdirs.user_data_dir if kind == "data" else platformdirs.user_config_dir
    return Path(find(_APP_NAME, appauthor=False))


DATA_DIR_ENV = "REMOTE_EXECUTORS_DATA_DIR"
"""Environment variable that overrides :func:`data_dir` (tests, sandboxes, several profiles)."""


def data_dir() -> Path:
    """Return the directory session records and sync state live in.

    ``$REMOTE_EXECUTORS_DATA_DIR`` when set and non-empty (``~`` expanded,
    made absolute now so a later ``chdir`` cannot move the store), else
    ``platformdirs.user_data_dir("remote-executors", appauthor=False)``.
    Here rather than in records so the sync layer can find its state
    without importing session records.
    """
    return user_dir(DATA_DIR_ENV, "data")


def install_atomically(path: str | os.PathLike[str], data: bytes) -> None:
    """Replace ``path`` with ``data``; missing parents are made (0700), a new file is 0600,
    an existing one keeps its mode."""
    target = Path(path)
    make_dirs(target.parent)
    try:
        mode: int | None = stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        mode = None
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name[:200]}.", suffix=".tmp")
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if mode is not None and mode != _FILE_MODE:  # mkstemp made it 0600
                os.fchmod(fd, mode)
            _fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(target.parent)


def make_dirs(directory: Path) -> None:
    """Create ``directory`` and missing parents (0700), each made durable in its parent."""
    missing: list[Path] = []
    while not directory.is_dir() and directory.parent != directory:
        missing.append(directory)
        directory = directory.parent
    for new in reversed(missing):
        try:
            os.mkdir(new, _DIR_MODE)
        except FileExistsError:
            continue  # made concurrently; a non-directory fails on the next step
        fsync_dir(new.parent)


@contextlib.contextmanager
def locked(lock: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``lock`` (created 0600, kept) for the block.

    flock locks belong to the open file description, so each holder opens the
    file itself; deleting it would break exclusion for waiters that opened it.
    """
    make_dirs(lock.parent)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, _FILE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        _fsync(fd)
    except OSError as exc:
        # Some file systems cannot fsync a directory; the rename is as durable
        # as they make it, and failing now would hide that it happened.
        if exc.errno not in _UNSUPPORTED:
            raise
    finally:
        os.close(fd)


def _fsync(fd: int) -> None:
    # On macOS fsync() stops at the drive's cache; F_FULLFSYNC goes to the medium.
    full = getattr(fcntl, "F_FULLFSYNC", None)
    if full is not None:
        try:
            fcntl.fcntl(fd, full)
            return
        except OSError:
            pass  # not supported by this file system: fsync() is the best there is
    os.fsync(fd)
