"""Pins on the claude-agent-sdk private API that ``remote_executors`` uses (all of it
borrowed in ``_sdk_compat.py``), on the shape of the command line the SDK builds, and
the seam's behaviour with a fake executor.

If an SDK upgrade breaks one of the ``test_pin_*`` tests, ``remote_executors/_sdk_compat.py``
(or ``_cli_argv.py`` for the command line) must be adapted to the new SDK before anything
else: the message says what moved.
"""

from __future__ import annotations

import ast
import inspect
import os
import subprocess
import textwrap
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import claude_agent_sdk
import pytest
from _shell_backend import ShellBackend
from anyio.abc import ByteReceiveStream, ByteSendStream, Process
from claude_agent_sdk import ClaudeAgentOptions, CLIConnectionError, ProcessError
from claude_agent_sdk._internal.transport import subprocess_cli
from claude_agent_sdk._internal.transport.subprocess_cli import SubprocessCLITransport

import _isolated_ast
import remote_executors as rx
from remote_executors import _cli_argv, _sdk_compat, sdk
from remote_executors.errors import (
    AuthenticationFailed,
    ClaudeNotFound,
    ConnectionFailed,
    ExecutorError,
    HostKeyError,
    InvalidInput,
    ProcessLost,
    RemotePathNotFound,
)

pytestmark = pytest.mark.anyio

SDK = f"claude-agent-sdk {claude_agent_sdk.__version__}"


def _broke(what: str, module: str = "_sdk_compat.py") -> str:
    return (
        f"{SDK} changed {what}; remote_executors/{module} depends on it. Adapt it to "
        "the new SDK (and this pin) before releasing against it."
    )


def arg_value(args: Any, flag: str) -> str | None:
    """The (last) value of ``flag``, however the SDK spelled it."""
    found = _cli_argv.values(_cli_argv.parse(list(args)), flag)
    return found[-1] if found else None


# --- pins on SDK private API ----------------------------------------------------------


def _parse(source: str) -> ast.Module:
    return _isolated_ast.parse(source)


def _open_process_calls(func: Callable[..., Any]) -> list[ast.Call]:
    tree = _parse(textwrap.dedent(inspect.getsource(func)))
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "open_process"
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "anyio"
    ]


def test_pin_transport_module_uses_the_anyio_module_global() -> None:
    assert hasattr(subprocess_cli, "anyio"), _broke("subprocess_cli's `import anyio`")
    module = subprocess_cli.anyio
    real = module._real if isinstance(module, sdk._AnyioWithRoute) else module
    assert real is anyio, _broke("what `anyio` means in subprocess_cli")
    # Imported by name, open_process would bypass the module attribute we route.
    assert "open_process" not in vars(subprocess_cli), _broke("how open_process is imported")


def test_pin_connect_starts_the_cli_with_anyio_open_process() -> None:
    calls = _open_process_calls(SubprocessCLITransport.connect)
    assert len(calls) == 1, _broke("SubprocessCLITransport.connect: anyio.open_process(...) call")
    call = calls[0]
    assert len(call.args) == 1, _broke("anyio.open_process's positional arguments (cmd)")
    keywords = {k.arg for k in call.keywords}
    needed = {"stdin", "stdout", "stderr", "cwd", "env", "user"}
    assert needed <= keywords, _broke(f"anyio.open_process keywords: {sorted(keywords)}")
    # Whatever the SDK passes, our stand-in accepts.
    accepted = set(inspect.signature(sdk.ExecutorTransport._open_process).parameters)
    assert keywords <= accepted | {None}, _broke(f"keywords {sorted(keywords - accepted)}")


def test_pin_connect_wraps_start_failures_with_the_cause() -> None:
    """sdk.ExecutorTransport.connect unwraps ``CLIConnectionError(...) from exc``."""
    source = inspect.getsource(SubprocessCLITransport.connect)
    assert "CLIConnectionError(" in source and "raise error from e" in source, _broke(
        "how connect() wraps a failure to start the CLI"
    )


