"""An in-memory executor for host applications' own unit tests: no processes, no network.

Like httpx's ``MockTransport``, :class:`FakeExecutor` takes handlers that
script what the "machine" does::

    from remote_executors import CommandResult
    from remote_executors.testing import FakeExecutor

    async def on_run(call):                      # a FakeRun: argv, cwd, env, input
        if call.argv[:1] == ["git"]:
            return CommandResult(0, b"main\\n", b"")
        return CommandResult(127, b"", b"not found\\n")

    executor = FakeExecutor(on_run=on_run)

``on_spawn(options, process)`` plays a spawned process: it reads
``process.stdin`` lines with :meth:`FakeProcess.read_line`, writes with
:meth:`FakeProcess.write`, and returns its exit status. Without one, a spawn
of ``claude`` plays :func:`claude_cli` (a tiny stream-json CLI that answers
each prompt with one text reply), so ``rx.query(..., executor=FakeExecutor(),
sync=False)`` runs a whole session in memory. Every call is recorded
(``runs``, ``spawned``) for assertions.

A fake is reopened by its spec ``fake://NAME`` while it is alive: a session
recorded on it resumes on the same object. Register the scheme in the test
(``rx.register_executor("fake", FakeExecutor)``) to resume without
``executor=``.

What it does not do: run anything, touch the file system, or carry
transcripts (pass ``sync=False`` to ``rx.query``; a fake machine has no files
to sync). Cwd mapping is the identity, unless ``path_map`` says otherwise.
"""

from __future__ import annotations

import inspect
import itertools
import json
import uuid
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import anyio
import attrs
from anyio.abc import ByteReceiveStream, ByteSendStream, Process
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ..errors import CommandTimeout, ExecutorError, InvalidInput, OutputTooLarge, ProcessLost
from ..executors._piped_process import PipedProcess
from ..executors.base import CommandResult, SpawnOptions
from ..executors.registry import format_spec, parse_spec

__all__ = ["FakeExecutor", "FakeProcess", "FakeRun", "claude_cli"]

_pids = itertools.count(990_000)
_alive: weakref.WeakValueDictionary[str, FakeExecutor] = weakref.WeakValueDictionary()

#: What ``claude --version`` prints on a fake machine.
FAKE_CLI_VERSION = "2.1.999 (Claude Code)"


@attrs.frozen
class FakeRun:
    """One ``run`` call as the fake received it."""

    argv: tuple[str, ...]
    cwd: str | None = None
    env: Mapping[str, str] = attrs.field(factory=dict)
    input: bytes | None = None
    timeout: float = 30.0


RunHandler = Callable[[FakeRun], "CommandResult | Awaitable[CommandResult]"]
SpawnHandler = Callable[[SpawnOptions, "FakeProcess"], Awaitable["int | None"]]


class _Receive(ByteReceiveStream):
    def __init__(self, stream: MemoryObjectReceiveStream[bytes]) -> None:
        self._stream = stream

    async def receive(self, max_bytes: int = 65536) -> bytes:
        try:
            return await self._stream.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            raise anyio.EndOfStream from None

    async def aclose(self) -> None:
        await self._stream.aclose()


class _Send(ByteSendStream):
    def __init__(self, stream: MemoryObjectSendStream[bytes]) -> None:
        self._stream = stream

    async def send(self, item: bytes) -> None:
        try:
            await self._stream.send(bytes(item))
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            raise anyio.BrokenResourceError from None

    async def aclose(self) -> None:
        await self._stream.aclose()


