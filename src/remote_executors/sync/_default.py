"""Which strategy syncs a session when the caller did not choose one."""

from __future__ import annotations

from remote_executors.executors.base import Executor
from remote_executors.sync.base import SessionSync


def default_sync(executor: Executor) -> SessionSync:
    """SFTP on the fabric backend's own connection; the tail scripts everywhere else.

    Both move only new bytes. The fabric backend has an SFTP session on the
    connection it already holds, which needs nothing on the remote but its
    sftp-server; every other executor runs the tail strategy's two POSIX
    scripts through ``Executor.run``.
    """
    from remote_executors.executors.ssh import SSHExecutor

    if isinstance(executor, SSHExecutor) and executor.backend == "fabric":
        from remote_executors.sync._sftp import SftpSessionSync

        return SftpSessionSync()
    from remote_executors.sync._tail import TailSessionSync

    return TailSessionSync()
