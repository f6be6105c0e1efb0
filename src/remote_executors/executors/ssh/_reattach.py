"""A supervised remote job as one process that survives its link.

The remote side (supervisor.sh) keeps the process running when the channel
drops and spools its output. Here one :class:`ReattachingProcess` stands for
the job across any number of channels ("attachments"): when one ends without
the job's end frame, it reconnects with backoff, opens an ``attach`` job that
resumes stdout and stderr from the bytes already received, and resends stdin
from the count the remote reports as written into the process's input. The
caller sees one continuous byte stream, plus :class:`LinkStatus` lines at
line boundaries.
"""

from __future__ import annotations

import contextlib
import logging
import math
import signal
import time

import anyio
from anyio.abc import ByteReceiveStream, ByteSendStream

from ...errors import ExecutorError, ProcessLost
from .._backend import Backend
from .._piped_process import PipedProcess
from .._remote_job import RemoteJob
from .._remote_process import RemoteProcess, refill_after_job, start_job
from ..link_status import LinkStatus

__all__ = ["JobWatch", "ReattachingProcess", "grace_seconds", "is_supervised", "watch_job"]

log = logging.getLogger("remote_executors.ssh")

#: Seconds between reconnect attempts: short at first (a blip), then at most
#: this often so a restored link carries the stream again within a second.
BACKOFF = (0.1, 0.2, 0.4, 0.5)
#: stdin bytes kept for resending after a reconnect (stdin is prompts and
#: control answers: small). Past it the oldest go, and a reattach that needs
#: them fails with ProcessLost rather than feed the process a gap.
STDIN_KEEP = 32 << 20
#: Output pulled by ``wait()`` for a caller that is not reading stdout.
UNREAD_KEEP = 1 << 20
_CHANNEL_ENDED = (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError)


def is_supervised(process: RemoteProcess) -> bool:
    """True when the bootstrap put the job under the supervisor (the host has perl)."""
    return len(process.status.values) > 3 and bool(process.status.values[3])


