"""``LocalExecutor``: this machine, the way the SDK itself runs the CLI."""

from __future__ import annotations

import contextlib
import os
import subprocess
import weakref
from collections.abc import Mapping, Sequence

import anyio
from anyio.abc import Process

from .._sdk_compat import find_local_claude
from ..errors import ClaudeNotFound, CommandTimeout, InvalidInput, RemotePathNotFound
from ._capture import DEFAULT_MAX_OUTPUT, Overflow, capture, check_limit, too_large
from ._scratch import ScratchProcess, materialize, remove_scratch
from ._validate import absolute_local, check_env, check_path, spawn_attachments
from .base import CommandResult, SpawnOptions

__all__ = ["LocalExecutor"]

#: Seconds a process has to exit after SIGTERM when the executor closes.
_CLOSE_GRACE = 2.0


def _check_argv(argv: Sequence[str]) -> None:
    """The checks SSHExecutor makes too, so both refuse the same input before running."""
    check_path(argv[0], host="local", what="command")
    if any("\x00" in arg for arg in argv):
        raise InvalidInput(
            f"Refusing to run {argv[0]} on local: an argument contains a NUL character, "
            "which no command line can carry.",
            host="local",
        )


def _checked_cwd(cwd: str | None) -> str | None:
    if cwd is None:
        return None
    path = absolute_local(cwd)
    if not os.path.isdir(path):
        raise RemotePathNotFound(
            f"Path {path} doesn't exist on local. Create it or pick another cwd.",
            host="local",
            path=path,
        )
    return path


def _not_started(command: str, exc: OSError) -> InvalidInput:
    what = "not found" if isinstance(exc, FileNotFoundError) else "not executable"
    return InvalidInput(f"{command}: {what} on local.", host="local")


class LocalExecutor:
    """Runs processes on this machine. Paths map to themselves."""

    def __init__(self) -> None:
        self._processes: weakref.WeakSet[Process] = weakref.WeakSet()

    def __repr__(self) -> str:
        return "LocalExecutor()"

    @classmethod
    def from_spec(cls, spec: str) -> LocalExecutor:
        """``LocalExecutor.from_spec("local")``; any other spec is ``InvalidInput``."""
        if spec != "local":
            raise InvalidInput(f"LocalExecutor's spec is 'local', not {spec!r}.", host=repr(spec))
        return cls()

    @property
    def name(self) -> str:
        return "local"

    @property
    def spec(self) -> str:
        return "local"

    @property
    def shares_local_filesystem(self) -> bool:
        """Capability (:class:`~remote_executors.executors.base.SharesLocalFilesystem`)."""
        return True

    async def spawn(self, options: SpawnOptions) -> Process:
        _check_argv(options.argv)
        unset = set(check_env(dict.fromkeys(options.unset_env, ""), host="local"))
        # Private args need no file here: the value is as visible as it is to the SDK.
        attachments = spawn_attachments(options, host="local", private_as_files=False)
        env = {k: v for k, v in os.environ.items() if k not in unset}
        env.update(check_env(options.env, host="local"))
        cwd = _checked_cwd(options.cwd)
        command = options.command
        if command == "claude":
            command = await anyio.to_thread.run_sync(find_local_claude)
        args = list(options.args)
        scratch = None
        if attachments:
            scratch, paths = await anyio.to_thread.run_sync(materialize, attachments, "local")
            for index, path in paths.items():
                args[index] = path
        try:
            process: Process = await anyio.open_process(
                [command, *args],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE if options.stderr else None,
                cwd=cwd,
                env=env,
            )
        except (FileNotFoundError, PermissionError) as exc:
            if scratch is not None:
                remove_scratch(scratch)
            if options.command == "claude":
                raise ClaudeNotFound(
                    f"Claude CLI not found at {command} on local.", host="local"
                ) from exc
            raise _not_started(command, exc) from exc
        except BaseException:
            if scratch is not None:
                remove_scratch(scratch)
            raise
        if scratch is not None:
            process = ScratchProcess(process, scratch)
        self._processes.add(process)
        return process

    async def run(
        self,
        argv: Sequence[str],
        *,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        input: bytes | None = None,
        timeout: float = 30.0,
        max_output: int = DEFAULT_MAX_OUTPUT,
    ) -> CommandResult:
        if not argv:
            raise InvalidInput("No command given to run on local.", host="local")
        _check_argv(argv)
        limit = check_limit(max_output, "local")
        full_env = {**os.environ, **check_env(env or {}, host="local")}
        work_dir = _checked_cwd(cwd)
        try:
            with anyio.fail_after(timeout):
                process = await anyio.open_process(
                    list(argv),
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    cwd=work_dir,
                    env=full_env,
                )
                try:
                    out, err = await capture(process, input, limit)
                    code = await process.wait()
                finally:
                    with anyio.CancelScope(shield=True):
                        if process.returncode is None:
                            # Timed out, cancelled or too much output.
                            with contextlib.suppress(ProcessLookupError):
                                process.kill()
                        await process.aclose()
        except (FileNotFoundError, PermissionError) as exc:
            raise _not_started(argv[0], exc) from exc
        except TimeoutError:
            raise CommandTimeout(
                f"{argv[0]} did not finish within {timeout:g} s on local.", host="local"
            ) from None
        except Overflow as exc:
            raise too_large(argv[0], "local", limit, exc.stream) from None
        return CommandResult(code, out, err)

    async def home(self) -> str:
        return os.path.expanduser("~")

    async def map_cwd(self, local_cwd: str) -> str:
        return absolute_local(local_cwd)

    async def aclose(self) -> None:
        """Stop every process spawned here that still runs: SIGTERM, then SIGKILL
        after a short grace period (as the SSH watchdog does)."""
        every = list(self._processes)
        running = [p for p in every if p.returncode is None]
        self._processes = weakref.WeakSet()
        with anyio.CancelScope(shield=True):
            for process in every:
                if isinstance(process, ScratchProcess) and process.returncode is not None:
                    await process.wait()  # exited unobserved: remove its attachments
            for process in running:
                with contextlib.suppress(ProcessLookupError):
                    process.terminate()
            with anyio.move_on_after(_CLOSE_GRACE):
                for process in running:
                    await process.wait()
            for process in running:
                if process.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        process.kill()
                await process.wait()  # also removes a process's attachments

    async def __aenter__(self) -> LocalExecutor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
