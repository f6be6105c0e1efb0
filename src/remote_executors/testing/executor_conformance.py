"""A conformance suite for :class:`~remote_executors.Executor` implementations.

Every executor (``LocalExecutor``, ``SSHExecutor`` over each SSH backend, and
any executor an application writes) must behave the same way where the SDK
and the sync code depend on it: bytes in and out of a process exactly as
sent, exit statuses, environment and working directory as asked, processes
really gone from the executor's machine once stopped, typed errors that name
the machine. A backend is a subclass of :class:`ExecutorConformance` that
provides three fixtures:

- ``executor``: the :class:`~remote_executors.Executor` under test, fresh for
  each test; the fixture closes it afterwards (some tests close it
  themselves first, so ``aclose`` must be idempotent);
- ``workdir``: a local directory (a :class:`~pathlib.Path`) whose mapped
  counterpart (``await executor.map_cwd(str(workdir))``) exists on the
  executor's machine and is writable there by the executor's user; the tests
  make files and directories under it on the machine (through ``executor.run``)
  and under it locally;
- ``remote_processes``: a callable returning the command lines (``ps`` ``args``)
  of the live processes the executor's user runs on its machine, zombies left
  out. It may block (it is called in a worker thread). The tests start
  processes whose command lines carry unique marks and poll this until they are
  gone. :func:`this_machine_processes` is the one for this machine; for the test
  bed use ``lambda: [p.args for p in rx_sshd.processes(rx_account)]``.

For example::

    class TestMyExecutor(ExecutorConformance):
        inherits_local_environment = False

        @pytest.fixture
        async def executor(self):
            executor = MyExecutor("box")
            yield executor
            await executor.aclose()

        @pytest.fixture
        def workdir(self, tmp_path):
            ...  # make the directory on the machine too
            return tmp_path / "work"

        @pytest.fixture
        def remote_processes(self):
            return lambda: list_processes_on_box()

See ``tests/unit/test_executor_conformance_local.py`` (this machine) and
``tests/e2e/test_executor_conformance_ssh.py`` (the real sshd test bed) for
complete examples. The tests are ``async`` (anyio) and run on whatever
``anyio_backend`` the project selects. The suite adds fixtures of its own:
``machine_workdir`` (``workdir`` mapped, checked to exist on the machine) and
``chatty_executor``, which a backend whose machines have login scripts should
override: an executor for the same kind of machine whose login starts a
background job that prints into stdout while commands run (the default is
``executor`` itself).

What is checked: that ``type(executor).from_spec(executor.spec)`` reopens
the same machine, stdin/stdout round trips (binary-exact, an 8 MiB line each
way, 20,000 small lines, lines delivered as sent), arguments and environment
values that need quoting, stderr as a separate stream or none, exit statuses
and signal deaths, ``env``/``unset_env`` and the caller's environment, the
mapped working directory (missing, awkward names), ``terminate``/``kill``/closing
the executor/``run`` timeouts/cancelling ``run`` (``wait()`` returns promptly and
the processes are gone from the machine), ``run``'s capture and input, its
``max_output`` cap (on stdout and on stderr: ``OutputTooLarge``, memory near the
cap, the command gone from the machine; output up to the cap returned whole;
the 64 MiB default), that only a command's own output comes back even while
a login script's background job prints (``home``, ``run``, ``spawn``), 15
processes alive at once, ``home``/``map_cwd``, ``private_args``, ``attachments``
(a file and a directory tree arrive as private paths, gone once the process
ends), ``"claude"``,
and that bad input raises ``InvalidInput`` and runs nothing. Every error must
name the executor (``exc.host == executor.name``, and in the message). The
machine needs a POSIX ``/bin/sh`` with ``cat``, ``sleep`` (fractional), ``ls``,
``wc``, ``mkdir``, ``touch``, ``tar``, and the Claude Code CLI.

What an executor may legitimately do differently is a class attribute, each
documented where it is declared (:attr:`~ExecutorConformance.inherits_local_environment`,
:attr:`~ExecutorConformance.stops_descendants`, ...): the tests then check
the declared behaviour, so nothing is skipped. Defaults describe a remote
executor. A behaviour that is a bug, not a choice, is listed in
:attr:`~ExecutorConformance.known_failures`: its test becomes a strict expected
failure, which fails as soon as the bug is fixed so the entry gets removed.

The processes the tests stop are ``sleep``\\ s of about two minutes with unique
fractional durations, so a failing test leaves nothing running for long.
"""

from __future__ import annotations

import io
import os
import posixpath
import secrets
import signal
import tarfile
import tracemalloc
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import ClassVar, Literal

import anyio
import attrs
import pytest
from anyio.abc import ByteReceiveStream, ByteSendStream, Process

from remote_executors.errors import (
    CommandTimeout,
    ExecutorError,
    InvalidInput,
    OutputTooLarge,
    RemotePathNotFound,
)
from remote_executors.executors.base import Attachment, CommandResult, Executor, SpawnOptions
from remote_executors.executors.registry import check_spec
from remote_executors.testing.sshd import _process_table

__all__ = [
    "AWKWARD_ARGS",
    "AWKWARD_NAME",
    "ExecutorConformance",
    "Sleeper",
    "communicate",
    "read_all",
    "this_machine_processes",
]

#: A name that needs every kind of quoting a shell has, and then some.
AWKWARD_NAME = (
    "sp ace 'sq' \"dq\" $(touch pwned) `touch pwned` $HOME \\ ;&|<>*?[ \U0001f600 caf\u00e9"
)

#: Arguments a command line would mangle if anything quoted them wrongly.
AWKWARD_ARGS = (
    "plain",
    "",
    "two  spaces",
    "'single'",
    '"double"',
    "$(touch pwned)",
    "`touch pwned`",
    "$HOME",
    "back\\slash",
    "new\nline",
    "tab\tand\rreturn",
    "-n",
    "--",
    "*",
    "\U0001f600 caf\u00e9",
    "\udcff\udcfe not utf-8",  # os.fsdecode(b"\xff\xfe ..."): must arrive as those bytes
)

_MIB = 1 << 20


