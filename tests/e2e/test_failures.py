"""Every failure a user can meet, provoked for real: right type, names the host, says what to do.

Nothing here is mocked: a real sshd that is stopped, a HostName that does not resolve, a key
the server never saw, a known_hosts that pins another key or none, accounts without the Claude
Code CLI, a working directory that is not there, input that must never reach a shell, and a
command that outlives its timeout. After each failure nothing may be left behind: no ``ssh``
process of ours here, no process of the account there (the ControlMaster's ``sshd: <user>@notty``
excepted while the executor is open), no private temp directory on the remote.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from claude_agent_sdk import (
    ClaudeAgentOptions,
    CLIConnectionError,
    CLINotFoundError,
    ResultMessage,
)

import remote_executors as rx
from remote_executors.executors.ssh import BACKENDS
from remote_executors.testing.plugin import Project
from remote_executors.testing.sshd import (
    NON_LOGIN_PATH,
    ProcessInfo,
    RemoteAccount,
    SSHClientConfig,
    SSHFault,
    SSHTestBed,
    live_followers,
    spare_channels,
)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.anyio,
    # Every failure over both SSH implementations: they must fail alike.
    pytest.mark.parametrize("rx_ssh_backend", BACKENDS, indirect=True),
]

#: For tests whose outcome does not depend on the event loop (no SDK session runs).
asyncio_only = pytest.mark.parametrize("anyio_backend", ["asyncio"])


# ---- helpers -----------------------------------------------------------------------------


def _ps() -> list[tuple[int, str, str]]:
    """(pid, comm, args) of every live process on the machine (both "sides" are this one)."""
    out = subprocess.run(
        ["ps", "-ww", "-A", "-o", "pid=,stat=,comm=,args="],
        capture_output=True,
        text=True,
        errors="replace",
        check=True,
        env={**os.environ, "LC_ALL": "C"},
    ).stdout
    rows = []
    for line in out.splitlines():
        parts = line.split(None, 3)
        if len(parts) >= 3 and not parts[1].startswith("Z"):
            rows.append((int(parts[0]), parts[2], parts[3] if len(parts) > 3 else ""))
    return rows


def local_ssh(cfg: SSHClientConfig) -> list[tuple[int, str, str]]:
    """Our ``ssh`` clients (master or channel) for this test's config file."""
    return [row for row in _ps() if row[1] == "ssh" and str(cfg.path) in row[2]]


def paramiko_threads() -> list[tuple[int, str, str]]:
    """paramiko transports still running in this process (the fabric backend's connections)."""
    import paramiko

    return [
        (t.ident or 0, "paramiko", t.name)
        for t in threading.enumerate()
        if isinstance(t, paramiko.Transport) and t.is_alive()
    ]


def is_master_session(account: RemoteAccount, args: str) -> bool:
    """The per-connection sshd (ControlMaster, or the fabric backend's connection
    and its SFTP session): the only processes allowed to stay while it is open."""
    return args in {
        f"{prog}: {account.user}@{what}"
        for prog in ("sshd", "sshd-session")
        for what in ("notty", "internal-sftp")
    }


_EXISTING_TEMP_DIRS: set[Path] = set()


@pytest.fixture(autouse=True)
def _note_existing_temp_dirs() -> None:
    """Accounts are reused across runs: only directories this test made count."""
    _EXISTING_TEMP_DIRS.clear()
    _EXISTING_TEMP_DIRS.update(Path("/tmp").glob("rx.*"))


def remote_temp_dirs(account: RemoteAccount) -> list[Path]:
    """The bootstrap's private ``rx.*`` directories the account made during this test."""
    found = []
    for path in set(Path("/tmp").glob("rx.*")) - _EXISTING_TEMP_DIRS:
        with contextlib.suppress(OSError):
            if path.stat().st_uid == account.uid:
                found.append(path)
    return found


def held_dirs(pids: set[int]) -> set[Path]:
    """The ``/tmp/rx.*`` directories whose files these processes hold open."""
    held = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    target = Path(os.readlink(f"/proc/{pid}/fd/{fd}"))
                    if target.parent.name.startswith("rx.") and target.parent.parent == Path(
                        "/tmp"
                    ):
                        held.add(target.parent)
    return held


