"""Which strategy syncs a session when the caller did not choose one."""

from __future__ import annotations

from remote_executors.executors.base import Executor, sftp_channel_of
from remote_executors.sync.base import MAX_FILE_BYTES, MAX_SESSION_BYTES, SessionSync


def default_sync(
    executor: Executor,
    *,
    max_file_bytes: int = MAX_FILE_BYTES,
    max_session_bytes: int = MAX_SESSION_BYTES,
) -> SessionSync:
    """SFTP on an executor's own SFTP channel; the tail scripts everywhere else.

    Both move only new bytes. An executor that offers an SFTP channel
    (:class:`~remote_executors.executors.base.SftpChannel`, e.g. the fabric
    backend on the connection it already holds) needs nothing on the remote
    but its sftp-server; every other executor runs the tail strategy's two
    POSIX scripts through ``Executor.run``. The limits are the strategy's (see
    :class:`~remote_executors.sync.Limits`).
    """
    limits = {"max_file_bytes": max_file_bytes, "max_session_bytes": max_session_bytes}
    if sftp_channel_of(executor) is not None:
        from remote_executors.sync._sftp import SftpSessionSync

        return SftpSessionSync(**limits)
    from remote_executors.sync._tail import TailSessionSync

    return TailSessionSync(**limits)
