"""A local child process with byte pipes, carrying one remote job.

The OpenSSH backend's ``ssh`` client and a container engine's
``<engine> exec -i`` client are both this: the job's bytes travel through the
child's stdin and stdout, and ending the child ends the job's link (the
watchdog on the far side then stops the job). It satisfies ``_backend.Channel``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import threading
from collections.abc import Mapping, Sequence
from typing import IO, TYPE_CHECKING

import anyio
from anyio.abc import ByteReceiveStream, Process

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["PipeChannel"]

#: Bytes of a kept-aside stderr that ``stderr_text`` returns (the end of it).
_STDERR_TAIL = 16384


class PipeChannel:
    """One local client process carrying one command.

    stdin is a plain ``os.pipe`` written with blocking, locked writes (from
    worker and heartbeat threads); stderr is a pipe, or a temporary file when
    nobody reads it (it never fills up and keeps the diagnostics).
    """

    def __init__(self, process: Process, stdin_fd: int, stderr_file: IO[bytes] | None) -> None:
        self._process = process
        self._stdin_fd: int | None = stdin_fd
        self._lock = threading.Lock()
        self._stderr_file = stderr_file
        assert process.stdout is not None
        self.stdout: ByteReceiveStream = process.stdout
        self.stderr: ByteReceiveStream | None = process.stderr

    @classmethod
    async def start(
        cls,
        argv: Sequence[str],
        *,
        pipe_stderr: bool,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        start_new_session: bool = False,
    ) -> Self:
        """Start ``argv`` with its stdin, stdout (and stderr, if ``pipe_stderr``) piped."""
        read_fd, write_fd = os.pipe()
        stderr_file: IO[bytes] | None = None
        try:
            if pipe_stderr:
                stderr_target: int = subprocess.PIPE
            else:
                stderr_file = tempfile.TemporaryFile()
                stderr_target = stderr_file.fileno()
            process = await anyio.open_process(
                list(argv),
                stdin=read_fd,
                stdout=subprocess.PIPE,
                stderr=stderr_target,
                env=env,
                cwd=cwd,
                start_new_session=start_new_session,
            )
        except BaseException:
            os.close(write_fd)
            if stderr_file is not None:
                stderr_file.close()
            raise
        finally:
            os.close(read_fd)
        return cls(process, write_fd, stderr_file)

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
            return self._stderr_file.read()[-_STDERR_TAIL:].decode("utf-8", "replace")
        except (OSError, ValueError):
            return ""

    def _ended(self) -> None:
        """The client process has ended: release what it held (a subclass's hook)."""

    async def wait(self) -> int:
        code = await self._process.wait()
        self.close_stdin()
        self._ended()
        return code

    async def aclose(self) -> None:
        self.close_stdin()
        # Closes the stdout/stderr pipes too: left to the garbage collector,
        # asyncio complains about (or crashes on) transports of a closed loop.
        await self._process.aclose()
        self._ended()

    def send_signal(self, signum: int) -> None:
        if self._process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._process.send_signal(signal.Signals(signum))