def test_pin_transport_private_attributes() -> None:
    for name in ("_find_cli", "_build_command", "read_messages", "connect", "close"):
        assert callable(getattr(SubprocessCLITransport, name, None)), _broke(name)
    options = ClaudeAgentOptions()
    transport = SubprocessCLITransport(prompt="", options=options)
    assert transport._options is options, _broke("SubprocessCLITransport._options")
    assert transport._cli_path is None, _broke("SubprocessCLITransport._cli_path")
    assert transport._process is None, _broke("SubprocessCLITransport._process")
    # The accessors sdk.py goes through read and write exactly those.
    assert _sdk_compat.transport_options(transport) is options
    assert _sdk_compat.transport_connected(transport) is False
    _sdk_compat.set_transport_cli_path(transport, "/y/claude")
    assert transport._cli_path == _sdk_compat.transport_cli_path(transport) == "/y/claude"
    with_path = SubprocessCLITransport(prompt="", options=ClaudeAgentOptions(cli_path="/x/claude"))
    assert with_path._cli_path == "/x/claude", _broke("cli_path -> _cli_path")

    with_path._cli_path = "claude"
    command = with_path._build_command()
    assert isinstance(command, list) and command[0] == "claude", _broke("_build_command()[0]")
    for flag in ("--output-format", "stream-json", "--input-format"):
        assert flag in command, _broke(f"_build_command without {flag}")

    found = transport._find_cli()
    assert os.path.isfile(found) and os.access(found, os.X_OK), _broke("_find_cli()")
    assert rx.sdk.find_local_claude() == found
    assert _sdk_compat.find_local_claude() == found


def test_pin_bundled_cli_and_its_version() -> None:
    """install_cli() uploads the wheel's own binary and names it by the SDK's CLI version."""
    assert callable(getattr(SubprocessCLITransport, "_find_bundled_cli", None)), _broke(
        "_find_bundled_cli"
    )
    bundled = _sdk_compat.bundled_cli()
    assert bundled is not None and os.path.basename(bundled) == "claude", _broke("_bundled/claude")
    version_file = Path(bundled).with_name("claude.version")
    if version_file.exists():
        assert version_file.read_text().split()[0] == _sdk_compat.expected_cli_version()


def _every_option_sets(tmp: Path) -> list[ClaudeAgentOptions]:
    """Options that together make the SDK send every flag it knows (one variant of
    each union per set)."""
    from claude_agent_sdk import InMemorySessionStore

    common: dict[str, Any] = dict(
        tools=["Bash", "Read"],
        allowed_tools=["Bash"],
        mcp_servers={"s": {"type": "http", "url": "https://x", "headers": {"A": "b"}}},
        strict_mcp_config=True,
        permission_mode="acceptEdits",
        continue_conversation=True,
        resume="00000000-0000-4000-8000-000000000000",
        max_turns=3,
        max_budget_usd=1.5,
        disallowed_tools=["Write"],
        model="m",
        fallback_model="f",
        betas=["context-1m-2025-08-07"],
        permission_prompt_tool_name="stdio",
        settings='{"env": {"A": "1"}}',
        add_dirs=[str(tmp)],
        include_partial_messages=True,
        include_hook_events=True,
        fork_session=True,
        resume_session_at="11111111-1111-4111-8111-111111111111",
        resume_drops_turn="22222222-2222-4222-8222-222222222222",
        session_store=InMemorySessionStore(),
        setting_sources=["user"],
        skills=["s"],
        plugins=[{"type": "local", "path": str(tmp)}],
        effort="low",
        output_format={"type": "json_schema", "schema": {"type": "object"}},
        task_budget={"total": 1000},
        extra_args={"debug-to-stderr": None},
    )
    return [
        ClaudeAgentOptions(**common, system_prompt="s", thinking={"type": "adaptive"}),
        ClaudeAgentOptions(
            **common,
            system_prompt={"type": "file", "path": str(tmp / "p.md")},
            thinking={"type": "enabled", "budget_tokens": 2000, "display": "summarized"},
        ),
        ClaudeAgentOptions(
            **common,
            system_prompt={"type": "preset", "preset": "claude_code", "append": "x"},
            thinking={"type": "disabled"},
        ),
        ClaudeAgentOptions(
            system_prompt=None,
            max_thinking_tokens=100,
            tools={"type": "preset", "preset": "claude_code"},
        ),
    ]


