"""The system OpenSSH client backend.

Using the user's own ``ssh`` means their whole ssh_config applies (Include,
Match, ProxyJump, IdentityAgent, certificates) and known_hosts is theirs. A
ControlMaster connection, in a short private directory, carries every later
channel, so only the first one pays for a handshake.

sshd caps the session channels of one connection (``MaxSessions``, 10 by
default). When the master is refused a channel, this backend opens another
master (a small pool, each carrying no more channels than the server
allowed) and the channel is retried there. Left alone, ssh would fall back to
a login of its own for every refused channel: a full connection and client
per session, and a burst of logins that sshd's ``MaxStartups`` may drop.
Channels therefore carry a ProxyCommand that only answers with a mark as
its banner (ssh quotes it in its error): it runs only when the master could
not carry the channel, and the mark says which master.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from functools import partial
from typing import IO

import anyio
from anyio.abc import Process

from ...errors import ConnectionFailed, ExecutorError
from .._backend import MAX_CONNECTIONS, ChannelRefused, Ending, LinkOptions, pool_full
from .._pipe_channel import PipeChannel
from ._config import ResolvedHost, ssh_g
from ._errors import SSH_FAILED, classify_connect_failure, lost_link

log = logging.getLogger("remote_executors.ssh")

_C_LOCALE = {"LC_ALL": "C", "LANG": "C"}
#: Printed by a channel's ProxyCommand, i.e. when its master could not carry it.
_NO_MUX = "rx-no-mux-"
#: sshd's MaxSessions unless its config says otherwise.
_DEFAULT_MAX_SESSIONS = 10
#: What ssh says when the master was refused the channel (MaxSessions).
_REFUSED = "Session open refused by peer"


class OpenSSHChannel(PipeChannel):
    """One ``ssh`` client process (a ControlMaster client) carrying one command."""

    def __init__(
        self,
        process: Process,
        stdin_fd: int,
        stderr_file: IO[bytes] | None,
        master: _Master | None = None,
    ) -> None:
        super().__init__(process, stdin_fd, stderr_file)
        self._master = master  # released once, when the client process has ended

    def _ended(self) -> None:
        master, self._master = self._master, None
        if master is not None:
            master.channels -= 1


class _Master:
    """One ControlMaster connection: its socket and the channels it carries."""

    def __init__(self, index: int, socket: str) -> None:
        self.index = index
        self.socket = socket
        self.channels = 0

    @property
    def alive(self) -> bool:
        # Gone with the master (exit, ControlPersist) except after SIGKILL:
        # then a channel's mark says so and the socket is removed.
        return os.path.exists(self.socket)


class OpenSSHBackend:
    """Drives ``ssh`` with private ControlMasters (a small pool) for one host alias."""

    def __init__(
        self,
        host: str,
        link: LinkOptions | None = None,
        *,
        control_persist: int = 300,
        ssh_binary: str | None = None,
    ) -> None:
        self.host = host
        self._link = link or LinkOptions()
        self._persist = control_persist
        self._ssh = ssh_binary or shutil.which("ssh") or "ssh"
        self._control_dir: str | None = None
        self._masters: list[_Master] = []
        #: Channels one connection may carry: sshd's default until a refusal
        #: says less. Each refusal costs an ssh process and a round trip, so
        #: a burst of opens is not sent to one master to find out.
        self._limit = _DEFAULT_MAX_SESSIONS
        self._lock = anyio.Lock()
        self._resolved: ResolvedHost | None = None

    # -- argv -------------------------------------------------------------

    def _base(self, master: _Master | None = None, *, channel: bool = False) -> list[str]:
        """``ssh`` and its options, on ``master`` (default: the first).

        ``channel``: for one command carried by the master; it must not log in
        on its own when the master cannot carry it (see the module's doc).
        """
        argv = [self._ssh]
        if self._link.ssh_config:
            argv += ["-F", self._link.ssh_config]
        opts = {
            # Nobody can answer a prompt: fail with a message instead.
            "BatchMode": "yes",
            "ConnectTimeout": str(max(1, round(self._link.connect_timeout))),
            "ServerAliveInterval": str(self._link.keepalive_interval),
            "ServerAliveCountMax": str(self._link.keepalive_count),
        }
        if self._link.accept_new_host_keys:
            opts["StrictHostKeyChecking"] = "accept-new"
        elif self._resolved is not None and self._resolved.checking_disabled:
            # The config says "don't check": keep the convenience for new hosts
            # but never log in to a host whose key changed.
            opts["StrictHostKeyChecking"] = "accept-new"
        if master is None and self._masters:
            master = self._masters[0]
        if master is not None:
            opts["ControlPath"] = master.socket
        if channel and master is not None:
            opts["ControlMaster"] = "no"
            # ssh shows no ProxyCommand's stderr, but quotes a bad banner.
            opts["ProxyCommand"] = (
                f"/bin/sh -c 'echo SSH-{_NO_MUX}{master.index}; exec cat >/dev/null'"
            )
            # ssh prints why the master failed at level error.
            opts["LogLevel"] = "ERROR"
        opts.update(self._link.options)
        for key, value in opts.items():
            argv.append(f"-o{key}={value}")
        return argv

    def _argv(
        self,
        *extra: str,
        remote: Sequence[str] = (),
        master: _Master | None = None,
        channel: bool = False,
    ) -> list[str]:
        # "--" so nothing after it, host included, can be read as an option.
        return [*self._base(master, channel=channel), *extra, "--", self.host, *remote]

    # -- connection -------------------------------------------------------

    async def _resolve(self) -> None:
        """``ssh -G``: proves the alias and config parse, and tells the settings."""
        options = await ssh_g(self.host, ssh=self._ssh, ssh_config=self._link.ssh_config)
        self._resolved = ResolvedHost.from_options(self.host, options)
        self._resolved.warn_if_checking_disabled()

    @property
    def resolved(self) -> ResolvedHost | None:
        return self._resolved

    async def connect(self) -> None:
        """Bring up the first master (resolving the alias first)."""
        async with self._lock:
            await self._ensure(0)

    async def _ensure(self, index: int) -> _Master:
        """Master ``index`` up (started, or restarted if it went away); under ``_lock``."""
        if self._resolved is None:
            await self._resolve()
        if self._control_dir is None:
            # Short and private: a long ControlPath fails on Linux (~104 bytes).
            self._control_dir = tempfile.mkdtemp(prefix="rx-", dir="/tmp")
            os.chmod(self._control_dir, 0o700)
            # An executor nobody closed: stop its masters and remove the dir
            # when the interpreter exits, not 5 min later (not when it is
            # collected: a process it spawned may still ride a master).
            _UNCLOSED[self._control_dir] = []
        while len(self._masters) <= index:
            number = len(self._masters)
            self._masters.append(_Master(number, os.path.join(self._control_dir, f"m{number}")))
            master = self._masters[number]
            _UNCLOSED[self._control_dir].append(
                (master.socket, [*self._base(master), "-Oexit", "--", self.host])
            )
        master = self._masters[index]
        if master.alive:
            return master
        with tempfile.TemporaryFile() as err:
            argv = self._argv(
                "-oControlMaster=yes",
                f"-oControlPersist={self._persist}",
                "-N",
                "-f",
                master=master,
            )
            # Stable English diagnostics; the master runs no session, so the
            # locale it carries reaches no remote process.
            proc = await anyio.open_process(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err.fileno(),
                env={**os.environ, **_C_LOCALE},
            )
            try:
                with anyio.fail_after(self._link.connect_timeout + 10):
                    code = await proc.wait()
            except TimeoutError:
                proc.kill()
                raise ConnectionFailed(
                    f"Connecting to {self.host} took more than "
                    f"{self._link.connect_timeout + 10:.0f} s. Check `ssh {self.host} true`.",
                    host=self.host,
                ) from None
            except BaseException:
                # Cancelled (e.g. by the caller's own timeout): an ssh left
                # connecting would log in later and leave a master behind.
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                with anyio.CancelScope(shield=True):
                    await proc.wait()
                raise
            err.seek(0)
            text = err.read().decode("utf-8", "replace")
        if code != 0:
            raise classify_connect_failure(self.host, text)
        log.debug("ssh master %d for %s up", index, self.host)
        return master

    async def _pick(self) -> _Master:
        """The first master with room for one more channel, started if need be;
        under ``_lock``."""
        for index in range(len(self._masters) or 1):
            if index < len(self._masters) and self._masters[index].channels >= self._limit:
                continue
            return await self._ensure(index)
        return await self._overflow()

    async def _overflow(self) -> _Master:
        if len(self._masters) >= MAX_CONNECTIONS:
            raise pool_full(self.host, self._limit)
        log.debug("%s: more than %s channels at once, one more master", self.host, self._limit)
        return await self._ensure(len(self._masters))

    async def open(self, remote_command: str, *, pipe_stderr: bool) -> OpenSSHChannel:
        # Counted at once, under the pool's lock: a burst of opens spreads over
        # the masters instead of all going to one that has room for a few.
        async with self._lock:
            master = await self._pick()
            master.channels += 1
        read_fd, write_fd = os.pipe()
        stderr_file: IO[bytes] | None = None
        try:
            if pipe_stderr:
                stderr_target: int = subprocess.PIPE
            else:
                # Nobody reads it: a file never fills up and keeps the diagnostics.
                stderr_file = tempfile.TemporaryFile()
                stderr_target = stderr_file.fileno()
            proc = await anyio.open_process(
                self._argv("-T", remote=[remote_command], master=master, channel=True),
                stdin=read_fd,
                stdout=subprocess.PIPE,
                stderr=stderr_target,
                # The mark's ProxyCommand runs under $SHELL: one that parses it.
                env={**os.environ, "SHELL": "/bin/sh"},
                # Out of the terminal's process group: a Ctrl-C is the app's to
                # handle (it stops the session), not a dropped link to reattach.
                start_new_session=True,
            )
        except BaseException:
            master.channels -= 1
            os.close(write_fd)
            if stderr_file is not None:
                stderr_file.close()
            raise
        finally:
            os.close(read_fd)
        return OpenSSHChannel(proc, write_fd, stderr_file, master)

    async def shared_ssh_argv(self) -> list[str]:
        """``ssh`` and its options, riding this backend's master connection.

        For a tool that runs ssh itself and appends the destination and its
        command (rsync's ``-e``). The master is brought up first, so the tool's
        ssh only opens a channel on it.
        """
        # Not counted (rsync's channel lives outside this backend); if it is
        # refused, ssh logs in on its own for it, as it always did.
        async with self._lock:
            master = await self._pick()
        return [*self._base(master), "-oControlMaster=no"]

    def lost_error(self, ending: Ending) -> ExecutorError | None:
        return lost_link(self.host, ending)

    def connect_failure(self, stderr: str, returncode: int) -> Exception | None:
        if returncode != SSH_FAILED:
            return None
        index = _marked_master(stderr)
        if index is None or index >= len(self._masters):
            return classify_connect_failure(self.host, stderr)
        master = self._masters[index]
        if _REFUSED in stderr:
            # Full: what it carries now is what the server allows (a lower
            # bound when channels ended meanwhile, which only costs a master).
            limit = max(1, master.channels)
            self._limit = min(self._limit, limit)
            log.debug("%s refused a channel on master %d: %d at most", self.host, index, limit)
            return ChannelRefused(f"{self.host} refused a session channel (MaxSessions)")
        # The master is gone (killed: its socket stayed behind): start it again.
        with contextlib.suppress(OSError):
            os.unlink(master.socket)
        return ChannelRefused(f"the connection to {self.host} was gone")

    async def aclose(self) -> None:
        directory, self._control_dir = self._control_dir, None
        masters, self._masters = self._masters, []
        if directory is None:
            return
        _UNCLOSED.pop(directory, None)
        with anyio.move_on_after(5, shield=True):
            async with anyio.create_task_group() as tg:
                for master in masters:
                    if master.alive:
                        argv = [*self._base(master), "-Oexit", "--", self.host]
                        tg.start_soon(partial(anyio.run_process, argv, check=False))
        shutil.rmtree(directory, ignore_errors=True)


def _marked_master(stderr: str) -> int | None:
    """The master a channel's mark names (see ``_NO_MUX``), if it printed one."""
    at = stderr.rfind(_NO_MUX)
    if at < 0:
        return None
    found = re.match(r"\d+", stderr[at + len(_NO_MUX) :])
    return int(found.group()) if found else None


#: Control dir -> the ``ssh -O exit`` argv of each master, for executors not closed yet.
_UNCLOSED: dict[str, list[tuple[str, list[str]]]] = {}


def _stop_unclosed() -> None:
    """At exit: ``ssh -O exit`` each master an executor left, and remove its directory."""
    for directory, commands in list(_UNCLOSED.items()):
        for socket, argv in commands:
            if not os.path.exists(socket):
                continue
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                subprocess.run(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    timeout=5,
                    check=False,
                )
        shutil.rmtree(directory, ignore_errors=True)
    _UNCLOSED.clear()


atexit.register(_stop_unclosed)
