"""The live follower: a session's remote files reach the local copy while the turn runs.

Each session's :class:`LiveFollower` joins its executor's follower process
(:mod:`._follow_channel`: one ``follow.pl`` per executor, on its own
connection). Where ``inotifywait`` is installed there, it sleeps until a
file of a session changes (``wait="auto"``); otherwise it polls them (every
:data:`TICK` seconds while they change, four times that once quiet: a few
``stat`` calls, no process started per look). Either way it sends every
appended byte as a frame; :mod:`._live_frames` reads the frames,
:mod:`._live_files` applies them under the turn-end sync's rules.

At a turn's result, :meth:`LiveFollower.confirm` asks the follower to look at
the session's files once more and waits for its answer: one round trip over
the open channel instead of a pull.
"""

from __future__ import annotations

import logging
from typing import Literal

import anyio

from remote_executors.errors import ExecutorError
from remote_executors.executors.base import Executor
from remote_executors.sync._follow_channel import FollowChannel, channel_for
from remote_executors.sync._live_files import LiveFiles
from remote_executors.sync._live_frames import Data, Frame, Head, Problem, Synced
from remote_executors.sync.base import MAX_FILE_BYTES, MAX_SESSION_BYTES, SessionPaths

__all__ = ["TICK", "LiveFollower"]

log = logging.getLogger("remote_executors.sync")

#: Seconds between looks at the session's files while they change.
TICK = 0.02
#: Bytes of a session's frames held while a pull of it runs.
MAX_HELD = 32 << 20


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
        self.max_file_bytes = max_file_bytes
        self._tick = tick
        self._wait = wait
        self.lock = anyio.Lock()
        """Held while frames are applied; a pull holds it so the two never interleave."""
        self._error: BaseException | None = None
        self._channel: FollowChannel | None = None
        self._tag = 0
        self._seq = 0
        self._synced = 0
        self._synced_event = anyio.Event()
        self._stopped = False
        self._held: list[Frame] = []
        self._held_bytes = 0

    @property
    def channel(self) -> FollowChannel | None:
        """The executor's follower process this session joined (None before :meth:`begin`)."""
        return self._channel

    @property
    def error(self) -> BaseException | None:
        """Why the session is not followed (its own trouble, or its follower process's)."""
        if self._error is not None:
            return self._error
        return None if self._channel is None else self._channel.error

    @property
    def mode(self) -> str | None:
        """``inotify``, ``poll``, ``noperl``, or None before the follower said hello."""
        return None if self._channel is None else self._channel.mode

    @property
    def restarts(self) -> int:
        """How many times the follower was restarted after its channel dropped."""
        return 0 if self._channel is None else self._channel.restarts

    @property
    def running(self) -> bool:
        channel = self._channel
        return (
            channel is not None
            and not self._stopped
            and self._error is None
            and channel.running
            and channel.sessions.get(self._tag) is self
        )

    def begin(self) -> None:
        """Start following in the background (the caller does not wait for the remote)."""
        if self._channel is None and not self._stopped:
            self._channel = channel_for(self.executor, self._tick, self._wait)
            self._tag = self._channel.join(self)

    async def confirm(self, timeout: float = 5.0) -> bool:
        """Have the follower send everything of the session on the remote disk now,
        and wait until it landed here. True when every file is in step (no pull needed)."""
        channel = self._channel
        if channel is None or self._stopped:
            return False
        self._seq += 1
        seq = self._seq
        try:
            with anyio.fail_after(timeout):
                if not await channel.confirm(self._tag, seq):
                    return False
                while self._synced < seq and self.running:
                    await self._synced_event.wait()
        except (TimeoutError, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
            log.info("%s: live follow did not confirm: %s", self.executor.name, exc)
            return False
        except ExecutorError as exc:
            self._error = exc
            return False
        return self._synced >= seq and self.running and self.files.in_step

    async def stop(self, grace: float = 3.0) -> None:
        """Stop following; the last session of the executor to stop stops the remote
        process (``grace``: how long it may take to exit on its own before it is killed)."""
        self._stopped = True
        channel = self._channel
        if channel is not None:
            with anyio.CancelScope(shield=True):
                await channel.leave(self._tag, grace)

    async def apply(self, frame: Frame) -> None:
        """One frame of this session, from the follower process.

        While a pull holds :attr:`lock`, the frame waits here instead (the
        follower process serves other sessions meanwhile); :meth:`drain`
        applies what waited once the pull is done. Past :data:`MAX_HELD` bytes
        the waiting data is dropped: the gap it leaves marks the file for the
        turn-end pull, as any gap does."""
        if self.lock.locked():
            self._hold(frame)
            return
        async with self.lock:
            self._apply_held()
            self._apply(frame)

    async def drain(self) -> None:
        """Apply the frames that arrived while a pull held the lock."""
        async with self.lock:
            self._apply_held()

    def _hold(self, frame: Frame) -> None:
        size = len(frame.data) if isinstance(frame, (Data, Head)) else 0
        if size and self._held_bytes + size > MAX_HELD:
            return  # dropped: a gap, so the file is left to the pull
        self._held.append(frame)
        self._held_bytes += size

    def _apply_held(self) -> None:
        held, self._held, self._held_bytes = self._held, [], 0
        for frame in held:
            self._apply(frame)

    def _apply(self, frame: Frame) -> None:
        if isinstance(frame, Data):
            self.files.data(frame)
        elif isinstance(frame, Head):
            self.files.head(frame)
        elif isinstance(frame, Problem):
            self.files.problem(frame)
        elif isinstance(frame, Synced):
            self._synced = max(self._synced, frame.seq)
            self.wake()

    def refuse(self, why: BaseException) -> None:
        """The follower process cannot follow this session: the turn-end sync will."""
        self._error = why
        self.wake()

    def wake(self) -> None:
        """Wake a confirmation waiting for an answer (it looks again at what it waits for)."""
        event, self._synced_event = self._synced_event, anyio.Event()
        event.set()
