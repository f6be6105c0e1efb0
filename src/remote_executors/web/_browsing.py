"""Executors kept open between directory requests, for the directory picker.

The picker asks once per pause in typing; a fresh SSH connection per request
costs several times the listing itself. So an executor used for browsing
stays open for :data:`IDLE_SECONDS` after its last request, keyed by its
spec (changed settings open a new one), and is dropped after a failure (the
next request connects afresh). :meth:`BrowsingExecutors.sweep` closes idle
ones; :meth:`BrowsingExecutors.aclose` closes them all when the server stops.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable

import anyio
import attrs

from ..errors import InvalidInput, RemotePathNotFound
from ..executors.base import Executor

__all__ = ["IDLE_SECONDS", "BrowsingExecutors"]

#: Seconds an executor stays open after the last directory request.
IDLE_SECONDS = 60.0


@attrs.define
class _Open:
    executor: Executor
    spec: str
    used: float
    users: int = 0


class BrowsingExecutors:
    """See the module docs. ``use(name, make)`` lends the executor for ``name``."""

    def __init__(self, idle_seconds: float = IDLE_SECONDS) -> None:
        self.idle_seconds = idle_seconds
        self._open: dict[str, _Open] = {}

    @contextlib.asynccontextmanager
    async def use(self, name: str, make: Callable[[], Executor]) -> AsyncIterator[Executor]:
        fresh = make()
        await self._close_stale(keep=name)
        held = self._open.get(name)
        if held is not None and held.spec == fresh.spec:
            with anyio.CancelScope(shield=True):
                await fresh.aclose()  # never connected: closing costs nothing
        else:
            if held is not None and held.users == 0:
                await self._drop(name)
            # One still in use is closed by its last user (it is no longer current).
            held = _Open(fresh, fresh.spec, time.monotonic())
            self._open[name] = held
        held.users += 1
        failed = False
        try:
            yield held.executor
        except BaseException as exc:
            # A missing directory or a bad path says nothing about the link.
            failed = not isinstance(exc, (RemotePathNotFound, InvalidInput))
            raise
        finally:
            held.users -= 1
            held.used = time.monotonic()
            current = self._open.get(name) is held
            # After a failure the link may be dead: the next request reconnects.
            if held.users == 0 and (failed or not current):
                if current:
                    del self._open[name]
                with anyio.CancelScope(shield=True):
                    await held.executor.aclose()

    async def _drop(self, name: str) -> None:
        held = self._open.pop(name, None)
        if held is not None:
            with anyio.CancelScope(shield=True):
                await held.executor.aclose()

    async def _close_stale(self, *, keep: str) -> None:
        now = time.monotonic()
        for name, held in list(self._open.items()):
            if name != keep and held.users == 0 and now - held.used > self.idle_seconds:
                await self._drop(name)

    async def sweep(self) -> None:
        """Close executors idle too long, until cancelled (runs in the app's task group)."""
        while True:
            await anyio.sleep(max(self.idle_seconds / 4, 0.01))
            await self._close_stale(keep="")

    async def aclose(self) -> None:
        """Close every executor kept open (the server stops)."""
        for name in list(self._open):
            await self._drop(name)

    def __len__(self) -> int:
        return len(self._open)