def test_pin_every_flag_the_sdk_sends_is_known(tmp_path: Path) -> None:
    """The command line is read by meaning (``_cli_argv``): a flag it does not know
    could hide a credential or a local path, so a new one must be looked at."""
    for options in _every_option_sets(tmp_path):
        transport = SubprocessCLITransport(prompt="", options=options)
        transport._cli_path = "claude"
        parsed = _cli_argv.parse(transport._build_command()[1:])
        unknown = {a.flag for a in parsed if a.flag not in _cli_argv.KNOWN_FLAGS} - {
            "--debug-to-stderr"  # our extra_args
        }
        assert not unknown, _broke(
            f"its command line: it now sends {sorted(unknown)}. Add each to _cli_argv's "
            "table (value or boolean; PATH_FLAGS if it names a local path or may carry "
            "credentials)",
            "_cli_argv.py",
        )
        assert all(a.flag for a in parsed), _broke(
            f"its command line: an argument belongs to no flag in {parsed}", "_cli_argv.py"
        )
        # Every value-taking flag came with its value, in whichever spelling.
        for arg in parsed:
            if arg.flag in _cli_argv.VALUE_FLAGS:
                assert arg.value is not None, _broke(f"how {arg.flag} is sent", "_cli_argv.py")
        assert _cli_argv.unparse(parsed) == transport._build_command()[1:]


def test_pin_transcript_mirror_frames() -> None:
    """transcript_mirror frames carry ``filePath``; the batcher keys entries by it
    relative to ``_get_projects_dir(options.env)``, which ``mirror_projects_dir`` must
    equal (ExecutorTransport rewrites the path of a CLI that runs elsewhere)."""
    from claude_agent_sdk import InMemorySessionStore
    from claude_agent_sdk._internal import query as query_module
    from claude_agent_sdk._internal.session_resume import build_mirror_batcher

    # The module's text, not inspect.getsource(): that parses the module with ast, which
    # on CPython 3.11 fails at random with "AST constructor recursion depth mismatch".
    source = Path(inspect.getfile(query_module)).read_text(encoding="utf-8")
    assert "class Query" in source
    assert '"transcript_mirror"' in source and 'message["filePath"]' in source, _broke(
        "how transcript_mirror frames are read"
    )

    async def on_error(*_: Any) -> None:
        return None

    for env in ({}, {"CLAUDE_CONFIG_DIR": "/some/where"}):
        batcher = build_mirror_batcher(InMemorySessionStore(), None, env, on_error)
        assert batcher.projects_dir == _sdk_compat.mirror_projects_dir(env), _broke(
            "where the mirror batcher expects transcript files"
        )


def test_pin_store_resume_helpers() -> None:
    """``rx`` resumes from a store on another machine with the SDK's own loading."""
    from claude_agent_sdk._internal import session_resume

    for name in ("_load_candidate", "_resolve_continue_candidate"):
        params = list(inspect.signature(getattr(session_resume, name)).parameters)
        assert params[0] == "store" and params[-1] == "timeout_s", _broke(name)
    assert _sdk_compat.agent_metadata_sidecar_name("agent-x.jsonl") == "agent-x.meta.json"
    meta, lines = _sdk_compat.split_agent_metadata(
        [{"type": "agent_metadata", "a": 1}, {"type": "user", "uuid": "u"}]
    )
    assert meta == {"type": "agent_metadata", "a": 1} and lines == [{"type": "user", "uuid": "u"}]