class FakeProcess(PipedProcess):
    """A process that exists only in memory, played by a spawn handler.

    The caller's side is the usual ``anyio.abc.Process`` (``stdin``,
    ``stdout``, ``stderr``, ``wait``, ``terminate``...). The handler's side:
    :meth:`read_line` / :meth:`read` (what the caller wrote; ``b""`` once it
    closed stdin), :meth:`write` / :meth:`write_stderr`, :attr:`signalled`
    and :attr:`signals`. A signal ends it with ``-N`` (as ``subprocess``
    reports it) unless the play set :attr:`trap_signals`. :meth:`lose` ends
    it as a dropped link would: ``lost_error()`` then returns
    :class:`~remote_executors.ProcessLost`.
    """

    def __init__(self, host: str, options: SpawnOptions, *, cwd: str = "") -> None:
        self.host = host
        self.options = options
        self.pid_value = next(_pids)
        self.signalled = anyio.Event()
        self.signals: list[int] = []
        self._exited = anyio.Event()
        self._returncode: int | None = None
        self._lost = False
        self._cwd = cwd
        # Unbounded buffers: a handler never blocks on a caller that reads late.
        in_send, self._in = anyio.create_memory_object_stream[bytes](float("inf"))
        self._out, out_receive = anyio.create_memory_object_stream[bytes](float("inf"))
        self._err, err_receive = anyio.create_memory_object_stream[bytes](float("inf"))
        self._stdin = _Send(in_send)
        self._stdout = _Receive(out_receive)
        self._stderr = _Receive(err_receive) if options.stderr else None
        self._pending = b""
        #: True: signals other than SIGKILL only set :attr:`signalled` (the play decides).
        self.trap_signals = False
        #: What the play raised, if it failed (the process then exited 1).
        self.error: Exception | None = None

    # -- the handler's side ---------------------------------------------------

    async def read(self) -> bytes:
        """The next bytes the caller wrote to stdin; ``b""`` once stdin is closed."""
        if self._pending:
            data, self._pending = self._pending, b""
            return data
        try:
            return await self._in.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            return b""

    async def read_line(self) -> bytes:
        """The next line from stdin (with its newline); ``b""`` at its end."""
        while b"\n" not in self._pending:
            chunk = await self._read_more()
            if not chunk:
                line, self._pending = self._pending, b""
                return line
            self._pending += chunk
        line, _, self._pending = self._pending.partition(b"\n")
        return line + b"\n"

    async def _read_more(self) -> bytes:
        try:
            return await self._in.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            return b""

    def write(self, data: bytes) -> None:
        """Print ``data`` on stdout (dropped once the process has exited)."""
        if self._returncode is None:
            self._out.send_nowait(data)

    def write_stderr(self, data: bytes) -> None:
        if self._returncode is None and self._stderr is not None:
            self._err.send_nowait(data)

    def exit(self, code: int) -> None:
        """End the process with ``code`` (the first call wins)."""
        if self._returncode is not None:
            return
        self._returncode = code
        self._out.close()
        self._err.close()
        self._in.close()
        self._exited.set()

    def lose(self) -> None:
        """End the process as a dropped link ends a remote one."""
        self._lost = True
        self.exit(255)

    # -- capabilities ------------------------------------------------------------

    def lost_error(self) -> ExecutorError | None:
        """:class:`~remote_executors.ProcessLost` after :meth:`lose`, else None."""
        if not self._lost:
            return None
        return ProcessLost(
            f"The link to {self.host} dropped while {self.options.command} ran there "
            "(a FakeExecutor's process was lost). Resume the session to continue.",
            host=self.host,
            exit_code=255,
        )

    @property
    def remote_path(self) -> str:
        return f"/fake/bin/{self.options.command}" if "/" not in self.options.command else ""

    @property
    def remote_cwd(self) -> str:
        return self._cwd

    # -- anyio.abc.Process -----------------------------------------------------------

    async def wait(self) -> int:
        await self._exited.wait()
        assert self._returncode is not None
        return self._returncode

    def terminate(self) -> None:
        self.send_signal(15)

    def kill(self) -> None:
        self.send_signal(9)

    def send_signal(self, signal: int) -> None:
        if self._returncode is not None:
            raise ProcessLookupError(self.pid_value)
        self.signals.append(int(signal))
        self.signalled.set()
        if signal == 9 or not self.trap_signals:
            self.exit(-int(signal))

    async def aclose(self) -> None:
        with anyio.CancelScope(shield=True):
            await self._stdin.aclose()
            if self._returncode is None:
                self.kill()

    @property
    def pid(self) -> int:
        return self.pid_value

    @property
    def returncode(self) -> int | None:
        return self._returncode


async def _not_scripted(call: FakeRun) -> CommandResult:
    return CommandResult(127, b"", f"{call.argv[0]}: not scripted on this FakeExecutor\n".encode())


