"""``LocalExecutor``: this machine, the way the SDK itself runs the CLI."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence

import anyio
from anyio.abc import Process

from ..errors import ClaudeNotFound, CommandTimeout, InvalidInput, RemotePathNotFound
from ._validate import absolute_local, check_env
from .base import CommandResult, SpawnOptions

__all__ = ["LocalExecutor"]


class LocalExecutor:
    """Runs processes on this machine. Paths map to themselves."""

    def __repr__(self) -> str:
        return "LocalExecutor()"

    @property
    def name(self) -> str:
        return "local"

    async def spawn(self, options: SpawnOptions) -> Process:
        unset = set(options.unset_env)
        env = {k: v for k, v in os.environ.items() if k not in unset}
        env.update(check_env(options.env, host="local"))
        cwd = absolute_local(options.cwd) if options.cwd is not None else None
        if cwd is not None and not os.path.isdir(cwd):
            raise RemotePathNotFound(
                f"Path {cwd} doesn't exist on local. Create it or pick another cwd.",
                host="local",
                path=cwd,
            )
        command = options.command
        if command == "claude":
            from ..sdk import find_local_claude  # the SDK's own search, via the seam

            command = await anyio.to_thread.run_sync(find_local_claude)
        try:
            return await anyio.open_process(
                [command, *options.args],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE if options.stderr else None,
                cwd=cwd,
                env=env,
            )
        except FileNotFoundError as exc:
            if options.command == "claude":
                raise ClaudeNotFound(
                    f"Claude CLI not found at {command} on local.", host="local"
                ) from exc
            raise InvalidInput(f"{command}: not found on local.", host="local") from exc

    async def run(
        self,
        argv: Sequence[str],
        *,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        input: bytes | None = None,
        timeout: float = 30.0,
    ) -> CommandResult:
        if not argv:
            raise InvalidInput("No command given to run on local.", host="local")
        full_env = {**os.environ, **check_env(env or {}, host="local")}
        try:
            with anyio.fail_after(timeout):
                result = await anyio.run_process(
                    list(argv),
                    input=input,
                    cwd=absolute_local(cwd) if cwd is not None else None,
                    env=full_env,
                    check=False,
                )
        except TimeoutError:
            raise CommandTimeout(
                f"{argv[0]} did not finish within {timeout:g} s on local.", host="local"
            ) from None
        return CommandResult(result.returncode, result.stdout, result.stderr)

    async def home(self) -> str:
        return os.path.expanduser("~")

    async def map_cwd(self, local_cwd: str) -> str:
        return absolute_local(local_cwd)

    async def aclose(self) -> None:
        return None

    async def __aenter__(self) -> LocalExecutor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
