"""The one seam to ``claude-agent-sdk``.

This is the only module that touches SDK private API; ``tests/unit/test_sdk_seam.py``
pins every such use so an SDK upgrade that breaks one fails loudly.

How it works: ``ExecutorTransport`` *is* the SDK's own subprocess transport,
so the SDK still builds the command line and environment exactly as it does
locally (every option, flag and env variable). The one thing that changes is
the final ``anyio.open_process`` call: while our transport connects, a
context variable routes that call to ``executor.spawn`` instead. That is the
Python form of the TypeScript SDK's ``spawnClaudeCodeProcess`` hook.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Mapping,
)
from contextvars import ContextVar
from typing import Any, cast

import anyio
from anyio.abc import Process
from claude_agent_sdk import (
    ClaudeAgentOptions,
    CLIConnectionError,
    Message,
    ProcessError,
)
from claude_agent_sdk import ClaudeSDKClient as _SDKClient
from claude_agent_sdk._internal.client import InternalClient as _InternalClient
from claude_agent_sdk._internal.transport import subprocess_cli as _subprocess_cli
from claude_agent_sdk._internal.transport.subprocess_cli import SubprocessCLITransport
from claude_agent_sdk.types import _configure_can_use_tool

from ._session_sync import SessionSyncer
from .errors import ExecutorError, InvalidInput
from .executors._ssh_process import SSHProcess
from .executors.base import Executor, SpawnOptions
from .executors.local import LocalExecutor
from .sync._default import default_sync
from .sync.base import SessionSync

__all__ = [
    "ClaudeSDKClient",
    "ExecutorTransport",
    "SpawnFunction",
    "expected_cli_version",
    "find_local_claude",
    "query",
    "spawn_claude_code_process",
]

#: Takes what to start (``SpawnOptions``) and returns the running process.
SpawnFunction = Callable[[SpawnOptions], Awaitable[Process]]

# Env the SDK sets from the caller's own process environment; a remote
# machine has its own (and PWD is set by the remote cd).
_MACHINE_LOCAL_ENV = frozenset({"PWD", "OLDPWD"})


def spawn_claude_code_process(executor: Executor) -> SpawnFunction:
    """The ``spawnClaudeCodeProcess`` hook for ``executor``.

    The returned function starts ``options.command`` with ``options.args`` on
    the executor's machine, in the machine's counterpart of the local
    ``options.cwd``, with ``options.env`` added to the machine's environment
    (values travel over stdin, never on a command line). ``"claude"`` as the
    command means the Claude Code CLI wherever it is installed there.
    """

    async def spawn(options: SpawnOptions) -> Process:
        return await executor.spawn(options)

    return spawn


def find_local_claude() -> str:
    """The CLI the SDK itself would run on this machine (bundled first)."""
    from .errors import ClaudeNotFound

    transport = SubprocessCLITransport(prompt="", options=ClaudeAgentOptions())
    try:
        return transport._find_cli()
    except Exception as exc:
        raise ClaudeNotFound(
            "Claude CLI not found on local. Reinstall claude-agent-sdk (it bundles the "
            "CLI), install Claude Code, or set ClaudeAgentOptions(cli_path=...).",
            host="local",
        ) from exc


def expected_cli_version() -> str | None:
    """The Claude Code CLI version the installed SDK was built for and bundles
    (e.g. ``"2.1.330"``); None if this SDK does not say."""
    try:
        from claude_agent_sdk._cli_version import __cli_version__
    except ImportError:
        return None
    return str(__cli_version__) or None


# -- routing the SDK's open_process through an executor ----------------------

_OpenProcess = Callable[..., Awaitable[Process]]
_route: ContextVar[_OpenProcess | None] = ContextVar("remote_executors_route", default=None)


class _AnyioWithRoute:
    """Stands in for the ``anyio`` module inside the SDK's transport module.

    Everything is the real anyio, except ``open_process`` while one of our
    transports is connecting in this task (a ContextVar, so concurrent local
    SDK use in other tasks is untouched).
    """

    def __init__(self, real: Any) -> None:
        self._real = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    async def open_process(self, *args: Any, **kwargs: Any) -> Process:
        route = _route.get()
        if route is None:
            return await self._real.open_process(*args, **kwargs)  # type: ignore[no-any-return]
        return await route(*args, **kwargs)


def _install_route() -> None:
    module: Any = _subprocess_cli
    if not isinstance(module.anyio, _AnyioWithRoute):
        module.anyio = _AnyioWithRoute(module.anyio)


#: What ``sync=`` accepts: a strategy, True for the default one, False for none.
SyncOption = SessionSync | bool


def _strategy(sync: SyncOption, executor: Executor) -> SessionSync | None:
    if sync is True:
        return default_sync(executor)
    if sync is False:
        return None
    if not isinstance(sync, SessionSync):
        raise TypeError(f"sync must be a SessionSync, True or False, got {sync!r}")
    return sync


class ExecutorTransport(SubprocessCLITransport):
    """The SDK's subprocess transport, with the process started by an executor.

    With ``sync`` on (the default), the session's transcript is pulled to the
    local disk after every turn, before the turn's ``ResultMessage`` is
    passed on, and once more when the CLI exits; a resume first makes the
    executor's copy match the local one. Sync problems arrive as
    :class:`~remote_executors.SessionSyncStatus` messages, never as errors,
    except before a resume, where starting on a wrong copy would fork the
    conversation.
    """

    def __init__(
        self,
        prompt: str | AsyncIterable[dict[str, Any]],
        options: ClaudeAgentOptions,
        executor: Executor,
        *,
        sync: SyncOption = True,
    ) -> None:
        # A transport handed to the SDK skips the SDK's option preparation, so
        # do here what the SDK would: route can_use_tool over stdio.
        options = _configure_can_use_tool(options)
        remote = not isinstance(executor, LocalExecutor)
        if remote and options.user is not None:
            raise InvalidInput(
                f"ClaudeAgentOptions.user is not supported on {executor.name}: the session "
                "runs as the SSH login user there. Log in as that user instead.",
                host=executor.name,
            )
        if options.user is not None:
            # SpawnOptions has no user: silently running as ourselves would be worse.
            raise InvalidInput(
                "ClaudeAgentOptions.user is not supported with an executor on local. "
                "Leave executor unset to let the SDK switch users itself.",
                host=executor.name,
            )
        super().__init__(prompt=prompt, options=options)
        self._executor = executor
        self.executor_process: Process | None = None
        if remote and self._cli_path is None:
            # Resolved on the remote machine; the local bundled CLI means nothing there.
            self._cli_path = "claude"
        self._session_cwd = os.fspath(options.cwd) if options.cwd is not None else os.getcwd()
        self.syncer = SessionSyncer(
            executor, _strategy(sync, executor), local_cwd=self._session_cwd, env=options.env
        )

    async def connect(self) -> None:
        if self._options.resume is not None and self.syncer.enabled:
            await self.syncer.before_resume(self._options.resume)
        _install_route()
        token = _route.set(self._open_process)
        try:
            await super().connect()
        except CLIConnectionError as exc:
            if isinstance(exc.__cause__, ExecutorError):
                raise exc.__cause__ from None
            raise
        finally:
            _route.reset(token)

    async def _open_process(
        self,
        cmd: list[str],
        *,
        stdin: Any = None,
        stdout: Any = None,
        stderr: Any = None,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        user: Any = None,
        **_: Any,
    ) -> Process:
        sdk_env = env or {}
        local = isinstance(self._executor, LocalExecutor)
        options = SpawnOptions(
            command=cmd[0],
            args=cmd[1:],
            cwd=cwd,
            env=self._env_for_machine(sdk_env),
            stderr=stderr == subprocess.PIPE,
            # The SDK drops some inherited variables (e.g. CLAUDECODE) on purpose.
            unset_env=[k for k in os.environ if k not in sdk_env] if local else (),
            private_args=() if local else _private_args(cmd[1:]),
        )
        process = await self._executor.spawn(options)
        self.executor_process = process
        return process

    def _env_for_machine(self, env: Mapping[str, str]) -> dict[str, str]:
        """What the SDK added to this process's environment, plus options.env."""
        if isinstance(self._executor, LocalExecutor):
            # Exactly what the SDK would pass locally, minus what is inherited anyway.
            return {k: v for k, v in env.items() if os.environ.get(k) != v}
        wanted = set(self._options.env)
        return {
            k: v
            for k, v in env.items()
            if k in wanted or (k not in _MACHINE_LOCAL_ENV and os.environ.get(k) != v)
        }

    def read_messages(self) -> AsyncIterator[dict[str, Any]]:
        return self._read_with_lost_link()

    async def _read_with_lost_link(self) -> AsyncIterator[dict[str, Any]]:
        syncer = self.syncer
        try:
            for status in syncer.take_pending():
                yield status
            async for message in super().read_messages():
                kind = message.get("type")
                if kind == "system" and message.get("subtype") == "init":
                    syncer.on_init(message, self._remote_cwd())
                elif kind == "result":
                    # The transcript holds the whole turn once the result is
                    # out: pull it before the caller sees the turn end.
                    for status in await syncer.after_turn():
                        yield status
                yield message
        except ProcessError as exc:
            process = self.executor_process
            lost = process.lost_error() if isinstance(process, SSHProcess) else None
            if lost is not None:
                await syncer.after_loss()
                raise lost from exc
            await syncer.after_exit()
            raise
        # The CLI writes a few closing lines as it exits.
        for status in await syncer.after_exit():
            yield status

    async def close(self) -> None:
        await super().close()
        await self.syncer.on_close()

    def _remote_cwd(self) -> str | None:
        process = self.executor_process
        if isinstance(process, SSHProcess):
            return process.remote_cwd or None
        if isinstance(self._executor, LocalExecutor):
            return os.path.realpath(self._session_cwd)
        return None


