"""The remote bootstrap protocol, for real, without ssh.

``ShellBackend`` runs the fixed remote command line under a local shell in a
new session, exactly as sshd would run it under the user's login shell, and
``start_job`` drives it as it drives a real ssh channel. So everything the
remote side does is real here: the login shell parsing the command line,
``/bin/sh`` decoding the bootstrap, the stdin header, the status line, the
awk stdin relay, the watchdog and the claude search.
"""

from __future__ import annotations

import os
import signal
import stat
from collections.abc import Callable, Sequence
from pathlib import Path

import anyio
import pytest
from _shell_backend import SHELLS, ShellBackend, alive, wait_dead
from anyio.abc import ByteReceiveStream, Process
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from remote_executors import SpawnOptions, SSHExecutor
from remote_executors.errors import (
    ClaudeNotFound,
    CommandTimeout,
    InvalidInput,
    RemotePathNotFound,
    RemoteSetupError,
)
from remote_executors.executors import _remote_process
from remote_executors.executors._remote_job import RemoteJob, remote_command
from remote_executors.executors._remote_process import RemoteProcess, start_job
from remote_executors.executors._run_job import collect
from remote_executors.executors.base import CommandResult

pytestmark = pytest.mark.anyio

ASYNCIO_ONLY = pytest.mark.parametrize("anyio_backend", ["asyncio"])
# Every login shell on asyncio, and sh on trio too: the shell never meets the
# event loop, so the full cross product would only cost time.
EVERY_SHELL = pytest.mark.parametrize(
    ("anyio_backend", "shell"),
    [("asyncio", shell) for shell in SHELLS] + [("trio", "/bin/sh")],
    ids=[f"asyncio-{os.path.basename(shell)}" for shell in SHELLS] + ["trio-sh"],
)

# Prints its arguments NUL-terminated, the environment (env -0) into $RXT_ENV_OUT
# when set, and nothing else: byte-exact oracles for what arrived.
ARGV_DUMP = (
    'for a; do printf "%s\\0" "$a"; done; [ -z "$RXT_ENV_OUT" ] || /usr/bin/env -0 >"$RXT_ENV_OUT"'
)

# Strings that break naive quoting somewhere: in sh, bash, zsh, fish or tcsh.
NASTY = [
    "",
    " ",
    "a b  c",
    "'",
    '"',
    "\\",
    "\\'",
    "'\\''",
    "$(touch pwned)",
    "`touch pwned`",
    "$HOME",
    "${HOME}",
    "%s%n",
    "*",
    "?",
    "[a]",
    "~",
    "~root",
    "!",
    "!!",
    "!$",
    "#",
    ";",
    "&",
    "|",
    "&&",
    "(",
    "{}",
    "{a,b}",
    "a\nb",
    "trailing\n\n",
    "\n",
    "\t",
    "\r\n",
    "emoji 🐍🧪",
    "日本語",
    "-n",
    "-e",
    "--",
    "-",
    "\x1b[31mred",
    "\x01\x7f",
    "x" * 20000,
    "end\\",
    "\udcff\udc80 not utf-8",  # surrogateescape: arbitrary bytes, as from os.fsdecode
]


def expected_argv(args: Sequence[str]) -> bytes:
    return b"".join(os.fsencode(a) + b"\0" for a in args)


def parse_env0(data: bytes) -> dict[bytes, bytes]:
    out: dict[bytes, bytes] = {}
    for item in data.split(b"\0"):
        if item:
            name, _, value = item.partition(b"=")
            out[name] = value
    return out


async def read_all(stream: ByteReceiveStream | None) -> bytes:
    assert stream is not None
    chunks = []
    try:
        while True:
            chunks.append(await stream.receive())
    except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
        pass
    return b"".join(chunks)


async def read_exactly(stream: ByteReceiveStream, size: int) -> bytes:
    data = b""
    while len(data) < size:
        data += await stream.receive(size - len(data))
    return data