async def assert_nothing_left(
    bed: SSHTestBed,
    account: RemoteAccount,
    cfg: SSHClientConfig,
    executor: rx.SSHExecutor,
    timeout: float = 5.0,
) -> None:
    """While open only the master's session may remain; after ``aclose`` nothing at all."""

    def left() -> list[ProcessInfo]:
        remote = [p for p in bed.processes(account) if not is_master_session(account, p.args)]
        # The spare channel waiting for the next spawn (warm_spawn) may stay, one at
        # most, and so may the live follower waiting for the next session.
        spares = spare_channels(remote)
        assert len(spares) <= 2, f"more than one spare channel: {remote}"
        return [p for p in remote if p.pid not in spares | live_followers(remote)]

    # A spare opened as the last job ended may still be on its way to its header wait.
    deadline = time.monotonic() + 2
    while (remote := left()) and time.monotonic() < deadline:
        await anyio.sleep(0.05)
    assert remote == [], f"left running on the remote: {remote}"
    follower = held_dirs(live_followers(bed.processes(account)))
    assert [d for d in remote_temp_dirs(account) if d not in follower] == []
    await executor.aclose()
    deadline = time.monotonic() + timeout
    while True:
        left_local, left_remote = local_ssh(cfg) + paramiko_threads(), bed.processes(account)
        if not left_local and not left_remote and not remote_temp_dirs(account):
            return
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{timeout} s after aclose(): local ssh {left_local}, remote {left_remote}, "
                f"job directories {remote_temp_dirs(account)}"
            )
        await anyio.sleep(0.05)


async def collect(prompt: str, options: ClaudeAgentOptions, executor: rx.SSHExecutor) -> list[str]:
    """The results of one whole session through ``rx.query``."""
    with anyio.fail_after(90):
        return [
            str(m.result)
            async for m in rx.query(prompt=prompt, options=options, executor=executor)
            if isinstance(m, ResultMessage)
        ]


async def query_error(options: ClaudeAgentOptions, executor: rx.SSHExecutor) -> BaseException:
    """What ``rx.query`` raises (it must raise) for a session on ``executor``."""
    with anyio.fail_after(60):
        try:
            async for _ in rx.query(prompt="never answered", options=options, executor=executor):
                pass
        except Exception as exc:
            return exc
    raise AssertionError("rx.query did not fail")


def assert_names_host(error: rx.ExecutorError, host: str) -> None:
    assert error.host == host
    assert host in str(error), str(error)


# ---- cannot connect ----------------------------------------------------------------------

# fault -> (error type, what the message says happened, what it says to do)
CONNECT_FAULTS = {
    SSHFault.CONNECTION_REFUSED: (
        rx.HostUnreachable,
        "refused the connection",
        "Check that sshd runs",
    ),
    SSHFault.UNRESOLVABLE: (
        rx.HostUnreachable,
        "Cannot resolve the address",
        "Check the HostName",
    ),
    SSHFault.WRONG_KEY: (
        rx.AuthenticationFailed,
        "refused every key offered",
        "key in the remote authorized_keys",
    ),
    SSHFault.CHANGED_HOST_KEY: (
        rx.HostKeyError,
        "has changed since it was recorded",
        "verify the new key",
    ),
    SSHFault.UNKNOWN_HOST_KEY: (
        rx.HostKeyError,
        "is not in known_hosts",
        "accept_new_host_keys=True",
    ),
}


SSH_SAYS = {
    SSHFault.CONNECTION_REFUSED: "Connection refused",
    SSHFault.UNRESOLVABLE: "Could not resolve hostname",
    SSHFault.WRONG_KEY: "Permission denied (publickey)",
    SSHFault.CHANGED_HOST_KEY: "has changed and you have requested strict checking",
    SSHFault.UNKNOWN_HOST_KEY: "Host key verification failed",
}


PARAMIKO_SAYS = {
    SSHFault.CONNECTION_REFUSED: "Connection refused",
    SSHFault.UNRESOLVABLE: "gaierror",
    SSHFault.WRONG_KEY: "AuthenticationException",
    SSHFault.CHANGED_HOST_KEY: "BadHostKeyException",
    SSHFault.UNKNOWN_HOST_KEY: "No ssh-ed25519 host key is known",
}