# Flags whose value may carry credentials (MCP server headers and env,
# settings env) and that the CLI also accepts as a file path.
_FILE_OR_JSON_FLAGS = frozenset({"--mcp-config", "--settings"})


def _private_args(args: list[str]) -> list[int]:
    """Indices of JSON values that must reach the CLI through a private file."""
    return [
        i + 1
        for i, arg in enumerate(args[:-1])
        if arg in _FILE_OR_JSON_FLAGS and args[i + 1].lstrip().startswith("{")
    ]


def _transport(
    prompt: str | AsyncIterable[dict[str, Any]],
    options: ClaudeAgentOptions,
    executor: Executor | None,
    sync: SyncOption,
) -> ExecutorTransport | None:
    if executor is None:
        return None
    if not isinstance(executor, Executor):
        raise TypeError(f"executor must implement remote_executors.Executor, got {executor!r}")
    return ExecutorTransport(prompt, options, executor, sync=sync)


def _recorded_executor(options: ClaudeAgentOptions) -> Executor | None:
    """For a resume with no executor given: the one the session last ran on, if remote."""
    if options.resume is None:
        return None
    from .metadata import get_session_record
    from .paths import validate_session_id

    record = get_session_record(validate_session_id(options.resume))
    if record is None or not record.is_remote:
        return None
    from .settings import executor_for

    # The host's configured options (settings) if any, else as it was reached.
    return executor_for(record.executor, ssh_config=record.ssh_config)