async def read_line(stream: ByteReceiveStream, pending: bytearray) -> bytes:
    """One line (without its newline) from ``stream``; ``pending`` keeps the rest."""
    while b"\n" not in pending:
        pending += await stream.receive()
    line, _, rest = bytes(pending).partition(b"\n")
    pending[:] = rest
    return line


async def run_job(backend: ShellBackend, job: RemoteJob, input: bytes = b"") -> CommandResult:
    process = await start_job(backend, job, pipe_stderr=True, startup_timeout=20)
    with anyio.fail_after(20):
        return await collect(process, input)


# --- what the login shell sees ----------------------------------------------------


def test_remote_command_is_fixed_and_inert() -> None:
    """No job data on the command line: one constant, quote-free-inside string."""
    command = remote_command()
    assert command == remote_command()
    assert command.startswith("exec /bin/sh -c '")
    inner = command[len("exec /bin/sh -c '") : -1]
    assert command.endswith("'")
    assert "'" not in inner and "\\" not in inner and "!" not in inner


def test_header_is_one_base64_line_and_carries_no_secret_in_clear() -> None:
    job = RemoteJob(argv=["claude", "--x"], env={"API_KEY": "sk-secret"})
    header = job.header()
    assert header.endswith(b"\n") and header.count(b"\n") == 1
    assert b"sk-secret" not in header
    assert b"sk-secret" not in remote_command().encode()


# --- exact transport of argv, env and cwd, under every login shell -----------------


@pytest.mark.parametrize("mode", ["run", "spawn"])
@EVERY_SHELL
async def test_argv_env_and_cwd_arrive_exactly(
    make_backend: Callable[..., ShellBackend],
    remote_home: Path,
    tmp_path: Path,
    shell: str,
    mode: str,
) -> None:
    backend = make_backend(shell)
    cwd = remote_home / "dir with 'quotes' \"and\" $(x) `y` ~ ! 🐍 \\ end"
    cwd.mkdir()
    env_out = tmp_path / "env.out"
    env = {f"RXT_{i}": value for i, value in enumerate(NASTY)}
    env["RXT_ENV_OUT"] = str(env_out)
    job = RemoteJob(argv=["sh", "-c", ARGV_DUMP, "sh", *NASTY], mode=mode, cwd=str(cwd), env=env)
    process = await start_job(backend, job, pipe_stderr=True)
    assert process.remote_cwd == os.path.realpath(cwd)
    result = await collect(process, b"")
    assert result.returncode == 0, result.stderr
    assert result.stdout == expected_argv(NASTY)
    assert not list(remote_home.rglob("pwned"))
    seen = parse_env0(env_out.read_bytes())
    for name, value in env.items():
        assert seen[name.encode()] == os.fsencode(value), name
    # The bootstrap's own variables (nonce included) stay out of the process.
    assert not [n for n in seen if n.startswith((b"RX_", b"rx_"))]
    # The remote temp directory is gone once the process ends.
    assert os.listdir(backend.env["TMPDIR"]) == []


text_args = st.text(
    st.one_of(
        st.characters(exclude_characters="\0", exclude_categories=["Cs"]),
        st.characters(min_codepoint=0xDC80, max_codepoint=0xDCFF),  # raw bytes
        st.sampled_from("'\"\\$`!\n \t*~{}()[];&|#%"),
    ),
    max_size=40,
)