class FakeExecutor:
    """An executor whose machine is a script: ``on_run`` answers ``run``,
    ``on_spawn`` plays spawned processes (see the module docs).

    ``name`` names it in messages and in its spec ``fake://NAME``; ``home`` is
    what ``home()`` says; ``path_map`` maps local directory prefixes to the
    fake machine's (default: the identity). A handler may raise any
    ``ExecutorError`` to stand for a failure (``ConnectionFailed``...); it
    reaches the caller as the real executors raise it.
    """

    def __init__(
        self,
        *,
        on_run: RunHandler | None = None,
        on_spawn: SpawnHandler | None = None,
        name: str = "fake",
        home: str = "/home/fake",
        path_map: Mapping[str, str] | None = None,
    ) -> None:
        if not name or "/" in name or "?" in name or any(c.isspace() for c in name):
            raise InvalidInput(f"FakeExecutor name {name!r}: a short word is needed.", host=name)
        self._name = name
        self._home = home
        self._on_run: RunHandler = on_run or _not_scripted
        self._on_spawn = on_spawn
        self._path_map = sorted((path_map or {}).items(), key=lambda p: len(p[0]), reverse=True)
        self.runs: list[FakeRun] = []
        self.spawned: list[SpawnOptions] = []
        self.processes: list[FakeProcess] = []
        self.closed = False
        _alive[name] = self

    def __repr__(self) -> str:
        return f"FakeExecutor(name={self._name!r})"

    @classmethod
    def from_spec(cls, spec: str) -> FakeExecutor:
        """The live fake named in ``fake://NAME``, else a new one by that name."""
        parsed = parse_spec(spec)
        if parsed.scheme != "fake" or not parsed.target or parsed.options:
            raise InvalidInput(f"A FakeExecutor spec is fake://NAME, not {spec!r}.", host=spec)
        return _alive.get(parsed.target) or cls(name=parsed.target)

    @property
    def name(self) -> str:
        return self._name

    @property
    def spec(self) -> str:
        return format_spec("fake", self._name)

    @property
    def finds_claude(self) -> bool:
        """spawn("claude") is answered by the script (check() asks it, as on SSH)."""
        return True

    async def home(self) -> str:
        return self._home

    async def map_cwd(self, local_cwd: str) -> str:
        for local, remote in self._path_map:
            if local_cwd == local or local_cwd.startswith(local.rstrip("/") + "/"):
                return remote + local_cwd[len(local.rstrip("/")) :]
        return local_cwd

    async def run(
        self,
        argv: Sequence[str],
        *,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        input: bytes | None = None,
        timeout: float = 30.0,
        max_output: int = 64 * 1024 * 1024,
    ) -> CommandResult:
        if not argv:
            raise InvalidInput(f"No command given to run on {self._name}.", host=self._name)
        call = FakeRun(tuple(argv), cwd, dict(env or {}), input, timeout)
        self.runs.append(call)
        try:
            with anyio.fail_after(timeout):
                answer = self._on_run(call)
                result = await answer if inspect.isawaitable(answer) else answer
        except TimeoutError:
            raise CommandTimeout(
                f"{argv[0]} did not finish within {timeout:g} s on {self._name}.", host=self._name
            ) from None
        if not isinstance(result, CommandResult):
            raise TypeError(f"on_run must return a CommandResult, not {result!r}")
        for stream, data in (("stdout", result.stdout), ("stderr", result.stderr)):
            if len(data) > max_output:
                raise OutputTooLarge(
                    f"{argv[0]} printed more than {max_output} bytes on {stream} on "
                    f"{self._name}; it was stopped.",
                    host=self._name,
                    limit=max_output,
                    stream=stream,
                )
        return result

    async def spawn(self, options: SpawnOptions) -> Process:
        if self.closed:
            raise InvalidInput(f"{self._name} is closed.", host=self._name)
        self.spawned.append(options)
        cwd = await self.map_cwd(options.cwd) if options.cwd is not None else self._home
        process = FakeProcess(self._name, options, cwd=cwd)
        self.processes.append(process)
        handler = self._on_spawn
        if handler is None:
            handler = claude_cli() if options.command == "claude" else _exit_at_end_of_input
        # The play runs beside the caller, as a real process would: not in the
        # caller's task (which may be cancelled or closed independently).
        _start_detached(_play(handler, options, process))
        return process

    async def aclose(self) -> None:
        self.closed = True
        for process in self.processes:
            if process.returncode is None:
                process.terminate()
                process.exit(-15)


