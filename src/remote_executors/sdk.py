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
import dataclasses
import logging
import os
import posixpath
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
    list_sessions,
    project_key_for_directory,
)
from claude_agent_sdk import ClaudeSDKClient as _SDKClient

from . import _sdk_compat
from ._option_files import prepare
from ._sdk_compat import (
    InternalClient as _InternalClient,
)
from ._sdk_compat import (
    MaterializedResume,
    SubprocessCLITransport,
    configure_can_use_tool,
    expected_cli_version,
    find_local_claude,
    mirror_projects_dir,
)
from .credentials import forwarded_env
from .errors import ClaudeNotResponding, ExecutorError, InvalidInput
from .executors._validate import check_path
from .executors.base import (
    Executor,
    SpawnOptions,
    lost_error_of,
    placement_of,
    shares_local_filesystem,
)
from .executors.ssh._reattach import ReattachingProcess
from .paths import project_dir_from_cwd
from .sync._default import default_sync
from .sync._from_store import StoreSession, load_from_store
from .sync._per_session import SessionSyncer
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

log = logging.getLogger("remote_executors.sdk")

#: Seconds a CLI may take to send its first message (the SDK's own bound is 60).
START_TIMEOUT = 55.0

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
    module: Any = _sdk_compat.subprocess_cli
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

    With ``sync`` on (the default), the session's files reach the local disk
    while the turn runs (``live``, see docs/sessions-and-sync.md), are complete
    there before the turn's ``ResultMessage`` is passed on, and are pulled
    once more when the CLI exits; a resume first makes the
    executor's copy match the local one. Sync problems arrive as
    :class:`~remote_executors.SessionSyncStatus` messages, never as errors,
    except before a resume, where starting on a wrong copy would fork the
    conversation.

    On another machine, local files and directories that options name
    (plugins, settings and MCP config files, a system prompt file, the
    project's ``.claude/``) go with the session and ``add_dirs`` are mapped
    like ``cwd`` (see docs/options.md). With ``session_store``, mirrored
    entries reach the store as they do locally, and a resume from the store
    puts the session on the executor's machine first.
    """

    def __init__(
        self,
        prompt: str | AsyncIterable[dict[str, Any]],
        options: ClaudeAgentOptions,
        executor: Executor,
        *,
        sync: SyncOption = True,
        start_timeout: float = START_TIMEOUT,
        live: bool = True,
    ) -> None:
        # A transport handed to the SDK skips the SDK's option preparation, so
        # do here what the SDK would: route can_use_tool over stdio.
        options = configure_can_use_tool(options)
        remote = not shares_local_filesystem(executor)
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
        self._remote = remote
        self.executor_process: Process | None = None
        if remote and _sdk_compat.transport_cli_path(self) is None:
            # Resolved on the remote machine; the local bundled CLI means nothing there.
            _sdk_compat.set_transport_cli_path(self, "claude")
        self._session_cwd = os.fspath(options.cwd) if options.cwd is not None else os.getcwd()
        # A NUL or newline in cwd is refused here, as a bad cwd is everywhere else.
        check_path(self._session_cwd, host=executor.name, what="cwd")
        self.syncer = SessionSyncer(
            executor,
            _strategy(sync, executor),
            local_cwd=self._session_cwd,
            env=options.env,
            live=live,
        )
        # Where the SDK's mirror batcher (built from the caller's options) looks.
        self._mirror_dir = mirror_projects_dir(options.env)
        self._materialized: MaterializedResume | None = None
        self._cli_projects_dir: str | None = None  # a local CLI's, when not the batcher's
        self._cli_cwd: str | None = None  # as the CLI's init message reports it
        self._start_timeout = start_timeout

    @property
    def _sdk_options(self) -> ClaudeAgentOptions:
        """The options the SDK's transport builds the command line from."""
        return _sdk_compat.transport_options(self)

    @_sdk_options.setter
    def _sdk_options(self, options: ClaudeAgentOptions) -> None:
        _sdk_compat.set_transport_options(self, options)

    @property
    def _project_key(self) -> str:
        """The store's project key for this session: the local cwd's, as the SDK's."""
        return str(project_key_for_directory(os.path.expanduser(self._session_cwd)))

    async def connect(self) -> None:
        if _sdk_compat.transport_connected(self):
            return
        from_store = await self._from_store()
        await self._continue_latest_local()
        resume = self._sdk_options.resume
        if resume is not None and self._materialized is None:
            if from_store is not None:
                await self.syncer.before_resume(
                    resume, from_store=from_store, strategy=_strategy(True, self._executor)
                )
            elif self.syncer.enabled:
                await self.syncer.before_resume(resume)
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

    async def _from_store(self) -> StoreSession | None:
        """A resume (or continue) with ``session_store``: what the store holds.

        On this machine the SDK's own materialization applies (a temporary
        config dir the CLI resumes from). Elsewhere the caller gets the store's
        session to merge into the local copy and push to the executor.
        """
        options = self._sdk_options
        store = options.session_store
        if store is None or (options.resume is None and not options.continue_conversation):
            return None
        _sdk_compat.validate_session_store_options(options)
        if not self._remote:
            local = dataclasses.replace(options, cwd=os.path.expanduser(self._session_cwd))
            self._materialized = await _sdk_compat.materialize_resume_session(local)
            if self._materialized is not None:
                self._sdk_options = _sdk_compat.apply_materialized_options(
                    options, self._materialized
                )
                self._cli_projects_dir = os.path.join(self._materialized.config_dir, "projects")
            return None
        session = await load_from_store(
            store,
            self._project_key,
            resume=options.resume,
            timeout=options.load_timeout_ms / 1000,
        )
        if session is not None:
            self._sdk_options = dataclasses.replace(
                options, resume=session.session_id, continue_conversation=False
            )
        return session

    async def _continue_latest_local(self) -> None:
        """``continue_conversation`` elsewhere continues what it would continue here.

        A CLI on another machine would pick the latest session *it* has in the
        project, which is not the one this machine's copies (every session the
        app ran, wherever) say is the latest. So pick it here, as a resume,
        which also brings the executor's copy up to date first. With no local
        session (or sync off, when local copies are not kept) the CLI picks.
        """
        options = self._sdk_options
        if not (
            self._remote
            and options.continue_conversation
            and options.resume is None
            and self.syncer.enabled
        ):
            return
        cwd = os.path.expanduser(self._session_cwd)
        latest = await anyio.to_thread.run_sync(
            lambda: list_sessions(directory=cwd, limit=1, include_worktrees=False)
        )
        if latest:
            self._sdk_options = dataclasses.replace(
                options, resume=latest[0].session_id, continue_conversation=False
            )

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
        args: list[str] | tuple[str, ...] = cmd[1:]
        attachments = {}
        if self._remote and args != ["-v"]:  # SDKs before 0.2.190 check the version first
            prepared = await prepare(args, executor=self._executor, local_cwd=self._session_cwd)
            args, attachments = prepared.args, dict(prepared.attachments)
        machine_env = self._env_for_machine(sdk_env)
        if self._remote and args != ["-v"]:
            # The host's credential policy: its own, unless it forwards ours (opt-in).
            machine_env.update(await forwarded_env(self._executor, explicit=self._options.env))
        options = SpawnOptions(
            command=cmd[0],
            args=args,
            cwd=cwd,
            env=machine_env,
            stderr=stderr == subprocess.PIPE,
            outlive_link=True,  # stream-json: LinkStatus lines become SystemMessages
            # The SDK drops some inherited variables (e.g. CLAUDECODE) on purpose.
            unset_env=() if self._remote else [k for k in os.environ if k not in sdk_env],
            attachments=attachments,
        )
        process = await self._executor.spawn(options)
        self.executor_process = process
        return process

    def _env_for_machine(self, env: Mapping[str, str]) -> dict[str, str]:
        """What the SDK added to this process's environment, plus options.env."""
        if not self._remote:
            # Exactly what the SDK would pass locally, minus what is inherited anyway.
            return {k: v for k, v in env.items() if os.environ.get(k) != v}
        wanted = set(self._sdk_options.env)
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
            async for message in self._bounded_start(super().read_messages()):
                kind = message.get("type")
                if kind == "transcript_mirror":
                    if not self._mirror_to_local(message):
                        continue
                elif kind == "system" and message.get("subtype") == "init":
                    if isinstance(message.get("cwd"), str):
                        self._cli_cwd = message["cwd"]  # the CLI's own (physical) cwd
                    syncer.on_init(message, self._remote_cwd())
                elif kind == "result":
                    # The transcript holds the whole turn once the result is
                    # out: pull it before the caller sees the turn end.
                    for status in await syncer.after_turn():
                        yield status
                yield message
        except ProcessError as exc:
            process = self.executor_process
            lost = lost_error_of(process)
            if lost is not None:
                await syncer.after_loss()
                raise lost from exc
            await syncer.after_exit()
            raise
        # The CLI writes a few closing lines as it exits.
        for status in await syncer.after_exit():
            yield status

    async def _bounded_start(
        self, messages: AsyncIterator[dict[str, Any]]
    ) -> AsyncIterator[dict[str, Any]]:
        """``messages``, with a bound on the wait for the first one.

        A CLI that never answers (not the Claude Code CLI, or one that hangs)
        would otherwise hold the caller until the SDK's own generic timeout;
        the typed error names the machine and the CLI instead.
        """
        iterator = aiter(messages)
        try:
            with anyio.fail_after(self._start_timeout):
                first = await anext(iterator)
        except StopAsyncIteration:
            return
        except TimeoutError:
            process = self.executor_process
            path = placement_of(process)[0] or _sdk_compat.transport_cli_path(self) or "claude"
            if process is not None:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
            raise ClaudeNotResponding(
                f"The Claude CLI at {path} on {self._executor.name} started but sent "
                f"nothing for {self._start_timeout:g} s, so it was stopped. Check that "
                f"{path} is the Claude Code CLI and that it runs there ({path} --version), "
                "or allow a slow machine more time with start_timeout=.",
                host=self._executor.name,
                path=path,
            ) from None
        yield first
        async for message in iterator:
            yield message

    def _mirror_to_local(self, frame: dict[str, Any]) -> bool:
        """Point a ``transcript_mirror`` frame's ``filePath`` where the SDK's batcher
        looks, so the store gets the entries under this session's local key.
        False: drop the frame.

        The CLI names the file on its own machine (another home, another
        project dir name, or a materialized temp dir); the batcher keys
        entries by the path relative to this machine's projects dir. A remote
        CLI only ever writes into its session's project: a frame naming
        anything else is dropped rather than keyed into another project.
        """
        path = frame.get("filePath")
        if not isinstance(path, str):
            return not self._remote
        rest = None
        if self._cli_projects_dir is not None:
            prefix = self._cli_projects_dir.rstrip("/") + "/"
            if path.startswith(prefix):
                rest = path[len(prefix) :].partition("/")[2]
        elif self._remote and (remote_cwd := self._cli_cwd or self._remote_cwd()):
            marker = f"/projects/{project_dir_from_cwd(remote_cwd)}/"
            if marker in path:
                rest = path.split(marker, 1)[1]
        if rest and ".." not in rest.split("/"):
            frame["filePath"] = posixpath.join(self._mirror_dir, self._project_key, rest)
            return True
        if self._remote:
            log.warning(
                "%s: dropping a transcript_mirror frame for %r, outside this session's "
                "project there",
                self._executor.name,
                path,
            )
            return False
        return True

    async def close(self) -> None:
        try:
            await super().close()
            process = self.executor_process
            if isinstance(process, ReattachingProcess):
                # Its channels (and a stop that could not be said while the
                # link was down) are closed here; the SDK only waits for it.
                await process.aclose()
            await self.syncer.on_close()
        finally:
            if self._materialized is not None:
                materialized, self._materialized = self._materialized, None
                with anyio.CancelScope(shield=True):
                    await materialized.cleanup()

    def _remote_cwd(self) -> str | None:
        process = self.executor_process
        reported = placement_of(process)[1]
        if reported:
            return reported
        if shares_local_filesystem(self._executor):
            return os.path.realpath(self._session_cwd)
        return None


def _transport(
    prompt: str | AsyncIterable[dict[str, Any]],
    options: ClaudeAgentOptions,
    executor: Executor | None,
    sync: SyncOption,
    start_timeout: float = START_TIMEOUT,
    live: bool = True,
) -> ExecutorTransport | None:
    if executor is None:
        return None
    if not isinstance(executor, Executor):
        raise TypeError(f"executor must implement remote_executors.Executor, got {executor!r}")
    return ExecutorTransport(
        prompt, options, executor, sync=sync, start_timeout=start_timeout, live=live
    )


def _recorded_executor(options: ClaudeAgentOptions) -> Executor | None:
    """For a resume with no executor given: the one the session last ran on, if remote."""
    if options.resume is None:
        return None
    from .paths import validate_session_id
    from .records import get_session_record

    record = get_session_record(validate_session_id(options.resume))
    if record is None or not record.is_remote:
        return None
    from .settings import executor_for

    # The host's configured options (settings) if any, else as it was reached.
    return executor_for(record.executor)


async def query(
    *,
    prompt: str | AsyncIterable[dict[str, Any]],
    options: ClaudeAgentOptions | None = None,
    executor: Executor | None = None,
    sync: SyncOption = True,
    start_timeout: float = START_TIMEOUT,
    live: bool = True,
) -> AsyncGenerator[Message, None]:
    """``claude_agent_sdk.query`` that runs the CLI on ``executor``.

    With no ``executor``: a resume (``options.resume``) runs where the
    session last ran (as recorded); anything else runs exactly as the SDK
    runs it. ``sync`` picks the transcript sync strategy (see
    :class:`ExecutorTransport`). ``start_timeout``: seconds the CLI may take
    to send its first message before :class:`~remote_executors.ClaudeNotResponding`.
    ``live=False``: the local copy moves at turn ends only (no live follower).
    """
    options = options or ClaudeAgentOptions()
    owned = None
    if executor is None:
        executor = owned = _recorded_executor(options)
    try:
        transport = _transport(prompt, options, executor, sync, start_timeout, live)
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
        start_timeout: float = START_TIMEOUT,
        live: bool = True,
    ) -> None:
        options = options or ClaudeAgentOptions()
        self._owned_executor = None
        if executor is None:
            executor = self._owned_executor = _recorded_executor(options)
        self.executor = executor
        # The SDK's client feeds prompts through transport.write(), so the
        # transport's own prompt is only a marker for streaming mode.
        transport = _transport(_never(), options, executor, sync, start_timeout, live)
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
