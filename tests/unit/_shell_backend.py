"""A test-only SSH backend: the remote command line runs under a local shell.

``ShellBackend`` implements the internal ``Backend`` seam (see
``remote_executors.executors._backend``) without ssh: ``open()`` runs
``[shell, "-c", remote_command]`` the way sshd runs a command under the
user's login shell, with

- stdin from an ``os.pipe`` written by ``OpenSSHChannel`` (a ``PipeChannel``,
  as the real backends' are, so writes are the same blocking, locked ``os.write``),
- ``start_new_session=True``, so the bootstrap is a session and process-group
  leader, as it is under sshd,
- an sshd-like environment: the non-login PATH, ``HOME``, ``SHELL``, ``USER``.

``prelude`` is shell text run before the remote command, like a chatty
``.bashrc`` printing to stdout. ``terminate()``/``kill()`` of the process
stand for killing the local ``ssh`` client (see ``ShellChannel``): the remote
side sees what sshd shows it then, EOF on stdin.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio

from remote_executors.errors import ExecutorError
from remote_executors.executors._backend import Ending
from remote_executors.executors.ssh._errors import lost_link
from remote_executors.executors.ssh._openssh import OpenSSHChannel

#: What a non-login ssh command gets on Debian/Ubuntu.
SSH_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/games"

#: The "login shells" the fixed remote command line must survive.
SHELLS = ("/bin/sh", "/bin/bash", "/bin/zsh", "/usr/bin/fish", "/usr/bin/tcsh")


class ShellChannel(OpenSSHChannel):
    """``OpenSSHChannel`` whose signals hit the link, not the remote process.

    Signalling the real backend's process signals the local ``ssh`` client.
    When it dies, ``wait()`` returns at once with ``-signal``, while on the
    remote sshd closes the channel: stdin reaches EOF and whatever runs there
    lives on unless the bootstrap's watchdog stops it. Here the "remote" side
    is the shell process itself, so a signal is turned into exactly that.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.signals: list[int] = []
        self._waiters: set[anyio.CancelScope] = set()

    @property
    def returncode(self) -> int | None:
        code = super().returncode
        if code is None and self.signals:
            return -self.signals[0]
        return code

    def send_signal(self, signum: int) -> None:
        if self.returncode is not None:
            return
        self.signals.append(signum)
        self.close_stdin()
        for scope in self._waiters:
            scope.cancel()

    async def wait(self) -> int:
        with anyio.CancelScope() as scope:
            if self.signals:
                scope.cancel()
            self._waiters.add(scope)
            try:
                return await super().wait()
            finally:
                self._waiters.discard(scope)
        code = self.returncode
        assert code is not None
        return code

    async def aclose(self) -> None:
        if not self.signals:
            await super().aclose()
            return
        # The "ssh client" is gone but the remote side lives on, as under sshd:
        # release our pipes without waiting for (or killing) the shell.
        self.close_stdin()
        for stream in (self._process.stdout, self._process.stderr):
            if stream is not None:
                await stream.aclose()

    async def wait_remote(self) -> int:
        """Until the "remote" side has really ended (not just the local client)."""
        return await super().wait()


class ShellBackend:
    """Runs the remote command line under ``shell`` on this machine."""

    def __init__(
        self,
        shell: str = "/bin/sh",
        *,
        home: str,
        host: str = "shellbox",
        prelude: str = "",
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.host = host
        self.shell = shell
        self.home = home
        self.prelude = prelude
        user = os.environ.get("USER") or "rx"
        self.env = {
            "PATH": SSH_PATH,
            "HOME": home,
            "SHELL": shell,
            "USER": user,
            "LOGNAME": user,
            **(env or {}),
        }
        self.channels: list[ShellChannel] = []
        self.connects = 0

    async def connect(self) -> None:
        self.connects += 1

    async def open(self, remote_command: str, *, pipe_stderr: bool) -> ShellChannel:
        channel = await ShellChannel.start(
            [self.shell, "-c", self.prelude + remote_command],
            pipe_stderr=pipe_stderr,
            env=self.env,
            cwd=self.home,
            start_new_session=True,
        )
        self.channels.append(channel)
        return channel

    def connect_failure(self, stderr: str, returncode: int) -> Exception | None:
        return None

    def lost_error(self, ending: Ending) -> ExecutorError | None:
        return lost_link(self.host, ending)  # it stands for ssh

    async def aclose(self) -> None:
        """Kill every process group this backend started (test cleanup)."""
        for channel in self.channels:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(channel.pid, signal.SIGKILL)
            channel.close_stdin()
            with anyio.move_on_after(5, shield=True):
                await channel.wait_remote()
            with contextlib.suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
                await channel.stdout.aclose()
            if channel.stderr is not None:
                with contextlib.suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
                    await channel.stderr.aclose()


def alive(pid: int) -> bool:
    """Whether ``pid`` is a running (not zombie) process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):  # gone, or going while we read
        return False
    # "pid (comm) S ...": the state follows the last ")".
    return stat[stat.rindex(b")") + 2 : stat.rindex(b")") + 3] not in (b"Z", b"X")


async def wait_dead(pid: int, within: float) -> bool:
    """Poll until ``pid`` is gone; False if still alive after ``within`` seconds."""
    with anyio.move_on_after(within):
        while alive(pid):
            await anyio.sleep(0.05)
        return True
    return not alive(pid)


def reader_of(fifo: Path) -> int:
    """The pid of the process whose stdin is ``fifo``."""
    for entry in os.listdir("/proc"):
        with contextlib.suppress(OSError):
            if entry.isdigit() and os.readlink(f"/proc/{entry}/fd/0") == str(fifo):
                return int(entry)
    raise AssertionError(f"nothing reads {fifo}")
