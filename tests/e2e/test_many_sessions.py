"""Many sessions at once through one SSHExecutor, past sshd's MaxSessions.

sshd refuses more than ``MaxSessions`` session channels on one connection, and
every session holds two (its CLI, its live follower) plus short ones (turn-end
checks). Here the server allows 2 per connection and 6 sessions run at once
through the stub CLI (testing/stub_cli.sh): both backends must spill over to
more connections, each opened with one login, retry every refused channel
there, and close every connection at the end. Real sshd, real ssh/paramiko,
real SDK; only the CLI is a stand-in.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import anyio
import paramiko
import pytest
from claude_agent_sdk import ClaudeAgentOptions, ResultMessage

import remote_executors as rx
from remote_executors.executors._backend import MAX_CONNECTIONS
from remote_executors.executors.base import SpawnOptions
from remote_executors.testing.sshd import SSHTestBed
from remote_executors.testing.stub_cli import install_stub_cli

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

SESSIONS = 6


@pytest.fixture
def two_channel_bed() -> Iterator[SSHTestBed]:
    with SSHTestBed(extra_config=["MaxSessions 2"]) as bed:
        yield bed


def ssh_processes_naming(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def transports() -> list[paramiko.Transport]:
    return [t for t in threading.enumerate() if isinstance(t, paramiko.Transport) and t.is_alive()]


async def one_session(
    executor: rx.SSHExecutor,
    options: ClaudeAgentOptions,
    results: list[ResultMessage],
    clients: list[rx.ClaudeSDKClient],
) -> None:
    client = rx.ClaudeSDKClient(options, executor=executor)
    await client.connect()
    clients.append(client)  # kept open: an idle session holds its channels
    await client.query("hello")
    async for message in client.receive_response():
        if isinstance(message, ResultMessage):
            results.append(message)


@pytest.mark.parametrize("backend", ["openssh", "fabric"])
async def test_sessions_past_maxsessions_spill_over_to_more_connections(
    backend: str,
    two_channel_bed: SSHTestBed,
    private_local_claude: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, "paramiko")
    bed = two_channel_bed
    account = bed.account(label=f"two_{backend}")
    stub = install_stub_cli(account)
    cfg = bed.client_config(account, tmp_path / "ssh", alias="rx-twochan")
    project = Path.home() / f"rx-test-many-{backend}-{os.getpid()}"
    project.mkdir(exist_ok=True)
    bed.run_as(account, ["mkdir", "-p", str(account.home / project.name)], check=True)
    options = ClaudeAgentOptions(cwd=str(project), cli_path=str(stub))
    executor = rx.SSHExecutor(cfg.alias, ssh_config=cfg.path, backend=backend)
    log_start = len(bed.log_text())
    results: list[ResultMessage] = []
    clients: list[rx.ClaudeSDKClient] = []
    control_dir = ""
    try:
        with anyio.fail_after(120):
            async with anyio.create_task_group() as tg:
                for _ in range(SESSIONS):
                    tg.start_soon(one_session, executor, options, results, clients)
        # Every session answered, each in its own session, all open at once.
        assert len(results) == SESSIONS
        assert all(not r.is_error and r.subtype == "success" for r in results), results
        assert len({r.session_id for r in results}) == SESSIONS
        # And each transcript is here, byte for byte what the stub wrote there.
        name = rx.project_dir_from_cwd(str(project))
        for result in results:
            here = private_local_claude / "projects" / name / f"{result.session_id}.jsonl"
            [there] = (account.claude_config_dir / "projects").glob(f"*/{result.session_id}.jsonl")
            assert here.read_bytes() == there.read_bytes()

        log = bed.log_text()[log_start:]
        # The server did refuse channels (the test provokes what it claims) ...
        assert log.count("no more sessions") >= 1, log[-3000:]
        # ... and each refused channel went to another pooled connection: one
        # login per connection, none per channel (ssh's own fallback).
        logins = log.count(f"Accepted publickey for {account.user} ")
        if backend == "openssh":
            pool = executor._backend._masters  # type: ignore[attr-defined]
            control_dir = executor._backend._control_dir  # type: ignore[attr-defined]
        else:
            pool = executor._backend._connections  # type: ignore[attr-defined]
        # 6 sessions, a channel each, and one live follower for all of them, on
        # connections of 2 channels: 4 at least.
        assert len(pool) >= (SESSIONS + 1 + 1) // 2, pool
        assert logins == len(pool), (logins, len(pool))
        refused = log.count("no more sessions")
        print(f"{backend}: {len(pool)} connections, {refused} channels refused")
        if backend == "fabric":
            assert len(transports()) == len(pool)
            # paramiko logs each refusal as an error; ours are routine (debug),
            # so an app without logging set up gets nothing on its stderr.
            refusals = [r for r in caplog.records if "open FAILED" in r.getMessage()]
            assert refusals and all(r.levelno == logging.DEBUG for r in refusals), refusals
        else:
            masters = [m for m in pool if m.alive]
            assert len(masters) == len(pool)
            assert all(m.channels <= 2 for m in pool), [m.channels for m in pool]
    finally:
        with anyio.CancelScope(shield=True):
            for client in clients:
                await client.disconnect()
            await executor.aclose()
            shutil.rmtree(project, ignore_errors=True)

    # Every connection is closed with the executor: no master, no transport, no
    # session left on the server.
    with anyio.fail_after(10):
        while (
            (control_dir and ssh_processes_naming(control_dir))
            or transports()
            or bed.processes(account)
        ):
            await anyio.sleep(0.1)
    if control_dir:
        assert not os.path.exists(control_dir)


@pytest.mark.parametrize("backend", ["openssh", "fabric"])
async def test_past_the_connection_cap_a_channel_is_a_typed_error(
    backend: str, tmp_path: Path
) -> None:
    # MaxSessions 1: each connection carries one channel; past MAX_CONNECTIONS
    # connections the next channel is a ConnectionFailed naming the host.
    with SSHTestBed(extra_config=["MaxSessions 1"]) as bed:
        account = bed.account(label=f"one_{backend}")
        cfg = bed.client_config(account, tmp_path / "ssh", alias="rx-onechan")
        executor = rx.SSHExecutor(cfg.alias, ssh_config=cfg.path, backend=backend)
        processes = []
        try:
            with anyio.fail_after(120):
                for _ in range(MAX_CONNECTIONS):
                    processes.append(await executor.spawn(SpawnOptions("cat")))
                with pytest.raises(rx.ConnectionFailed) as refused:
                    await executor.spawn(SpawnOptions("cat"))
            message = str(refused.value)
            assert "rx-onechan refused to open another session channel" in message
            assert f"on {MAX_CONNECTIONS} connections" in message and "MaxSessions" in message
            pool = executor._backend._masters if backend == "openssh" else transports()  # type: ignore[attr-defined]
            assert len(pool) == MAX_CONNECTIONS
            for process in processes:  # those still work
                await process.stdin.send(b"ok\n")
                assert await process.stdout.receive() == b"ok\n"
        finally:
            with anyio.CancelScope(shield=True):
                for process in processes:
                    await process.stdin.aclose()
                    await process.wait()
                await executor.aclose()
