"""Keeping session transcripts in step between an executor's machine and the local disk.

``SessionSync`` is the strategy protocol; ``TailSessionSync`` (the default)
moves only the bytes a side lacks over the executor's own connection;
``RsyncSessionSync`` and ``SftpSessionSync`` (fabric backend) make the same
decisions over rsync and SFTP. The no-loss rules every strategy shares live
in private modules: :mod:`._decide` (byte-prefix decisions), :mod:`._install`
(atomic installs, appends that keep the local copy a prefix, conflict copies),
:mod:`._reconcile` (applying a fetched file), :mod:`._blob` (remote bytes in
memory or spooled to disk, so memory stays bounded), :mod:`._sweep` (temp
files a killed process left), :mod:`._lock` (one sync of a session at a time).
Size limits for what a pull copies are :class:`Limits`.
"""

from __future__ import annotations

from remote_executors.sync._decide import Kind
from remote_executors.sync._locate import local_project_dir, locate
from remote_executors.sync._rsync import RsyncSessionSync
from remote_executors.sync._sftp import SftpSessionSync
from remote_executors.sync._tail import TailSessionSync
from remote_executors.sync.base import FileSync, Limits, SessionPaths, SessionSync, SyncReport
from remote_executors.sync.session import pull_session, push_session

__all__ = [
    "FileSync",
    "Kind",
    "Limits",
    "RsyncSessionSync",
    "SessionPaths",
    "SessionSync",
    "SftpSessionSync",
    "SyncReport",
    "TailSessionSync",
    "local_project_dir",
    "locate",
    "pull_session",
    "push_session",
]
