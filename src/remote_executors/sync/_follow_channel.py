"""The live follower's remote process: one per executor, shared by its sessions.

``follow.pl`` (core Perl, what perl-base has) runs on the executor's machine,
started with ``Executor.spawn``, so it rides the executor's own connection
(the SSH master, the Fabric transport, a ``docker exec``): no new login, no
process per file, and one process (one more channel) per executor however
many sessions it runs, instead of one per session: with OpenSSH each channel
is an ``ssh`` client here (~1.4 MiB), and a perl there.

Sessions join with ``A`` (their files and the local sizes to start from),
leave with ``R``, and ask ``F`` for a confirmation; every frame back names its
session by the tag it joined with (see :mod:`._live_frames`). The process
starts with the first session and stops with the last (its stdin closes; the
remote side's watchdog stops it if the link drops), or, on an executor that
keeps a warm spare (``warm_spawn``), up to :data:`LINGER_SECONDS` later: the
next session then joins a running follower instead of starting one in the
middle of its turn, where the channel, the login shell and perl starting up
compete with the CLI for the host's CPU. Closing the executor stops it at
once. When its channel drops
while sessions are followed and the executor reattaches, it is started again
and every session joins again from its local sizes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Coroutine
from importlib import resources
from typing import TYPE_CHECKING, Any

import anyio
import sniffio
from anyio.abc import Process

from remote_executors.errors import ExecutorError
from remote_executors.executors.base import Executor, SpawnOptions, is_closed
from remote_executors.sync._live_files import local_sizes
from remote_executors.sync._live_frames import FrameParser, Hello, LiveProtocolError
from remote_executors.sync._reconcile import local_files

if TYPE_CHECKING:
    from remote_executors.sync._follower import LiveFollower

__all__ = ["LINGER_SECONDS", "MAX_RESTARTS", "START_SECONDS", "FollowChannel", "channel_for"]

log = logging.getLogger("remote_executors.sync")

VERSION = 2
_SCRIPT = resources.files(__package__).joinpath("follow.pl").read_text("utf-8")
# The login shell runs /bin/sh, which finds perl (or says it cannot).
_START = """LC_ALL=C
export LC_ALL
command -v perl >/dev/null 2>&1 || { printf 'L 2 noperl\\n'; exit 0; }
exec perl -e "$1" -- "$2" "$3"
"""
#: Restarts after a dropped channel, at most, per process.
MAX_RESTARTS = 20
#: How long the follower may take to say hello.
START_SECONDS = 15.0
#: How long a follower with no session left waits for the next one, on an
#: executor with ``warm_spawn`` (as long as its spare channel waits).
LINGER_SECONDS = 120.0
_DROPPED = (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError)

# What follow.pl accepts (a project dir name is [A-Za-z0-9-], a session id a UUID).
_PROJECT = re.compile(r"[A-Za-z0-9._-]{1,255}")
_SID = re.compile(r"[A-Za-z0-9_-]{1,128}")
_CHANNELS: dict[tuple[int, float, str, int], FollowChannel] = {}


def channel_for(executor: Executor, tick: float, wait: str) -> FollowChannel:
    """The follower process of ``executor`` on this event loop (a new one when none runs)."""
    key = (id(executor), tick, wait, _loop_token())
    channel = _CHANNELS.get(key)
    if channel is None or channel.closing:
        channel = _CHANNELS[key] = FollowChannel(executor, tick, wait, key)
    return channel


class FollowChannel:
    """One ``follow.pl`` on ``executor``'s machine, following every session that joined."""

    def __init__(
        self, executor: Executor, tick: float, wait: str, key: tuple[int, float, str, int]
    ) -> None:
        self.executor = executor
        self._tick = tick
        self._wait = wait
        self._key = key
        self.sessions: dict[int, LiveFollower] = {}
        self._next_tag = 1
        self.mode: str | None = None
        self.error: BaseException | None = None
        """Why the process does not run (no perl there, a lying stream, a failed start)."""
        self.restarts = 0
        self.process: Process | None = None
        self.closing = False
        self._task: _Detached | None = None
        self._announced: set[int] = set()  # tags that joined the current process
        self._send_lock = anyio.Lock()
        self._ready = anyio.Event()  # the current process said hello (or failed to)
        self._wakeup = anyio.Event()  # a session is waiting to join
        self._greeted = False
        self._dropped = False
        self._grace = 3.0
        self._linger: _Detached | None = None  # waiting, with no session, for the next one

    @property
    def running(self) -> bool:
        return (
            self.process is not None and self._greeted and self.error is None and not self.closing
        )

    def join(self, follower: LiveFollower) -> int:
        """Follow ``follower``'s session from now on; returns its tag."""
        tag = self._next_tag
        self._next_tag += 1
        self.sessions[tag] = follower
        linger, self._linger = self._linger, None
        if linger is not None:
            linger.cancel()
        if self._task is None:
            self._task = _detached(self._run())
        self._wake_joiner()
        return tag

    async def leave(self, tag: int, grace: float) -> None:
        """Stop following session ``tag``; the last one to leave stops the process."""
        follower = self.sessions.pop(tag, None)
        if follower is not None:
            follower.wake()
        lingers = not self.sessions and self._lingers()
        if self.sessions or lingers:
            if tag in self._announced:
                self._announced.discard(tag)
                with contextlib.suppress(*_DROPPED, OSError, ExecutorError):
                    await self._send(b"R %d\n" % tag)
            if lingers and not self.sessions and self._linger is None:
                self._linger = _detached(self._close_when_idle(grace))
            return
        await self._close(grace)

    async def confirm(self, tag: int, seq: int) -> bool:
        """Ask for everything of session ``tag`` now (joined first if it has not yet)."""
        await self._ready.wait()
        if not self.running:
            return False
        await self._announce(tag)
        if tag not in self._announced:
            return False
        await self._send(b"F %d %d\n" % (tag, seq))
        return True

    # -- internals --------------------------------------------------------------

    def _lingers(self) -> bool:
        """Whether the process waits for a next session (see the module's doc)."""
        return (
            LINGER_SECONDS > 0
            and self.running
            and bool(getattr(self.executor, "warm_spawn", False))
            and not is_closed(self.executor)
        )

    async def _close_when_idle(self, grace: float) -> None:
        """Stop the process once it has had no session for :data:`LINGER_SECONDS`."""
        await anyio.sleep(LINGER_SECONDS)
        if not self.sessions and not self.closing:
            self._linger = None  # closing from this task: _run's end must not cancel it
            await self._close(grace)

    async def _close(self, grace: float) -> None:
        self.closing = True
        if _CHANNELS.get(self._key) is self:
            del _CHANNELS[self._key]
        self._grace = grace
        task, self._task = self._task, None
        if task is None:
            return
        with anyio.CancelScope(shield=True):
            process = self.process
            if process is not None and process.stdin is not None:
                with contextlib.suppress(Exception):
                    await process.stdin.aclose()  # the follower exits at the end of its stdin
            with anyio.move_on_after(grace):
                await task.wait()
            task.cancel()
            with anyio.move_on_after(10):
                await task.wait()

    async def _send(self, data: bytes) -> None:
        process = self.process
        if process is None or process.stdin is None:
            raise anyio.ClosedResourceError
        async with self._send_lock:
            await process.stdin.send(data)

    async def _announce(self, tag: int) -> None:
        """Have session ``tag`` join the current process, from its local sizes."""
        async with self._send_lock:
            follower = self.sessions.get(tag)
            process = self.process
            if tag in self._announced or follower is None or process is None:
                return
            assert process.stdin is not None
            paths = follower.paths
            sid, project = paths.session_id or "", paths.remote_project
            if not (_PROJECT.fullmatch(project) and _SID.fullmatch(sid)) or project in (".", ".."):
                follower.refuse(ValueError(f"cannot follow {project!r}/{sid!r}"))
                return
            known = local_sizes(paths.local_dir, local_files(paths.local_dir, sid))
            follower.files.total = sum(known.values())
            config = paths.remote_config_dir
            where = b"-" if config is None else os.fsencode(config).hex().encode()
            head = b"A %d %d %s %s %s\n" % (
                tag, follower.max_file_bytes, project.encode(), sid.encode(), where
            )  # fmt: skip
            listing = b"".join(
                b"%d %s\n" % (size, rel.encode("utf-8", "surrogateescape"))
                for rel, size in known.items()
            )
            self._announced.add(tag)
            with contextlib.suppress(*_DROPPED, OSError):
                await process.stdin.send(head + listing + b".\n")

    async def _joiner(self) -> None:
        """Announce sessions as they join (confirm() may do it first)."""
        while True:
            for tag in list(self.sessions):
                await self._announce(tag)
            await self._wakeup.wait()
            self._wakeup = anyio.Event()

    def _wake_joiner(self) -> None:
        self._wakeup.set()

    async def _run(self) -> None:
        try:
            parser = await self._start()
            self._ready.set()
            while parser is not None:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._joiner)
                    await self._pump(parser)
                    tg.cancel_scope.cancel()
                parser = await self._restart()
        except Exception as exc:  # best effort: the turn-end sync takes over
            self.error = exc
            log.warning(
                "%s: live follow stopped (the turn-end sync takes over): %r",
                self.executor.name,
                exc,
            )
            log.debug("live follower failure", exc_info=True)
        finally:
            self.closing = True
            if _CHANNELS.get(self._key) is self:
                del _CHANNELS[self._key]
            linger, self._linger = self._linger, None
            if linger is not None:  # the process ended while it waited for a session
                linger.cancel()
            self._ready.set()
            for follower in list(self.sessions.values()):
                follower.wake()
            await self._end_process()

    async def _start(self) -> FrameParser | None:
        """Start the remote side; None (and :attr:`error` set) when it cannot run there."""
        args = ["-c", _START, "rx-live", _SCRIPT,
                str(max(1, round(self._tick * 1000))), self._wait]  # fmt: skip
        parser = FrameParser(self._session_of)
        self._greeted = False
        self._announced = set()
        try:
            self.process = process = await self.executor.spawn(SpawnOptions("/bin/sh", args))
            assert process.stdout is not None
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
            *_DROPPED,
        ) as exc:
            why = str(exc) or f"{type(exc).__name__} (it exited before saying hello)"
            log.info("%s: live follow could not start: %s", self.executor.name, why)
            self.error = exc
            return None
        self.mode = hello.mode
        if hello.mode == "noperl":
            log.info("%s: no perl there: transcripts move at turn ends only", self.executor.name)
            self.error = RuntimeError(f"{self.executor.name}: no perl to follow sessions with")
            return None
        if hello.version != VERSION:
            self.error = LiveProtocolError(f"follower version {hello.version}, not {VERSION}")
            return None
        self._greeted = True
        return parser

    def _session_of(self, tag: int) -> str | None:
        follower = self.sessions.get(tag)
        return None if follower is None else follower.paths.session_id

    async def _pump(self, parser: FrameParser) -> None:
        process = self.process
        assert process is not None and process.stdout is not None
        try:
            while True:
                try:
                    chunk = await process.stdout.receive(1 << 18)
                except _DROPPED:
                    if not self.closing:
                        self._dropped = True  # the link, most likely: _restart decides
                    return
                await self._apply(parser.feed(chunk))
        except (LiveProtocolError, OSError, ExecutorError) as exc:
            log.warning(
                "%s: live follow stopped (the turn-end sync takes over): %s",
                self.executor.name,
                exc,
            )
            self.error = exc

    async def _restart(self) -> FrameParser | None:
        """After the channel dropped: a new process once the link is back (the
        sessions' own processes reattach meanwhile, see ``_reattach``); every
        session joins it again from its local sizes.

        follow.pl re-sends a window before each local end and the file's head,
        both checked here, so nothing is lost, repeated or applied over a diverged
        copy. Gives up (the turn-end sync takes over) when the executor does not
        reattach, or after its ``reattach_within``.
        """
        dropped, self._dropped = self._dropped, False
        patience = float(getattr(self.executor, "reattach_within", 0.0) or 0.0)
        if (
            not dropped
            or self.closing
            or not self.sessions
            or patience <= 0
            or is_closed(self.executor)
            or self.restarts >= MAX_RESTARTS  # one that keeps dying is not a dropped link
        ):
            if dropped and not self.closing:
                self.error = EOFError(f"{self.executor.name}: the live follower stopped")
            return None
        self._greeted = False
        for follower in list(self.sessions.values()):
            follower.wake()  # a confirmation waiting on the dead process gives up
        grace, self._grace = self._grace, 0.5  # the old channel is dead: don't wait on it
        await self._end_process()
        self._grace = grace
        log.info("%s: live follower lost its channel, restarting", self.executor.name)
        deadline = anyio.current_time() + patience
        delay = 0.1
        while not self.closing and not is_closed(self.executor):
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
        for frame in frames:
            if isinstance(frame, Hello):
                raise LiveProtocolError("a second hello")
            follower = self.sessions.get(frame.tag)
            if follower is None:
                continue  # it left while its bytes were in flight
            await follower.apply(frame)

    async def _end_process(self) -> None:
        process, self.process = self.process, None
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


def _loop_token() -> int:
    """Identifies the running event loop: a follower process serves one loop."""
    if sniffio.current_async_library() == "trio":
        import trio

        return id(trio.lowlevel.current_trio_token())
    import asyncio

    return id(asyncio.get_running_loop())


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
    messages in a task of its own that may stop reading at any point, and
    other sessions share the process), so a task group there would outlive
    its scope.
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
