"""The spare channel (``warm_spawn``) over the real sshd, both backends.

A spawn runs on the channel an earlier spawn left waiting; the spare is a
bootstrap blocked on its header (``/bin/sh`` over ``head -n 1``) and nothing
else; a dropped link or old age ends it by itself and the next spawn opens
its own channel; closing the executor leaves nothing on the host.
"""

from __future__ import annotations

import time
from pathlib import Path

import anyio
import pytest
from claude_agent_sdk import ClaudeAgentOptions, ResultMessage

import remote_executors as rx
from remote_executors.executors._spare import SpareChannel
from remote_executors.executors.base import SpawnOptions
from remote_executors.executors.ssh import BACKENDS
from remote_executors.testing.model import ScriptedModel, text
from remote_executors.testing.plugin import Project
from remote_executors.testing.sshd import (
    ProcessInfo,
    RemoteAccount,
    SSHClientConfig,
    SSHTestBed,
    spare_channels,
)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.anyio,
    pytest.mark.parametrize("anyio_backend", ["asyncio"]),
    pytest.mark.parametrize("rx_ssh_backend", BACKENDS, indirect=True),
]


def executor_for(cfg: SSHClientConfig, backend: str, **options: object) -> rx.SSHExecutor:
    return rx.SSHExecutor(cfg.alias, ssh_config=cfg.path, backend=backend, **options)  # type: ignore[arg-type]


def is_session(account: RemoteAccount, p: ProcessInfo) -> bool:
    return p.args in {f"{prog}: {account.user}@notty" for prog in ("sshd", "sshd-session")}


def commands(bed: SSHTestBed, account: RemoteAccount) -> list[ProcessInfo]:
    """The account's processes but the connections' own sshd."""
    return [p for p in bed.processes(account) if not is_session(account, p)]


async def until(check: object, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        await anyio.sleep(0.05)


async def echo(executor: rx.SSHExecutor, word: str, *, outlive_link: bool = False) -> None:
    process = await executor.spawn(
        SpawnOptions("/bin/sh", ["-c", f"echo {word}"], outlive_link=outlive_link)
    )
    assert process.stdout is not None
    out = b""
    async for chunk in process.stdout:
        out += chunk
    assert await process.wait() == 0
    await process.aclose()  # type: ignore[attr-defined]
    assert out == f"{word}\n".encode()


# Supervised: as the CLI's spawns run (reattach on, the default); their end
# must open the next spare as a plain job's does, or no session would ever
# start on one.
@pytest.mark.parametrize("outlive_link", [False, True], ids=["plain", "supervised"])
async def test_a_spawn_runs_on_the_spare_and_closing_leaves_nothing(
    rx_sshd: SSHTestBed,
    rx_account: RemoteAccount,
    rx_ssh_config: SSHClientConfig,
    rx_ssh_backend: str,
    outlive_link: bool,
) -> None:
    executor = executor_for(rx_ssh_config, rx_ssh_backend)
    spare = executor._spare
    assert executor.warm_spawn and spare is not None and executor.reattach_within > 0
    try:
        # No spare yet; one opens when it ends.
        await echo(executor, "first", outlive_link=outlive_link)
        assert spare.taken == 0 and spare.channel is not None
        await until(
            lambda: len(spare_channels(commands(rx_sshd, rx_account))) == 2,
            "the spare never reached its header wait",
        )
        # The spare is all that runs there, and it is a waiting bootstrap.
        left = commands(rx_sshd, rx_account)
        assert {p.pid for p in left} == spare_channels(left), left
        waiting = spare.channel
        await echo(executor, "second", outlive_link=outlive_link)
        assert spare.taken == 1 and spare.discarded == 0
        assert spare.channel is not None and spare.channel is not waiting
    finally:
        await executor.aclose()
    await until(lambda: not rx_sshd.processes(rx_account), "left after aclose")


async def test_sdk_sessions_start_on_the_spare(
    rx_project: Project,
    rx_executor: rx.SSHExecutor,
    rx_model: ScriptedModel,
    private_local_claude: Path,
) -> None:
    # What the spare is for: the CLI of every session after the first starts
    # on it (its spawn is supervised: reattach is on by default).
    spare = rx_executor._spare
    assert spare is not None and rx_executor.reattach_within > 0
    options = ClaudeAgentOptions(cwd=str(rx_project.local))
    for turn in range(3):
        rx_model.script(text(f"answer {turn}"))
        with anyio.fail_after(120):
            async for m in rx.query(prompt="hi", options=options, executor=rx_executor):
                if isinstance(m, ResultMessage):
                    assert not m.is_error and m.result == f"answer {turn}", m
        # The live follower waits for the next session, so only the CLIs spawn.
        assert spare.taken == turn, (turn, spare.taken)
        assert spare.channel is not None


async def test_without_warm_spawn_nothing_waits(
    rx_sshd: SSHTestBed,
    rx_account: RemoteAccount,
    rx_ssh_config: SSHClientConfig,
    rx_ssh_backend: str,
) -> None:
    executor = executor_for(rx_ssh_config, rx_ssh_backend, warm_spawn=False)
    assert not executor.warm_spawn and "warm_spawn=0" in executor.spec
    assert rx.SSHExecutor.from_spec(executor.spec).warm_spawn is False
    try:
        await echo(executor, "plain")
        await anyio.sleep(0.5)
        assert commands(rx_sshd, rx_account) == []
    finally:
        await executor.aclose()


async def test_a_spare_killed_with_the_link_is_replaced_quietly(
    rx_sshd: SSHTestBed,
    rx_account: RemoteAccount,
    rx_ssh_config: SSHClientConfig,
    rx_ssh_backend: str,
) -> None:
    executor = executor_for(rx_ssh_config, rx_ssh_backend)
    spare = executor._spare
    assert spare is not None
    try:
        await echo(executor, "before")
        await until(lambda: len(spare_channels(commands(rx_sshd, rx_account))) == 2, "no spare")
        rx_sshd.kill_sessions()  # the link drops: the spare's bootstrap sees its input end
        await until(lambda: not commands(rx_sshd, rx_account), "the spare outlived its link")
        await echo(executor, "after")  # reconnects; the dead spare is not an error
        assert spare.discarded == 1
    finally:
        await executor.aclose()
    await until(lambda: not rx_sshd.processes(rx_account), "left after aclose")


async def test_an_unused_spare_ends_by_itself_when_old(
    rx_sshd: SSHTestBed,
    rx_account: RemoteAccount,
    rx_ssh_config: SSHClientConfig,
    rx_ssh_backend: str,
) -> None:
    executor = executor_for(rx_ssh_config, rx_ssh_backend)
    spare = executor._spare = SpareChannel(executor._backend, max_age=2.0)
    try:
        await echo(executor, "one")
        assert spare.channel is not None
        await until(lambda: len(spare_channels(commands(rx_sshd, rx_account))) == 2, "no spare")
        await until(lambda: not commands(rx_sshd, rx_account), "the old spare is still there", 8)
        await echo(executor, "two")  # on a channel of its own
        assert spare.taken == 0 and spare.discarded == 1
    finally:
        await executor.aclose()
    await until(lambda: not rx_sshd.processes(rx_account), "left after aclose")