def test_pin_read_messages_returns_an_async_iterator() -> None:
    """ExecutorTransport.read_messages wraps ``super().read_messages()``."""
    assert not inspect.iscoroutinefunction(SubprocessCLITransport.read_messages), _broke(
        "read_messages (no longer a plain function returning an async iterator)"
    )
    source = inspect.getsource(SubprocessCLITransport._read_messages_impl)
    assert "ProcessError(" in source, _broke("read_messages raising ProcessError on exit != 0")


def test_pin_configure_can_use_tool() -> None:
    from claude_agent_sdk.types import _configure_can_use_tool

    async def allow(*_: Any) -> Any:
        return None

    plain = ClaudeAgentOptions()
    assert _configure_can_use_tool(plain) is plain, _broke("_configure_can_use_tool")
    options = ClaudeAgentOptions(can_use_tool=allow)
    configured = _configure_can_use_tool(options)
    assert configured.permission_prompt_tool_name == "stdio", _broke("_configure_can_use_tool")
    assert options.permission_prompt_tool_name is None  # a copy, not a mutation
    assert _sdk_compat.configure_can_use_tool is _configure_can_use_tool


def test_pin_query_and_client_accept_a_transport() -> None:
    assert "transport" in inspect.signature(claude_agent_sdk.query).parameters, _broke("query()")
    client = inspect.signature(claude_agent_sdk.ClaudeSDKClient.__init__).parameters
    assert "transport" in client, _broke("ClaudeSDKClient(transport=...)")
    assert issubclass(rx.ClaudeSDKClient, claude_agent_sdk.ClaudeSDKClient)
    assert issubclass(rx.ExecutorTransport, SubprocessCLITransport)


def test_pin_query_is_only_a_loop_over_process_query() -> None:
    # rx.query makes the same InternalClient().process_query(...) call itself so it can
    # close that generator when it is closed (claude_agent_sdk.query never does). That
    # is only equivalent while the SDK's query() does nothing else.
    from claude_agent_sdk._internal.client import InternalClient

    assert _sdk_compat.InternalClient is InternalClient
    process_query = InternalClient.process_query
    assert inspect.isasyncgenfunction(process_query), _broke("InternalClient.process_query")
    params = inspect.signature(process_query).parameters
    assert {"prompt", "options", "transport"} <= set(params), _broke("process_query()")
    body = _parse(textwrap.dedent(inspect.getsource(claude_agent_sdk.query))).body[0]
    assert isinstance(body, ast.AsyncFunctionDef)
    statements = [
        node
        for node in body.body
        if not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant))
    ]
    shapes = [type(node).__name__ for node in statements]
    assert shapes == ["If", "Assign", "AsyncFor"], _broke(f"query() (now {shapes})")
    loop = statements[-1]
    assert isinstance(loop, ast.AsyncFor) and "process_query" in ast.unparse(loop.iter)


# --- a fake executor ---------------------------------------------------------------


class _Stdout(ByteReceiveStream):
    def __init__(self, process: FakeProcess, data: bytes) -> None:
        self._process = process
        self._data = data

    async def receive(self, max_bytes: int = 65536) -> bytes:
        if self._data:
            chunk, self._data = self._data[:max_bytes], self._data[max_bytes:]
            return chunk
        await self._process.exited.wait()
        raise anyio.EndOfStream

    async def aclose(self) -> None:
        pass


class _Stdin(ByteSendStream):
    def __init__(self, process: FakeProcess) -> None:
        self._process = process
        self.data = b""

    async def send(self, item: bytes) -> None:
        self.data += item

    async def aclose(self) -> None:
        self._process.exit(0)


class FakeProcess(Process):
    """Prints ``output``, then exits when its stdin is closed or it is signalled."""

    def __init__(self, output: bytes = b"", stderr: bool = False) -> None:
        self.exited = anyio.Event()
        self._returncode: int | None = None
        self._stdin = _Stdin(self)
        self._stdout = _Stdout(self, output)
        self._stderr = _Stdout(self, b"") if stderr else None

    def exit(self, code: int) -> None:
        if self._returncode is None:
            self._returncode = code
            self.exited.set()

    async def wait(self) -> int:
        await self.exited.wait()
        assert self._returncode is not None
        return self._returncode

    async def aclose(self) -> None:
        self.kill()

    def terminate(self) -> None:
        self.exit(-15)

    def kill(self) -> None:
        self.exit(-9)

    def send_signal(self, signal: int) -> None:
        self.exit(-signal)

    @property
    def pid(self) -> int:
        return 424242

    @property
    def returncode(self) -> int | None:
        return self._returncode

    @property
    def stdin(self) -> ByteSendStream:
        return self._stdin

    @property
    def stdout(self) -> ByteReceiveStream:
        return self._stdout

    @property
    def stderr(self) -> ByteReceiveStream | None:
        return self._stderr