@pytest.mark.parametrize("fault", list(CONNECT_FAULTS), ids=lambda f: f.value)
async def test_connect_failure_is_typed_from_query_and_run(
    rx_ssh_backend: str,
    fault: SSHFault,
    rx_sshd: SSHTestBed,
    rx_account: RemoteAccount,
    rx_ssh_config: SSHClientConfig,
    tmp_path: Path,
) -> None:
    alias = rx_ssh_config.alias_for(fault)
    kind, happened, to_do = CONNECT_FAULTS[fault]
    executor = rx.SSHExecutor(alias, ssh_config=rx_ssh_config.path, backend=rx_ssh_backend)

    error = await query_error(ClaudeAgentOptions(cwd=str(tmp_path)), executor)
    assert type(error) is kind, repr(error)
    assert isinstance(error, rx.ConnectionFailed)
    assert isinstance(error, CLIConnectionError)  # what SDK apps already catch
    assert_names_host(error, alias)
    assert happened in str(error) and to_do in str(error), str(error)
    # The SSH implementation's own last words ride along (ssh's stderr, paramiko's error).
    says = SSH_SAYS if rx_ssh_backend == "openssh" else PARAMIKO_SAYS
    assert says[fault] in error.detail, error.detail

    # The same executor fails the same way for a short command (no poisoned state).
    with pytest.raises(kind) as again:
        await executor.run(["true"])
    assert_names_host(again.value, alias)
    if fault is SSHFault.CHANGED_HOST_KEY:
        assert "changed" in str(again.value)

    await assert_nothing_left(rx_sshd, rx_account, rx_ssh_config, executor)


@pytest.fixture
def own_bed() -> Iterator[SSHTestBed]:
    """A bed of our own to stop and restart: the session's bed stays up for other tests."""
    with SSHTestBed() as bed:
        yield bed


@asyncio_only
async def test_sshd_stopped_is_host_unreachable_then_recovers(
    rx_ssh_backend: str, own_bed: SSHTestBed, tmp_path: Path
) -> None:
    account = own_bed.account(label="stopped")
    cfg = own_bed.client_config(account, tmp_path / "ssh", alias="rx-stopped")
    executor = rx.SSHExecutor(cfg.alias, ssh_config=cfg.path, backend=rx_ssh_backend)
    own_bed.stop()
    assert not own_bed.running

    error = await query_error(ClaudeAgentOptions(cwd=str(tmp_path)), executor)
    assert type(error) is rx.HostUnreachable, repr(error)
    assert isinstance(error, CLIConnectionError)
    assert_names_host(error, cfg.alias)
    assert "refused the connection" in str(error)
    assert "Check that sshd runs on rx-stopped" in str(error)
    assert "Connection refused" in error.detail
    assert local_ssh(cfg) == []

    # Once sshd is back the same executor connects: a failed attempt leaves nothing stale.
    own_bed.restart()
    result = await executor.run(["id", "-un"])
    assert (result.returncode, result.stdout.decode().strip()) == (0, account.user)
    await assert_nothing_left(own_bed, account, cfg, executor)


@asyncio_only
async def test_unknown_host_key_refused_by_default_accepted_on_request(
    rx_ssh_backend: str,
    rx_sshd: SSHTestBed,
    rx_account: RemoteAccount,
    rx_ssh_config: SSHClientConfig,
) -> None:
    alias = rx_ssh_config.alias_for(SSHFault.UNKNOWN_HOST_KEY)
    known_hosts = rx_ssh_config.path.parent / "known_hosts_empty"
    assert known_hosts.read_text() == ""

    strict = rx.SSHExecutor(alias, ssh_config=rx_ssh_config.path, backend=rx_ssh_backend)
    with pytest.raises(rx.HostKeyError) as refused:
        await strict.run(["true"])
    assert "accept_new_host_keys=True" in str(refused.value)
    await assert_nothing_left(rx_sshd, rx_account, rx_ssh_config, strict)
    assert known_hosts.read_text() == ""  # refusing wrote nothing

    trusting = rx.SSHExecutor(
        alias, ssh_config=rx_ssh_config.path, backend=rx_ssh_backend, accept_new_host_keys=True
    )
    result = await trusting.run(["id", "-un"])
    assert (result.returncode, result.stdout.decode().strip()) == (0, rx_account.user)
    assert f"[127.0.0.1]:{rx_sshd.port} ssh-ed25519 " in known_hosts.read_text()
    await assert_nothing_left(rx_sshd, rx_account, rx_ssh_config, trusting)

    # accept-new is about NEW keys only: a changed key is still refused.
    changed_alias = rx_ssh_config.alias_for(SSHFault.CHANGED_HOST_KEY)
    changed = rx.SSHExecutor(
        changed_alias,
        ssh_config=rx_ssh_config.path,
        backend=rx_ssh_backend,
        accept_new_host_keys=True,
    )
    with pytest.raises(rx.HostKeyError) as still_refused:
        await changed.run(["true"])
    assert "has changed" in str(still_refused.value)
    assert_names_host(still_refused.value, changed_alias)
    await assert_nothing_left(rx_sshd, rx_account, rx_ssh_config, changed)


