"""What the web app works with: settings, records, running sessions, allowed projects."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
import attrs

from ..records import SessionRecords
from ..settings import SettingsStore
from ._browsing import BrowsingExecutors
from ._hostnames import HostNames
from ._run_on import RunOnMemory
from ._runs import Runs

__all__ = ["OutsideRoots", "WebContext"]


class OutsideRoots(ValueError):
    """A project directory the server may not open; the message says which and why."""


@attrs.define
class WebContext:
    """One app's state. ``roots``: the directories (and everything below them) whose
    projects the UI may list and run sessions in; default: the user's home."""

    settings: SettingsStore = attrs.field(factory=SettingsStore)
    records: SessionRecords = attrs.field(factory=SessionRecords)
    roots: Sequence[Path] = attrs.field(factory=lambda: [Path.home()])
    default_cwd: str = attrs.field(factory=os.getcwd)
    run_on: RunOnMemory = attrs.field(factory=RunOnMemory)
    runs: Runs = attrs.field(factory=Runs)
    host_names: HostNames = attrs.field(factory=HostNames)
    browsing: BrowsingExecutors = attrs.field(factory=BrowsingExecutors)
    """Executors kept open a while for the directory picker's requests."""
    stopping: bool = False
    """Set by :meth:`stop` when the server stops: open event streams end."""
    _stopped: anyio.Event | None = attrs.field(default=None, init=False, repr=False)

    def begin(self) -> None:
        """The server (re)starts serving."""
        self.stopping, self._stopped = False, None

    def stop(self) -> None:
        """The server stops: :meth:`until_stopping` returns everywhere."""
        self.stopping = True
        if self._stopped is not None:
            self._stopped.set()

    async def until_stopping(self) -> None:
        """Return once :meth:`stop` was called (event streams race this)."""
        if self.stopping:
            return
        if self._stopped is None:
            self._stopped = anyio.Event()
        await self._stopped.wait()

    async def sessions(self, cwd: str) -> list[dict[str, Any]]:
        """The rows of :func:`._sessions.list_sessions_for`, with what each host is."""
        from ._sessions import list_sessions_for

        rows = await anyio.to_thread.run_sync(list_sessions_for, cwd, self.records, self.runs)
        configured = {h.host: h.ssh_config for h in self.settings.list()}
        configs: dict[str, str | None] = {}
        for row in rows:
            if row["executor"] != "local":
                # The configured options win, as when the session is resumed.
                name = row["executor"]
                configs[name] = configured.get(name, row.get("ssh_config"))
            row.pop("ssh_config", None)
        await self.host_names.fill(rows, configs)
        return rows

    def project(self, cwd: object) -> str:
        """``cwd`` as a real path inside a root, or :class:`OutsideRoots`."""
        if not isinstance(cwd, str) or not cwd:
            raise OutsideRoots("cwd must be a non-empty string (an absolute local path).")
        if "\x00" in cwd or not os.path.isabs(os.path.expanduser(cwd)):
            raise OutsideRoots(f"cwd {cwd!r} must be an absolute local path.")
        real = os.path.realpath(os.path.expanduser(cwd))
        for root in self.roots:
            root_real = os.path.realpath(root)
            if real == root_real or real.startswith(root_real.rstrip("/") + "/"):
                break
        else:
            allowed = ", ".join(str(r) for r in self.roots)
            raise OutsideRoots(
                f"cwd {cwd!r} is outside the directories this UI may open ({allowed}); "
                "start remote-executors ui with --root to allow another."
            )
        if not os.path.isdir(real):
            raise OutsideRoots(f"cwd {cwd!r} is not an existing directory on this machine.")
        return real