def this_machine_processes() -> list[str]:
    """The command lines of this user's live processes on this machine (zombies left out)."""
    uid = os.getuid()
    return [p.args for p in _process_table() if p.uid == uid and not p.zombie]


def _duration() -> str:
    """A unique ``sleep`` duration of about two minutes (6 decimals: no one is a prefix)."""
    return f"{120 + secrets.randbelow(10**6) / 10**6:.6f}"


@attrs.frozen
class Sleeper:
    """A long-running command and the marks its processes' command lines carry."""

    argv: tuple[str, ...]
    marks: tuple[str, ...]

    @property
    def options(self) -> SpawnOptions:
        return SpawnOptions(self.argv[0], self.argv[1:])


async def read_all(stream: ByteReceiveStream | None) -> bytes:
    """Everything up to the end of ``stream`` (which must end with ``EndOfStream``)."""
    assert stream is not None, "the process has no such stream"
    chunks: list[bytes] = []
    while True:
        try:
            chunks.append(await stream.receive())
        except anyio.EndOfStream:
            return b"".join(chunks)


async def communicate(
    process: Process, data: bytes = b"", *, sends: Sequence[bytes] = ()
) -> tuple[bytes, bytes | None, int]:
    """Feed ``data`` (or each of ``sends``) and end stdin while reading stdout and
    stderr (if any) to their ends, concurrently: (stdout, stderr, exit status)."""
    stdin = process.stdin
    assert stdin is not None, "spawn() must give the process a stdin"
    out = b""
    err: bytes | None = None

    async def feed(stream: ByteSendStream) -> None:
        for chunk in [data] if data else sends:
            await stream.send(chunk)
        await stream.aclose()

    async def read_out() -> None:
        nonlocal out
        out = await read_all(process.stdout)

    async def read_err() -> None:
        nonlocal err
        err = await read_all(process.stderr)

    async with anyio.create_task_group() as tg:
        tg.start_soon(feed, stdin)
        tg.start_soon(read_out)
        if process.stderr is not None:
            tg.start_soon(read_err)
    return out, err, await process.wait()


class _Lines:
    """Reads a byte stream a line at a time."""

    def __init__(self, stream: ByteReceiveStream | None) -> None:
        assert stream is not None
        self._stream = stream
        self._buffer = b""

    async def line(self) -> bytes:
        while b"\n" not in self._buffer:
            self._buffer += await self._stream.receive()
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line + b"\n"

    async def exactly(self, size: int) -> bytes:
        while len(self._buffer) < size:
            self._buffer += await self._stream.receive()
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data


def _printf_vars(names: Sequence[str]) -> str:
    """A script printing each variable (or ``<unset>``) followed by a NUL."""
    return "printf '%s\\0' " + " ".join(f'"${{{n}-<unset>}}"' for n in names)


def _nul_split(data: bytes) -> list[str]:
    assert data.endswith(b"\0"), data[-200:]
    return [os.fsdecode(part) for part in data[:-1].split(b"\0")]