#: What ``claude -v`` prints; SDKs before 0.2.190 run it before starting the CLI.
VERSION_OUTPUT = b"2.1.999 (Claude Code)\n"


def _version_check(options: rx.SpawnOptions) -> bool:
    return list(options.args) == ["-v"]


class FakeExecutor:
    """Implements the Executor protocol; records what it was asked to start."""

    def __init__(self, error: BaseException | None = None, name: str = "fakebox") -> None:
        self._name = name
        self.error = error
        self.spawned: list[rx.SpawnOptions] = []
        self.processes: list[FakeProcess] = []
        self.gate: anyio.Event | None = None

    @property
    def name(self) -> str:
        return self._name

    @property
    def spec(self) -> str:
        return f"fake://{self._name}"

    async def spawn(self, options: rx.SpawnOptions) -> Process:
        if _version_check(options):
            return FakeProcess(VERSION_OUTPUT, stderr=True)
        self.spawned.append(options)
        if self.gate is not None:
            await self.gate.wait()
        if self.error is not None:
            raise self.error
        process = FakeProcess(stderr=options.stderr)
        self.processes.append(process)
        return process

    async def run(self, argv: Any, **kwargs: Any) -> rx.CommandResult:
        raise AssertionError("the SDK seam never runs short commands")

    async def home(self) -> str:
        return "/home/fake"

    async def map_cwd(self, local_cwd: str) -> str:
        return local_cwd

    async def aclose(self) -> None:
        pass


class RecordingLocal(rx.LocalExecutor):
    """A LocalExecutor that records instead of starting anything."""

    def __init__(self) -> None:
        self.spawned: list[rx.SpawnOptions] = []

    async def spawn(self, options: rx.SpawnOptions) -> Process:
        if _version_check(options):
            return FakeProcess(VERSION_OUTPUT, stderr=True)
        self.spawned.append(options)
        return FakeProcess(stderr=options.stderr)


async def _spawned(
    options: ClaudeAgentOptions, executor: FakeExecutor | RecordingLocal
) -> rx.SpawnOptions:
    transport = rx.ExecutorTransport("", options, executor)
    await transport.connect()
    try:
        assert transport.executor_process is not None
        assert len(executor.spawned) == 1
        return executor.spawned[0]
    finally:
        await transport.close()


# --- the protocol ------------------------------------------------------------------


def test_executors_implement_the_protocol() -> None:
    assert isinstance(rx.LocalExecutor(), rx.Executor)
    assert isinstance(rx.SSHExecutor("box"), rx.Executor)
    assert isinstance(FakeExecutor(), rx.Executor)
    assert not isinstance(object(), rx.Executor)


async def test_query_refuses_a_non_executor() -> None:
    with pytest.raises(TypeError, match="Executor"):
        async for _ in rx.query(prompt="hi", executor=object()):  # type: ignore[arg-type]
            pass


async def test_spawn_claude_code_process_hook() -> None:
    executor = FakeExecutor()
    spawn = rx.spawn_claude_code_process(executor)
    options = rx.SpawnOptions("claude", ["-p"], cwd="/x", env={"A": "1"})
    process = await spawn(options)
    assert executor.spawned == [options] and process is executor.processes[0]


# --- what the transport asks the executor to start ------------------------------------