async def _exit_at_end_of_input(options: SpawnOptions, process: FakeProcess) -> int:
    while await process.read():
        pass
    return 0


async def _play(handler: SpawnHandler, options: SpawnOptions, process: FakeProcess) -> None:
    try:
        code = await handler(options, process)
    except Exception as exc:  # the play's failure is the process's, as a crash would be
        process.error = exc
        process.write_stderr(f"{type(exc).__name__}: {exc}\n".encode())
        process.exit(1)
        return
    process.exit(0 if code is None else code)


def _start_detached(play: Awaitable[None]) -> None:
    """Run ``play`` on the current event loop without binding it to the caller's task."""
    import sniffio

    library = sniffio.current_async_library()
    if library == "trio":
        import trio

        trio.lowlevel.spawn_system_task(_awaited, play)
    else:
        import asyncio

        task = asyncio.get_running_loop().create_task(_awaited(play))
        _tasks.add(task)
        task.add_done_callback(_tasks.discard)


_tasks: set[Any] = set()


async def _awaited(play: Awaitable[None]) -> None:
    await play


def claude_cli(
    replies: Sequence[str] = ("Hello from a FakeExecutor.",), *, session_id: str | None = None
) -> SpawnHandler:
    """A spawn handler that plays a tiny Claude Code CLI speaking stream-json.

    It answers the SDK's control requests (``initialize`` and the rest) with
    success, ``--version``/``-v`` with a version line, and each user message
    with a system ``init``, one assistant text (the next of ``replies``, the
    last one repeating) and a ``result``. It exits when stdin closes.
    """
    texts = list(replies) or [""]

    async def play(options: SpawnOptions, process: FakeProcess) -> int:
        if any(arg in ("-v", "--version") for arg in options.args):
            process.write(f"{FAKE_CLI_VERSION}\n".encode())
            return 0
        sid = session_id or _resumed(options.args) or str(uuid.uuid4())
        turn = 0
        while line := await process.read_line():
            try:
                message = json.loads(line)
            except ValueError:
                continue
            kind = message.get("type") if isinstance(message, dict) else None
            if kind == "control_request":
                process.write(_line(_control_success(message)))
            elif kind == "user":
                text = texts[min(turn, len(texts) - 1)]
                turn += 1
                for out in _turn(sid, process.remote_cwd, text):
                    process.write(_line(out))
        return 0

    return play


def _resumed(args: Sequence[str]) -> str | None:
    for index, arg in enumerate(args):
        if arg.startswith("--resume="):
            return arg.partition("=")[2]
        if arg == "--resume" and index + 1 < len(args):
            return args[index + 1]
    return None


def _line(message: dict[str, Any]) -> bytes:
    return json.dumps(message).encode() + b"\n"


def _control_success(request: dict[str, Any]) -> dict[str, Any]:
    inner = request.get("request") or {}
    response: dict[str, Any] = {}
    if isinstance(inner, dict) and inner.get("subtype") == "initialize":
        response = {"commands": [], "output_style": "default"}
    return {
        "type": "control_response",
        "response": {
            "subtype": "success",
            "request_id": request.get("request_id"),
            "response": response,
        },
    }


def _turn(session_id: str, cwd: str, text: str) -> list[dict[str, Any]]:
    return [
        {
            "type": "system",
            "subtype": "init",
            "session_id": session_id,
            "cwd": cwd,
            "tools": [],
            "model": "fake",
            "permissionMode": "default",
            "claude_code_version": FAKE_CLI_VERSION.split()[0],
        },
        {
            "type": "assistant",
            "message": {"model": "fake", "content": [{"type": "text", "text": text}]},
            "session_id": session_id,
            "uuid": str(uuid.uuid4()),
        },
        {
            "type": "result",
            "subtype": "success",
            "duration_ms": 1,
            "duration_api_ms": 0,
            "is_error": False,
            "num_turns": 1,
            "session_id": session_id,
            "total_cost_usd": 0.0,
            "usage": {"input_tokens": 0, "output_tokens": 0},
            "result": text,
        },
    ]
