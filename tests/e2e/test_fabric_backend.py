"""What the fabric backend does beyond the shared suites: the gaps of Fabric/paramiko, closed.

Real sshd on loopback, real accounts, real paramiko. Each test provokes one known gap for
real: a caller's own ``fabric.Connection`` (Fabric trusts every host key by default), no
OpenSSH client on PATH (paramiko ignores ``Include``), ``ProxyCommand`` and ``ProxyJump``
routes, a connect that hangs and is cancelled, a link whose server stops answering channel
opens, more concurrent channels than sshd's ``MaxSessions`` allows on one connection, a
passphrase-protected key with no agent. (The connection cap past ``MaxSessions`` is
tested for both backends in test_many_sessions.py.)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import anyio
import fabric
import paramiko
import pytest

import remote_executors as rx
from remote_executors.executors.base import SpawnOptions
from remote_executors.testing.sshd import RemoteAccount, SSHClientConfig, SSHTestBed

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]


def transports() -> list[paramiko.Transport]:
    return [t for t in threading.enumerate() if isinstance(t, paramiko.Transport) and t.is_alive()]


async def no_transports_within(seconds: float = 5.0) -> None:
    with anyio.fail_after(seconds):
        while transports():
            await anyio.sleep(0.05)


def block(cfg: SSHClientConfig, account: RemoteAccount, *, known_hosts: Path | None = None) -> str:
    """ssh_config lines that reach ``account`` on the bed (for hand-written configs)."""
    return (
        "    HostName 127.0.0.1\n"
        f"    Port {cfg.port}\n"
        f"    User {account.user}\n"
        f'    IdentityFile "{account.identity_file}"\n'
        "    IdentitiesOnly yes\n"
        f'    UserKnownHostsFile "{known_hosts or cfg.known_hosts}"\n'
        "    GlobalKnownHostsFile /dev/null\n"
        "    StrictHostKeyChecking yes\n"
    )


async def whoami(executor: rx.SSHExecutor) -> str:
    result = await executor.run(["id", "-un"])
    assert result.returncode == 0, result.stderr
    return result.stdout.decode().strip()


# ---- a caller's own fabric.Connection ----------------------------------------------------


async def test_a_callers_connection_is_used_and_left_open(
    rx_account: RemoteAccount, rx_ssh_config: SSHClientConfig
) -> None:
    config = fabric.Config(ssh_config=paramiko.SSHConfig.from_path(str(rx_ssh_config.path)))
    conn = fabric.Connection(rx_ssh_config.alias, config=config)
    executor = rx.SSHExecutor(conn)
    assert executor.backend == "fabric" and executor.name == rx_ssh_config.alias
    assert await whoami(executor) == rx_account.user
    process = await executor.spawn(SpawnOptions("cat"))
    await process.stdin.send(b"over the caller's connection\n")
    assert await process.stdout.receive() == b"over the caller's connection\n"
    await process.stdin.aclose()
    assert await process.wait() == 0
    assert conn.is_connected  # the executor used the very same transport
    await executor.aclose()
    assert conn.is_connected, "aclose() closed a connection the app owns"
    conn.close()
    await no_transports_within()


async def test_a_callers_connection_gets_host_key_checking(
    rx_account: RemoteAccount, rx_ssh_config: SSHClientConfig, tmp_path: Path
) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    config_file = tmp_path / "ssh_config"
    config_file.write_text("Host rx-new\n" + block(rx_ssh_config, rx_account, known_hosts=empty))

    def connection() -> fabric.Connection:
        config = fabric.Config(ssh_config=paramiko.SSHConfig.from_path(str(config_file)))
        return fabric.Connection("rx-new", config=config)

    # The gap: Fabric on its own logs in to a host whose key nobody knows.
    plain = connection()
    plain.open()
    assert plain.is_connected
    plain.close()

    with pytest.raises(rx.HostKeyError) as refused:
        await rx.SSHExecutor(connection()).run(["true"])
    assert "rx-new" in str(refused.value) and "accept_new_host_keys=True" in str(refused.value)
    assert empty.read_text() == ""

    trusting = rx.SSHExecutor(connection(), accept_new_host_keys=True)
    assert await whoami(trusting) == rx_account.user
    assert empty.read_text().startswith(f"[127.0.0.1]:{rx_ssh_config.port} ssh-ed25519 ")
    conn = trusting._backend.connection  # type: ignore[attr-defined]
    await trusting.aclose()
    conn.close()
    await no_transports_within()


# ---- resolving the alias like `ssh box` ---------------------------------------------------


async def test_without_an_openssh_client_include_and_match_still_resolve(
    rx_account: RemoteAccount,
    rx_ssh_config: SSHClientConfig,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    # PATH with the tools the bootstrap needs locally (none) but no ssh: paramiko parses.
    bare = tmp_path / "bin"
    bare.mkdir()
    monkeypatch.setenv("PATH", str(bare))
    assert shutil.which("ssh") is None
    for alias in (rx_ssh_config.include_alias, rx_ssh_config.match_alias):
        executor = rx.SSHExecutor(alias, ssh_config=rx_ssh_config.path)
        assert executor.backend == "fabric"  # "auto" with no ssh on PATH
        try:
            assert await whoami(executor) == rx_account.user
        finally:
            await executor.aclose()
    # paramiko alone does not see the Include'd settings (what inlining fixes).
    plain = paramiko.SSHConfig.from_path(str(rx_ssh_config.path))
    assert plain.lookup(rx_ssh_config.include_alias).get("port") is None


async def test_proxycommand_and_proxyjump(
    rx_account: RemoteAccount, rx_ssh_config: SSHClientConfig, tmp_path: Path
) -> None:
    config_file = tmp_path / "ssh_config"
    config_file.write_text(
        # Through `ssh -W` (a ProxyCommand child process) ...
        "Host rx-via-command\n"
        + block(rx_ssh_config, rx_account)
        + f"    ProxyCommand ssh -F {rx_ssh_config.path} -W %h:%p {rx_ssh_config.alias}\n"
        # ... and through a direct-tcpip channel of another paramiko connection.
        + "Host rx-via-jump\n"
        + block(rx_ssh_config, rx_account)
        + "    ProxyJump rx-hop\n"
        + "Host rx-hop\n"
        + block(rx_ssh_config, rx_account)
    )
    for alias in ("rx-via-command", "rx-via-jump"):
        executor = rx.SSHExecutor(alias, ssh_config=config_file, backend="fabric")
        try:
            assert await whoami(executor) == rx_account.user
            # Channels of a routed connection carry long lines like any other.
            result = await executor.run(["head", "-c", str(1 << 20), "/dev/zero"])
            assert result.stdout == b"\0" * (1 << 20)
        finally:
            await executor.aclose()
    await no_transports_within()
    leftover = subprocess.run(
        ["pgrep", "-f", f"-W 127.0.0.1:{rx_ssh_config.port}"], capture_output=True
    )
    assert leftover.stdout == b"", "the ProxyCommand outlived the executor"


# ---- bounded, cancellable, off the event loop ---------------------------------------------


async def test_a_hanging_connect_is_cancelled_cleanly(tmp_path: Path) -> None:
    marker = tmp_path / "proxy-started"
    config_file = tmp_path / "ssh_config"
    # A "server" that accepts and never says a word.
    config_file.write_text(
        "Host rx-silent\n    HostName 127.0.0.1\n"
        f"    ProxyCommand /bin/sh -c 'touch {marker}; exec sleep 300'\n"
    )
    executor = rx.SSHExecutor("rx-silent", ssh_config=config_file, backend="fabric")
    started = time.monotonic()
    with anyio.move_on_after(1.5) as scope:
        await executor.run(["true"])
    assert scope.cancelled_caught
    assert time.monotonic() - started < 3, "the event loop was blocked by the connect"
    assert marker.exists()
    await executor.aclose()
    await no_transports_within()
    with anyio.fail_after(5):
        while subprocess.run(["pgrep", "-f", f"touch {marker}"], capture_output=True).stdout:
            await anyio.sleep(0.05)


async def test_a_silent_server_times_out_typed(tmp_path: Path) -> None:
    config_file = tmp_path / "ssh_config"
    config_file.write_text(
        "Host rx-silent\n    HostName 127.0.0.1\n    ProxyCommand /bin/sh -c 'exec sleep 300'\n"
    )
    executor = rx.SSHExecutor(
        "rx-silent", ssh_config=config_file, backend="fabric", connect_timeout=1
    )
    started = time.monotonic()
    with pytest.raises(rx.ConnectionFailed) as failed:
        await executor.run(["true"])
    assert time.monotonic() - started < 15
    assert "rx-silent" in str(failed.value)
    await executor.aclose()
    await no_transports_within()


@pytest.mark.parametrize("rx_ssh_backend", ["fabric"], indirect=True)
async def test_more_sessions_than_maxsessions_overflow_to_a_second_connection(
    rx_sshd: SSHTestBed, rx_account: RemoteAccount, rx_executor: rx.SSHExecutor
) -> None:
    # sshd's MaxSessions (10) counts channels per connection.
    assert rx_executor.backend == "fabric"
    processes = []
    with anyio.fail_after(60):
        for _ in range(12):
            processes.append(await rx_executor.spawn(SpawnOptions("cat")))
        for number, process in enumerate(processes):
            await process.stdin.send(f"{number}\n".encode())
            assert await process.stdout.receive() == f"{number}\n".encode()
        connections = rx_executor._backend._connections  # type: ignore[attr-defined]
        assert len(connections) == 2, connections
        for process in processes:
            await process.stdin.aclose()
            assert await process.wait() == 0


# ---- keys ---------------------------------------------------------------------------------


async def test_a_passphrase_key_without_an_agent_says_so(
    rx_sshd: SSHTestBed,
    rx_account: RemoteAccount,
    rx_ssh_config: SSHClientConfig,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key = tmp_path / "id_locked"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "a passphrase", "-f", str(key)], check=True
    )
    authorized = rx_account.home / ".ssh" / "authorized_keys"
    rx_sshd.run_as(
        rx_account,
        ["/bin/sh", "-c", f'cat >> "{authorized}"'],
        input=key.with_suffix(".pub").read_text(),
        check=True,
    )
    config_file = tmp_path / "ssh_config"
    config_file.write_text(
        "Host rx-locked\n"
        + block(rx_ssh_config, rx_account).replace(str(rx_account.identity_file), str(key))
    )
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    executor = rx.SSHExecutor("rx-locked", ssh_config=config_file, backend="fabric")
    with pytest.raises(rx.AuthenticationFailed) as refused:
        await executor.run(["true"])
    assert "rx-locked" in str(refused.value) and "ssh-agent" in str(refused.value)
    await executor.aclose()
    await no_transports_within()
    assert os.path.exists(key)


# ---- a server without SFTP ----------------------------------------------------------------


async def test_a_host_without_sftp_runs_sessions_and_says_why_they_do_not_sync(
    rx_model_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from claude_agent_sdk import ClaudeAgentOptions, ResultMessage

    from remote_executors._check import check

    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tmp_path / "local-claude"))
    with SSHTestBed(sftp=False) as bed:
        account = bed.account(label="nosftp", model_url=rx_model_url)
        cfg = bed.client_config(account, tmp_path / "ssh", alias="rx-nosftp")
        project = Path.home() / f"rx-test-nosftp-{os.getpid()}"
        project.mkdir(exist_ok=True)
        bed.run_as(account, ["mkdir", "-p", str(account.home / project.name)], check=True)
        executor = rx.SSHExecutor(cfg.alias, ssh_config=cfg.path, backend="fabric")
        try:
            report = await check(executor, str(project), timeout=10)
            sftp = report.step("sftp")
            assert sftp is not None and sftp.status == "warn", report
            assert "offers no SFTP subsystem" in sftp.hint and "rx-nosftp" in sftp.hint
            assert report.ok  # a warning: sessions still run

            # Without the live follower (which needs no SFTP and would bring the
            # transcript anyway): the strategy's own failure is what is reported.
            with anyio.fail_after(60):
                messages = [
                    m
                    async for m in rx.query(
                        prompt="hi",
                        options=ClaudeAgentOptions(cwd=str(project)),
                        executor=executor,
                        live=False,
                    )
                ]
            [result] = [m for m in messages if isinstance(m, ResultMessage)]
            assert not result.is_error  # the session itself is fine
            statuses = [s for m in messages if (s := rx.SessionSyncStatus.from_message(m))]
            assert statuses and not statuses[0].ok
            assert statuses[0].error == "ConnectionFailed"
            assert "offers no SFTP subsystem" in statuses[0].detail
            # The transcript is kept where it is, and a strategy that needs no SFTP gets it.
            report_pull = await rx.pull_session(
                executor, cwd=project, session_id=result.session_id, sync=rx.TailSessionSync()
            )
            assert report_pull.moved > 0
        finally:
            await executor.aclose()
            shutil.rmtree(project, ignore_errors=True)
