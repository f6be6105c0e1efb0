"""The live follower: a session's remote files reach the local copy while the turn runs.

One small Perl process per session (``follow.pl``, core modules only) runs
on the executor's machine, started with ``Executor.spawn``, so it rides the
executor's own connection (the SSH master, or the Fabric transport): no new
login, no process per file. Where ``inotifywait`` is installed there, it
sleeps until a file of the session changes (``wait="auto"``); otherwise it
polls them (every :data:`TICK` seconds while they change, four times that
once quiet: a few ``stat`` calls, no process started per look). Either way
it sends every appended byte as a frame; :mod:`._live_frames` reads the
frames, :mod:`._live_files` applies them under the turn-end sync's rules.

At a turn's result, :meth:`LiveFollower.confirm` asks the follower to look at
everything once more and waits for its answer: one round trip over the open
channel instead of a pull. The follower stops with the session (its stdin
closes; the remote side's watchdog stops it if the link drops).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Coroutine
from importlib import resources
from typing import Any, Literal

import anyio
import sniffio
from anyio.abc import Process

from remote_executors.errors import ExecutorError
from remote_executors.executors.base import Executor, SpawnOptions, is_closed
from remote_executors.sync._live_files import LiveFiles, local_sizes
from remote_executors.sync._live_frames import (
    Data,
    FrameParser,
    Head,
    Hello,
    LiveProtocolError,
    Problem,
    Synced,
)
from remote_executors.sync._reconcile import local_files
from remote_executors.sync.base import MAX_FILE_BYTES, MAX_SESSION_BYTES, SessionPaths

__all__ = ["TICK", "LiveFollower"]

log = logging.getLogger("remote_executors.sync")

#: Seconds between looks at the session's files while they change.
TICK = 0.02
_SCRIPT = resources.files(__package__).joinpath("follow.pl").read_text("utf-8")
# The login shell runs /bin/sh, which finds perl (or says it cannot).
_START = """LC_ALL=C
export LC_ALL
command -v perl >/dev/null 2>&1 || { printf 'L 1 noperl\\n'; exit 0; }
rx_pl=$1
shift
exec perl -e "$rx_pl" -- "${CLAUDE_CONFIG_DIR:-$HOME/.claude}/projects/$1" "$2" "$3" "$4" "$5"
"""
#: Restarts after a dropped channel, at most, per follower (each from the local sizes).
MAX_RESTARTS = 20
#: How long the follower may take to say hello, and to answer a confirmation.
START_SECONDS = 15.0


class LiveFollower:
    """Follows one session of ``executor``; see the module doc.

    ``wait="poll"`` polls even where ``inotifywait`` is installed.
    """

    def __init__(
        self,
        executor: Executor,
        paths: SessionPaths,
        *,
        max_file_bytes: int = MAX_FILE_BYTES,
        max_session_bytes: int = MAX_SESSION_BYTES,
        tick: float = TICK,
        wait: Literal["auto", "poll"] = "auto",
    ) -> None:
        if paths.session_id is None:
            raise ValueError("a live follower follows one session")
        self.executor = executor
        self.paths = paths
        self.files = LiveFiles(
            paths.local_dir,
            max_file_bytes=max_file_bytes,
            max_session_bytes=max_session_bytes,
            host=executor.name,
        )
        self._tick = tick
        self._wait = wait
        self._max_file = max_file_bytes
        self.lock = anyio.Lock()
        """Held while frames are applied; a pull holds it so the two never interleave."""
        self.mode: str | None = None
        self.error: BaseException | None = None
        self._process: Process | None = None
        self._grace = 3.0  # how long the process gets to exit: stop() may set it
        self._task: _Detached | None = None
        self._seq = 0
        self._synced = 0
        self._synced_event = anyio.Event()
        self._ready = anyio.Event()
        self._stopping = False
        self._dropped = False  # the channel ended while following (not stopped)
        self._greeted = False  # the current process said hello (confirm may talk to it)
        self.restarts = 0
        """How many times the follower was restarted after its channel dropped."""

    @property
    def running(self) -> bool:
        return (
            self._process is not None
            and self._greeted
            and self.error is None
            and not self._stopping
        )

    def begin(self) -> None:
        """Start following in the background (the caller does not wait for the remote)."""
        if self._task is None and not self._stopping:
            self._task = _detached(self._run())

    async def confirm(self, timeout: float = 5.0) -> bool:
        """Have the follower send everything on the remote disk now, and wait until
        it landed here. True when every file is in step (no pull needed)."""
        if self._task is None:
            return False
        seq = 0
        try:
            with anyio.fail_after(timeout):
                await self._ready.wait()
                process = self._process
                if not self.running or process is None or process.stdin is None:
                    return False
                self._seq += 1
                seq = self._seq
                await process.stdin.send(b"F %d\n" % seq)
                while self._synced < seq and self.running:
                    await self._synced_event.wait()
        except (TimeoutError, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
            log.info("%s: live follow did not confirm: %s", self.executor.name, exc)
            return False
        except ExecutorError as exc:
            self.error = exc
            return False
        return self._synced >= seq and self.running and self.files.in_step

    async def stop(self, grace: float = 3.0) -> None:
        """Stop following; nothing is left running on the remote. ``grace``: how long
        it may take to exit on its own before it is killed."""
        self._stopping = True
        self._grace = grace
        task, self._task = self._task, None
        if task is None:
            return
        with anyio.CancelScope(shield=True):
            process = self._process
            if process is not None and process.stdin is not None:
                with contextlib.suppress(Exception):
                    await process.stdin.aclose()  # the follower exits at the end of its stdin
            with anyio.move_on_after(grace):
                await task.wait()
            task.cancel()
            with anyio.move_on_after(10):
                await task.wait()

    # -- internals --------------------------------------------------------------

    async def _run(self) -> None:
        try:
            parser = await self._start()
            self._ready.set()
            while parser is not None:
                await self._pump(parser)
                parser = await self._restart()
        except Exception as exc:  # best effort: the turn-end sync takes over
            self.error = exc
            log.warning(
                "%s: live follow of session %s stopped (the turn-end sync takes over): %r",
                self.executor.name,
                self.paths.session_id,
                exc,
            )
            log.debug("live follower failure", exc_info=True)
        finally:
            self._ready.set()
            self._wake()
            await self._end_process()

    async def _start(self) -> FrameParser | None:
        """Start the remote side; None (and :attr:`error` set) when it cannot run there."""
        paths = self.paths
        sid = paths.session_id
        assert sid is not None
        env = {}
        if paths.remote_config_dir is not None:
            env["CLAUDE_CONFIG_DIR"] = paths.remote_config_dir
        args = ["-c", _START, "rx-live", _SCRIPT, paths.remote_project, sid,
                str(self._max_file), str(max(1, round(self._tick * 1000))), self._wait]  # fmt: skip
        parser = FrameParser(sid)
        self._greeted = False
        try:
            self._process = process = await self.executor.spawn(
                SpawnOptions("/bin/sh", args, env=env)
            )
            assert process.stdin is not None and process.stdout is not None
            known = local_sizes(paths.local_dir, local_files(paths.local_dir, sid))
            self.files.total = sum(known.values())
            listing = b"".join(
                b"%d %s\n" % (size, rel.encode("utf-8", "surrogateescape"))
                for rel, size in known.items()
            )
            with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                # It may have exited already (no perl there): its answer says so.
                await process.stdin.send(listing + b".\n")
            hello: Hello | None = None
            with anyio.fail_after(START_SECONDS):
                while hello is None:
                    frames = parser.feed(await process.stdout.receive(65536))
                    if frames:
                        first = frames[0]
                        assert isinstance(first, Hello)
                        hello = first
                        await self._apply(frames[1:])
        except (
            ExecutorError,
            LiveProtocolError,
            OSError,
            TimeoutError,
            anyio.EndOfStream,
            anyio.BrokenResourceError,
            anyio.ClosedResourceError,
        ) as exc:
            why = str(exc) or f"{type(exc).__name__} (it exited before saying hello)"
            log.info("%s: live follow could not start: %s", self.executor.name, why)
            self.error = exc
            return None
        self.mode = hello.mode
        self._greeted = True
        if hello.mode == "noperl":
            log.info("%s: no perl there: transcripts move at turn ends only", self.executor.name)
            self.error = RuntimeError(f"{self.executor.name}: no perl to follow the session with")
            return None
        return parser

    async def _pump(self, parser: FrameParser) -> None:
        process = self._process
        assert process is not None and process.stdout is not None
        try:
            while True:
                try:
                    chunk = await process.stdout.receive(1 << 18)
                except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
                    if not self._stopping:
                        self._dropped = True  # the link, most likely: _restart decides
                    return
                await self._apply(parser.feed(chunk))
        except (LiveProtocolError, OSError, ExecutorError) as exc:
            log.warning(
                "%s: live follow of session %s stopped (the turn-end sync takes over): %s",
                self.executor.name,
                self.paths.session_id,
                exc,
            )
            self.error = exc

    async def _restart(self) -> FrameParser | None:
        """After the channel dropped: a new follower from the local sizes, once the
        link is back (the session's process reattaches meanwhile, see ``_reattach``).

        follow.pl re-sends a window before each local end and the file's head,
        both checked here, so nothing is lost, repeated or applied over a diverged
        copy. Gives up (the turn-end sync takes over) when the executor does not
        reattach, or after its ``reattach_within``.
        """
        dropped, self._dropped = self._dropped, False
        patience = float(getattr(self.executor, "reattach_within", 0.0) or 0.0)
        if (
            not dropped
            or self._stopping
            or patience <= 0
            or is_closed(self.executor)
            or self.restarts >= MAX_RESTARTS  # one that keeps dying is not a dropped link
        ):
            if dropped and not self._stopping:
                self.error = EOFError(f"{self.executor.name}: the live follower stopped")
            return None
        grace, self._grace = self._grace, 0.5  # the old channel is dead: don't wait on it
        await self._end_process()
        self._grace = grace
        log.info("%s: live follower lost its channel, restarting", self.executor.name)
        deadline = anyio.current_time() + patience
        delay = 0.1
        while not self._stopping and not is_closed(self.executor):
            self.error = None
            parser = await self._start()
            if parser is not None:
                self.restarts += 1
                return parser
            if self.mode == "noperl" or anyio.current_time() + delay > deadline:
                return None
            await self._end_process()
            await anyio.sleep(delay)
            delay = min(delay * 2, 0.5)
        return None

    async def _apply(self, frames: list[Any]) -> None:
        if not frames:
            return
        async with self.lock:
            for frame in frames:
                if isinstance(frame, Data):
                    self.files.data(frame)
                elif isinstance(frame, Head):
                    self.files.head(frame)
                elif isinstance(frame, Problem):
                    self.files.problem(frame)
                elif isinstance(frame, Synced):
                    self._synced = max(self._synced, frame.seq)
                    self._wake()
                else:
                    raise LiveProtocolError("a second hello")

    def _wake(self) -> None:
        event, self._synced_event = self._synced_event, anyio.Event()
        event.set()

    async def _end_process(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        with anyio.CancelScope(shield=True):
            if process.stdin is not None:
                with contextlib.suppress(Exception):
                    await process.stdin.aclose()  # the follower exits at the end of its stdin
            with anyio.move_on_after(self._grace):
                await process.wait()
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                with anyio.move_on_after(5):
                    await process.wait()
            with contextlib.suppress(Exception):
                await process.aclose()


# -- a task that outlives the call that started it -----------------------------


class _Detached:
    """A background task on the running event loop (asyncio or trio), cancellable."""

    def __init__(self) -> None:
        self.scope = anyio.CancelScope()
        self.done = anyio.Event()

    def cancel(self) -> None:
        self.scope.cancel()

    async def wait(self) -> None:
        await self.done.wait()


def _detached(coro: Coroutine[Any, Any, None]) -> _Detached:
    """Run ``coro`` in the background; its errors are logged, never raised.

    The follower outlives the call that starts it (the SDK reads a session's
    messages in a task of its own that may stop reading at any point), so a
    task group there would outlive its scope.
    """
    handle = _Detached()

    async def runner() -> None:
        try:
            with handle.scope:
                await coro
        except Exception:  # a background task has nobody to raise to
            log.exception("live follower task failed")
        finally:
            handle.done.set()

    if sniffio.current_async_library() == "trio":
        import trio

        trio.lowlevel.spawn_system_task(runner)
    else:
        import asyncio

        task = asyncio.get_running_loop().create_task(runner())
        _TASKS.add(task)
        task.add_done_callback(_TASKS.discard)
    return handle


_TASKS: set[Any] = set()  # asyncio keeps only weak references to tasks