# ---- reached the host, but it cannot run the session ----------------------------------


@pytest.mark.parametrize("rx_account", [{"claude": None}], indirect=True)
async def test_claude_not_installed(
    rx_ssh_backend: str,
    rx_sshd: SSHTestBed,
    rx_account: RemoteAccount,
    rx_ssh_config: SSHClientConfig,
    rx_project: Project,
) -> None:
    executor = rx.SSHExecutor(
        rx_ssh_config.alias, ssh_config=rx_ssh_config.path, backend=rx_ssh_backend
    )
    error = await query_error(ClaudeAgentOptions(cwd=str(rx_project.local)), executor)
    assert type(error) is rx.ClaudeNotFound, repr(error)
    assert isinstance(error, CLINotFoundError) and isinstance(error, CLIConnectionError)
    assert_names_host(error, rx_ssh_config.alias)
    home = rx_account.home
    assert error.searched[:3] == (
        f"PATH of login shell {rx_account.shell}",
        f"{home}/.local/bin/claude",
        f"{home}/.claude/local/claude",
    )
    assert "/usr/local/bin/claude" in error.searched
    message = str(error)
    assert "Claude CLI not installed on rx-box" in message
    for place in error.searched:
        assert place in message
    assert "curl -fsSL https://claude.ai/install.sh" in message
    assert "claude_path=" in message
    await assert_nothing_left(rx_sshd, rx_account, rx_ssh_config, executor)


@pytest.mark.parametrize(
    "rx_account",
    [
        {"claude": "opt/bin/claude", "login_path": ["opt/bin"]},
        {"claude": ".claude/local/claude"},
    ],
    ids=["login-shell-path", "dot-claude-local"],
    indirect=True,
)
async def test_claude_found_off_the_usual_places(
    rx_ssh_backend: str,
    rx_sshd: SSHTestBed,
    rx_account: RemoteAccount,
    rx_ssh_config: SSHClientConfig,
    rx_project: Project,
    rx_model: object,
) -> None:
    executor = rx.SSHExecutor(
        rx_ssh_config.alias, ssh_config=rx_ssh_config.path, backend=rx_ssh_backend
    )
    # Not where a plain ssh command looks.
    probe = await executor.run(["/bin/sh", "-c", "echo $PATH; command -v claude || echo none"])
    assert probe.stdout.decode().split() == [NON_LOGIN_PATH, "none"]
    assert not (rx_account.home / ".local/bin/claude").exists()

    results = await collect(
        "where are you", ClaudeAgentOptions(cwd=str(rx_project.local)), executor
    )
    assert results == ["ok: where are you"]
    await assert_nothing_left(rx_sshd, rx_account, rx_ssh_config, executor)


async def test_claude_path_missing_is_not_searched_elsewhere(
    rx_ssh_backend: str,
    rx_sshd: SSHTestBed,
    rx_account: RemoteAccount,
    rx_ssh_config: SSHClientConfig,
    rx_project: Project,
) -> None:
    assert rx_account.claude_path is not None and rx_account.claude_path.exists()
    missing = f"{rx_account.home}/nowhere/claude"
    executor = rx.SSHExecutor(
        rx_ssh_config.alias,
        ssh_config=rx_ssh_config.path,
        backend=rx_ssh_backend,
        claude_path=missing,
    )
    error = await query_error(ClaudeAgentOptions(cwd=str(rx_project.local)), executor)
    assert type(error) is rx.ClaudeNotFound, repr(error)
    assert isinstance(error, CLINotFoundError)
    assert error.searched == (missing,)  # the working ~/.local/bin/claude was NOT used
    assert_names_host(error, rx_ssh_config.alias)
    assert missing in str(error) and "Install it there" in str(error)
    await assert_nothing_left(rx_sshd, rx_account, rx_ssh_config, executor)


