"""The system OpenSSH client backend.

Using the user's own ``ssh`` means their whole ssh_config applies (Include,
Match, ProxyJump, IdentityAgent, certificates) and known_hosts is theirs. One
ControlMaster connection per executor, in a short private directory, carries
every later channel, so only the first one pays for a handshake.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Sequence
from typing import IO

import anyio
from anyio.abc import ByteReceiveStream, Process

from ...errors import ConnectionFailed, ExecutorError
from .._backend import LinkOptions
from ._config import ResolvedHost, ssh_g
from ._errors import SSH_FAILED, classify_connect_failure

log = logging.getLogger("remote_executors.ssh")

_C_LOCALE = {"LC_ALL": "C", "LANG": "C"}


class OpenSSHChannel:
    """One ``ssh`` client process (a ControlMaster client) carrying one command."""

    def __init__(self, process: Process, stdin_fd: int, stderr_file: IO[bytes] | None) -> None:
        self._process = process
        self._stdin_fd: int | None = stdin_fd
        self._lock = threading.Lock()
        self._stderr_file = stderr_file
        assert process.stdout is not None
        self.stdout: ByteReceiveStream = process.stdout
        self.stderr: ByteReceiveStream | None = process.stderr

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def returncode(self) -> int | None:
        return self._process.returncode

    def write_stdin(self, data: bytes) -> None:
        with self._lock:
            if self._stdin_fd is None:
                raise BrokenPipeError("stdin is closed")
            view = memoryview(data)
            while view:
                written = os.write(self._stdin_fd, view)
                view = view[written:]

    def close_stdin(self) -> None:
        with self._lock:
            if self._stdin_fd is not None:
                os.close(self._stdin_fd)
                self._stdin_fd = None

    def stderr_text(self) -> str:
        if self._stderr_file is None:
            return ""
        try:
            self._stderr_file.seek(0)
            return self._stderr_file.read()[-16384:].decode("utf-8", "replace")
        except (OSError, ValueError):
            return ""

    async def wait(self) -> int:
        code = await self._process.wait()
        self.close_stdin()
        return code

    async def aclose(self) -> None:
        self.close_stdin()
        # Closes the stdout/stderr pipes too: left to the garbage collector,
        # asyncio complains about (or crashes on) transports of a closed loop.
        await self._process.aclose()

    def send_signal(self, signum: int) -> None:
        if self._process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._process.send_signal(signal.Signals(signum))


class OpenSSHBackend:
    """Drives ``ssh`` with a private ControlMaster for one host alias."""

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
        self._lock = anyio.Lock()
        self._resolved: ResolvedHost | None = None

    # -- argv -------------------------------------------------------------

    def _base(self) -> list[str]:
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
        if self._control_dir is not None:
            opts["ControlPath"] = os.path.join(self._control_dir, "%C")
        opts.update(self._link.options)
        for key, value in opts.items():
            argv.append(f"-o{key}={value}")
        return argv

    def _argv(self, *extra: str, remote: Sequence[str] = ()) -> list[str]:
        # "--" so nothing after it, host included, can be read as an option.
        return [*self._base(), *extra, "--", self.host, *remote]

    # -- connection -------------------------------------------------------

    async def _resolve(self) -> None:
        """``ssh -G``: proves the alias and config parse, and tells the settings."""
        options = await ssh_g(self.host, ssh=self._ssh, ssh_config=self._link.ssh_config)
        self._resolved = ResolvedHost.from_options(self.host, options)
        self._resolved.warn_if_checking_disabled()

    @property
    def resolved(self) -> ResolvedHost | None:
        return self._resolved

    def _master_alive(self) -> bool:
        if self._control_dir is None:
            return False
        # %C is a hash we cannot compute cheaply; the dir holds only our socket.
        try:
            return any(name for name in os.listdir(self._control_dir) if not name.startswith("."))
        except FileNotFoundError:
            return False

    async def connect(self) -> None:
        async with self._lock:
            if self._resolved is None:
                await self._resolve()
            if self._master_alive():
                return
            if self._control_dir is None:
                # Short and private: a long ControlPath fails on Linux (~104 bytes).
                self._control_dir = tempfile.mkdtemp(prefix="rx-", dir="/tmp")
                os.chmod(self._control_dir, 0o700)
                # An executor nobody closed: stop its master and remove the dir
                # when the interpreter exits, not 5 min later (not when it is
                # collected: a process it spawned may still ride the master).
                _UNCLOSED[self._control_dir] = [
                    *self._base(),
                    "-Oexit",
                    "--",
                    self.host,
                ]
            with tempfile.TemporaryFile() as err:
                argv = self._argv(
                    "-oControlMaster=yes",
                    f"-oControlPersist={self._persist}",
                    "-N",
                    "-f",
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
            log.debug("ssh master for %s up", self.host)

    async def open(self, remote_command: str, *, pipe_stderr: bool) -> OpenSSHChannel:
        await self.connect()
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
                self._argv("-T", "-oControlMaster=no", remote=[remote_command]),
                stdin=read_fd,
                stdout=subprocess.PIPE,
                stderr=stderr_target,
            )
        except BaseException:
            os.close(write_fd)
            if stderr_file is not None:
                stderr_file.close()
            raise
        finally:
            os.close(read_fd)
        return OpenSSHChannel(proc, write_fd, stderr_file)

    async def shared_ssh_argv(self) -> list[str]:
        """``ssh`` and its options, riding this backend's master connection.

        For a tool that runs ssh itself and appends the destination and its
        command (rsync's ``-e``). The master is brought up first, so the tool's
        ssh only opens a channel on it.
        """
        await self.connect()
        return [*self._base(), "-oControlMaster=no"]

    def connect_failure(self, stderr: str, returncode: int) -> ExecutorError | None:
        if returncode == SSH_FAILED:
            return classify_connect_failure(self.host, stderr)
        return None

    async def aclose(self) -> None:
        directory, self._control_dir = self._control_dir, None
        if directory is None:
            return
        _UNCLOSED.pop(directory, None)
        with anyio.move_on_after(5, shield=True):
            await anyio.run_process(
                [*self._base(), f"-oControlPath={directory}/%C", "-Oexit", "--", self.host],
                check=False,
            )
        shutil.rmtree(directory, ignore_errors=True)


#: Control dir -> its ``ssh -O exit`` argv, for masters no executor closed yet.
_UNCLOSED: dict[str, list[str]] = {}


def _stop_unclosed() -> None:
    """At exit: ``ssh -O exit`` each master an executor left, and remove its directory."""
    for directory, argv in list(_UNCLOSED.items()):
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
