"""A job channel carried in this process: a reader thread feeding OS pipes.

The in-process carriers (a ``pods/exec`` WebSocket, the Docker Engine API's
hijacked stream) read their connection with one blocking reader thread per
job, which writes each stream's bytes into an OS pipe that the event loop
reads. That keeps them independent of asyncio or trio, and bounds memory: a
pipe holds 64 KiB; when nobody reads, the reader blocks, the connection
fills and the far side stops sending, whatever the job writes.

A subclass gives the thread's body (``_read``, which sets ``_code`` before
it returns) and the ``Channel`` methods that talk to its connection
(``write_stdin``, ``close_stdin``, ``send_signal``).
"""

from __future__ import annotations

import contextlib
import os
import select
import threading

import anyio
from anyio.abc import ByteReceiveStream

__all__ = ["KEEP", "ThreadedChannel", "PipeStream"]

KEEP = 16384  # bytes of stderr kept for messages when nobody reads it


class PipeStream(ByteReceiveStream):
    """The read end of a pipe the reader thread writes into."""

    def __init__(self, fd: int) -> None:
        os.set_blocking(fd, False)
        self._fd: int | None = fd

    async def receive(self, max_bytes: int = 65536) -> bytes:
        while True:
            fd = self._fd
            if fd is None:
                raise anyio.ClosedResourceError
            try:
                data = os.read(fd, max_bytes)
            except BlockingIOError:
                await anyio.wait_readable(fd)
                continue
            if not data:
                raise anyio.EndOfStream
            return data

    async def aclose(self) -> None:
        self.close()

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            anyio.notify_closing(fd)
            os.close(fd)


class ThreadedChannel:
    """Pipes, the exit status and ``wait`` for a channel read by a thread.

    ``pid`` is this Python process's: no local process carries the job.
    """

    def __init__(self, *, pipe_stderr: bool, thread_name: str) -> None:
        self._lock = threading.Lock()  # whole writes: a heartbeat never lands inside one
        self._stdin_closed = False
        self._signal: int | None = None  # set when this side stopped the job
        self._code: int | None = None
        self._message = ""
        self._kept = b""
        self._dead: set[int] = set()  # write ends whose reader is gone
        self._ended = False  # the reader thread finished (or the channel was closed)
        self._waiting: anyio.Event | None = None  # the one task reading _done
        out_r, self._out_w = os.pipe()
        os.set_blocking(self._out_w, False)
        self.stdout: ByteReceiveStream = PipeStream(out_r)
        self._err_w: int | None = None
        self._err: PipeStream | None = None
        if pipe_stderr:
            err_r, self._err_w = os.pipe()
            os.set_blocking(self._err_w, False)
            self._err = PipeStream(err_r)
        self.stderr: ByteReceiveStream | None = self._err
        done_r, self._done_w = os.pipe()
        self._done = PipeStream(done_r)
        self._reader = threading.Thread(target=self._run, name=thread_name, daemon=True)

    def _start_reader(self) -> None:
        self._reader.start()

    @property
    def pid(self) -> int:
        return os.getpid()

    @property
    def returncode(self) -> int | None:
        return self._code

    # -- the reader thread ---------------------------------------------------

    def _read(self) -> None:
        """The thread's body: read the connection until it ends, set ``_code``."""
        raise NotImplementedError

    def _run(self) -> None:
        try:
            self._read()
        finally:
            with self._lock:
                self._stdin_closed = True
            for fd in (self._out_w, self._err_w, self._done_w):
                if fd is not None:
                    with contextlib.suppress(OSError):
                        os.close(fd)

    def _stdout(self, data: bytes) -> None:
        self._write(self._out_w, data)

    def _stderr(self, data: bytes) -> None:
        if self._err_w is None:
            self._kept = (self._kept + data)[-KEEP:]
        else:
            self._write(self._err_w, data)

    def _write(self, fd: int, data: bytes) -> None:
        """Write all of ``data``, waiting while the pipe is full. Dropped once the
        reader went away, or once the job was stopped (then nobody may read
        again, and the stream must still end so that ``wait()`` returns)."""
        if fd in self._dead:
            return
        view = memoryview(data)
        try:
            while view:
                try:
                    view = view[os.write(fd, view) :]
                except BlockingIOError:
                    if self._signal is not None:
                        self._dead.add(fd)
                        return
                    select.select([], [fd], [], 0.2)
        except OSError:
            self._dead.add(fd)

    # -- the Channel protocol (the shared part) ------------------------------

    def stderr_text(self) -> str:
        text = self._kept.decode("utf-8", "replace")
        if self._message:
            text += ("\n" if text else "") + self._message
        return text

    async def wait(self) -> int:
        # One task waits on the pipe (an fd takes one waiter); others on an event.
        while not self._ended:
            if self._waiting is not None:
                await self._waiting.wait()
                continue
            self._waiting = event = anyio.Event()
            try:
                with contextlib.suppress(anyio.EndOfStream, anyio.ClosedResourceError):
                    while True:
                        await self._done.receive()
                self._ended = True
            finally:
                self._waiting = None
                event.set()
        code = self._code  # set before the thread closes its end of _done
        if code is None:
            raise anyio.ClosedResourceError  # closed under a waiter: aclose() ran
        return code

    def send_signal(self, signum: int) -> None:
        raise NotImplementedError

    async def aclose(self) -> None:
        if self._code is None:
            self.send_signal(9)
            with anyio.move_on_after(5, shield=True):
                await self.wait()
        self.stdout_close()

    def stdout_close(self) -> None:
        for stream in (self.stdout, self._err, self._done):
            if isinstance(stream, PipeStream):
                stream.close()
