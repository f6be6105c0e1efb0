"""Executors whose rsync transport can be watched or damaged, for RsyncSessionSync's tests.

:class:`RelayExecutor` forwards everything to an inner executor, and offers
``_rsync_rsh`` (the hook ``RsyncSessionSync`` looks for) pointing at
``_rsync_relay.py``: rsync's remote shell becomes the relay, which runs the
inner executor's own ssh (or, for a ``LocalExecutor``, the command here, as
sshd would) and can cut or corrupt the stream on its way. So a cut is a real
cut of rsync's protocol stream, not a simulated error.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from anyio.abc import Process

from remote_executors.executors.base import CommandResult, Executor, SpawnOptions

RELAY = Path(__file__).with_name("_rsync_relay.py")


class RelayExecutor:
    """``inner``, with rsync going through the relay.

    ``cut``/``direction``/``budget``: see ``_rsync_relay.py``. ``prefix`` runs
    the relayed command (local mode only) and every ``run`` under an argv
    prefix (``setpriv`` to drop root's permission bypass). ``before_install``
    is called once, just before the push's install step runs on the other side
    (after rsync sent the new copies, before they replace anything). ``name``
    replaces the inner executor's name (the host in messages and rsync's
    ``machine:path``; the relay ignores it when it runs the command here).
    """

    def __init__(
        self,
        inner: Executor,
        *,
        cut: str | None = None,
        direction: str = "down",
        budget: int = 4096,
        prefix: Sequence[str] = (),
        log: Path | None = None,
        before_install: Callable[[], None] | None = None,
        name: str | None = None,
    ) -> None:
        self.inner = inner
        self._name = name
        self.spec: dict[str, Any] = {
            "cut": cut,
            "dir": direction,
            "budget": budget,
            "prefix": list(prefix),
            "log": None if log is None else str(log),
        }
        self.prefix = list(prefix)
        self.before_install = before_install
        self.rsh_calls = 0

    def __repr__(self) -> str:
        return f"RelayExecutor({self.inner!r}, cut={self.spec['cut']!r})"

    @property
    def name(self) -> str:
        return self._name or self.inner.name

    async def _rsync_rsh(self) -> list[str] | None:
        self.rsh_calls += 1
        inner = getattr(self.inner, "_rsync_rsh", None)
        spec = {**self.spec, "inner": await inner() if inner is not None else None}
        return [sys.executable, str(RELAY), json.dumps(spec)]

    async def spawn(self, options: SpawnOptions) -> Process:
        return await self.inner.spawn(options)

    async def run(
        self,
        argv: Sequence[str],
        *,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        input: bytes | None = None,
        timeout: float = 30.0,
    ) -> CommandResult:
        if (
            self.before_install is not None
            and "rx-sync-install" in argv
            and "prep" not in argv
            and len(argv) > 6  # files to install, not just a clean-up
        ):
            hook, self.before_install = self.before_install, None
            hook()
        return await self.inner.run(
            [*self.prefix, *argv], cwd=cwd, env=env, input=input, timeout=timeout
        )

    async def home(self) -> str:
        return await self.inner.home()

    async def map_cwd(self, local_cwd: str) -> str:
        return await self.inner.map_cwd(local_cwd)

    async def aclose(self) -> None:
        return None  # the inner executor belongs to whoever made it


def relay_log(path: Path) -> list[dict[str, Any]]:
    """The runs a relay logged."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]