class ExecutorConformance:
    """The suite. Subclass it and provide the ``executor``, ``workdir`` and
    ``remote_processes`` fixtures (see the module docstring)."""

    pytestmark: ClassVar[list[pytest.MarkDecorator]] = [pytest.mark.anyio]

    # -- what executors may do differently ------------------------------------

    inherits_local_environment: ClassVar[bool] = False
    """Whether processes see this process's ``os.environ`` (plus ``env``). True for
    ``LocalExecutor``, which runs the CLI the way the SDK does; a remote executor's
    processes get the machine's own login environment, never the caller's (which
    belongs to this machine)."""

    stops_descendants: ClassVar[bool] = True
    """Whether stopping a process (terminate, kill, a ``run`` timeout or cancellation,
    closing the executor) also stops every process it started. ``SSHExecutor``'s
    remote watchdog does (without it they would outlive the connection);
    ``LocalExecutor``, like the SDK, signals the process it started only. When False,
    the stopping tests use a single process instead of a tree."""

    signal_status: ClassVar[Literal["negative", "shell"]] = "shell"
    """The exit status reported for a process killed by signal N: ``"negative"`` is
    ``-N`` (``subprocess``'s convention, ``LocalExecutor``); ``"shell"`` is ``128 + N``
    (what a remote shell reports: the channel carries one status byte)."""

    missing_command: ClassVar[Literal["raises", "exit-127"]] = "exit-127"
    """A command that does not exist on the machine: ``"raises"`` an ``ExecutorError``
    naming the executor (``LocalExecutor`` finds out before starting anything), or
    the process exits 127 with the shell's "not found" on stderr (a remote executor
    learns it only from the remote shell)."""

    stdin_line_buffered: ClassVar[bool] = True
    """Whether bytes written to a spawned process's stdin reach it only once their
    line is complete (a remote relay that also carries its own control lines on the
    channel), rather than as they are sent. Complete lines always arrive at once."""

    private_args_as_files: ClassVar[bool] = True
    """Whether ``SpawnOptions.private_args`` arrive as the path of a private file
    holding the value (and the value is on no command line of the machine), as a
    remote executor must do; ``LocalExecutor`` passes them as they are, like the SDK."""

    stop_seconds: ClassVar[float] = 10.0
    """How long the machine may take to be rid of a stopped process (and its tree)."""

    wait_seconds: ClassVar[float] = 5.0
    """How long ``wait()`` may take to return after ``terminate()``/``kill()``/closing."""

    output_buffer_bytes: ClassVar[int] = 16 * _MIB
    """How much a ``run`` may hold in Python memory beyond ``max_output`` while it
    notices the overflow and stops the command (its read chunks, and buffers below
    them such as an SSH channel's receive window, 8 MiB for the fabric backend)."""

    known_failures: ClassVar[Mapping[str, str]] = {}
    """Test name -> why this executor fails it (a bug, not a choice): the test is a
    strict expected failure while listed."""

    # -- fixtures ---------------------------------------------------------------

    @pytest.fixture(autouse=True)
    def _rx_known_failures(self, request: pytest.FixtureRequest) -> None:
        reason = self.known_failures.get(getattr(request.node, "originalname", ""))
        if reason is not None:
            request.applymarker(pytest.mark.xfail(strict=True, reason=reason))

    @pytest.fixture
    def chatty_executor(self, executor: Executor) -> Executor:
        """An executor for a machine whose login (e.g. ``~/.bashrc``) starts a
        background job that prints into stdout while commands run, within a
        second of each login. A machine without login scripts has no such
        thing: the default is ``executor``. Override it where logins can chat
        (see ``tests/e2e/test_executor_conformance_ssh.py``)."""
        return executor

    @pytest.fixture
    async def machine_workdir(self, executor: Executor, workdir: Path) -> str:
        """``workdir`` as the machine knows it (checked to exist there)."""
        path = await executor.map_cwd(str(workdir))
        result = await executor.run(["test", "-d", path])
        assert result.returncode == 0, f"workdir's counterpart {path} is not a directory"
        return path

    # -- helpers -------------------------------------------------------------------

    def sleeper(self, *, ignore_term: bool = False, touch: str | None = None) -> Sleeper:
        """A long-running command: a shell with two ``sleep`` children when
        :attr:`stops_descendants`, else one ``sleep``. ``touch``: a file it creates
        first (on the machine), to prove it started."""
        prelude = ("trap '' TERM; " if ignore_term else "") + ('touch "$1"; ' if touch else "")
        first = [touch] if touch else []
        at = len(first) + 1
        if self.stops_descendants:
            leader = f"rx-conformance-{secrets.token_hex(6)}"
            a, b = _duration(), _duration()
            script = f'{prelude}sleep "${at}" & sleep "${at + 1}"; wait'
            return Sleeper(
                ("/bin/sh", "-c", script, leader, *first, a, b),
                (leader, f"sleep {a}", f"sleep {b}"),
            )
        a = _duration()
        return Sleeper(
            ("/bin/sh", "-c", f'{prelude}exec sleep "${at}"', "rx-conformance", *first, a),
            (f"sleep {a}",),
        )

    async def running(
        self, remote_processes: Callable[[], Sequence[str]], marks: Sequence[str]
    ) -> list[str]:
        """The command lines of the machine's processes that carry one of ``marks``."""
        table = await anyio.to_thread.run_sync(remote_processes)
        return [args for args in table if any(mark in args for mark in marks)]

    async def wait_running(
        self, remote_processes: Callable[[], Sequence[str]], sleeper: Sleeper
    ) -> None:
        """Until every process of ``sleeper`` runs (so that a test of stopping it can fail)."""
        found: list[str] = []
        try:
            with anyio.fail_after(30):
                while True:
                    found = await self.running(remote_processes, sleeper.marks)
                    if all(any(m in args for args in found) for m in sleeper.marks):
                        return
                    await anyio.sleep(0.05)
        except TimeoutError:
            pytest.fail(f"{sleeper.argv} did not start all of {sleeper.marks}; saw {found}")

    async def wait_gone(
        self, remote_processes: Callable[[], Sequence[str]], sleeper: Sleeper
    ) -> None:
        """Until no process of ``sleeper`` is left on the machine (within :attr:`stop_seconds`)."""
        left: list[str] = []
        try:
            with anyio.fail_after(self.stop_seconds):
                while True:
                    left = await self.running(remote_processes, sleeper.marks)
                    if not left:
                        return
                    await anyio.sleep(0.05)
        except TimeoutError:
            pytest.fail(f"still running {self.stop_seconds:g} s after being stopped: {left}")

    def signalled(self, signum: int) -> int:
        """The exit status of a process killed by ``signum`` (see :attr:`signal_status`)."""
        return -signum if self.signal_status == "negative" else 128 + signum

    def check_error(self, exc: ExecutorError, executor: Executor) -> None:
        """Every error carries the executor's name, in ``host`` and in its message."""
        assert exc.host == executor.name, (exc.host, executor.name)
        assert executor.name in str(exc), f"{executor.name!r} not named in: {exc}"

    async def exists(self, executor: Executor, path: str) -> bool:
        """Whether ``path`` exists on the machine."""
        result = await executor.run(["test", "-e", path])
        assert result.returncode in (0, 1), result
        return result.returncode == 0

    async def physical(self, executor: Executor, path: str) -> str:
        """``path`` on the machine with symlinks resolved (``pwd -P`` there)."""
        result = await executor.run(["/bin/sh", "-c", 'cd -- "$1" && pwd -P', "sh", path])
        assert result.returncode == 0, result
        return os.fsdecode(result.stdout.rstrip(b"\n"))

    # -- spawn: stdin and stdout -------------------------------------------------------

    async def test_spawn_round_trip_is_binary_exact(self, executor: Executor) -> None:
        data = (
            bytes(range(256)) * 16
            + b"\n"
            + b"\xff\xfe not utf-8 \xc3\x28 \xed\xa0\x80\n"
            + b"\r\n\n\x00\n"
            + "\U0001f600 caf\u00e9\n".encode()
        )
        process = await executor.spawn(SpawnOptions("cat"))
        assert isinstance(process.pid, int)
        assert process.pid > 0
        with anyio.fail_after(30):
            out, err, code = await communicate(process, data)
        assert out == data
        assert err is None
        assert code == 0
        assert process.returncode == 0

    async def test_last_line_without_a_newline_is_kept_exact(self, executor: Executor) -> None:
        # A process's input is bytes, not lines: what it reads is what was sent.
        data = b"first line\nlast line, no newline \xff"
        process = await executor.spawn(SpawnOptions("cat"))
        with anyio.fail_after(30):
            out, _, code = await communicate(process, data)
        assert out == data
        assert code == 0

    async def test_stdin_reaches_the_process_as_lines_are_sent(self, executor: Executor) -> None:
        # The SDK writes one JSON line and waits for the answer: each line must
        # reach the process without waiting for more input.
        process = await executor.spawn(SpawnOptions("cat"))
        stdin = process.stdin
        assert stdin is not None
        lines = _Lines(process.stdout)
        with anyio.fail_after(30):
            for i in range(20):
                line = f'{{"n": {i}, "pad": "{"x" * i * 50}"}}\n'.encode()
                await stdin.send(line)
                assert await lines.line() == line
            if self.stdin_line_buffered:
                await stdin.send(b"part ")
                await stdin.send(b"of a line\n")
                assert await lines.line() == b"part of a line\n"
            else:
                await stdin.send(b"part ")
                assert await lines.exactly(5) == b"part "
                await stdin.send(b"of a line\n")
                assert await lines.line() == b"of a line\n"
            await stdin.aclose()
            assert await read_all(process.stdout) == b""
            assert await process.wait() == 0

    async def test_stdout_receive_honours_max_bytes(self, executor: Executor) -> None:
        process = await executor.spawn(SpawnOptions("/bin/sh", ["-c", "printf abcdefghij"]))
        assert process.stdout is not None
        got = b""
        with anyio.fail_after(30):
            while len(got) < 10:
                chunk = await process.stdout.receive(3)
                assert 1 <= len(chunk) <= 3, chunk
                got += chunk
            assert got == b"abcdefghij"
            assert await read_all(process.stdout) == b""
            assert await process.wait() == 0

    async def test_an_8_mib_line_each_way(self, executor: Executor) -> None:
        line = os.urandom(8 * _MIB).replace(b"\n", b"\xff") + b"\n"
        process = await executor.spawn(SpawnOptions("cat"))
        with anyio.fail_after(60):
            out, _, code = await communicate(process, line)
        assert len(out) == len(line)
        assert out == line
        assert code == 0

    async def test_many_small_lines(self, executor: Executor) -> None:
        lines = [f"{i} {'y' * (i % 40)}\n".encode() if i % 7 else b"\n" for i in range(20_000)]
        batches = [b"".join(lines[i : i + 50]) for i in range(0, len(lines), 50)]
        process = await executor.spawn(SpawnOptions("cat"))
        with anyio.fail_after(60):
            out, _, code = await communicate(process, sends=batches)
        assert out.splitlines(keepends=True) == lines
        assert code == 0

    async def test_arguments_arrive_exactly(self, executor: Executor) -> None:
        argv = ["/bin/sh", "-c", 'printf "%s\\0" "$@"', "sh", *AWKWARD_ARGS]
        with anyio.fail_after(30):
            process = await executor.spawn(SpawnOptions(argv[0], argv[1:]))
            out, _, code = await communicate(process)
            result = await executor.run(argv)
        assert code == 0
        assert _nul_split(out) == list(AWKWARD_ARGS)
        assert result.returncode == 0, result
        assert _nul_split(result.stdout) == list(AWKWARD_ARGS)

    # -- stderr -----------------------------------------------------------------------

    async def test_stderr_is_a_separate_stream_when_asked(self, executor: Executor) -> None:
        # Both streams well past a pipe buffer, written alternately: neither may
        # block the other or leak into it.
        script = (
            "i=0; while [ $i -lt 3000 ]; do printf 'out %s\\n' $i; printf 'err %s\\n' $i >&2; "
            "i=$((i + 1)); done; printf 'o\\377\\n'; printf 'e\\376\\n' >&2"
        )
        process = await executor.spawn(SpawnOptions("/bin/sh", ["-c", script], stderr=True))
        assert process.stderr is not None
        with anyio.fail_after(60):
            out, err, code = await communicate(process)
        assert out == b"".join(b"out %d\n" % i for i in range(3000)) + b"o\xff\n"
        assert err == b"".join(b"err %d\n" % i for i in range(3000)) + b"e\xfe\n"
        assert code == 0

    async def test_no_stderr_stream_unless_asked(self, executor: Executor) -> None:
        # More stderr than a pipe holds: whoever keeps it must not stall the process.
        script = (
            "i=0; while [ $i -lt 3000 ]; do "
            "echo 'rx-conformance: stderr nobody asked for, padding past a pipe buffer' >&2; "
            "i=$((i + 1)); done; echo done"
        )
        process = await executor.spawn(SpawnOptions("/bin/sh", ["-c", script]))
        assert process.stderr is None
        with anyio.fail_after(60):
            out, err, code = await communicate(process)
        assert out == b"done\n"
        assert err is None
        assert code == 0

    # -- exit statuses ---------------------------------------------------------------------

    @pytest.mark.parametrize("status", [0, 1, 42])
    async def test_exit_status(self, executor: Executor, status: int) -> None:
        process = await executor.spawn(SpawnOptions("/bin/sh", ["-c", f"exit {status}"]))
        with anyio.fail_after(30):
            assert await process.wait() == status
        assert process.returncode == status
        result = await executor.run(["/bin/sh", "-c", f"exit {status}"])
        assert result.returncode == status
        assert result.ok is (status == 0)

    @pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM], ids=["KILL", "TERM"])
    async def test_killed_by_a_signal(self, executor: Executor, signum: signal.Signals) -> None:
        script = f"kill -{signum.name[3:]} $$"
        process = await executor.spawn(SpawnOptions("/bin/sh", ["-c", script]))
        with anyio.fail_after(30):
            assert await process.wait() == self.signalled(signum)
        assert process.returncode == self.signalled(signum)

    @pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM], ids=["KILL", "TERM"])
    async def test_run_killed_by_a_signal(self, executor: Executor, signum: signal.Signals) -> None:
        # run() reports it as spawn() does, distinct from any status the
        # command or the transport could exit with on its own.
        result = await executor.run(["/bin/sh", "-c", f"kill -{signum.name[3:]} $$"])
        assert result.returncode == self.signalled(signum), result

    # -- environment -------------------------------------------------------------------

    async def test_env_reaches_the_process(self, executor: Executor) -> None:
        env = {
            "RX_PLAIN": "plain",
            "RX_QUOTED": AWKWARD_NAME,
            "RX_EMPTY": "",
            "RX_LINES": "one\ntwo\n",
            "RX_EQUALS": "a=b=c",
            "RX_DOLLAR": "$RX_PLAIN",
        }
        script = _printf_vars(list(env))
        with anyio.fail_after(30):
            process = await executor.spawn(SpawnOptions("/bin/sh", ["-c", script], env=env))
            out, _, code = await communicate(process)
            result = await executor.run(["/bin/sh", "-c", script], env=env)
        assert code == 0
        assert _nul_split(out) == list(env.values())
        assert result.returncode == 0, result
        assert _nul_split(result.stdout) == list(env.values())

    async def test_env_overrides_and_unset_env_removes(self, executor: Executor) -> None:
        candidates = ["LOGNAME", "USER", "SHELL", "LANG", "HOME"]
        baseline = await executor.run(["/bin/sh", "-c", _printf_vars(candidates)])
        present = [
            n
            for n, v in zip(candidates, _nul_split(baseline.stdout), strict=True)
            if v != "<unset>"
        ]
        assert present, f"the machine's environment has none of {candidates}"
        name = present[0]
        script = _printf_vars([name, "PATH"])
        with anyio.fail_after(30):
            removed = await executor.spawn(
                SpawnOptions("/bin/sh", ["-c", script], unset_env=[name])
            )
            removed_out, _, _ = await communicate(removed)
            replaced = await executor.spawn(
                SpawnOptions("/bin/sh", ["-c", script], env={name: "rx-replaced"})
            )
            replaced_out, _, _ = await communicate(replaced)
        # Only the named variable goes; the rest of the environment stays.
        gone, path = _nul_split(removed_out)
        assert gone == "<unset>"
        assert path != "<unset>"
        assert _nul_split(replaced_out)[0] == "rx-replaced"

    async def test_local_environment(
        self, executor: Executor, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        name = f"RX_CONFORMANCE_LOCAL_{secrets.token_hex(4).upper()}"
        monkeypatch.setenv(name, "from this machine")
        expected = "from this machine" if self.inherits_local_environment else "<unset>"
        script = _printf_vars([name])
        with anyio.fail_after(30):
            process = await executor.spawn(SpawnOptions("/bin/sh", ["-c", script]))
            out, _, _ = await communicate(process)
            result = await executor.run(["/bin/sh", "-c", script])
        assert _nul_split(out) == [expected]
        assert _nul_split(result.stdout) == [expected]

    # -- working directory ------------------------------------------------------------

    async def test_cwd_is_mapped(
        self, executor: Executor, workdir: Path, machine_workdir: str
    ) -> None:
        expected = await self.physical(executor, machine_workdir)
        with anyio.fail_after(30):
            process = await executor.spawn(SpawnOptions("pwd", ["-P"], cwd=str(workdir)))
            out, _, code = await communicate(process)
            result = await executor.run(["pwd", "-P"], cwd=str(workdir))
        assert code == 0
        assert os.fsdecode(out) == expected + "\n"
        assert os.fsdecode(result.stdout) == expected + "\n"

    async def test_missing_cwd_raises_remote_path_not_found(
        self, executor: Executor, workdir: Path
    ) -> None:
        missing = workdir / f"missing-{secrets.token_hex(4)}"
        there = await executor.map_cwd(str(missing))
        with pytest.raises(RemotePathNotFound) as spawned:
            await executor.spawn(SpawnOptions("true", cwd=str(missing)))
        with pytest.raises(RemotePathNotFound) as ran:
            await executor.run(["true"], cwd=str(missing))
        for caught in (spawned, ran):
            self.check_error(caught.value, executor)
            assert caught.value.path == there
            assert there in str(caught.value)

    async def test_cwd_with_awkward_characters(
        self, executor: Executor, workdir: Path, machine_workdir: str
    ) -> None:
        parent = workdir / f"awkward-{secrets.token_hex(4)}"
        local = parent / AWKWARD_NAME
        local.mkdir(parents=True)
        there = await executor.map_cwd(str(local))
        made = await executor.run(["mkdir", "-p", there])
        assert made.returncode == 0, made
        expected = await self.physical(executor, there)
        assert expected.endswith("/" + AWKWARD_NAME)
        with anyio.fail_after(30):
            process = await executor.spawn(SpawnOptions("pwd", ["-P"], cwd=str(local)))
            out, _, code = await communicate(process)
            result = await executor.run(["pwd", "-P"], cwd=str(local))
        assert code == 0
        assert os.fsdecode(out) == expected + "\n"
        assert os.fsdecode(result.stdout) == expected + "\n"
        # Nothing in the name was run: the directory holds exactly what was made.
        listing = await executor.run(["ls", "-A", await executor.map_cwd(str(parent))])
        assert os.fsdecode(listing.stdout) == AWKWARD_NAME + "\n"
        assert (await executor.run(["ls", "-A", there])).stdout == b""

    # -- stopping ------------------------------------------------------------------------

    async def test_terminate(
        self, executor: Executor, remote_processes: Callable[[], Sequence[str]]
    ) -> None:
        sleeper = self.sleeper()
        process = await executor.spawn(sleeper.options)
        await self.wait_running(remote_processes, sleeper)
        assert process.returncode is None
        process.terminate()
        with anyio.fail_after(self.wait_seconds):
            code = await process.wait()
        assert code != 0
        assert process.returncode == code
        await self.wait_gone(remote_processes, sleeper)

    async def test_kill_stops_a_process_that_ignores_sigterm(
        self, executor: Executor, remote_processes: Callable[[], Sequence[str]]
    ) -> None:
        sleeper = self.sleeper(ignore_term=True)
        process = await executor.spawn(sleeper.options)
        await self.wait_running(remote_processes, sleeper)
        process.kill()
        with anyio.fail_after(self.wait_seconds):
            code = await process.wait()
        assert code != 0
        assert process.returncode == code
        await self.wait_gone(remote_processes, sleeper)

    async def test_closing_the_executor_stops_its_processes(
        self, executor: Executor, remote_processes: Callable[[], Sequence[str]]
    ) -> None:
        sleepers = [self.sleeper(), self.sleeper(ignore_term=True)]
        processes = [await executor.spawn(s.options) for s in sleepers]
        for sleeper in sleepers:
            await self.wait_running(remote_processes, sleeper)
        with anyio.fail_after(self.wait_seconds + self.stop_seconds):
            await executor.aclose()
            for process in processes:
                await process.wait()
        for process in processes:
            assert process.returncode not in (None, 0)
        for sleeper in sleepers:
            await self.wait_gone(remote_processes, sleeper)
        with anyio.fail_after(self.wait_seconds):
            await executor.aclose()  # closing twice is harmless

    # -- run() ----------------------------------------------------------------------------

    async def test_run_captures_output_and_status(self, executor: Executor) -> None:
        script = "printf 'out\\377\\n'; printf 'err\\376\\n' >&2; exit 3"
        with anyio.fail_after(30):
            result = await executor.run(["/bin/sh", "-c", script])
        assert result == CommandResult(3, b"out\xff\n", b"err\xfe\n")
        assert not result.ok

    async def test_run_input(self, executor: Executor) -> None:
        data = os.urandom(8 * _MIB)  # binary, and no final newline
        with anyio.fail_after(60):
            echoed = await executor.run(["cat"], input=data)
            counted = await executor.run(["wc", "-c"], input=data)
            nothing = await executor.run(["cat"])
        assert echoed.returncode == 0
        assert len(echoed.stdout) == len(data)
        assert echoed.stdout == data
        assert int(counted.stdout) == len(data)
        assert nothing == CommandResult(0, b"", b"")  # no input: stdin is empty, not open

    async def test_run_timeout_stops_the_command(
        self,
        executor: Executor,
        workdir: Path,
        remote_processes: Callable[[], Sequence[str]],
    ) -> None:
        started = await executor.map_cwd(str(workdir / f"started-{secrets.token_hex(4)}"))
        sleeper = self.sleeper(touch=started)
        await executor.home()  # connected: the timeout is the command's alone
        with anyio.fail_after(2 + self.wait_seconds), pytest.raises(CommandTimeout) as caught:
            await executor.run(sleeper.argv, timeout=2)
        self.check_error(caught.value, executor)
        assert await self.exists(executor, started), "the command never started"
        await self.wait_gone(remote_processes, sleeper)

    async def test_cancelling_run_stops_the_command(
        self, executor: Executor, remote_processes: Callable[[], Sequence[str]]
    ) -> None:
        sleeper = self.sleeper()
        outcome: list[CommandResult] = []

        async def run() -> None:
            outcome.append(await executor.run(sleeper.argv, timeout=120))

        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                tg.start_soon(run)
                await self.wait_running(remote_processes, sleeper)
                tg.cancel_scope.cancel()
                cancelled_at = anyio.current_time()
        # The caller is not kept waiting by the clean-up.
        assert anyio.current_time() - cancelled_at < self.wait_seconds
        assert outcome == [], "run() finished instead of being cancelled"
        await self.wait_gone(remote_processes, sleeper)

    # -- run(): the output cap ----------------------------------------------------------

    @pytest.mark.parametrize("stream", ["stdout", "stderr"])
    async def test_run_output_past_max_output_raises_and_stops_the_command(
        self,
        executor: Executor,
        remote_processes: Callable[[], Sequence[str]],
        stream: Literal["stdout", "stderr"],
    ) -> None:
        # Far more than the cap, at full speed (a unique count marks the process);
        # an executor that kept it all would hold it all in memory.
        count = str(256 * _MIB + secrets.randbelow(10**6))
        script = 'exec head -c "$1" /dev/zero' + (" >&2" if stream == "stderr" else "")
        mark = Sleeper(("/bin/sh", "-c", script, "sh", count), (f"head -c {count}",))
        await executor.home()  # connected: what follows is the command's alone
        tracemalloc.start()
        try:
            with anyio.fail_after(30), pytest.raises(OutputTooLarge) as caught:
                await executor.run(mark.argv, max_output=4 * _MIB, timeout=60)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        self.check_error(caught.value, executor)
        assert (caught.value.limit, caught.value.stream) == (4 * _MIB, stream)
        assert "max_output" in str(caught.value)
        # Memory stayed near the cap (Python allocations; what a backend buffers
        # below the cap, e.g. an SSH channel window, counts too).
        assert peak < 4 * _MIB + self.output_buffer_bytes, f"peak {peak / _MIB:.1f} MiB"
        await self.wait_gone(remote_processes, mark)

    async def test_run_output_up_to_max_output_is_returned(self, executor: Executor) -> None:
        script = 'head -c "$1" /dev/zero; head -c "$1" /dev/zero >&2'
        with anyio.fail_after(60):
            exact = await executor.run(["/bin/sh", "-c", script, "sh", str(_MIB)], max_output=_MIB)
            assert exact == CommandResult(0, b"\0" * _MIB, b"\0" * _MIB)
            with pytest.raises(OutputTooLarge):
                await executor.run(["/bin/sh", "-c", script, "sh", str(_MIB + 1)], max_output=_MIB)
            assert await executor.run(["true"], max_output=0) == CommandResult(0, b"", b"")
            # The default: 64 MiB per stream.
            past = str(64 * _MIB + 1)
            with pytest.raises(OutputTooLarge) as caught:
                await executor.run(["head", "-c", past, "/dev/zero"])
            assert caught.value.limit == 64 * _MIB
            with pytest.raises(InvalidInput) as refused:
                await executor.run(["true"], max_output=-1)
        self.check_error(refused.value, executor)

    # -- only the command's own output -------------------------------------------------

    async def test_only_the_commands_own_output_comes_back(self, chatty_executor: Executor) -> None:
        # On a machine whose login starts a job that prints into the session's
        # stdout while commands run (see the chatty_executor fixture), what a
        # command prints is still all that comes back, byte for byte.
        executor = chatty_executor
        with anyio.fail_after(60):
            home = await executor.home()
            assert home.startswith("/") and "\n" not in home, repr(home)
            printed = await executor.run(["/bin/sh", "-c", 'printf %s "$HOME"; sleep 1'])
            assert printed == CommandResult(0, home.encode(), b"")
            slow = "printf 'first\\n'; sleep 1; printf 'second \\377\\000\\n'"
            assert await executor.run(["/bin/sh", "-c", slow]) == CommandResult(
                0, b"first\nsecond \xff\x00\n", b""
            )
            # Output of the command's own background child is the command's.
            late = "(sleep 0.5; echo late) & echo early"
            ran = await executor.run(["/bin/sh", "-c", late])
            assert ran == CommandResult(0, b"early\nlate\n", b"")
            # Output that looks like protocol (with the machine's own job tag,
            # where there is one) is output like any other.
            mimic = (
                'tag="${REMOTE_EXECUTORS_JOB-none}"; printf "%s\\0" "$tag"; '
                'printf "%s:0005HELLO\\n%s OK x\\n" "$tag" "$tag"'
            )
            process = await executor.spawn(SpawnOptions("/bin/sh", ["-c", mimic]))
            out, _, code = await communicate(process)
            tag, _, rest = out.partition(b"\0")
            assert code == 0 and rest == tag + b":0005HELLO\n" + tag + b" OK x\n", out
            # A spawned process's stdout, line by line, while the chatter comes.
            process = await executor.spawn(SpawnOptions("cat"))
            stdin = process.stdin
            assert stdin is not None
            lines = _Lines(process.stdout)
            for i in range(8):
                line = b'{"type":"user","n":%d}\n' % i
                await stdin.send(line)
                assert await lines.line() == line
                await anyio.sleep(0.15)
            await stdin.aclose()
            assert await read_all(process.stdout) == b""
            assert await process.wait() == 0

    # -- concurrency -------------------------------------------------------------------

    async def test_concurrent_spawns_and_runs(
        self, executor: Executor, machine_workdir: str
    ) -> None:
        # All fifteen are alive at the same time: the spawned processes wait for
        # their input until the runs are done, and each run waits (on the
        # machine) until all ten have started. An app may well run that many
        # sessions and commands on one host at once.
        inputs = {i: os.urandom(256 * 1024).replace(b"\n", b"-") + b"\n" for i in range(5)}
        processes: dict[int, Process] = {}
        ran: dict[int, CommandResult] = {}
        spawned: dict[int, bytes] = {}
        barrier = posixpath.join(machine_workdir, f"barrier-{secrets.token_hex(4)}")
        assert (await executor.run(["mkdir", barrier])).returncode == 0
        script = (
            'touch "$1/$2"; i=0; while [ "$(ls "$1" | wc -l)" -lt 10 ]; do '
            "i=$((i + 1)); [ $i -lt 600 ] || exit 99; sleep 0.05; done; "
            'printf "out %s" "$2"; printf "err %s" "$2" >&2; exit "$2"'
        )

        async def spawn_one(i: int) -> None:
            processes[i] = await executor.spawn(SpawnOptions("cat"))

        async def run_one(i: int) -> None:
            ran[i] = await executor.run(["/bin/sh", "-c", script, "sh", barrier, str(i)])

        async def finish_one(i: int) -> None:
            spawned[i] = (await communicate(processes[i], inputs[i]))[0]

        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                for i in range(5):
                    tg.start_soon(spawn_one, i)
            async with anyio.create_task_group() as tg:
                for i in range(10):
                    tg.start_soon(run_one, i)
            assert [p.returncode for p in processes.values()] == [None] * 5
            async with anyio.create_task_group() as tg:
                for i in range(5):
                    tg.start_soon(finish_one, i)
        assert ran == {i: CommandResult(i, b"out %d" % i, b"err %d" % i) for i in range(10)}
        assert spawned == inputs

    # -- identity ------------------------------------------------------------------------------

    async def test_spec_reopens_the_same_machine(self, executor: Executor) -> None:
        # Session records keep the spec; a resume reopens the machine from it alone.
        spec = executor.spec
        check_spec(spec)
        assert "://" in spec or spec == "local", spec
        reopened = type(executor).from_spec(spec)  # type: ignore[attr-defined]
        try:
            assert reopened.spec == spec
            assert reopened.name == executor.name
            assert await reopened.home() == await executor.home()
        finally:
            if reopened is not executor:
                await reopened.aclose()

    # -- home and paths --------------------------------------------------------------------

    async def test_home(self, executor: Executor) -> None:
        home = await executor.home()
        assert home.startswith("/")
        assert posixpath.normpath(home) == home
        assert await executor.home() == home
        seen = await executor.run(["/bin/sh", "-c", 'printf %s "$HOME"'])
        assert os.fsdecode(seen.stdout) == home
        assert (await executor.run(["test", "-d", home])).returncode == 0

    async def test_map_cwd(self, executor: Executor, workdir: Path, machine_workdir: str) -> None:
        assert machine_workdir.startswith("/")
        assert posixpath.normpath(machine_workdir) == machine_workdir
        sub = await executor.map_cwd(str(workdir / "a" / "b"))
        assert sub == posixpath.join(machine_workdir, "a", "b")
        assert await executor.map_cwd(f"{workdir}/x/../y/") == posixpath.join(machine_workdir, "y")
        tilde = "~/rx-conformance/x"
        assert await executor.map_cwd(tilde) == await executor.map_cwd(os.path.expanduser(tilde))

    # -- bad input and errors -------------------------------------------------------------

    @pytest.mark.parametrize(
        ("how", "case"),
        [
            *(
                ("spawn", case)
                for case in (
                    "dash-command",
                    "nul-in-argument",
                    "bad-env-name",
                    "nul-in-env-value",
                    "bad-unset-env-name",
                    "newline-in-cwd",
                )
            ),
            *(
                ("run", case)
                for case in (
                    "dash-command",
                    "nul-in-argument",
                    "bad-env-name",
                    "nul-in-env-value",
                    "newline-in-cwd",
                    "empty-argv",
                )
            ),
        ],
        ids=lambda value: str(value),
    )
    async def test_bad_input_raises_invalid_input_and_runs_nothing(
        self, executor: Executor, workdir: Path, machine_workdir: str, how: str, case: str
    ) -> None:
        marker = posixpath.join(machine_workdir, f"ran-{secrets.token_hex(4)}")
        touch = ("/bin/sh", "-c", 'touch "$1"', "sh", marker)
        good = bad = SpawnOptions(touch[0], touch[1:])
        if case == "dash-command":
            # An executable named "-rx-..." first in PATH: were the name not
            # refused, it would run (good: the same program by its full path).
            name = f"-rx-{secrets.token_hex(4)}"
            program = posixpath.join(machine_workdir, name)
            script = 'printf "#!/bin/sh\\ntouch \\"%s\\"\\n" "$2" > "$1" && chmod +x "$1"'
            made = await executor.run(["/bin/sh", "-c", script, "sh", program, marker])
            assert made.returncode == 0, made
            path = {"PATH": f"{machine_workdir}:/usr/bin:/bin"}
            bad = SpawnOptions(name, env=path)
            good = SpawnOptions(program, env=path)
        elif case == "nul-in-argument":
            bad = SpawnOptions(touch[0], [*touch[1:], "a\x00b"])
        elif case == "bad-env-name":
            bad = SpawnOptions(touch[0], touch[1:], env={"RX-BAD NAME": "1"})
        elif case == "nul-in-env-value":
            bad = SpawnOptions(touch[0], touch[1:], env={"RX_VALUE": "a\x00b"})
        elif case == "bad-unset-env-name":
            bad = SpawnOptions(touch[0], touch[1:], unset_env=["RX=BAD"])
        elif case == "newline-in-cwd":
            # The directory exists (locally too): only its name is refused.
            local = workdir / "new\nline"
            local.mkdir()
            made = await executor.run(["mkdir", "-p", posixpath.join(machine_workdir, local.name)])
            assert made.returncode == 0, made
            bad = SpawnOptions(touch[0], touch[1:], cwd=str(local))

        with pytest.raises(InvalidInput) as caught:
            if how == "spawn":
                process = await executor.spawn(bad)
                await process.wait()  # only reached when the input was not refused
            elif case == "empty-argv":
                await executor.run([])
            else:
                await executor.run(bad.argv, cwd=bad.cwd, env=bad.env)
        self.check_error(caught.value, executor)
        assert not await self.exists(executor, marker), "the command ran anyway"
        # The same command without the bad input does run: the check above can fail.
        if how == "spawn":
            process = await executor.spawn(good)
            with anyio.fail_after(30):
                assert (await communicate(process))[2] == 0
        else:
            result = await executor.run(good.argv, env=good.env)
            assert result.returncode == 0, result
        assert await self.exists(executor, marker)

    async def test_missing_command(self, executor: Executor) -> None:
        name = f"rx-no-such-command-{secrets.token_hex(4)}"
        if self.missing_command == "raises":
            with pytest.raises(ExecutorError) as spawned:
                await executor.spawn(SpawnOptions(name))
            with pytest.raises(ExecutorError) as ran:
                await executor.run([name])
            for caught in (spawned, ran):
                self.check_error(caught.value, executor)
                assert name in str(caught.value)
            return
        process = await executor.spawn(SpawnOptions(name, stderr=True))
        with anyio.fail_after(30):
            _, err, code = await communicate(process)
        result = await executor.run([name])
        assert code == 127
        assert err is not None
        assert name.encode() in err
        assert result.returncode == 127
        assert name.encode() in result.stderr

    async def test_private_args(
        self, executor: Executor, remote_processes: Callable[[], Sequence[str]]
    ) -> None:
        secret = f"rx-secret-{secrets.token_hex(8)}"
        script = (
            'if [ -f "$1" ]; then printf "file:"; cat "$1"; else printf "arg:%s" "$1"; fi; '
            "echo; read line"
        )
        process = await executor.spawn(
            SpawnOptions("/bin/sh", ["-c", script, "sh", secret], private_args=[3])
        )
        stdin = process.stdin
        assert stdin is not None
        with anyio.fail_after(30):
            line = await _Lines(process.stdout).line()
        # While it runs, no command line on the machine shows the value
        # (unless the executor passes it as it is).
        shown = await self.running(remote_processes, [secret])
        await stdin.send(b"done\n")
        await stdin.aclose()
        with anyio.fail_after(30):
            assert await process.wait() == 0
        if self.private_args_as_files:
            assert line == f"file:{secret}\n".encode()
            assert shown == []
        else:
            assert line == f"arg:{secret}\n".encode()
            assert shown != []

    async def test_private_args_out_of_range_are_invalid(self, executor: Executor) -> None:
        with pytest.raises(InvalidInput) as caught:
            await executor.spawn(SpawnOptions("true", ["a"], private_args=[1]))
        self.check_error(caught.value, executor)

    async def test_attachments(self, executor: Executor) -> None:
        content = bytes(range(256)) + secrets.token_bytes(64)
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            for name, data, mode in (("sub/run.sh", b"#!/bin/sh\necho ran\n", 0o755),
                                     ("top.txt", b"top", 0o644)):  # fmt: skip
                info = tarfile.TarInfo(name)
                info.size, info.mode = len(data), mode
                tar.addfile(info, io.BytesIO(data))
        script = (
            'cat "$1" | wc -c; ls -ld "$1" "$2" | cut -c1-10; '
            '"$2/sub/run.sh"; cat "$2/top.txt"; echo; echo "$1"; echo "$2"; read line'
        )
        process = await executor.spawn(
            SpawnOptions(
                "/bin/sh",
                ["-c", script, "sh", "a file", "a tree"],
                attachments={
                    3: Attachment("file", content),
                    4: Attachment("tree", buffer.getvalue()),
                },
            )
        )
        lines = _Lines(process.stdout)
        with anyio.fail_after(30):
            got = [(await lines.line()).decode().strip() for _ in range(7)]
        assert got[0] == str(len(content))
        assert got[1] == "-rw-------" and got[2] == "drwx------", got
        assert got[3:5] == ["ran", "top"]
        file_path, tree_path = got[5], got[6]
        assert file_path not in ("a file", "") and tree_path not in ("a tree", "")
        assert process.stdin is not None
        await process.stdin.send(b"done\n")
        await process.stdin.aclose()
        with anyio.fail_after(30):
            assert await process.wait() == 0
        # Gone with the process.
        with anyio.fail_after(self.stop_seconds):
            while True:
                gone = await executor.run(["/bin/sh", "-c", '! test -e "$1" && ! test -e "$2"',
                                           "sh", file_path, tree_path])  # fmt: skip
                if gone.ok:
                    break
                await anyio.sleep(0.1)

    async def test_attachments_out_of_range_are_invalid(self, executor: Executor) -> None:
        with pytest.raises(InvalidInput) as caught:
            await executor.spawn(
                SpawnOptions("true", ["a"], attachments={1: Attachment("file", b"")})
            )
        self.check_error(caught.value, executor)

    async def test_claude_is_the_claude_code_cli(self, executor: Executor) -> None:
        # "claude" names the Claude Code CLI wherever the machine has it.
        process = await executor.spawn(SpawnOptions("claude", ["--version"], stderr=True))
        with anyio.fail_after(60):
            out, err, code = await communicate(process)
        assert code == 0, err
        assert b"Claude Code" in out, out
