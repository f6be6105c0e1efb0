"""A remote job as an ``anyio.abc.Process``: bootstrap handshake, relay stdin, heartbeats.

Backend-independent: it drives a ``Channel`` from any backend (SSH, a
container engine's client, a Kubernetes exec stream), and asks the backend
whether a failed job was lost with its carrier.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Callable

import anyio
from anyio.abc import ByteReceiveStream, ByteSendStream

from ..errors import (
    ClaudeNotFound,
    ConnectionFailed,
    ExecutorError,
    ProcessLost,
    RemotePathNotFound,
    RemoteSetupError,
)
from ._backend import Backend, Channel, ChannelRefused, Ending, refused_in_a_row
from ._frames import FrameDecoder
from ._piped_process import PipedProcess
from ._remote_job import JobStatus, RemoteJob, parse_status, remote_command
from ._spare import SpareChannel

log = logging.getLogger("remote_executors.ssh")

#: At most this long for opening the next spare channel after a job: it only
#: saves time when it is quick (a new connection, say, is not).
_REFILL_SECONDS = 2.0

_NOISE_LIMIT = 1 << 20  # bytes of login-shell chatter tolerated before the status line
HEARTBEAT_INTERVAL = 2.0
#: Tries to open one channel when connections refuse it (each refusal makes room).
_OPEN_ATTEMPTS = 8


class _FramedStdout(ByteReceiveStream):
    """The command's stdout: the payload of the bootstrap's frames, nothing else.

    Whatever else reaches the channel after the status line (a background job
    of a login script printing late) is dropped by the decoder (see
    :mod:`._frames`). ``first`` is what arrived with the status line.
    """

    def __init__(
        self, inner: ByteReceiveStream, nonce: str, first: bytes, *, end_frames: bool = False
    ) -> None:
        self._inner = inner
        self.decoder = FrameDecoder(nonce, end_frames=end_frames)
        self._ready = self.decoder.feed(first)
        self._at = 0
        self._ended = False

    async def receive(self, max_bytes: int = 65536) -> bytes:
        while self._at >= len(self._ready):
            if self._ended or self.decoder.ended:
                raise anyio.EndOfStream
            try:
                chunk = await self._inner.receive()
            except anyio.EndOfStream:
                self._ended = True
                self.decoder.close()
                if self.decoder.noise:
                    log.debug("%d bytes on stdout were not the command's", self.decoder.noise)
                continue
            self._ready, self._at = self.decoder.feed(chunk), 0
        chunk = self._ready[self._at : self._at + max_bytes]
        self._at += len(chunk)
        return chunk

    async def aclose(self) -> None:
        await self._inner.aclose()


class _CallerStderr(ByteReceiveStream):
    """stderr for the caller: starts after the bootstrap's stderr mark, so
    login-shell chatter is not mistaken for the program's; keeps the last
    bytes of everything (chatter included) for error messages."""

    def __init__(self, inner: ByteReceiveStream, nonce: str, keep: int = 16384) -> None:
        self._inner = inner
        self._keep = keep
        self._mark = f"{nonce} stderr\n".encode("ascii")
        self._pending: bytes | None = b""  # None once past the mark
        self.tail = b""

    async def receive(self, max_bytes: int = 65536) -> bytes:
        while True:
            data = await self._inner.receive(max_bytes)
            self.tail = (self.tail + data)[-self._keep :]
            if self._pending is None:
                return data
            self._pending += data
            found = self._pending.find(self._mark)
            if found >= 0:
                data, self._pending = self._pending[found + len(self._mark) :], None
            elif len(self._pending) > _NOISE_LIMIT:
                data, self._pending = self._pending, None  # no mark: give up filtering
            else:
                continue  # still chatter, or a mark not complete yet
            if data:
                return data

    async def aclose(self) -> None:
        await self._inner.aclose()


class _RelayStdin(ByteSendStream):
    """stdin of a remote job. Closing it ends the process's input, not the channel.

    In spawn mode the remote relay is line-based and control lines (heartbeat,
    end of input) share the stream, so only whole lines are written: the tail
    of a send without a newline waits here for the rest of its line. Written
    earlier, a heartbeat could land inside it, or a final unterminated line
    would swallow the end-of-input marker. At the end it goes as a ``tail``
    control line, so the process reads exactly the bytes that were sent.
    """

    def __init__(self, channel: Channel, job: RemoteJob) -> None:
        self._channel = channel
        self._job = job
        self._closed = False
        self._partial = b""

    async def _write(self, data: bytes) -> None:
        # Blocking write in a worker: it shares one lock with the heartbeat
        # thread so a heartbeat never lands inside a write.
        await anyio.to_thread.run_sync(self._channel.write_stdin, data, abandon_on_cancel=True)

    async def send(self, item: bytes) -> None:
        if self._closed:
            raise anyio.ClosedResourceError
        data = bytes(item)
        if self._job.mode == "spawn":
            data = self._partial + data
            cut = data.rfind(b"\n") + 1
            data, self._partial = data[:cut], data[cut:]
            if not data:
                return
        try:
            await self._write(data)
        except OSError as exc:
            raise anyio.BrokenResourceError from exc

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._job.mode == "spawn":
            # A last line without its newline travels as one control line,
            # which the relay writes back exactly (no newline added).
            tail = self._job.tail(self._partial) if self._partial else b""
            self._partial = b""
            with contextlib.suppress(OSError):
                await self._write(tail + self._job.marker("eof"))
        else:
            self._channel.close_stdin()


class _Heartbeat(threading.Thread):
    """Proves the link alive to the remote watchdog (a frozen link stops it)."""

    def __init__(self, channel: Channel, line: bytes, interval: float) -> None:
        super().__init__(name="rx-heartbeat", daemon=True)
        self._channel = channel
        self._line = line
        self._interval = interval
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self._interval):
            try:
                self._channel.write_stdin(self._line)
            except OSError:
                return


class RemoteProcess(PipedProcess):
    """A process running on another machine, driven like a local one.

    ``pid`` is the local client's (``ssh``, ``docker exec``; this process's
    own for a stream with no client). ``terminate()``/``kill()`` end the
    channel; the remote watchdog then stops the remote process group.
    ``lost_error`` asks the backend that carried it (``Backend.lost_error``).
    """

    def __init__(
        self,
        host: str,
        channel: Channel,
        job: RemoteJob,
        status: JobStatus,
        stdout_rest: bytes,
        *,
        carrier_lost: Callable[[Ending], ExecutorError | None],
    ) -> None:
        self.host = host
        self._carrier_lost = carrier_lost
        self._channel = channel
        self._job = job
        self.status = status
        self._stdin = _RelayStdin(channel, job)
        supervised = job.mode in ("attach", "watch") or (job.grace > 0 and len(status.values) > 3)
        self._stdout: _FramedStdout = _FramedStdout(
            channel.stdout, job.nonce, stdout_rest, end_frames=supervised
        )
        self._stderr: _CallerStderr | None = (
            _CallerStderr(channel.stderr, job.nonce) if channel.stderr is not None else None
        )
        self._heartbeat: _Heartbeat | None = None
        self._signalled = False
        #: Topped up when this job ends (see start_job).
        self.spare: SpareChannel | None = None
        if job.mode != "run" and job.heartbeat_misses > 0:
            self._heartbeat = _Heartbeat(channel, job.marker("hb"), HEARTBEAT_INTERVAL)
            self._heartbeat.start()

    @property
    def remote_path(self) -> str:
        """The program that runs (e.g. where ``claude`` was found), if reported."""
        return self.status.values[0] if self.status.values else ""

    @property
    def remote_cwd(self) -> str:
        """The physical working directory on the remote (symlinks resolved)."""
        return self.status.values[1] if len(self.status.values) > 1 else ""

    @property
    def remote_pgid(self) -> int | None:
        """The remote process group of a ``run`` job (None when not reported)."""
        value = self.status.values[2] if len(self.status.values) > 2 else ""
        return int(value) if value.isdigit() and int(value) > 1 else None

    def stderr_tail(self) -> str:
        if self._stderr is not None:
            return self._stderr.tail.decode("utf-8", "replace")
        return self._channel.stderr_text()

    def lost_error(self) -> ExecutorError | None:
        """``ProcessLost`` when the carrier (link, client, stream), not the
        program, ended the job; as the backend judges it."""
        code = self.returncode
        if code is None or code == 0:
            return None
        return self._carrier_lost(
            Ending(code, self.pid, signalled=self._signalled, stderr=self.stderr_tail())
        )

    def _stop_heartbeat(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.stopped.set()

    async def wait(self) -> int:
        try:
            code = await self._channel.wait()
        finally:
            self._stop_heartbeat()
        spare, self.spare = self.spare, None
        if RemoteProcess.lost_error(self) is None:
            # Not when the link is what ended it: a reattach must not wait
            # for a channel nobody asked for.
            await refill_after_job(spare)
        return code

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def send_signal(self, signal: int) -> None:
        self._signalled = True
        self._stop_heartbeat()
        self._channel.send_signal(signal)

    @property
    def pid(self) -> int:
        return self._channel.pid

    @property
    def returncode(self) -> int | None:
        return self._channel.returncode

    async def aclose(self) -> None:
        with anyio.CancelScope(shield=True):
            await self._stdin.aclose()
            if self.returncode is None:
                self.terminate()
            with anyio.move_on_after(5):
                await self.wait()
            if self.returncode is None:
                self.kill()
                await self.wait()
            await self._channel.aclose()


async def refill_after_job(spare: SpareChannel | None) -> None:
    """A job is over: a quiet moment to open the executor's next spare (opened
    while a job starts, it would compete with it for the CPU)."""
    if spare is not None:
        with anyio.move_on_after(_REFILL_SECONDS):
            await spare.refill()


def _setup_error(host: str, status: JobStatus, job: RemoteJob) -> ExecutorError:
    if status.reason == "cwd":
        path = status.values[0] if status.values else (job.cwd or "")
        return RemotePathNotFound(
            f"Path {path} doesn't exist on {host}. Create it there (e.g. clone the project), "
            "or map the local directory to an existing one with "
            "SSHExecutor(..., path_map={local: remote}).",
            host=host,
            path=path,
        )
    if status.reason == "claude":
        searched = tuple(p for p in (status.values[0] if status.values else "").split("\n") if p)
        places = "; ".join(searched) or "nowhere"
        return ClaudeNotFound(
            f"Claude CLI not installed on {host}. Looked in: {places}. Install it there "
            "(curl -fsSL https://claude.ai/install.sh | bash), or pass "
            "SSHExecutor(..., claude_path='/path/to/claude').",
            host=host,
            searched=searched,
        )
    if status.reason == "gone":
        return ProcessLost(
            f"The session's process on {host} is gone: it ended or was stopped while the "
            "link was down for longer than reattach_within allows. The session can be "
            "resumed.",
            host=host,
        )
    if status.reason == "attach":
        what = status.values[0] if status.values else ""
        if what == "tar":
            return RemoteSetupError(
                f"tar is not installed on {host}; it is needed to unpack a directory an "
                "option names (e.g. a local plugin) for the session there. Install tar "
                "on the host.",
                host=host,
            )
        return RemoteSetupError(
            f"Could not write the session's private files in {what or 'the temp directory'} "
            f"on {host}. Check free space and permissions there, or set TMPDIR for the "
            "remote login.",
            host=host,
        )
    if status.reason == "tools":
        tool = status.values[0] if status.values else "dd"
        return RemoteSetupError(
            f"{host} has neither perl nor {tool} on the PATH of a non-login ssh command; "
            "one of them is needed to pass the command's output on. Install perl (or "
            f"{tool}) on {host}.",
            host=host,
        )
    where = status.values[0] if status.values else "the temp directory"
    return RemoteSetupError(
        f"Cannot create a private temp directory in {where} on {host}. Check free space "
        "and permissions there, or set TMPDIR for the remote login.",
        host=host,
    )


async def _read_status(channel: Channel, job: RemoteJob) -> tuple[JobStatus | None, bytes]:
    """Read stdout up to the bootstrap's status line, skipping login-shell chatter."""
    buffer = b""
    seen = 0
    while True:
        newline = buffer.find(b"\n")
        while newline >= 0:
            line, buffer = buffer[: newline + 1], buffer[newline + 1 :]
            status = parse_status(line, job.nonce)
            if status is not None:
                return status, buffer
            log.debug("skipping login-shell output: %r", line[:200])
            newline = buffer.find(b"\n")
        try:
            chunk = await channel.stdout.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
            return None, b""
        seen += len(chunk)
        if seen > _NOISE_LIMIT:
            return None, b""
        buffer += chunk


