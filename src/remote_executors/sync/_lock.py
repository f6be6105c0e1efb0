"""One sync of a session at a time, across tasks and processes.

``flock`` locks belong to an open file description, so two opens of the lock
file exclude each other whether they are in two tasks of one process or in
two processes, and the kernel drops the lock when its holder dies. The lock
file is left in place after release: deleting it would let a waiter that
already opened the old file and a newcomer that creates a new one both "hold"
the lock.

Waiting happens in a worker thread that polls with a non-blocking ``flock``
(sleeping 1 ms, growing to 10 ms, between tries). A thread blocked in a plain
``flock`` could not be woken on cancellation or timeout: it would hold a
thread, and on asyncio keep the interpreter from exiting, for as long as the
other holder held on. Polling lets an abandoned wait end within one interval.
The price is fairness, which does not matter at the contention a session's
syncs see.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import anyio.to_thread

__all__ = ["session_lock"]

_FIRST_DELAY = 0.001
_MAX_DELAY = 0.010


class _Waiter:
    """State shared between the waiting task and its worker thread.

    ``mutex`` guards the hand-over: once ``stopped`` is set (under it), the
    thread never touches ``fd`` again and the task owns it, locked or not.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.mutex = threading.Lock()
        self.wake = threading.Event()
        self.stopped = False
        self.fd: int | None = None
        self.locked = False

    def wait(self) -> None:
        """Open the lock file and take the lock, until done or stopped (runs in a thread)."""
        delay = _FIRST_DELAY
        while True:
            with self.mutex:
                if self.stopped:
                    return
                if self.fd is None:
                    self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                    # Python fds are not inherited, so ssh or rsync children
                    # spawned while the lock is held cannot keep it alive.
                    self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
                try:
                    fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    pass
                else:
                    self.locked = True
                    return
            if self.wake.wait(delay):
                return
            delay = min(delay * 2, _MAX_DELAY)

    def stop(self) -> None:
        """Stop the thread's waiting and release whatever it got (runs in the task)."""
        with self.mutex:
            self.stopped = True
            self.wake.set()
        self.release()

    def release(self) -> None:
        fd, self.fd = self.fd, None
        if fd is None:
            return
        try:
            if self.locked:
                self.locked = False
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)  # closing drops the lock anyway; unlocking first says so


@asynccontextmanager
async def session_lock(
    path: str | os.PathLike[str], *, timeout: float | None = 60.0
) -> AsyncIterator[None]:
    """Hold an exclusive lock on the file ``path`` for the body of the block.

    Use one lock file per session, beside the staging area the sync pulls
    into (missing directories are created 0700, the file 0600). Waiting
    never blocks the event loop and ends promptly on cancellation. If the
    lock is not had within ``timeout`` seconds (``None``: wait for ever),
    :class:`TimeoutError` is raised. Not reentrant: taking it again inside
    the block waits for itself until the timeout.
    """
    waiter = _Waiter(Path(path))
    try:
        with anyio.move_on_after(timeout) as scope:
            await anyio.to_thread.run_sync(waiter.wait, abandon_on_cancel=True)
    except BaseException:
        waiter.stop()
        raise
    if scope.cancelled_caught:
        waiter.stop()
        raise TimeoutError(
            f"could not lock {path} within {timeout} s: another sync of this session is running"
        )
    if not waiter.locked:  # the thread can only stop early when told to
        waiter.release()
        raise RuntimeError(f"lock wait for {path} ended without the lock")
    try:
        yield
    finally:
        waiter.release()
