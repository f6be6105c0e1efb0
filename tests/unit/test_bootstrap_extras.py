"""Bootstrap features beyond the basic protocol, for real over the shell backend:
private file arguments, unset variables, the stderr mark, the perl and awk
stdin relays, killing descendants in their own session, and telling a lost
link from a kill we sent.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import stat
import tarfile
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest
from _shell_backend import SSH_PATH, ShellBackend, alive, wait_dead
from anyio.abc import ByteReceiveStream
from claude_agent_sdk import ClaudeAgentOptions
from test_bootstrap import parse_env0, read_all, read_line
from test_sdk_seam import FakeExecutor, RecordingLocal, _spawned

from remote_executors import LocalExecutor, SpawnOptions, SSHExecutor, _cli_argv
from remote_executors._sdk_compat import SubprocessCLITransport
from remote_executors.errors import InvalidInput, ProcessLost
from remote_executors.executors._remote_job import RemoteJob
from remote_executors.executors._remote_process import RemoteProcess, start_job
from remote_executors.executors._run_job import collect
from remote_executors.executors.base import Attachment, CommandResult
from remote_executors.executors.ssh._reattach import ReattachingProcess

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    """The shell side never meets the event loop: asyncio is enough here."""
    return "asyncio"


def ssh_executor(backend: ShellBackend) -> SSHExecutor:
    # The unsupervised path (its job directory goes before the channel ends);
    # test_supervisor.py covers the supervised one.
    executor = SSHExecutor("shellbox", reattach_within=0)
    executor._backend = backend
    return executor


async def read_until(stream: ByteReceiveStream, end: bytes) -> bytes:
    data = b""
    with anyio.fail_after(10):
        while not data.endswith(end):
            data += await stream.receive()
    return data


async def drain(process: RemoteProcess) -> None:
    """Until the whole remote side is gone: stdout and stderr both at EOF."""
    with anyio.fail_after(10):
        await read_all(process.stdout)
        if process.stderr is not None:
            await read_all(process.stderr)


async def wait_for_file(path: Path) -> str:
    with anyio.fail_after(10):
        while not (path.exists() and path.read_text().endswith("\n")):
            await anyio.sleep(0.02)
    return path.read_text().strip()


def session_of(pid: int) -> int:
    """The session id from /proc/<pid>/stat ("pid (comm) state ppid pgrp session ...")."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        text = f.read()
    return int(text[text.rindex(b")") + 2 :].split()[3])


async def all_command_lines() -> bytes:
    """Every process's argv on this machine, as ps shows it and as /proc holds it."""
    result = await anyio.run_process(["ps", "-eww", "-o", "args="])
    lines = [result.stdout]
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    lines.append(f.read())
            except OSError:
                pass
    return b"\n".join(lines)


# --- private_args: values that must not be on any command line --------------------

ARGS_THEN_WAIT = 'for a; do printf "%s\\0" "$a"; done; printf "END\\0"; exec cat >/dev/null'


async def test_private_args_arrive_as_private_files_never_on_a_command_line(
    make_backend: Callable[..., ShellBackend], remote_tmp: Path
) -> None:
    secret = f"rx-secret-{uuid.uuid4().hex}"
    mcp = {
        "mcpServers": {
            "probe": {"type": "http", "url": "https://x", "headers": {"Authorization": secret}}
        },
        "hostile": "quotes ' \" $(touch pwned) `x` \\ ~ ! 🐍 日本語 \t",
    }
    first = json.dumps(mcp, ensure_ascii=False, indent=2) + "\n\n"  # newlines, trailing ones too
    second = json.dumps({"env": {"TOKEN": secret + "-2"}})
    decoy = "0" * 32 + ":file:0"  # a placeholder with another nonce stays as it is
    options = SpawnOptions(
        "sh",
        ["-c", ARGS_THEN_WAIT, "sh", "--mcp-config", first, decoy, "--settings", second],
        private_args=[4, 7],
        stderr=True,
    )
    process = await ssh_executor(make_backend()).spawn(options)

    out = await read_until(process.stdout, b"END\0")
    seen = out.split(b"\0")[:-2]
    assert seen[0] == b"--mcp-config" and seen[2:4] == [decoy.encode(), b"--settings"], seen
    paths = [Path(os.fsdecode(seen[1])), Path(os.fsdecode(seen[4]))]
    # Inside the job's own private temp directory.
    job_dir = paths[0].parent
    assert paths[1].parent == job_dir and job_dir.parent == remote_tmp
    assert job_dir.name.startswith("rx.")
    assert stat.S_IMODE(job_dir.stat().st_mode) == 0o700
    for path, value in zip(paths, (first, second), strict=True):
        assert path.read_bytes() == value.encode()  # byte-exact
        info = path.stat()
        assert stat.S_IMODE(info.st_mode) == 0o600 and info.st_uid == os.getuid()

    # While it runs, no command line on the machine shows the value.
    assert secret.encode() not in await all_command_lines()

    await process.stdin.aclose()
    with anyio.fail_after(10):
        assert await process.wait() == 0
    await drain(process)
    assert not paths[0].exists() and not paths[1].exists() and not job_dir.exists()