async def test_remote_cwd_missing(
    rx_ssh_backend: str,
    rx_sshd: SSHTestBed,
    rx_account: RemoteAccount,
    rx_ssh_config: SSHClientConfig,
) -> None:
    relative = Path(f"rx-test-{secrets.token_hex(4)}") / "not-cloned-there"
    local = Path.home() / relative
    local.mkdir(parents=True)  # exists here, not on the remote
    try:
        executor = rx.SSHExecutor(
            rx_ssh_config.alias, ssh_config=rx_ssh_config.path, backend=rx_ssh_backend
        )
        error = await query_error(ClaudeAgentOptions(cwd=str(local)), executor)
    finally:
        shutil.rmtree(local.parent)
    remote = f"{rx_account.home}/{relative}"
    assert type(error) is rx.RemotePathNotFound, repr(error)
    assert isinstance(error, rx.RemoteSetupError) and isinstance(error, CLIConnectionError)
    assert error.path == remote
    assert_names_host(error, rx_ssh_config.alias)
    assert f"Path {remote} doesn't exist on rx-box" in str(error)
    assert "path_map" in str(error)
    await assert_nothing_left(rx_sshd, rx_account, rx_ssh_config, executor)


# ---- bad input is refused before anything runs --------------------------------------------


@pytest.fixture
def canary(rx_ssh_backend: str, tmp_path: Path) -> tuple[rx.SSHExecutor, Path]:
    """An executor whose every connection attempt creates a marker file (ProxyCommand)."""
    marker = tmp_path / "connected"
    config = tmp_path / "canary_config"
    config.write_text(
        "Host rx-canary\n"
        "    HostName 127.0.0.1\n"
        f"    ProxyCommand /bin/sh -c 'touch {marker}; exit 1'\n"
        "    BatchMode yes\n"
    )
    return rx.SSHExecutor("rx-canary", ssh_config=config, backend=rx_ssh_backend), marker


@asyncio_only
@pytest.mark.parametrize(
    "host",
    [
        "-oProxyCommand=touch {marker}",
        "box two",
        "box\nProxyCommand=touch {marker}",
        "box'",
        'box"',
        "box;touch {marker}",
    ],
    ids=["option", "space", "newline", "single-quote", "double-quote", "semicolon"],
)
async def test_bad_host_refused(rx_ssh_backend: str, host: str, tmp_path: Path) -> None:
    marker = tmp_path / f"pwned-{secrets.token_hex(4)}"
    host = host.format(marker=marker)
    with pytest.raises(rx.InvalidInput) as refused:
        rx.SSHExecutor(host, backend=rx_ssh_backend)
    assert isinstance(refused.value, ValueError)
    assert refused.value.host == host
    assert repr(host) in str(refused.value)
    assert "Use the Host alias from your ~/.ssh/config" in str(refused.value)
    assert not marker.exists()


@asyncio_only
async def test_bad_input_refused_before_connecting(
    canary: tuple[rx.SSHExecutor, Path], tmp_path: Path
) -> None:
    executor, marker = canary
    bad_cwd = str(Path.home() / "proj\nProxyCommand=touch x")

    # Through the SDK seam: the session never starts.
    for options in (
        ClaudeAgentOptions(cwd=bad_cwd),
        ClaudeAgentOptions(cwd=str(tmp_path), env={"A B": "1"}),
    ):
        error = await query_error(options, executor)
        assert type(error) is rx.InvalidInput, repr(error)
        assert_names_host(error, "rx-canary")
    with pytest.raises(rx.InvalidInput, match="newline"):
        await executor.run(["true"], cwd=bad_cwd)
    with pytest.raises(rx.InvalidInput, match=r"names must match \[A-Za-z_\]"):
        await executor.run(["true"], env={"A B": "1"})
    with pytest.raises(rx.InvalidInput, match="Bad ssh option"):
        rx.SSHExecutor("rx-canary", ssh_options={"ProxyCommand": "true\ntouch x"})
    with pytest.raises(rx.InvalidInput, match="starts with '-'"):
        await executor.run(["-oProxyCommand=touch x"])
    assert not marker.exists(), "ssh was started for refused input"

    # The canary works: a valid request does try to connect (and fails, typed).
    with pytest.raises(rx.ConnectionFailed) as failed:
        await executor.run(["true"])
    assert_names_host(failed.value, "rx-canary")
    assert marker.exists()
    await executor.aclose()