async def test_spawn_options_for_a_remote_executor(monkeypatch: pytest.MonkeyPatch) -> None:
    local_only = f"RX_LOCAL_ONLY_{uuid.uuid4().hex}"
    monkeypatch.setenv(local_only, "must not travel")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "local-secret")
    monkeypatch.setenv("RX_SHARED", "same")
    options = ClaudeAgentOptions(
        cwd="/home/me/code/shop",
        env={"MY_OPTION": "v a l", "EMPTY": "", "RX_SHARED": "same"},
        model="claude-test",
    )
    spawned = await _spawned(options, FakeExecutor())

    assert spawned.command == "claude"  # found on the remote machine, not the local path
    args = list(spawned.args)
    for flag in ("--output-format", "stream-json", "--input-format", "--verbose"):
        assert flag in args
    assert arg_value(args, "--model") == "claude-test"
    assert spawned.cwd == "/home/me/code/shop"  # local; the executor maps it

    env = dict(spawned.env)
    assert env["MY_OPTION"] == "v a l" and env["EMPTY"] == ""
    assert env["RX_SHARED"] == "same"  # asked for explicitly, even if equal to ours
    assert env["CLAUDE_CODE_ENTRYPOINT"] == "sdk-py"
    assert env["CLAUDE_AGENT_SDK_VERSION"] == claude_agent_sdk.__version__
    assert local_only not in env
    assert "ANTHROPIC_API_KEY" not in env  # local secrets stay local
    assert "PATH" not in env and "HOME" not in env
    assert "PWD" not in env and "OLDPWD" not in env
    assert spawned.stderr is False


async def test_explicit_cli_path_is_used() -> None:
    options = ClaudeAgentOptions(cli_path="/opt/claude/bin/claude")
    assert (await _spawned(options, FakeExecutor())).command == "/opt/claude/bin/claude"


async def test_stderr_callback_asks_for_a_stderr_stream() -> None:
    options = ClaudeAgentOptions(stderr=lambda line: None)
    assert (await _spawned(options, FakeExecutor())).stderr is True


async def test_can_use_tool_routes_permission_prompts_over_stdio() -> None:
    async def allow(*_: Any) -> Any:
        return None

    args = list((await _spawned(ClaudeAgentOptions(can_use_tool=allow), FakeExecutor())).args)
    assert arg_value(args, "--permission-prompt-tool") == "stdio"
    plain = list((await _spawned(ClaudeAgentOptions(), FakeExecutor())).args)
    assert arg_value(plain, "--permission-prompt-tool") is None


async def test_spawn_options_for_the_local_executor(monkeypatch: pytest.MonkeyPatch) -> None:
    local_only = f"RX_LOCAL_ONLY_{uuid.uuid4().hex}"
    monkeypatch.setenv(local_only, "inherited anyway")
    executor = RecordingLocal()
    spawned = await _spawned(ClaudeAgentOptions(env={"MY_OPTION": "v"}), executor)
    # Locally the SDK's own CLI search applies: the bundled CLI.
    assert os.path.isabs(spawned.command) and os.path.isfile(spawned.command)
    assert spawned.command == rx.sdk.find_local_claude()
    env = dict(spawned.env)
    assert env["MY_OPTION"] == "v"
    assert env["CLAUDE_CODE_ENTRYPOINT"] == "sdk-py"
    # Only what differs from this process's environment (the rest is inherited).
    assert local_only not in env and "PATH" not in env


@pytest.mark.parametrize("cwd", ["/tmp/a\x00b", "/tmp/a\nb", "-rf"], ids=["nul", "newline", "dash"])
async def test_a_cwd_no_command_line_can_carry_is_invalid_input(cwd: str) -> None:
    executor = FakeExecutor()
    with pytest.raises(InvalidInput, match="cwd") as caught:
        async for _ in rx.query(
            prompt="hi", options=ClaudeAgentOptions(cwd=cwd), executor=executor
        ):
            pass
    assert caught.value.host == "fakebox" and "fakebox" in str(caught.value)
    assert executor.spawned == []


