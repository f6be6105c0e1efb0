"""What the executor badge's tooltip says: the machine an ssh alias reaches.

``ssh -G`` (or paramiko's parser without OpenSSH) resolves each alias as ssh
would, to ``user@hostname[:port]``; answers are cached for a minute so a page
with fifty sessions on one host asks once.
"""

from __future__ import annotations

import time

import anyio

from ..errors import ExecutorError

__all__ = ["HostNames"]

_TTL = 60.0
_SECONDS = 5.0


class HostNames:
    """``await names.describe(alias, ssh_config)`` -> ``"user@host:port"`` (or why not)."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, str | None], tuple[float, str]] = {}

    async def describe(self, alias: str, ssh_config: str | None) -> str:
        from ..executors.ssh._config import resolve

        key = (alias, ssh_config)
        cached = self._cache.get(key)
        if cached is not None and time.monotonic() - cached[0] < _TTL:
            return cached[1]
        text = alias
        with anyio.move_on_after(_SECONDS):
            try:
                host = await resolve(alias, ssh_config=ssh_config)
                port = "" if host.port == 22 else f":{host.port}"
                text = f"{host.user}@{host.hostname}{port}"
            except (ExecutorError, OSError) as exc:
                text = f"{alias} (cannot resolve: {getattr(exc, 'message', exc)})"
        self._cache[key] = (time.monotonic(), text)
        return text

    async def fill(self, rows: list[dict[str, object]], ssh_configs: dict[str, str | None]) -> None:
        """Put ``host`` (what the alias reaches) into each remote row, in place."""
        wanted = {str(r["executor"]) for r in rows if r["executor"] != "local"}
        found: dict[str, str] = {}

        async def one(alias: str) -> None:
            found[alias] = await self.describe(alias, ssh_configs.get(alias))

        async with anyio.create_task_group() as tg:
            for alias in wanted:
                tg.start_soon(one, alias)
        for row in rows:
            alias = str(row["executor"])
            row["host"] = found.get(alias, "this machine")
            where = row.pop("remote_cwd", None)
            row["host_detail"] = (
                "this machine" if alias == "local" else f"{alias} → {row['host']}, in {where}"
            )