async def start_job(
    backend: Backend,
    job: RemoteJob,
    *,
    pipe_stderr: bool,
    startup_timeout: float = 60.0,
    process_class: type[RemoteProcess] = RemoteProcess,
    spare: SpareChannel | None = None,
) -> RemoteProcess:
    """Open a channel, hand the job to the bootstrap, wait for its status line.

    ``process_class``: the ``RemoteProcess`` subclass to return (e.g. one
    that stops a container's job its own way).
    ``spare`` (spawn jobs): the job goes to its waiting channel when it has
    one (a spare that turns out dead is dropped and a channel opened as
    usual); the next spare opens when the job ends.
    """
    host = backend.host
    status: JobStatus | None = None
    rest = b""
    channel = await spare.take(pipe_stderr) if spare is not None else None
    if spare is not None and channel is not None:
        status, rest = await _handshake(channel, job, startup_timeout, host)
        if status is None:
            log.debug("%s: the spare channel was gone, opening another", host)
            await spare.discard(channel)
    if status is None:
        for attempt in range(_OPEN_ATTEMPTS):
            channel = await backend.open(remote_command(), pipe_stderr=pipe_stderr)
            status, rest = await _handshake(channel, job, startup_timeout, host)
            if status is not None:
                break
            code = await _finish(channel)
            stderr = await _drain_stderr(channel)
            failure = backend.connect_failure(stderr, code)
            if isinstance(failure, ChannelRefused):
                # Nothing ran there: the backend has made room (another connection).
                log.debug("%s: channel not opened (%s), attempt %d", host, failure, attempt + 1)
                await channel.aclose()
                continue
            if failure is not None:
                raise failure
            raise RemoteSetupError(
                f"The remote shell on {host} exited (status {code}) before starting the "
                f"process. Check that /bin/sh, base64, awk, mkfifo and mktemp exist on {host}.",
                host=host,
                detail=stderr,
            )
        else:
            raise refused_in_a_row(host, _OPEN_ATTEMPTS)
    assert channel is not None
    if not status.ok:
        await _finish(channel)
        raise _setup_error(host, status, job)
    process = process_class(host, channel, job, status, rest, carrier_lost=backend.lost_error)
    process.spare = spare
    return process