async def test_user_option_is_refused_not_ignored() -> None:
    options = ClaudeAgentOptions(user="alice")
    with pytest.raises(InvalidInput, match="user") as info:
        rx.ExecutorTransport("", options, FakeExecutor())
    assert info.value.host == "fakebox" and "fakebox" in str(info.value)
    with pytest.raises(InvalidInput, match="user"):
        async for _ in rx.query(prompt="hi", options=options, executor=FakeExecutor()):
            pass
    # Executors cannot switch users: locally too, refusing beats running as someone else.
    with pytest.raises(InvalidInput, match="user"):
        rx.ExecutorTransport("", options, RecordingLocal())


# --- errors from the executor ---------------------------------------------------------

ERRORS = [
    ConnectionFailed("Cannot connect to fakebox. Check it.", host="fakebox"),
    AuthenticationFailed("Authentication to fakebox failed.", host="fakebox", detail="raw"),
    HostKeyError("The host key of fakebox has changed.", host="fakebox"),
    ClaudeNotFound("Claude CLI not installed on fakebox.", host="fakebox", searched=("/a",)),
    RemotePathNotFound("Path /x doesn't exist on fakebox.", host="fakebox", path="/x"),
]


@pytest.mark.parametrize("error", ERRORS, ids=lambda e: type(e).__name__)
async def test_executor_errors_come_out_of_connect_unwrapped(error: ExecutorError) -> None:
    transport = rx.ExecutorTransport("", ClaudeAgentOptions(), FakeExecutor(error))
    with pytest.raises(ExecutorError) as info:
        await transport.connect()
    assert info.value is error
    assert "Failed to start Claude Code" not in str(info.value)
    assert sdk._route.get() is None  # the routing ended with the failed connect


@pytest.mark.parametrize("error", ERRORS[:2], ids=lambda e: type(e).__name__)
async def test_executor_errors_come_out_of_query_and_client(error: ExecutorError) -> None:
    with pytest.raises(ExecutorError) as info:
        async for _ in rx.query(prompt="hi", executor=FakeExecutor(error)):
            pass
    assert info.value is error

    client = rx.ClaudeSDKClient(executor=FakeExecutor(error))
    with pytest.raises(ExecutorError) as info:
        await client.connect()
    assert info.value is error


async def test_other_spawn_failures_stay_sdk_errors() -> None:
    boom = RuntimeError("boom")
    transport = rx.ExecutorTransport("", ClaudeAgentOptions(), FakeExecutor(boom))
    with pytest.raises(CLIConnectionError) as info:
        await transport.connect()
    assert info.value.__cause__ is boom


# --- the routing never touches anyone else's subprocesses -------------------------------


async def test_route_falls_through_to_real_anyio_without_a_route() -> None:
    sdk._install_route()
    sdk._install_route()  # idempotent: never a wrapper around a wrapper
    wrapper = subprocess_cli.anyio
    assert isinstance(wrapper, sdk._AnyioWithRoute) and wrapper._real is anyio
    assert wrapper.Lock is anyio.Lock and wrapper.to_thread is anyio.to_thread
    assert sdk._route.get() is None
    process = await wrapper.open_process(["sh", "-c", "echo real"], stdout=subprocess.PIPE)
    async with process:
        assert process.stdout is not None
        assert await process.stdout.receive() == b"real\n"
        assert await process.wait() == 0


async def test_plain_sdk_use_in_another_task_is_unaffected(tmp_path: Path) -> None:
    """While our transport is connecting, a plain SDK transport starts its own CLI."""
    marker = tmp_path / "plain-ran"
    fake_cli = tmp_path / "fake-claude"
    fake_cli.write_text(f"#!/bin/sh\ntouch '{marker}'\nexec cat >/dev/null\n")
    fake_cli.chmod(0o755)

    executor = FakeExecutor()
    executor.gate = anyio.Event()
    ours = rx.ExecutorTransport("", ClaudeAgentOptions(), executor)
    plain = SubprocessCLITransport(prompt="", options=ClaudeAgentOptions(cli_path=str(fake_cli)))
    with anyio.fail_after(15):
        async with anyio.create_task_group() as tg:
            tg.start_soon(ours.connect)
            while not executor.spawned:  # ours is now inside the routed open_process
                await anyio.sleep(0.01)
            await plain.connect()  # same module, same moment, another task
            executor.gate.set()
        while not marker.exists():
            await anyio.sleep(0.01)
        await plain.close()
        await ours.close()
    assert len(executor.spawned) == 1
    assert executor.spawned[0].command == "claude"
    assert sdk._route.get() is None