@ASYNCIO_ONLY
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(args=st.lists(text_args, max_size=6))
@example(args=NASTY)
@example(args=[])
async def test_any_argv_arrives_exactly(
    make_backend: Callable[..., ShellBackend], args: list[str]
) -> None:
    result = await run_job(
        make_backend(), RemoteJob(argv=["sh", "-c", ARGV_DUMP, "sh", *args], mode="run")
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == expected_argv(args)


env_names = st.from_regex(r"RXT_[A-Za-z0-9_]{0,12}", fullmatch=True)


@ASYNCIO_ONLY
@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(env=st.dictionaries(env_names, text_args, max_size=6))
@example(env={"RXT_EMPTY": "", "RXT_NL": "x\n\n", "RXT_SUB": "$(id) `id`"})
async def test_any_env_arrives_exactly(
    make_backend: Callable[..., ShellBackend], tmp_path: Path, env: dict[str, str]
) -> None:
    out = tmp_path / "env.out"
    job = RemoteJob(
        argv=["sh", "-c", ARGV_DUMP], mode="spawn", env={**env, "RXT_ENV_OUT": str(out)}
    )
    result = await run_job(make_backend(), job)
    assert result.returncode == 0, result.stderr
    seen = parse_env0(out.read_bytes())
    assert {n: seen[n.encode()] for n in env} == {n: os.fsencode(v) for n, v in env.items()}


dir_names = st.text(
    st.one_of(
        st.characters(exclude_categories=["Cs", "Cc"], exclude_characters="/"),
        st.sampled_from("'\"\\$`! *~{}()[];&|#%-"),
    ),
    min_size=1,
    max_size=40,
).filter(lambda s: s not in (".", "..") and len(s.encode()) <= 200)


@ASYNCIO_ONLY
@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(name=dir_names, home_relative=st.booleans())
@example(name="-rf", home_relative=True)
@example(name="$(touch pwned) 'a' \"b\" 🐍", home_relative=False)
async def test_any_cwd_is_entered(
    make_backend: Callable[..., ShellBackend], remote_home: Path, name: str, home_relative: bool
) -> None:
    target = remote_home / "cwds" / name
    target.mkdir(parents=True, exist_ok=True)
    if home_relative:
        job = RemoteJob(argv=["pwd", "-P"], mode="run", cwd_home_relative=f"cwds/{name}")
    else:
        job = RemoteJob(argv=["pwd", "-P"], mode="run", cwd=str(target))
    process = await start_job(make_backend(), job, pipe_stderr=True)
    physical = os.path.realpath(target)
    assert process.remote_cwd == physical
    result = await collect(process, None)
    assert result.stdout == os.fsencode(physical) + b"\n"
    assert not list(remote_home.rglob("pwned"))


@EVERY_SHELL
async def test_environment_cannot_break_the_bootstrap(
    make_backend: Callable[..., ShellBackend], shell: str
) -> None:
    """The caller's env is for the process, not for the bootstrap that starts it."""
    env = {
        "IFS": "x",
        "PATH": "/nonexistent",
        "TMPDIR": "/nonexistent",
        "HOME": "/nonexistent",
        "SHELL": "/bin/false",
        "RX_MODE": "run",
        "RX_NONCE": "forged",
        "rx_dir": "/",
        "rx_pid": "1",
    }
    for mode in ("run", "spawn"):
        job = RemoteJob(argv=["/usr/bin/env", "-0"], mode=mode, env=env)
        result = await run_job(make_backend(shell), job, b"")
        assert result.returncode == 0, (mode, result.stderr)
        seen = parse_env0(result.stdout)
        assert {n: seen[n.encode()] for n in env} == {n: v.encode() for n, v in env.items()}


# --- login-shell noise -------------------------------------------------------------

# A chatty rc file: plain lines, JSON-looking lines, a fake status line with a
# wrong nonce, 300 kB in one go, and text without a final newline.
NOISE = (
    'echo noise; echo \'{"type":"result","subtype":"success"}\'; '
    "echo '0123456789abcdef OK'; head -c 300000 /dev/zero | tr '\\0' x; echo; "
    "printf 'no newline at the end'; "
)


@pytest.mark.parametrize("mode", ["run", "spawn"])
@EVERY_SHELL
async def test_noise_before_the_status_line_is_skipped(
    make_backend: Callable[..., ShellBackend], shell: str, mode: str
) -> None:
    backend = make_backend(shell, prelude=NOISE)
    job = RemoteJob(argv=["printf", '{"type":"system"}\\nsecond\\n'], mode=mode)
    result = await run_job(backend, job)
    assert result.returncode == 0, result.stderr
    assert result.stdout == b'{"type":"system"}\nsecond\n'


# --- spawn mode: the stdin relay ------------------------------------------------------


@EVERY_SHELL
async def test_spawn_relays_stdin_lines_and_ends_input_without_closing(
    make_backend: Callable[..., ShellBackend], shell: str
) -> None:
    # If closing stdin closed the channel, the watchdog would TERM the process
    # before it printed "still here" (and the exit status would not be 0).
    job = RemoteJob(argv=["sh", "-c", "cat; echo input ended; sleep 0.1; echo still here"])
    backend = make_backend(shell)
    process = await start_job(backend, job, pipe_stderr=True)
    with anyio.fail_after(15):
        pending = bytearray()
        await process.stdin.send(b'{"type":"user"}\n')
        assert await read_line(process.stdout, pending) == b'{"type":"user"}'
        # A line in pieces, lines that look like control lines, several at once.
        await process.stdin.send(b"par")
        await process.stdin.send(b"tial\n")
        await process.stdin.send(f"{'0' * 32} eof\n{process._job.nonce} eofx\n".encode())
        await process.stdin.send(b"a\nb\n\nc\n")
        lines = [await read_line(process.stdout, pending) for _ in range(7)]
        assert lines == [
            b"partial",
            f"{'0' * 32} eof".encode(),
            f"{process._job.nonce} eofx".encode(),
            b"a",
            b"b",
            b"",
            b"c",
        ]
        await process.stdin.aclose()
        rest = bytes(pending) + await read_all(process.stdout)
        assert rest == b"input ended\nstill here\n"
        assert backend.channels[-1]._stdin_fd is not None  # the channel is still open
        assert await process.wait() == 0
        with pytest.raises(anyio.ClosedResourceError):
            await process.stdin.send(b"late\n")


async def test_spawn_final_line_without_newline_is_delivered(
    make_backend: Callable[..., ShellBackend],
) -> None:
    """A last partial line must not swallow the end-of-input marker."""
    process = await start_job(make_backend(), RemoteJob(argv=["cat"]), pipe_stderr=True)
    with anyio.fail_after(10):
        result = await collect(process, b"one\ntwo")
    assert result.returncode == 0
    # Exactly what was sent: the relay adds no newline to a last partial line.
    assert result.stdout == b"one\ntwo"


async def test_spawn_relays_exactly_with_perl_base_only(
    make_backend: Callable[..., ShellBackend], tmp_path: Path
) -> None:
    """Debian's perl-base (slim images) has no MIME::Base64: the relay must not need it.

    A module dir first on perl's path stands in for its absence. Binary bytes
    and a last line without a newline (the relay's base64 "tail") arrive exactly.
    """
    hidden = tmp_path / "perl-lib" / "MIME"
    hidden.mkdir(parents=True)
    (hidden / "Base64.pm").write_text('die "MIME::Base64 is not installed here\\n";\n')
    backend = make_backend(env={"PERL5LIB": str(tmp_path / "perl-lib")})
    data = bytes(range(256)) + b"\nmiddle\n" + bytes(range(255, -1, -1)) + b"\x00end"
    process = await start_job(backend, RemoteJob(argv=["cat"]), pipe_stderr=True)
    with anyio.fail_after(10):
        result = await collect(process, data)
    assert result.returncode == 0, result.stderr
    assert result.stdout == data


@ASYNCIO_ONLY
async def test_heartbeats_never_land_inside_a_line(
    make_backend: Callable[..., ShellBackend], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_remote_process, "HEARTBEAT_INTERVAL", 0.01)
    job = RemoteJob(argv=["cat"], heartbeat_misses=5)
    process = await start_job(make_backend(), job, pipe_stderr=True)
    with anyio.fail_after(15):
        sent = []
        for i in range(20):
            piece = f"piece {i} ".encode()
            sent.append(piece)
            await process.stdin.send(piece)
            await anyio.sleep(0.02)
        await process.stdin.send(b"end\n")
        await process.stdin.aclose()
        out = await read_all(process.stdout)
    assert out == b"".join(sent) + b"end\n"
    assert await process.wait() == 0


@ASYNCIO_ONLY
@pytest.mark.parametrize("mode", ["run", "spawn"])
async def test_multi_megabyte_lines_relay_intact(
    make_backend: Callable[..., ShellBackend], mode: str
) -> None:
    # 3 MiB in one line. (Debian's mawk relays one line in time quadratic in its
    # length under -W interactive: ~1 s here, ~4 s for 6 MiB.)
    big = os.urandom(3 << 19).hex().encode()
    data = b"small\n" + big + b"\n" + big[:1000] + b"\nlast\n"
    process = await start_job(make_backend(), RemoteJob(argv=["cat"], mode=mode), pipe_stderr=True)
    received = bytearray()
    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:

            async def pump() -> None:
                received.extend(await read_all(process.stdout))

            tg.start_soon(pump)
            await process.stdin.send(data)
            await process.stdin.aclose()
        assert await process.wait() == 0
    assert len(received) == len(data)
    assert bytes(received) == data


# --- run mode ----------------------------------------------------------------------


async def test_run_mode_passes_stdin_bytes_through_exactly(
    make_backend: Callable[..., ShellBackend],
) -> None:
    data = bytes(range(256)) * 300 + b"no newline at the end"
    result = await run_job(make_backend(), RemoteJob(argv=["cat"], mode="run"), data)
    assert result == CommandResult(0, data, b"")


async def test_run_mode_exit_status_and_stderr(make_backend: Callable[..., ShellBackend]) -> None:
    job = RemoteJob(argv=["sh", "-c", "echo out; echo err >&2; exit 7"], mode="run")
    result = await run_job(make_backend(), job)
    assert result == CommandResult(7, b"out\n", b"err\n")


# --- the watchdog --------------------------------------------------------------------


async def _start_sleeper(
    backend: ShellBackend, **job_args: object
) -> tuple[RemoteProcess, int, int]:
    """A process that leaves a child behind: both must die with the group."""
    script = 'sleep 300 & echo "$$ $!"; wait'
    job = RemoteJob(argv=["sh", "-c", script], **job_args)
    process = await start_job(backend, job, pipe_stderr=True)
    with anyio.fail_after(10):
        line = await read_line(process.stdout, bytearray())
    pid, child = (int(word) for word in line.split())
    assert alive(pid) and alive(child)
    return process, pid, child


@EVERY_SHELL
async def test_killing_the_local_side_stops_the_remote_process_group(
    make_backend: Callable[..., ShellBackend], shell: str
) -> None:
    backend = make_backend(shell)
    process, pid, child = await _start_sleeper(backend)
    # Kills the local ssh client: the remote side only sees its stdin close.
    process.kill()
    with anyio.fail_after(10):
        await process.wait()
    assert backend.channels[-1].signals == [signal.SIGKILL]
    assert await wait_dead(pid, 5), "watchdog did not stop the process"
    assert await wait_dead(child, 5), "watchdog did not stop the process group"
    assert await _no_temp_dirs(backend)


async def test_closing_the_channel_stops_the_remote_process_group(
    make_backend: Callable[..., ShellBackend],
) -> None:
    """The link drops with nobody signalling anything (network cut, sshd gone)."""
    backend = make_backend()
    process, pid, child = await _start_sleeper(backend)
    backend.channels[-1].close_stdin()  # the link drops: stdin reaches EOF
    assert await wait_dead(pid, 5), "watchdog did not stop the process"
    assert await wait_dead(child, 5), "watchdog did not stop the process group"
    with anyio.fail_after(10):
        code = await process.wait()
    assert code != 0
    assert await _no_temp_dirs(backend)


async def test_process_aclose_stops_it(make_backend: Callable[..., ShellBackend]) -> None:
    process, pid, child = await _start_sleeper(make_backend())
    with anyio.fail_after(15):
        await process.aclose()
    assert process.returncode is not None
    assert await wait_dead(pid, 5) and await wait_dead(child, 5)


@ASYNCIO_ONLY
async def test_missing_heartbeats_stop_the_process(
    make_backend: Callable[..., ShellBackend], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_remote_process, "HEARTBEAT_INTERVAL", 0.1)
    backend = make_backend()
    process, pid, child = await _start_sleeper(backend, heartbeat_misses=1)
    # Heartbeats flowing: the watchdog checks every second and stays quiet.
    await anyio.sleep(1.2)
    assert alive(pid) and alive(child)
    # A frozen link: the channel stays open but nothing arrives any more.
    process._stop_heartbeat()
    assert await wait_dead(pid, 4), "watchdog ignored the missing heartbeats"
    assert await wait_dead(child, 2)
    assert backend.channels[-1]._stdin_fd is not None  # the channel never closed
    with anyio.fail_after(10):
        await process.wait()


async def _no_temp_dirs(backend: ShellBackend) -> bool:
    with anyio.move_on_after(3):
        while os.listdir(backend.env["TMPDIR"]):
            await anyio.sleep(0.05)
        return True
    return False


# --- setup errors ------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["run", "spawn"])
async def test_missing_cwd(
    make_backend: Callable[..., ShellBackend], remote_home: Path, mode: str
) -> None:
    missing = remote_home / "not there" / "x"
    job = RemoteJob(argv=["true"], mode=mode, cwd=str(missing))
    with pytest.raises(RemotePathNotFound) as info:
        await start_job(make_backend(), job, pipe_stderr=True)
    assert info.value.path == str(missing)
    assert info.value.host == "shellbox"
    assert str(missing) in str(info.value) and "shellbox" in str(info.value)
    assert "path_map" in str(info.value)

    job = RemoteJob(argv=["true"], mode=mode, cwd_home_relative="code/missing")
    with pytest.raises(RemotePathNotFound) as info:
        await start_job(make_backend(), job, pipe_stderr=True)
    assert info.value.path == f"{remote_home}/code/missing"


def _fake_claude(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('#!/bin/sh\nprintf "%s\\0" "$0" "$@"\n')
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


# tcsh: its own branch (no `-l -c`, no `command -v`); the others share sh's.
@pytest.mark.parametrize(
    ("anyio_backend", "shell"),
    [("asyncio", "/bin/sh"), ("trio", "/bin/sh"), ("asyncio", "/usr/bin/tcsh")],
)
async def test_claude_not_found_lists_the_places(
    make_backend: Callable[..., ShellBackend], tmp_path: Path, shell: str
) -> None:
    empty_home = tmp_path / "empty home"
    empty_home.mkdir()
    job = RemoteJob(argv=["claude", "--version"], find_claude=True)
    with pytest.raises(ClaudeNotFound) as info:
        await start_job(make_backend(shell, home=empty_home), job, pipe_stderr=True)
    error = info.value
    h = str(empty_home)
    for place in (
        f"{h}/.local/bin/claude",
        f"{h}/.claude/local/claude",
        f"{h}/.npm-global/bin/claude",
        "/usr/local/bin/claude",
        f"PATH of login shell {shell}",
    ):
        assert place in error.searched
        assert place in str(error)
    assert error.host == "shellbox" and "shellbox" in str(error)
    assert "claude_path" in str(error) and "install" in str(error).lower()


@EVERY_SHELL
async def test_claude_on_the_login_shell_path_is_found(
    make_backend: Callable[..., ShellBackend], remote_home: Path, shell: str
) -> None:
    """Not on the non-login PATH, only on the one the user's login shell sets up."""
    tools = remote_home / "my tools"
    claude = _fake_claude(tools / "claude")
    rc = {
        ".profile": f'PATH="{tools}:$PATH"; export PATH\n',
        ".zprofile": f'path=("{tools}" $path)\n',
        ".config/fish/config.fish": f"set -gx PATH '{tools}' $PATH\n",
        ".tcshrc": f"setenv PATH '{tools}':$PATH\n",
    }
    for name, text in rc.items():
        (remote_home / name).parent.mkdir(parents=True, exist_ok=True)
        (remote_home / name).write_text(text)
    job = RemoteJob(argv=["claude", "-p", "a b"], mode="run", find_claude=True)
    process = await start_job(make_backend(shell), job, pipe_stderr=True)
    assert process.remote_path == str(claude)
    result = await collect(process, None)
    assert result.stdout == expected_argv([str(claude), "-p", "a b"]), result.stderr


async def test_claude_in_a_standard_place_is_found(
    make_backend: Callable[..., ShellBackend], remote_home: Path
) -> None:
    claude = _fake_claude(remote_home / ".local" / "bin" / "claude")
    job = RemoteJob(argv=["claude", "--print", "$(x)"], mode="spawn", find_claude=True)
    process = await start_job(make_backend(), job, pipe_stderr=True)
    assert process.remote_path == str(claude)
    result = await collect(process, None)
    assert result.stdout == expected_argv([str(claude), "--print", "$(x)"])


async def test_claude_path_strict_tries_only_that_path(
    make_backend: Callable[..., ShellBackend], remote_home: Path
) -> None:
    _fake_claude(remote_home / ".local" / "bin" / "claude")  # would be found otherwise
    wanted = remote_home / "opt" / "claude"
    job = RemoteJob(
        argv=["claude"], find_claude=True, claude_path=str(wanted), claude_path_strict=True
    )
    with pytest.raises(ClaudeNotFound) as info:
        await start_job(make_backend(), job, pipe_stderr=True)
    assert info.value.searched == (str(wanted),)

    _fake_claude(wanted)
    process = await start_job(make_backend(), job, pipe_stderr=True)
    assert process.remote_path == str(wanted)
    await collect(process, None)


async def test_claude_path_not_strict_falls_back(
    make_backend: Callable[..., ShellBackend], remote_home: Path
) -> None:
    found = _fake_claude(remote_home / ".local" / "bin" / "claude")
    stale = remote_home / "gone" / "claude"
    job = RemoteJob(argv=["claude"], mode="run", find_claude=True, claude_path=str(stale))
    process = await start_job(make_backend(), job, pipe_stderr=True)
    assert process.remote_path == str(found)
    await collect(process, None)


HAS_C_UTF8 = any(Path("/usr/lib/locale", name).is_dir() for name in ("C.utf8", "C.UTF-8"))
LOCALE = 'printf "%s|%s|%s" "${LANG-}" "${LC_ALL-}" "${LC_CTYPE-}"'


@pytest.mark.skipif(not HAS_C_UTF8, reason="this machine has no C.UTF-8 locale")
@pytest.mark.parametrize("mode", ["run", "spawn"])
async def test_claude_gets_a_utf8_locale_where_the_host_sets_none(
    make_backend: Callable[..., ShellBackend], remote_home: Path, mode: str
) -> None:
    """sshd without PAM passes no locale (the shell backend passes none either):
    the CLI gets C.UTF-8, as a local CLI has a UTF-8 one. What the host or the
    caller set is kept, and other commands are left alone."""
    claude = remote_home / ".local" / "bin" / "claude"
    claude.parent.mkdir(parents=True)
    claude.write_text(f"#!/bin/sh\n{LOCALE}\n")
    claude.chmod(0o755)

    async def locale(backend: ShellBackend, job: RemoteJob) -> str:
        result = await run_job(backend, job)
        assert result.returncode == 0, result.stderr
        return result.stdout.decode()

    cli = RemoteJob(argv=["claude"], mode=mode, find_claude=True)
    assert await locale(make_backend(), cli) == "C.UTF-8||"
    assert await locale(make_backend(env={"LANG": "de_DE.UTF-8"}), cli) == "de_DE.UTF-8||"
    assert await locale(make_backend(env={"LC_ALL": "C"}), cli) == "|C|"
    caller = RemoteJob(argv=["claude"], mode=mode, find_claude=True, env={"LANG": "C"})
    assert await locale(make_backend(), caller) == "C||"
    other = RemoteJob(argv=["sh", "-c", LOCALE], mode=mode)
    assert await locale(make_backend(), other) == "||"


async def test_claude_as_an_ordinary_command_without_find_claude(
    make_backend: Callable[..., ShellBackend],
) -> None:
    """Without find_claude, "claude" is looked up on PATH like any other command."""
    job = RemoteJob(argv=["claude"], mode="run")
    result = await run_job(make_backend(), job)
    assert result.returncode == 127


async def test_channel_that_dies_before_the_status_line(
    make_backend: Callable[..., ShellBackend],
) -> None:
    backend = make_backend(prelude="exit 3; ")
    with pytest.raises(RemoteSetupError) as info:
        await start_job(backend, RemoteJob(argv=["true"]), pipe_stderr=True)
    assert "status 3" in str(info.value) and "shellbox" in str(info.value)


# --- SSHExecutor over the shell backend ----------------------------------------------


@pytest.fixture
def executor(
    make_backend: Callable[..., ShellBackend],
    remote_home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> SSHExecutor:
    local_home = tmp_path / "local home"
    local_home.mkdir()
    monkeypatch.setenv("HOME", str(local_home))
    ex = SSHExecutor("shellbox")
    ex._backend = make_backend()
    return ex


async def test_executor_home_and_map_cwd(
    executor: SSHExecutor, remote_home: Path, tmp_path: Path
) -> None:
    assert await executor.home() == str(remote_home)
    local_home = tmp_path / "local home"
    assert await executor.map_cwd(str(local_home / "code" / "x")) == f"{remote_home}/code/x"
    assert await executor.map_cwd(str(local_home)) == str(remote_home)
    assert await executor.map_cwd("/srv/data") == "/srv/data"


async def test_executor_run_and_spawn_map_the_local_cwd(
    executor: SSHExecutor, remote_home: Path, tmp_path: Path
) -> None:
    (remote_home / "code" / "shop").mkdir(parents=True)
    local_cwd = str(tmp_path / "local home" / "code" / "shop")  # need not exist locally
    result = await executor.run(["pwd"], cwd=local_cwd, env={"A": "1"}, input=b"")
    assert result == CommandResult(0, f"{remote_home}/code/shop\n".encode(), b"")
    process: Process = await executor.spawn(
        SpawnOptions("sh", ["-c", 'pwd; printf "%s" "$A"'], cwd=local_cwd, env={"A": "x y"})
    )
    with anyio.fail_after(10):
        out = await read_all(process.stdout)
        assert await process.wait() == 0
    assert out == f"{remote_home}/code/shop\nx y".encode()
    with pytest.raises(RemotePathNotFound):
        await executor.run(["pwd"], cwd=str(tmp_path / "local home" / "nope"))


async def test_executor_run_timeout(executor: SSHExecutor) -> None:
    with anyio.fail_after(10), pytest.raises(CommandTimeout) as info:
        await executor.run(["sleep", "30"], timeout=0.2)
    assert "shellbox" in str(info.value)


async def test_executor_refuses_nul_in_arguments(executor: SSHExecutor) -> None:
    with pytest.raises(InvalidInput):
        await executor.run(["printf", "a\0b"])
    with pytest.raises(InvalidInput):
        await executor.spawn(SpawnOptions("cat", [], env={"A": "a\0b"}))
