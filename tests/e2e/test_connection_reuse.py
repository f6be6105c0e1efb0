"""One SSH connection per executor: later spawns and commands skip the handshake."""

from __future__ import annotations

import pytest
from claude_agent_sdk import ClaudeAgentOptions, ResultMessage

import remote_executors as rx
from remote_executors.executors.ssh import BACKENDS

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.anyio,
    pytest.mark.parametrize("rx_ssh_backend", BACKENDS, indirect=True),
]


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_sessions_and_commands_share_one_connection(
    rx_executor, rx_project, rx_sshd, rx_account
):
    options = ClaudeAgentOptions(cwd=str(rx_project.local))
    for _ in range(2):
        results = [
            m
            async for m in rx.query(prompt="hi", options=options, executor=rx_executor)
            if isinstance(m, ResultMessage)
        ]
        assert results and not results[0].is_error
        assert len(rx_sshd.connections(rx_account)) == 1
    for _ in range(3):
        assert (await rx_executor.run(["true"])).ok
    assert len(rx_sshd.connections(rx_account)) == 1
    # Where claude was found is remembered for the next spawn.
    assert rx_executor._found_claude == str(rx_sshd.remote_home(rx_account) / ".local/bin/claude")


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_aclose_ends_the_shared_connection(rx_executor, rx_sshd, rx_account):
    assert await rx_executor.home() == str(rx_sshd.remote_home(rx_account))
    assert len(rx_sshd.connections(rx_account)) == 1
    await rx_executor.aclose()
    import anyio

    with anyio.fail_after(5):
        while rx_sshd.connections(rx_account):
            await anyio.sleep(0.05)