# --- a lost link surfaces as ProcessLost (real bootstrap, shell backend) --------------


@pytest.fixture
async def shell_executor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[rx.SSHExecutor, Path]]:
    monkeypatch.setenv("HOME", str(tmp_path / "local home"))
    remote_home = tmp_path / "remote home"
    remote_home.mkdir()
    cli = remote_home / "fake-claude"
    # A CLI exiting 255 stands for ssh's own exit on a lost link, which only an
    # unsupervised process shows (with reattach, test_reattach.py).
    executor = rx.SSHExecutor("shellbox", claude_path=str(cli), reattach_within=0)
    backend = ShellBackend(home=str(remote_home))
    executor._backend = backend
    yield executor, cli
    await backend.aclose()


@pytest.mark.parametrize(("code", "lost"), [(255, True), (3, False)])
async def test_lost_link_is_process_lost(
    shell_executor: tuple[rx.SSHExecutor, Path], code: int, lost: bool
) -> None:
    executor, cli = shell_executor
    cli.write_text(
        "#!/bin/sh\n"
        'printf \'{"type":"system","subtype":"status","argc":"%s"}\\n\' "$#"\n'
        'echo "ssh: connection to fakebox lost" >&2\n'
        f"exit {code}\n"
    )
    cli.chmod(0o755)
    transport = rx.ExecutorTransport("", ClaudeAgentOptions(), executor)
    messages = []
    with anyio.fail_after(20):
        await transport.connect()
        with pytest.raises(ProcessError) as info:
            async for message in transport.read_messages():
                messages.append(message)
        await transport.close()
    assert messages and messages[0]["subtype"] == "status" and int(messages[0]["argc"]) > 3
    assert isinstance(info.value, ProcessLost) is lost
    if lost:
        assert info.value.host == "shellbox"  # type: ignore[attr-defined]
        assert info.value.exit_code == 255
        assert "shellbox" in str(info.value)
    else:
        assert info.value.exit_code == code


# --- transcript_mirror frames from a CLI elsewhere ------------------------------------


def test_mirror_frames_are_keyed_by_the_local_project(tmp_path: Path) -> None:
    local_cwd = tmp_path / "code" / "shop"
    local_cwd.mkdir(parents=True)
    transport = rx.ExecutorTransport("", ClaudeAgentOptions(cwd=str(local_cwd)), FakeExecutor())
    transport._cli_cwd = "/home/u/code/shop"  # the remote CLI's, from its init message
    sid = str(uuid.uuid4())
    there = f"/home/u/.claude/projects/-home-u-code-shop/{sid}"
    key = claude_agent_sdk.project_key_for_directory(str(local_cwd))
    here = Path(_sdk_compat.mirror_projects_dir({})) / key

    for remote, local in (
        (f"{there}.jsonl", here / f"{sid}.jsonl"),
        (f"{there}/subagents/agent-a1.jsonl", here / sid / "subagents" / "agent-a1.jsonl"),
    ):
        frame = {"type": "transcript_mirror", "filePath": remote, "entries": []}
        assert transport._mirror_to_local(frame)
        assert frame["filePath"] == str(local)
    # A remote CLI has no business in other projects: dropped, never keyed elsewhere.
    for hostile in (
        f"/home/u/.claude/projects/-home-u-code-other/{sid}.jsonl",
        f"{there}/../../-home-u-code-other/{sid}.jsonl",
        "relative.jsonl",
        None,
    ):
        frame = {"type": "transcript_mirror", "filePath": hostile, "entries": []}
        assert not transport._mirror_to_local(frame), hostile