async def _handshake(
    channel: Channel,
    job: RemoteJob,
    startup_timeout: float,
    host: str,
) -> tuple[JobStatus | None, bytes]:
    """Send the header, read the status line (None: the channel died first)."""
    try:
        with anyio.fail_after(startup_timeout):
            # If the channel already died, the status read below says why.
            with contextlib.suppress(OSError):
                await anyio.to_thread.run_sync(channel.write_stdin, job.header())
            return await _read_status(channel, job)
    except TimeoutError:
        channel.send_signal(signal.SIGKILL)
        raise ConnectionFailed(
            f"{host} did not start the remote process within {startup_timeout:.0f} s. "
            f"Check that `ssh {host} true` returns promptly (a login script may be "
            "waiting for input).",
            host=host,
        ) from None
    except BaseException:
        channel.send_signal(signal.SIGKILL)
        raise


async def _finish(channel: Channel) -> int:
    channel.close_stdin()
    with anyio.move_on_after(10):
        return await channel.wait()
    channel.send_signal(signal.SIGKILL)
    return await channel.wait()


async def _drain_stderr(channel: Channel) -> str:
    if channel.stderr is None:
        return channel.stderr_text()
    chunks: list[bytes] = []
    with anyio.move_on_after(5):
        try:
            while True:
                chunks.append(await channel.stderr.receive())
        except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
            pass
    return b"".join(chunks).decode("utf-8", "replace")