async def test_private_args_validation(make_backend: Callable[..., ShellBackend]) -> None:
    backend = make_backend()
    executor = ssh_executor(backend)
    for bad in ([1], [-1], [0, 5]):
        with pytest.raises(InvalidInput, match="private_args") as info:
            await executor.spawn(SpawnOptions("cat", ["x"], private_args=bad))
        assert info.value.host == "shellbox"
    # run() is a short command: no private files (its API cannot ask for them, the job refuses).
    with pytest.raises(InvalidInput, match="spawn"):
        executor._job(SpawnOptions("cat", ["x"], private_args=[0]), "run")
    assert backend.channels == []  # refused before anything started


async def test_attachments_arrive_as_private_copies_and_go_with_the_job(
    make_backend: Callable[..., ShellBackend], remote_tmp: Path, tmp_path: Path
) -> None:
    """A file (any bytes) and a directory tree (modes, an inner link) reach the
    process as paths of private copies, never on a command line, removed at the end."""
    secret = f"rx-secret-{uuid.uuid4().hex}"
    blob = bytes(range(256)) * 64 + secret.encode()
    tree = tmp_path / "plugin"
    (tree / "bin").mkdir(parents=True)
    (tree / "bin" / "tool").write_text("#!/bin/sh\necho tool ran\n")
    (tree / "bin" / "tool").chmod(0o755)
    (tree / "plugin.json").write_text('{"name": "p"}')
    (tree / "link.json").symlink_to("plugin.json")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path in sorted(tree.rglob("*")):
            tar.add(path, arcname=path.relative_to(tree).as_posix(), recursive=False)
    options = SpawnOptions(
        "sh",
        ["-c", ARGS_THEN_WAIT, "sh", "--blob", "local-name", "--plugin-dir", "x"],
        attachments={4: Attachment("file", blob), 6: Attachment("tree", buffer.getvalue())},
        stderr=True,
    )
    process = await ssh_executor(make_backend()).spawn(options)
    seen = (await read_until(process.stdout, b"END\0")).split(b"\0")[:-2]
    assert seen[0] == b"--blob" and seen[2] == b"--plugin-dir"
    blob_path, tree_path = Path(os.fsdecode(seen[1])), Path(os.fsdecode(seen[3]))
    job_dir = blob_path.parent
    assert tree_path.parent == job_dir and job_dir.parent == remote_tmp
    assert blob_path.read_bytes() == blob
    assert stat.S_IMODE(blob_path.stat().st_mode) == 0o600
    assert (tree_path / "plugin.json").read_text() == '{"name": "p"}'
    assert os.readlink(tree_path / "link.json") == "plugin.json"
    assert os.access(tree_path / "bin" / "tool", os.X_OK)
    assert secret.encode() not in await all_command_lines()

    await process.stdin.aclose()
    with anyio.fail_after(10):
        assert await process.wait() == 0
    await drain(process)
    assert not job_dir.exists()


async def test_attachments_validation(make_backend: Callable[..., ShellBackend]) -> None:
    backend = make_backend()
    executor = ssh_executor(backend)
    blob = Attachment("file", b"x")
    for bad in ({1: blob}, {-1: blob}):
        with pytest.raises(InvalidInput, match="attachments"):
            await executor.spawn(SpawnOptions("cat", ["x"], attachments=bad))
    with pytest.raises(InvalidInput, match="both"):
        await executor.spawn(SpawnOptions("cat", ["x"], private_args=[0], attachments={0: blob}))
    with pytest.raises(InvalidInput, match="spawn"):
        executor._job(SpawnOptions("cat", ["x"], attachments={0: blob}), "run")
    with pytest.raises(ValueError, match="kind"):
        Attachment("socket", b"")  # type: ignore[arg-type]
    assert backend.channels == []  # refused before anything started