class ReattachingProcess(PipedProcess):
    """A remote process that outlives dropped links for ``grace`` seconds.

    ``terminate()``/``kill()`` stop it on the remote at once (a ``stop``
    line to the supervisor), as they stop an unsupervised one.
    """

    def __init__(
        self,
        backend: Backend,
        job: RemoteJob,
        first: RemoteProcess,
        *,
        grace: float,
        pipe_stderr: bool,
    ) -> None:
        self.host = first.host
        self.status = first.status
        self._backend = backend
        self._job = job
        self._dir = first.status.values[3]
        self._grace = grace
        self._pipe_stderr = pipe_stderr
        self._att: RemoteProcess | None = first
        # The executor's spare channel, refilled when the job ends on a live
        # link (the first attachment would only on a wait() nobody makes).
        self._spare, first.spare = first.spare, None
        self._retired: list[RemoteProcess] = []
        self._out_at = 0  # stdout bytes received from the remote
        self._err_at = 0  # stderr bytes received (piped stderr only)
        self._line_start = True
        self._stash = b""  # received, held back until a status line went out
        self._notes: list[bytes] = []  # status lines waiting for a line boundary
        self._unread = bytearray()  # pulled by wait() for a caller not reading
        self._pull_lock = anyio.Lock()
        self._stdin_lock = anyio.Lock()
        self._stdin_log = bytearray()  # stdin not known to have reached the process
        self._log_base = 0  # stdin offset of _stdin_log[0]
        self._stdin_closed = False
        self._partial = b""
        self._returncode: int | None = None
        self._finished = anyio.Event()
        self._changed = anyio.Event()
        self._lost: ExecutorError | None = None
        self._signalled = False
        self._detached_at: float | None = None
        self._stop_pending = False
        self._ending: RemoteProcess | None = None  # finished, its channel not closed yet
        self._err_ends: dict[int, anyio.Event] = {}
        self._err_read = False  # whether the caller ever read stderr
        self.reattached = 0  # how many times the stream was resumed
        self._stdin = _Stdin(self)
        self._stdout = _Stdout(self)
        self._stderr = _Stderr(self) if pipe_stderr else None

    # -- what RemoteProcess offers too --------------------------------------

    @property
    def remote_path(self) -> str:
        return self.status.values[0] if self.status.values else ""

    @property
    def remote_cwd(self) -> str:
        return self.status.values[1] if len(self.status.values) > 1 else ""

    @property
    def remote_dir(self) -> str:
        """The job's private directory on the host (spool, FIFO)."""
        return self._dir

    def stderr_tail(self) -> str:
        att = self._att or (self._retired[-1] if self._retired else None)
        return att.stderr_tail() if att is not None else ""

    def lost_error(self) -> ExecutorError | None:
        return self._lost

    # -- stdout -------------------------------------------------------------

    async def _receive(self, max_bytes: int) -> bytes:
        async with self._pull_lock:
            if self._unread:
                data = bytes(self._unread[:max_bytes])
                del self._unread[:max_bytes]
                return data
            return await self._pull(max_bytes)

    async def _pull(self, max_bytes: int) -> bytes:
        while True:
            if self._notes and self._line_start:
                return self._notes.pop(0)
            if self._stash:
                data, self._stash = self._stash[:max_bytes], self._stash[max_bytes:]
                return self._deliver(data)
            if self._returncode is not None:
                raise anyio.EndOfStream
            att = self._att
            if att is None:
                await self._reconnect()
                continue
            try:
                data = await att.stdout.receive(max_bytes)
            except _CHANNEL_ENDED:
                await self._channel_ended(att)
                continue
            self._out_at += len(data)
            return self._deliver(data)

    def _deliver(self, data: bytes) -> bytes:
        """``data`` for the caller; cut after its first newline when a status waits."""
        if self._notes and not self._line_start:
            newline = data.find(b"\n")
            if 0 <= newline < len(data) - 1:
                data, self._stash = data[: newline + 1], data[newline + 1 :] + self._stash
        self._line_start = data.endswith(b"\n")
        return data

    async def _channel_ended(self, att: RemoteProcess) -> None:
        decoder = att._stdout.decoder
        if decoder.ended:
            # Every byte is here: let the supervisor remove the spool, then end.
            text = decoder.trailer.decode("ascii", "replace").strip()
            code = int(text) if text.lstrip("-").isdigit() else 255
            if text == "spool":
                self._lost = ProcessLost(
                    f"The process on {self.host} was stopped: the supervisor process that "
                    "kept its output on the host (a perl) was killed, so no output could "
                    "reach this side any more. Check what kills processes there (the OOM "
                    f"killer: `dmesg` on {self.host}); the session can be resumed.",
                    host=self.host,
                    exit_code=255,
                )
            with contextlib.suppress(OSError):
                await anyio.to_thread.run_sync(att._channel.write_stdin, att._job.marker("done"))
            self._finish(code)
            # The channel ends once the host cleaned up; aclose() waits for it,
            # the caller's stream need not.
            self._att = None
            self._ending = att
            self._kick()
            return
        # Detached from now on, even if retiring the old channel is cut short
        # (a cancelled wait() in aclose): the grace counts from here.
        self._detached_at = time.monotonic()
        await self._retire(att, wait=False)
        if self._returncode is not None:
            return  # stopped by the caller meanwhile
        log.info("%s: link lost, reconnecting (up to %g s)", self.host, self._grace)
        self._note(
            LinkStatus(
                state="detached",
                host=self.host,
                message=f"Link to {self.host} lost, reconnecting",
                grace=self._grace,
            )
        )

    def _note(self, status: LinkStatus) -> None:
        self._notes.append(status.to_line())

    async def _retire(self, att: RemoteProcess, *, wait: bool) -> None:
        if self._att is att:
            self._att = None
            self._kick()
        if any(old is att for old in self._retired):
            return  # another task (aclose racing the SDK's close) has it
        self._retired = [*self._retired[-1:], att]
        with anyio.CancelScope(shield=True), contextlib.suppress(*_CHANNEL_ENDED):
            if wait:
                with anyio.move_on_after(5):
                    await att._channel.wait()
                if att.stderr is not None and self._err_read:
                    # Its stderr may still hold the job's last bytes: let the
                    # caller's reader have them before the pipe closes (a
                    # caller that never read stderr is not waited for).
                    with anyio.move_on_after(2):
                        await self._err_done(att).wait()
            if att.returncode is None:
                att._channel.send_signal(signal.SIGKILL)
            att._stop_heartbeat()
            with anyio.move_on_after(5):
                await att._channel.aclose()

    async def _reconnect(self) -> None:
        if self._detached_at is None:  # see _channel_ended
            self._detached_at = time.monotonic()
        deadline = self._detached_at + self._grace
        last: ExecutorError | None = None
        for attempt in range(1_000_000):
            if self._returncode is not None:
                return
            left = deadline - time.monotonic()
            if left <= 0:
                self._give_up(last)
                return
            job = RemoteJob(
                argv=("attach",),
                mode="attach",
                attach_dir=self._dir,
                stdout_at=self._out_at,
                stderr_at=self._err_at if self._pipe_stderr else -1,
                heartbeat_misses=self._job.heartbeat_misses,
            )
            try:
                att = await start_job(
                    self._backend, job, pipe_stderr=self._pipe_stderr, startup_timeout=left
                )
            except ProcessLost as exc:  # the job is gone there
                self._give_up(exc)
                return
            except ExecutorError as exc:
                last = exc
                await anyio.sleep(min(BACKOFF[min(attempt, len(BACKOFF) - 1)], max(left, 0)))
                continue
            try:
                await self._resume_stdin(att)
            except ProcessLost as exc:
                await self._retire(att, wait=False)
                self._give_up(exc)
                return
            down = time.monotonic() - self._detached_at
            # The next drop gets the whole grace again, counted from when it happens.
            self._detached_at = None
            self._att = att
            self._kick()
            self.reattached += 1
            log.info("%s: reattached after %.1f s", self.host, down)
            self._note(
                LinkStatus(
                    state="reattached",
                    host=self.host,
                    message=f"Reattached to {self.host} after {down:.1f} s",
                    seconds=down,
                    grace=self._grace,
                )
            )
            return

    async def _resume_stdin(self, att: RemoteProcess) -> None:
        """Resend what the remote did not write into the process's input yet."""
        values = att.status.values
        acked = int(values[0]) if values and values[0].isdigit() else -1
        remote_eof = len(values) > 1 and values[1] == "1"
        async with self._stdin_lock:
            start = acked - self._log_base
            if not 0 <= start <= len(self._stdin_log):
                raise ProcessLost(
                    f"Reattached to {self.host}, but the process there has read stdin up to "
                    f"byte {acked}, which this side no longer holds or never sent. The "
                    "session can be resumed.",
                    host=self.host,
                )
            del self._stdin_log[:start]
            self._log_base = acked
            data = bytes(self._stdin_log)
            cut = data.rfind(b"\n") + 1
            out = data[:cut]
            if self._stdin_closed and not remote_eof:
                if data[cut:]:
                    out += att._job.tail(data[cut:])
                out += att._job.marker("eof")
            if out:
                with contextlib.suppress(OSError):
                    await anyio.to_thread.run_sync(att._channel.write_stdin, out)

    def _give_up(self, cause: ExecutorError | None) -> None:
        waited = self._grace
        detail = f"{type(cause).__name__}: {cause}" if cause is not None else ""
        self._lost = ProcessLost(
            f"Lost the connection to {self.host} while the process was running and could "
            f"not reattach within {waited:g} s (reattach_within); the host stops it. The "
            "session can be resumed once the host is reachable again.",
            host=self.host,
            detail=detail,
            exit_code=255,
        )
        self._finish(255)

    def _finish(self, code: int) -> None:
        if self._returncode is None:
            self._returncode = code
        self._finished.set()
        self._kick()

    def _kick(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    # -- stdin --------------------------------------------------------------

    async def _send(self, item: bytes) -> None:
        if self._stdin_closed:
            raise anyio.ClosedResourceError
        async with self._stdin_lock:
            data = self._partial + bytes(item)
            cut = data.rfind(b"\n") + 1
            data, self._partial = data[:cut], data[cut:]
            if not data:
                return
            self._keep(data)
            await self._write(data)

    def _keep(self, data: bytes) -> None:
        self._stdin_log += data
        if len(self._stdin_log) > STDIN_KEEP:
            drop = len(self._stdin_log) - STDIN_KEEP
            del self._stdin_log[:drop]
            self._log_base += drop

    async def _write(self, data: bytes) -> None:
        """To the current attachment; a failure is the stdout side's to notice."""
        att = self._att
        if att is None or self._returncode is not None:
            return
        with contextlib.suppress(OSError):
            await anyio.to_thread.run_sync(att._channel.write_stdin, data, abandon_on_cancel=True)

    async def _close_stdin(self) -> None:
        if self._stdin_closed:
            return
        async with self._stdin_lock:
            self._stdin_closed = True
            tail, self._partial = self._partial, b""
            self._keep(tail)
            att = self._att
            if att is not None:
                await self._write((att._job.tail(tail) if tail else b"") + att._job.marker("eof"))

    # -- stderr -------------------------------------------------------------

    def _err_done(self, att: RemoteProcess) -> anyio.Event:
        """Set once the caller read ``att``'s stderr to its end."""
        return self._err_ends.setdefault(id(att), anyio.Event())

    async def _receive_err(self, max_bytes: int) -> bytes:
        self._err_read = True
        while True:
            att = self._att if self._att is not None else self._ending
            changed = self._changed
            if att is not None and att.stderr is not None:
                try:
                    data = await att.stderr.receive(max_bytes)
                except _CHANNEL_ENDED:
                    data = b""
                if data:
                    self._err_at += len(data)
                    return data
                self._err_done(att).set()
                if self._returncode is not None:
                    raise anyio.EndOfStream
                if self._att is att:
                    await changed.wait()  # stdout notices the end and moves on
                continue
            if self._returncode is not None:
                raise anyio.EndOfStream
            await changed.wait()

    # -- the process --------------------------------------------------------

    async def wait(self) -> int:
        while self._returncode is None:
            if len(self._unread) >= UNREAD_KEEP:
                await self._finished.wait()
                break
            # Nobody may be reading stdout (the SDK's close() waits after
            # cancelling its reader): keep pulling so the job can end.
            async with self._pull_lock:
                if self._returncode is None:
                    with contextlib.suppress(anyio.EndOfStream):
                        self._unread += await self._pull(65536)
        assert self._returncode is not None
        return self._returncode

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def send_signal(self, signal: int) -> None:
        """Stop the job on the remote at once (any signal: the supervisor stops the
        process gently, then its whole group)."""
        self._signalled = True
        if self._returncode is not None:
            return
        att = self._att
        if att is not None:
            with contextlib.suppress(OSError):
                att._channel.write_stdin(att._job.marker("stop"))
            att._stop_heartbeat()
        else:
            # No channel to say it on: aclose() tries one new attachment, and
            # failing that the host ends the process after the grace.
            self._stop_pending = True
        self._finish(-int(signal))

    @property
    def pid(self) -> int:
        att = self._att or (self._retired[-1] if self._retired else None)
        return att.pid if att is not None else 0

    @property
    def returncode(self) -> int | None:
        return self._returncode

    async def aclose(self) -> None:
        with anyio.CancelScope(shield=True):
            await self._stdin.aclose()
            if self._returncode is None:
                with anyio.move_on_after(5):
                    await self.wait()
            if self._returncode is None:
                self.terminate()
            # Attached at the end (not detached, nor lost past the grace): the
            # next spare opens while the host cleans this job up, not after.
            spare, self._spare = self._spare, None
            linked = self._lost is None and (self._att or self._ending) is not None
            async with anyio.create_task_group() as tasks:
                if linked:
                    tasks.start_soon(refill_after_job, spare)
                for att in (self._att, self._ending):
                    if att is not None:
                        await self._retire(att, wait=True)
            self._ending = None
            if self._stop_pending:
                self._stop_pending = False
                await self._stop_detached()

    async def _stop_detached(self) -> None:
        """Best effort, bounded: reach the job over a new channel to stop it."""
        job = RemoteJob(
            argv=("attach",),
            mode="attach",
            attach_dir=self._dir,
            stdout_at=self._out_at,
            stderr_at=-1,
        )
        with anyio.move_on_after(5):
            try:
                att = await start_job(self._backend, job, pipe_stderr=False, startup_timeout=5)
            except ExecutorError as exc:
                log.info(
                    "%s: stopped while the link is down (%s); the host ends the process after %g s",
                    self.host,
                    exc,
                    self._grace,
                )
                return
            with contextlib.suppress(OSError):
                att._channel.write_stdin(job.marker("stop"))
            await self._retire(att, wait=True)


class _Stdout(ByteReceiveStream):
    def __init__(self, owner: ReattachingProcess) -> None:
        self._owner = owner

    async def receive(self, max_bytes: int = 65536) -> bytes:
        return await self._owner._receive(max_bytes)

    async def aclose(self) -> None:
        pass


class _Stderr(ByteReceiveStream):
    def __init__(self, owner: ReattachingProcess) -> None:
        self._owner = owner

    async def receive(self, max_bytes: int = 65536) -> bytes:
        return await self._owner._receive_err(max_bytes)

    async def aclose(self) -> None:
        pass


class _Stdin(ByteSendStream):
    def __init__(self, owner: ReattachingProcess) -> None:
        self._owner = owner

    async def send(self, item: bytes) -> None:
        await self._owner._send(item)

    async def aclose(self) -> None:
        await self._owner._close_stdin()


def grace_seconds(reattach_within: float) -> int:
    """The supervisor's grace, whole seconds (0: no supervisor)."""
    return math.ceil(reattach_within) if reattach_within > 0 else 0


class JobWatch:
    """A read-only channel to a supervised job; see :func:`watch_job`."""

    def __init__(self, process: RemoteProcess) -> None:
        self.host = process.host
        self._process = process

    @property
    def size_at_start(self) -> int:
        """The spool's size (bytes of output) when the watch began."""
        values = self._process.status.values
        return int(values[0]) if values and values[0].isdigit() else 0

    @property
    def attached(self) -> bool:
        """A client held the job's channel when the watch began."""
        values = self._process.status.values
        return len(values) > 1 and values[1] == "1"

    @property
    def ended(self) -> bool:
        """The job's end frame arrived: the process exited, all its output is here."""
        return self._process._stdout.decoder.ended

    async def receive(self, max_bytes: int = 65536) -> bytes:
        """The job's output; ``anyio.EndOfStream`` at its end or when the channel drops."""
        try:
            return await self._process.stdout.receive(max_bytes)
        except _CHANNEL_ENDED:
            raise anyio.EndOfStream from None

    async def say(self, word: str) -> None:
        """A control line: ``release`` (close the process's input when no client
        is attached) or ``done`` (the output was collected: the job may go)."""
        channel = self._process._channel
        with contextlib.suppress(OSError):
            await anyio.to_thread.run_sync(channel.write_stdin, self._process._job.marker(word))

    async def aclose(self) -> None:
        process = self._process
        with anyio.CancelScope(shield=True):
            process._stop_heartbeat()
            with contextlib.suppress(*_CHANNEL_ENDED, OSError):
                await process.stdin.aclose()
            with anyio.move_on_after(3):
                await process.wait()
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError, OSError):
                    process.kill()
            with anyio.move_on_after(5), contextlib.suppress(*_CHANNEL_ENDED, OSError):
                await process.aclose()


async def watch_job(backend: Backend, job_dir: str, stdout_at: int = 0) -> JobWatch:
    """A read-only channel to the supervised job in ``job_dir`` (``watch`` mode).

    It receives the job's output from byte ``stdout_at``, up to the job's end
    frame once the process exited; its heartbeats keep the job's grace from
    running out. A client still attached keeps its channel. Raises
    :class:`ProcessLost` when the job is gone.
    """
    job = RemoteJob(
        argv=("watch",),
        mode="watch",
        attach_dir=job_dir,
        stdout_at=stdout_at,
        stderr_at=-1,
        heartbeat_misses=1,  # any value > 0: the channel sends heartbeats
    )
    return JobWatch(await start_job(backend, job, pipe_stderr=False, startup_timeout=30))
