"""Executors whose rsync transport can be watched or damaged, for RsyncSessionSync's tests.

:class:`RelayExecutor` forwards everything to an inner executor, and offers
``rsync_rsh`` (the capability ``RsyncSessionSync`` looks for) pointing at
``_rsync_relay.py``: rsync's remote shell becomes the relay, which runs the
inner executor's own ssh (or, for a ``LocalExecutor``, the command here, as
sshd would) and can cut or corrupt the stream on its way. So a cut is a real
cut of rsync's protocol stream, not a simulated error.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from remote_executors.executors.base import Executor
from remote_executors.testing.sync_conformance import _Sent, _Wrapped

RELAY = Path(__file__).with_name("_rsync_relay.py")


class RelayExecutor(_Wrapped):
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
        super().__init__(inner)
        self._name = name
        self.relay: dict[str, Any] = {
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
        return f"RelayExecutor({self.inner!r}, cut={self.relay['cut']!r})"

    @property
    def name(self) -> str:
        return self._name or self.inner.name

    async def rsync_rsh(self) -> list[str] | None:
        self.rsh_calls += 1
        inner = getattr(self.inner, "rsync_rsh", None)
        spec = {**self.relay, "inner": await inner() if inner is not None else None}
        return [sys.executable, str(RELAY), json.dumps(spec)]

    def before(self, argv: Sequence[str], input: bytes | None) -> _Sent:
        if (
            self.before_install is not None
            and "rx-sync-install" in argv
            and "prep" not in argv
            and len(argv) > 6  # files to install, not just a clean-up
        ):
            hook, self.before_install = self.before_install, None
            hook()
        return [*self.prefix, *argv], input


def relay_log(path: Path) -> list[dict[str, Any]]:
    """The runs a relay logged."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]