async def test_local_executor_attachments(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("a/b.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    executor = LocalExecutor()
    process = await executor.spawn(
        SpawnOptions(
            "sh",
            ["-c", ARGS_THEN_WAIT, "sh", "f", "t"],
            attachments={
                3: Attachment("file", b"\0data"),
                4: Attachment("tree", buffer.getvalue()),
            },
        )
    )
    seen = (await read_until(process.stdout, b"END\0")).split(b"\0")[:-2]
    file_path, tree_path = Path(os.fsdecode(seen[0])), Path(os.fsdecode(seen[1]))
    assert file_path.read_bytes() == b"\0data"
    assert (tree_path / "a" / "b.txt").read_bytes() == b"hi"
    scratch = file_path.parent
    assert stat.S_IMODE(scratch.stat().st_mode) == 0o700
    assert process.stdin is not None
    await process.stdin.aclose()
    with anyio.fail_after(10):
        assert await process.wait() == 0
    assert not scratch.exists()


@pytest.mark.parametrize(
    "member",
    [
        ("../escape", tarfile.REGTYPE, ""),
        ("/abs", tarfile.REGTYPE, ""),
        ("link", tarfile.SYMTYPE, "../../etc/passwd"),
        ("link", tarfile.SYMTYPE, "/etc/passwd"),
        ("fifo", tarfile.FIFOTYPE, ""),
    ],
)
async def test_local_executor_refuses_a_tree_that_escapes(
    member: tuple[str, bytes, str], tmp_path: Path
) -> None:
    name, kind, target = member
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.linkname = target
        tar.addfile(info)
    before = set(Path(tempfile.gettempdir()).glob("rx-att.*"))
    with pytest.raises(InvalidInput, match="Refusing tree attachment"):
        await LocalExecutor().spawn(
            SpawnOptions("true", ["x"], attachments={0: Attachment("tree", buffer.getvalue())})
        )
    assert set(Path(tempfile.gettempdir()).glob("rx-att.*")) == before  # nothing left


def _prepared_value(spawned: SpawnOptions, flag: str) -> list[Attachment]:
    args = list(spawned.args)
    return [spawned.attachments[i + 1] for i, a in enumerate(args) if a == flag]


@pytest.mark.parametrize("spelling", ["two", "joined"])
async def test_transport_ships_config_json_privately_in_either_spelling(
    spelling: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """JSON that may hold credentials never stays on the remote command line, whether
    the SDK sends ``--mcp-config {...}`` (today) or ``--mcp-config={...}`` (as it
    already does for other options, and may for these)."""
    if spelling == "joined":
        build = SubprocessCLITransport._build_command

        def joined(self: SubprocessCLITransport) -> list[str]:
            args = build(self)
            out: list[str] = []
            for arg in args:
                if out and out[-1] in ("--mcp-config", "--settings"):
                    out[-1] = f"{out[-1]}={arg}"
                else:
                    out.append(arg)
            return out

        monkeypatch.setattr(SubprocessCLITransport, "_build_command", joined)
    servers = {"probe": {"type": "http", "url": "https://x", "headers": {"A": "secret"}}}
    options = ClaudeAgentOptions(mcp_servers=servers, settings='{"env": {"X": "secret"}}')
    spawned = await _spawned(options, FakeExecutor())
    assert "secret" not in " ".join(spawned.args)
    (mcp,) = _prepared_value(spawned, "--mcp-config")
    assert json.loads(mcp.data)["mcpServers"] == servers and mcp.kind == "file"
    (flag_settings,) = _prepared_value(spawned, "--settings")
    assert json.loads(flag_settings.data) == {"env": {"X": "secret"}}
    assert spawned.private_args == ()


def test_argv_reader_finds_json_in_joined_spelling() -> None:
    parsed = _cli_argv.parse(
        ['--mcp-config={"mcpServers": {}}', "--settings", '{"env": {}}', "--verbose",
         "--model=m", "--resume=abc", "--continue"]
    )  # fmt: skip
    assert [(a.flag, a.value, a.joined) for a in parsed] == [
        ("--mcp-config", '{"mcpServers": {}}', True),
        ("--settings", '{"env": {}}', False),
        ("--verbose", None, False),
        ("--model", "m", True),
        ("--resume", "abc", True),
        ("--continue", None, False),
    ]


async def test_transport_ships_config_files_and_leaves_local_runs_alone(
    tmp_path: Path,
) -> None:
    (tmp_path / "mcp.json").write_text('{"mcpServers": {"a": {"command": "x"}}}')
    (tmp_path / "settings.json").write_text('{"env": {"S": "1"}}')
    path_options = ClaudeAgentOptions(
        cwd=str(tmp_path), mcp_servers="mcp.json", settings=str(tmp_path / "settings.json")
    )
    spawned = await _spawned(path_options, FakeExecutor())
    (mcp,) = _prepared_value(spawned, "--mcp-config")
    assert mcp.data == (tmp_path / "mcp.json").read_bytes()  # relative to the local cwd
    (settings,) = _prepared_value(spawned, "--settings")
    assert settings.data == (tmp_path / "settings.json").read_bytes()
    # Locally the SDK's own command line applies, as it is.
    servers = {"probe": {"type": "http", "url": "https://x"}}
    local = await _spawned(ClaudeAgentOptions(mcp_servers=servers), RecordingLocal())
    assert local.private_args == () and local.attachments == {}


# --- unset_env ------------------------------------------------------------------------


async def test_unset_env_through_the_bootstrap(
    make_backend: Callable[..., ShellBackend],
) -> None:
    login_env = {"RXT_DROP": "from the login", "RXT_KEEP": "kept"}
    backend = make_backend(env=login_env)
    options = SpawnOptions(
        "/usr/bin/env", ["-0"], unset_env=["RXT_DROP", "RXT_NEVER_SET"], stderr=True
    )
    process = await ssh_executor(backend).spawn(options)
    assert isinstance(process, (RemoteProcess, ReattachingProcess))
    with anyio.fail_after(10):
        spawned_env = parse_env0(await read_all(process.stdout))
        assert await process.wait() == 0
    await drain(process)
    job = RemoteJob(argv=["/usr/bin/env", "-0"], mode="run", unset_env=["RXT_DROP"])
    process = await start_job(backend, job, pipe_stderr=True)
    with anyio.fail_after(10):
        result = await collect(process, None)
    run_env = parse_env0(result.stdout)
    for env in (spawned_env, run_env):
        assert b"RXT_DROP" not in env
        assert env[b"RXT_KEEP"] == b"kept"  # only what was asked for goes

    # The names reach a shell's `unset`: anything but a plain name is refused.
    for bad in ("A B", "X; touch pwned", "1X", ""):
        with pytest.raises(InvalidInput):
            await ssh_executor(backend).spawn(SpawnOptions("true", unset_env=[bad]))


async def test_local_executor_honours_unset_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RXT_DROP", "inherited")
    monkeypatch.setenv("RXT_KEEP", "inherited too")
    process = await LocalExecutor().spawn(
        SpawnOptions("/usr/bin/env", ["-0"], unset_env=["RXT_DROP"], env={"RXT_NEW": "n"})
    )
    async with process:
        with anyio.fail_after(10):
            env = parse_env0(await read_all(process.stdout))
            assert await process.wait() == 0
    assert b"RXT_DROP" not in env
    assert env[b"RXT_KEEP"] == b"inherited too" and env[b"RXT_NEW"] == b"n"


async def test_transport_unsets_what_the_sdk_drops_locally(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CLAUDECODE", "1")
    monkeypatch.setenv("RXT_INHERITED", "stays")
    local = await _spawned(ClaudeAgentOptions(), RecordingLocal())
    assert "CLAUDECODE" in local.unset_env
    assert "RXT_INHERITED" not in local.unset_env and "PATH" not in local.unset_env
    # Remotely nothing of this machine's environment is inherited to begin with.
    assert (await _spawned(ClaudeAgentOptions(), FakeExecutor())).unset_env == ()


# --- the stderr mark: login-shell chatter stays out of the caller's stderr ---------------

CHATTER = "printf 'chatter on stderr\\nand no newline at its end' >&2; echo stdout chatter; "


async def test_caller_stderr_starts_after_login_chatter(
    make_backend: Callable[..., ShellBackend],
) -> None:
    executor = ssh_executor(make_backend(prelude=CHATTER))
    program = ["-c", "echo from the program >&2; echo out"]
    process = await executor.spawn(SpawnOptions("sh", program, stderr=True))
    assert isinstance(process, RemoteProcess) and process.stderr is not None
    err = b""
    with anyio.fail_after(10):
        try:
            while True:  # tiny reads: the mark arrives in pieces
                err += await process.stderr.receive(5)
        except anyio.EndOfStream:
            pass
        out = await read_all(process.stdout)
        assert await process.wait() == 0
    assert err == b"from the program\n"
    assert out == b"out\n"
    # Diagnostics still see everything.
    tail = process.stderr_tail()
    assert "chatter on stderr" in tail and "from the program" in tail

    result = await executor.run(["sh", "-c", "echo err >&2; echo out; exit 3"])
    assert result == CommandResult(3, b"out\n", b"err\n")


# --- the stdin relay: perl when there is one, awk otherwise ------------------------------


async def test_perl_relays_a_huge_line_in_linear_time(
    make_backend: Callable[..., ShellBackend],
) -> None:
    assert shutil.which("perl", path=SSH_PATH), "this test needs perl on the shell backend's PATH"
    line = os.urandom(10_000_000).hex().encode()  # 20 MB, one line
    data = line + b"\nafter\n"
    process = await start_job(make_backend(), RemoteJob(argv=["cat"]), pipe_stderr=True)
    received = bytearray()
    started = time.monotonic()
    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:

            async def pump() -> None:
                received.extend(await read_all(process.stdout))

            tg.start_soon(pump)
            await process.stdin.send(data)
            await process.stdin.aclose()
        assert await process.wait() == 0
    elapsed = time.monotonic() - started
    await drain(process)
    assert len(received) == len(data) and bytes(received) == data
    # Linear: well under a second here; the quadratic mawk relay took ~40 s.
    assert elapsed < 15, f"20 MB line took {elapsed:.1f} s"


BOOTSTRAP_TOOLS = (
    *("sh", "base64", "head", "tr", "sed", "tail", "mktemp", "mkfifo", "rm", "ps"),
    *("sleep", "cat", "kill", "env", "printf", "dd", "wc"),
)


def tools_without_perl(directory: Path, awk_log: Path) -> str:
    """A PATH with what the bootstrap needs, but no perl; awk logs its arguments."""
    directory.mkdir()
    for name in BOOTSTRAP_TOOLS:
        found = shutil.which(name, path=SSH_PATH)
        if found is not None:  # kill and printf may be builtins only
            (directory / name).symlink_to(found)
    real_awk = shutil.which("awk", path=SSH_PATH)
    awk = directory / "awk"
    awk.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$*\" >>'{awk_log}'\nexec '{real_awk}' \"$@\"\n")
    awk.chmod(0o755)
    assert shutil.which("perl", path=str(directory)) is None
    return str(directory)


async def test_awk_relay_without_perl(
    make_backend: Callable[..., ShellBackend], tmp_path: Path
) -> None:
    awk_log = tmp_path / "awk.log"
    path = tools_without_perl(tmp_path / "bin", awk_log)
    backend = make_backend(env={"PATH": path})
    job = RemoteJob(argv=["cat"])
    process = await start_job(backend, job, pipe_stderr=True)
    pending = bytearray()
    with anyio.fail_after(10):
        # Line by line while the channel stays open: a buffering relay would stall here.
        await process.stdin.send(b"ping\n")
        assert await read_line(process.stdout, pending) == b"ping"
        await process.stdin.send(job.marker("hb") + b"a\n\nb 'x' \\ \xff\nlast, no newline")
        await process.stdin.aclose()  # the end-of-input marker, the channel still open
        rest = bytes(pending) + await read_all(process.stdout)
        assert backend.channels[-1]._stdin_fd is not None  # ended by the marker
        assert await process.wait() == 0
    await drain(process)
    assert rest == b"a\n\nb 'x' \\ \xff\nlast, no newline"  # exact, no newline added
    # The fallback did the relaying.
    relays = [line for line in awk_log.read_text().splitlines() if "out=" in line]
    assert relays, awk_log.read_text()
    version = await anyio.run_process(["awk", "-W", "version"], check=False)
    if b"mawk" in version.stdout + version.stderr:
        assert "-W interactive" in relays[0]


# --- killing descendants that made their own session --------------------------------------

# Starts a child in a session of its own, which writes its pid to $1.
SETSID_CHILD = 'setsid sh -c \'echo $$ >"$1"; exec sleep 300\' sh "$1" &'


async def _start_with_setsid_child(
    backend: ShellBackend, tmp_path: Path, then: str
) -> tuple[RemoteProcess, int]:
    pidfile = tmp_path / "setsid.pid"
    job = RemoteJob(argv=["sh", "-c", SETSID_CHILD + then, "sh", str(pidfile)])
    process = await start_job(backend, job, pipe_stderr=True)
    child = int(await wait_for_file(pidfile))
    assert alive(child)
    assert session_of(child) == child != session_of(backend.channels[-1].pid)
    return process, child


async def test_watchdog_kills_descendants_in_their_own_session(
    make_backend: Callable[..., ShellBackend], tmp_path: Path
) -> None:
    # The main process dies at once on SIGTERM, orphaning its child.
    process, child = await _start_with_setsid_child(make_backend(), tmp_path, " wait")
    try:
        process.kill()  # the local ssh client dies: the channel closes
        with anyio.fail_after(10):
            await process.wait()
        assert await wait_dead(child, 4.5), "a descendant in its own session outlived the link"
        await drain(process)  # the whole remote side is gone
    finally:
        if alive(child):
            os.kill(child, signal.SIGKILL)


async def test_normal_exit_kills_leftovers_in_their_own_session(
    make_backend: Callable[..., ShellBackend], tmp_path: Path
) -> None:
    then = ' while [ ! -s "$1" ]; do sleep 0.05; done; exit 0'
    process, child = await _start_with_setsid_child(make_backend(), tmp_path, then)
    try:
        with anyio.fail_after(10):
            assert await process.wait() == 0
        assert await wait_dead(child, 1.5), "a leftover in its own session outlived the job"
    finally:
        if alive(child):
            os.kill(child, signal.SIGKILL)
        await drain(process)  # the leftover held it open


# --- lost_error: a kill we sent is not a lost link ---------------------------------------


@pytest.mark.parametrize(("how", "code"), [("terminate", -15), ("kill", -9)])
async def test_our_own_kill_is_not_a_lost_process(
    make_backend: Callable[..., ShellBackend], how: str, code: int
) -> None:
    process = await start_job(make_backend(), RemoteJob(argv=["cat"]), pipe_stderr=True)
    getattr(process, how)()
    with anyio.fail_after(10):
        assert await process.wait() == code
    # Still the local client's status (no await since: the shell backend has
    # not yet swapped in the remote side's own).
    assert process.returncode == code
    assert process.lost_error() is None
    await drain(process)  # the remote side ends too


async def test_channel_killed_from_outside_is_a_lost_process(
    make_backend: Callable[..., ShellBackend],
) -> None:
    process = await start_job(make_backend(), RemoteJob(argv=["cat"]), pipe_stderr=True)
    # Running for real first (the shell backend's channel process is the remote
    # bootstrap itself: killed while still setting up, it could not clean up).
    await process.stdin.send(b"ping\n")
    with anyio.fail_after(10):
        assert await read_line(process.stdout, bytearray()) == b"ping"
    os.kill(process.pid, signal.SIGKILL)  # e.g. the OOM killer takes the local ssh
    with anyio.fail_after(10):
        assert await process.wait() == -signal.SIGKILL
    await drain(process)  # the remote side ends too
    error = process.lost_error()
    assert isinstance(error, ProcessLost)
    assert error.host == "shellbox" and "shellbox" in str(error)
    assert error.exit_code == -signal.SIGKILL


async def test_program_killed_by_a_signal_is_its_own_exit_status(
    make_backend: Callable[..., ShellBackend],
) -> None:
    job = RemoteJob(argv=["sh", "-c", "kill -KILL $$"])
    process = await start_job(make_backend(), job, pipe_stderr=True)
    with anyio.fail_after(10):
        assert await process.wait() == 128 + signal.SIGKILL  # reported, the link was fine
    await drain(process)
    assert process.lost_error() is None