async def query(
    *,
    prompt: str | AsyncIterable[dict[str, Any]],
    options: ClaudeAgentOptions | None = None,
    executor: Executor | None = None,
    sync: SyncOption = True,
) -> AsyncIterator[Message]:
    """``claude_agent_sdk.query`` that runs the CLI on ``executor``.

    With no ``executor``: a resume (``options.resume``) runs where the
    session last ran (as recorded); anything else runs exactly as the SDK
    runs it. ``sync`` picks the transcript sync strategy (see
    :class:`ExecutorTransport`).
    """
    options = options or ClaudeAgentOptions()
    owned = None
    if executor is None:
        executor = owned = _recorded_executor(options)
    try:
        transport = _transport(prompt, options, executor, sync)
        # Closing this generator early (``break`` + ``aclose()``, cancellation) must
        # close the SDK's generator now: its cleanup is what stops the process.
        # ``claude_agent_sdk.query`` is only a loop over ``process_query`` that
        # never closes it (``async for`` does not), so its cleanup would be left
        # to the garbage collector: later, in another task, or not at all. Hence
        # the same call here, closed explicitly.
        sdk_messages = cast(
            "AsyncGenerator[Message, None]",
            _InternalClient().process_query(prompt=prompt, options=options, transport=transport),
        )
        async with contextlib.aclosing(sdk_messages) as messages:
            async for message in messages:
                yield message
    finally:
        if owned is not None:
            with anyio.CancelScope(shield=True):
                await owned.aclose()


class ClaudeSDKClient(_SDKClient):
    """``claude_agent_sdk.ClaudeSDKClient`` that runs the CLI on ``executor``.

    With no ``executor``, a resume runs where the session last ran (see
    :func:`query`); the client then owns that executor and closes it on
    ``disconnect()``.
    """

    def __init__(
        self,
        options: ClaudeAgentOptions | None = None,
        executor: Executor | None = None,
        *,
        sync: SyncOption = True,
    ) -> None:
        options = options or ClaudeAgentOptions()
        self._owned_executor = None
        if executor is None:
            executor = self._owned_executor = _recorded_executor(options)
        self.executor = executor
        # The SDK's client feeds prompts through transport.write(), so the
        # transport's own prompt is only a marker for streaming mode.
        transport = _transport(_never(), options, executor, sync)
        super().__init__(options=options, transport=transport)

    async def disconnect(self) -> None:
        try:
            await super().disconnect()
        finally:
            if self._owned_executor is not None:
                await self._owned_executor.aclose()


async def _never() -> AsyncIterator[dict[str, Any]]:
    return
    yield {}  # pragma: no cover
