"""Keeping one running session's transcript in step, turn by turn.

The transport calls in at four points: the ``init`` message (the session id
is known: record where it runs, and start following its files live, see
:mod:`remote_executors.sync._follower`), each ``result`` message (make sure
the local copy is complete before the caller sees the result: one
confirmation from the live follower, or a pull), the end of the process (pull the lines the CLI
writes on exit) and, before a resume, :meth:`SessionSyncer.before_resume`
(pull what the remote has, push what only local has). A failed sync never
fails the session: it is logged, recorded, and handed to the caller as a
:class:`~remote_executors.sync.status.SessionSyncStatus` message; the next
turn, the end of the session and the next resume retry it.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Mapping
from typing import Any

import anyio
import attrs

from ..errors import ExecutorError, SessionConflict
from ..executors.base import Executor, is_closed, shares_local_filesystem
from ..paths import validate_session_id
from ..records import LOCAL, SessionRecord, SessionRecords
from ._follower import LiveFollower
from ._from_store import StoreSession, merge_into_local
from ._locate import locate, same_place, session_paths
from .base import Limits, SessionPaths, SessionSync
from .status import SessionSyncStatus

__all__ = ["SessionSyncer"]

log = logging.getLogger("remote_executors.sync")

STALE = "Session sync failed, local view may be stale"
#: How long the end-of-session and after-loss pulls may take before giving up
#: (they are retried on the next contact).
FINAL_SYNC_SECONDS = 15.0


class SessionSyncer:
    """The sync side of one :class:`~remote_executors.ExecutorTransport`."""

    def __init__(
        self,
        executor: Executor,
        strategy: SessionSync | None,
        *,
        local_cwd: str,
        env: Mapping[str, str],
        live: bool = True,
    ) -> None:
        self._executor = executor
        self._live = live
        self._follower: LiveFollower | None = None
        self._strategy = strategy
        self._local_cwd = os.path.realpath(os.path.expanduser(local_cwd))
        self._env = dict(env)
        self._records = SessionRecords()
        # What records keep: the spec that reopens the executor ("local" for one
        # that shares this machine's files, whatever its class).
        self._spec = LOCAL if shares_local_filesystem(executor) else executor.spec
        self.session_id: str | None = None
        self._paths: SessionPaths | None = None
        self._same_place = False
        self._failed: BaseException | None = None
        self._exited_synced = False  # pulled once after the CLI exited
        self._link_lost = False  # the after-loss pull failed: don't wait on it again
        self._pulled_previous = False
        self._pending: list[dict[str, Any]] = []
        self._retired: list[LiveFollower] = []

    @property
    def enabled(self) -> bool:
        return self._strategy is not None

    def take_pending(self) -> list[dict[str, Any]]:
        """Status messages queued outside a turn (e.g. by a resume), to emit first."""
        pending, self._pending = self._pending, []
        return pending

    # -- the four points ------------------------------------------------------

    def on_init(self, message: Mapping[str, Any], remote_cwd: str | None) -> None:
        """The CLI announced its session: record where it runs."""
        sid = message.get("session_id")
        if not isinstance(sid, str):
            return
        try:
            validate_session_id(sid)
        except ExecutorError:
            log.warning("not syncing: the CLI reported a malformed session id %r", sid)
            return
        self.session_id = sid
        if self._paths is None and remote_cwd:
            self._set_paths(session_paths(self._local_cwd, remote_cwd, sid, self._env))
        elif self._paths is not None and self._paths.session_id != sid:
            # A forked resume (or /clear) continues under a new id.
            self._paths = attrs.evolve(self._paths, session_id=sid)
        self._record(remote_cwd)
        self._follow()

    async def after_turn(self) -> list[dict[str, Any]]:
        """A result arrived: make the local copy complete now; return status messages
        to emit before the result.

        With the live follower running and every file in step, that is one
        confirmation over its open channel; otherwise a pull.
        """
        follower = self._follower
        if follower is not None and self._failed is None and await follower.confirm():
            return self.take_pending()
        return [*self.take_pending(), *await self._pull()]

    @property
    def follower(self) -> LiveFollower | None:
        """The live follower of the session, while there is one."""
        return self._follower

    def _follow(self) -> None:
        """Start following the session's files live (remote sessions only)."""
        follower, paths = self._follower, self._paths
        if follower is not None and paths is not None and follower.paths == paths:
            return
        if (
            not self._live
            or self._strategy is None
            or paths is None
            or paths.session_id is None
            or self._same_place
            or shares_local_filesystem(self._executor)
        ):
            return
        if follower is not None:
            # A new session id (a fork, /clear): the old follower is stopped by
            # the next pull (a running one only ever appends in step).
            self._retired.append(follower)
        # The strategy's size limits, when it has them, bound the follower too.
        limits = getattr(self._strategy, "limits", None)
        if not isinstance(limits, Limits):
            limits = Limits()
        self._follower = LiveFollower(
            self._executor,
            paths,
            max_file_bytes=limits.max_file_bytes,
            max_session_bytes=limits.max_session_bytes,
        )
        self._follower.begin()

    async def _last_look(self) -> None:
        """The CLI exited: one last confirmation from the follower, then stop it.

        The follower outlives the CLI by a moment: when its last look finds
        every file in step (the closing lines included), no pull is needed.
        """
        follower = self._follower
        if (
            follower is not None
            and self._failed is None
            and not self._exited_synced
            and not is_closed(self._executor)
            and await follower.confirm()
        ):
            self._exited_synced = True
        await self._stop_following()

    async def _stop_following(self, grace: float = 3.0) -> None:
        followers, self._retired = self._retired, []
        if self._follower is not None:
            followers.append(self._follower)
            self._follower = None
        for follower in followers:
            await follower.stop(grace)

    async def after_exit(self) -> list[dict[str, Any]]:
        """The CLI exited: pull the lines it writes on the way out."""
        await self._last_look()
        if self._exited_synced:
            return []
        with anyio.move_on_after(FINAL_SYNC_SECONDS):
            statuses = await self._pull()
            self._exited_synced = self._failed is None
            return statuses
        return [self._failure(TimeoutError("the final sync did not finish in time"))]

    async def on_close(self) -> None:
        """After the transport closed (the CLI has exited): the final pull, if not done yet.

        Runs when the caller stopped reading before the end of the output.
        """
        with anyio.CancelScope(shield=True):
            await self._last_look()
        if self._exited_synced or self._link_lost or is_closed(self._executor):
            # Done, or the link is known to be down: the next resume pulls.
            return
        with anyio.CancelScope(shield=True), anyio.move_on_after(FINAL_SYNC_SECONDS):
            await self._pull()
            self._exited_synced = self._failed is None

    async def before_resume(
        self,
        session_id: str,
        *,
        from_store: StoreSession | None = None,
        strategy: SessionSync | None = None,
    ) -> None:
        """Make the executor's copy the local one (pushing only what it lacks).

        ``from_store``: the session as a ``SessionStore`` holds it, merged into
        the local copy (see :mod:`remote_executors.sync._from_store`) before the
        push; ``strategy`` moves it when this syncer has none (``sync=False``).
        Raises what the sync raises: starting the CLI on a copy that is
        behind or diverged would fork the conversation.
        """
        validate_session_id(session_id)
        strategy = self._strategy or strategy
        if strategy is None:
            raise ValueError("before_resume needs a sync strategy")
        self.session_id = session_id
        record = self._records.get(session_id)
        if record is not None and record.is_remote and record.executor != self._spec:
            await self._pull_from_previous(record, strategy)
        remote_cwd = None
        if (
            record is not None
            and record.executor == self._spec
            and record.remote_cwd is not None
            and _same_dir(record.local_cwd, self._local_cwd)
        ):
            remote_cwd = record.remote_cwd
        if shares_local_filesystem(self._executor):
            remote_cwd = os.path.realpath(self._local_cwd)
        paths = await locate(
            self._executor,
            local_cwd=self._local_cwd,
            session_id=session_id,
            env=self._env,
            remote_cwd=remote_cwd,
        )
        self._set_paths(paths)
        if not self._same_place:
            await strategy.push(self._executor, paths)
        if from_store is not None:
            changed = await merge_into_local(paths, from_store, self._executor.name)
            if changed:
                log.info("session %s: merged from the session store: %s", session_id, changed)
                if not self._same_place:
                    await strategy.push(self._executor, paths)
        # Both copies are in step again (after a host switch whose fetch from
        # the previous host failed, lines are still missing: keep the error).
        if (
            record is not None
            and record.sync_error is not None
            and (record.executor == self._spec or self._pulled_previous)
        ):
            self._update(sync_error=None)
        # The CLI's init message records where it now runs.

    async def after_loss(self) -> None:
        """The link or process died mid-turn: try to save what the remote wrote.

        Usually the link is down and this fails fast; the record then says the
        session is behind, and the next resume pulls first.
        """
        with anyio.CancelScope(shield=True):
            await self._stop_following(grace=0.5)  # the link is likely gone
        with anyio.CancelScope(shield=True), anyio.move_on_after(5.0):
            await self._pull()
        self._link_lost = self._failed is not None

    # -- internals --------------------------------------------------------------

    def _set_paths(self, paths: SessionPaths) -> None:
        self._paths = paths
        self._same_place = same_place(self._executor, paths)

    async def _pull(self) -> list[dict[str, Any]]:
        if self._strategy is None or self.session_id is None or self._same_place:
            return []
        if shares_local_filesystem(self._executor):
            # Already on the local disk, where this session's own config says
            # (copying it to another config dir would surprise a local user).
            return []
        sid = self.session_id
        if is_closed(self._executor):
            # Closed by the app (e.g. mid-turn): reconnecting now would leave a
            # connection behind that nobody closes. The next resume pulls.
            return [self._failure(RuntimeError(f"{self._executor.name}: executor closed"))]
        try:
            if self._paths is None:
                self._set_paths(
                    await locate(
                        self._executor, local_cwd=self._local_cwd, session_id=sid, env=self._env
                    )
                )
                if self._same_place:
                    return []
            assert self._paths is not None
            await self._pull_beside_follower(self._strategy, self._paths)
        except (ExecutorError, OSError, TimeoutError) as exc:
            return [self._failure(exc)]
        if self._failed is None:
            return []
        self._failed = None
        self._update(sync_error=None)
        log.info("session %s: sync with %s recovered", sid, self._executor.name)
        return [
            SessionSyncStatus(
                ok=True,
                session_id=sid,
                host=self._executor.name,
                message="Session sync recovered: the local transcript is up to date",
            ).to_raw()
        ]

    async def _pull_beside_follower(self, strategy: SessionSync, paths: SessionPaths) -> None:
        """Pull, with the live follower (if any) held off meanwhile, then looking afresh."""
        for retired in self._retired:
            await retired.stop()
        self._retired = []
        follower = self._follower
        lock = follower.lock if follower is not None else None
        try:
            async with lock if lock is not None else contextlib.nullcontext():
                try:
                    # A strategy that can pull just what changed since its last pull
                    # does so after each turn (the other files are as last synced).
                    recent = getattr(strategy, "pull_recent", None)
                    if callable(recent):
                        await recent(self._executor, paths)
                    else:
                        await strategy.pull(self._executor, paths)
                finally:
                    if follower is not None:
                        follower.files.reset()
        finally:
            if follower is not None:
                # What landed meanwhile, checked against the pulled copy.
                with anyio.CancelScope(shield=True):
                    await follower.drain()

    def _failure(self, exc: BaseException) -> dict[str, Any]:
        self._failed = exc
        sid = self.session_id or ""
        log.warning("session %s: %s: %s", sid, STALE, exc)
        self._update(sync_error=str(exc) or type(exc).__name__)
        copies = exc.copies if isinstance(exc, SessionConflict) else ()
        return SessionSyncStatus(
            ok=False,
            session_id=sid,
            host=self._executor.name,
            message=STALE,
            error=type(exc).__name__,
            detail=str(exc),
            conflict_copies=copies,
        ).to_raw()

    async def _pull_from_previous(self, record: SessionRecord, strategy: SessionSync) -> None:
        """Fetch what the host that last ran the session has, before moving it here."""
        from ..settings import executor_for

        previous = None
        try:
            previous = executor_for(record.executor)
            with anyio.fail_after(FINAL_SYNC_SECONDS):
                paths = await locate(
                    previous,
                    local_cwd=record.local_cwd,
                    session_id=record.session_id,
                    env=self._env,
                    remote_cwd=record.remote_cwd,
                )
                await strategy.pull(previous, paths)
                self._pulled_previous = True
        except (ExecutorError, OSError, TimeoutError) as exc:
            log.warning(
                "session %s: could not fetch its latest lines from %s before resuming on %s: %s",
                record.session_id,
                record.executor,
                self._executor.name,
                exc,
            )
            self._pending.append(
                SessionSyncStatus(
                    ok=False,
                    session_id=record.session_id,
                    host=record.executor,
                    message=f"Could not fetch the latest lines from {record.executor}; "
                    "resuming from the local copy",
                    error=type(exc).__name__,
                    detail=str(exc),
                    conflict_copies=exc.copies if isinstance(exc, SessionConflict) else (),
                ).to_raw()
            )
        finally:
            if previous is not None:
                await previous.aclose()

    def _record(self, remote_cwd: str | None) -> None:
        if self.session_id is None:
            return
        executor = self._spec
        fields: dict[str, Any] = {
            "executor": executor,
            "local_cwd": self._local_cwd,
            "remote_cwd": remote_cwd if executor != LOCAL else None,
            "remote_project_dir": self._remote_project_dir() if executor != LOCAL else None,
        }
        try:
            if self._records.update(self.session_id, **fields) is None:
                self._records.put(SessionRecord(session_id=self.session_id, **fields))
        except (OSError, ExecutorError) as exc:
            log.warning("session %s: could not record where it runs: %s", self.session_id, exc)

    def _remote_project_dir(self) -> str | None:
        paths = self._paths
        if paths is None or paths.remote_config_dir is None:
            return None
        if not paths.remote_config_dir.startswith("/"):
            return None
        return paths.remote_dir

    def _update(self, **changes: Any) -> None:
        if self.session_id is None:
            return
        try:
            self._records.update(self.session_id, **changes)
        except (OSError, ExecutorError) as exc:
            log.warning("session %s: could not update its record: %s", self.session_id, exc)


def _same_dir(a: str, b: str) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)