@asyncio_only
async def test_cwd_with_quotes_dollar_and_emoji_is_a_valid_directory(
    rx_sshd: SSHTestBed,
    rx_account: RemoteAccount,
    rx_executor: rx.SSHExecutor,
    tmp_path: Path,
) -> None:
    marker = tmp_path / "expanded"
    name = f'it\'s "q" $(touch {marker}) `touch {marker}` ${{HOME}} \u2728\U0001f389'
    relative = Path(f"rx-test-{secrets.token_hex(4)}") / name
    local = Path.home() / relative
    remote = rx_account.home / relative

    assert await rx_executor.map_cwd(str(local)) == str(remote)
    rx_sshd.run_as(rx_account, ["mkdir", "-p", str(remote)], check=True)
    result = await rx_executor.run(["pwd"], cwd=str(local))
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().rstrip("\n") == str(remote)
    assert not marker.exists()


# ---- a short command that does not finish ------------------------------------------------


@asyncio_only
async def test_run_timeout_stops_the_remote_command(
    rx_ssh_backend: str,
    rx_sshd: SSHTestBed,
    rx_account: RemoteAccount,
    rx_ssh_config: SSHClientConfig,
) -> None:
    executor = rx.SSHExecutor(
        rx_ssh_config.alias, ssh_config=rx_ssh_config.path, backend=rx_ssh_backend
    )
    seconds = str(300 + secrets.randbelow(600))  # recognisable in the process table
    started = time.monotonic()
    with pytest.raises(rx.CommandTimeout) as timed_out:
        await executor.run(["sleep", seconds], timeout=2)
    took = time.monotonic() - started
    assert 2 <= took < 10, took
    assert isinstance(timed_out.value, TimeoutError)
    assert_names_host(timed_out.value, rx_ssh_config.alias)
    assert "within 2 s" in str(timed_out.value) and "timeout=" in str(timed_out.value)

    deadline = time.monotonic() + 5
    while any(p.args == f"sleep {seconds}" for p in rx_sshd.processes(rx_account)):
        assert time.monotonic() < deadline, f"sleep {seconds} still runs on the remote"
        await anyio.sleep(0.05)
    await assert_nothing_left(rx_sshd, rx_account, rx_ssh_config, executor)


@asyncio_only
async def test_a_config_that_disables_host_key_checking_still_refuses_changed_keys(
    rx_ssh_backend: str,
    rx_sshd: SSHTestBed,
    rx_account: RemoteAccount,
    rx_ssh_config: SSHClientConfig,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("WARNING", logger="remote_executors")
    directory = rx_ssh_config.path.parent
    new_hosts = tmp_path / "known_hosts_new"
    new_hosts.write_text("")
    lines = []
    for alias, known in (
        ("rx-lax-changed", directory / "known_hosts_changed"),
        ("rx-lax-new", new_hosts),
    ):
        lines += [
            f"Host {alias}",
            "    HostName 127.0.0.1",
            f"    Port {rx_sshd.port}",
            f"    User {rx_account.user}",
            f'    IdentityFile "{rx_account.identity_file}"',
            "    IdentitiesOnly yes",
            f'    UserKnownHostsFile "{known}"',
            "    GlobalKnownHostsFile /dev/null",
            "    StrictHostKeyChecking no",
            "    BatchMode yes",
        ]
    config = tmp_path / "lax_config"
    config.write_text("\n".join(lines) + "\n")

    changed = rx.SSHExecutor("rx-lax-changed", ssh_config=config, backend=rx_ssh_backend)
    with pytest.raises(rx.HostKeyError) as refused:
        await changed.run(["true"])
    assert "has changed" in str(refused.value)
    assert_names_host(refused.value, "rx-lax-changed")
    assert "rx-lax-changed disables host key checking" in caplog.text
    await assert_nothing_left(rx_sshd, rx_account, rx_ssh_config, changed)

    # A first-seen key is accepted (what the config asked for) and recorded.
    new = rx.SSHExecutor("rx-lax-new", ssh_config=config, backend=rx_ssh_backend)
    result = await new.run(["id", "-un"])
    assert (result.returncode, result.stdout.decode().strip()) == (0, rx_account.user)
    assert f"[127.0.0.1]:{rx_sshd.port} ssh-ed25519 " in new_hosts.read_text()
    await assert_nothing_left(rx_sshd, rx_account, rx_ssh_config, new)
