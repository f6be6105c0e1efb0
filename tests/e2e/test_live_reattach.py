"""The live follower across a reattach: transcript lines keep landing live after the link
comes back, with nothing lost or repeated.

Real sshd behind the link proxy, real CLI, the scripted model answering slowly over many
tool calls; the link is cut mid-turn. A thread watches both copies of the transcript (both
on this machine) every millisecond.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from claude_agent_sdk import AssistantMessage, ClaudeAgentOptions, ResultMessage, ToolUseBlock

import remote_executors as rx
from _sessions import project_dirs
from remote_executors.testing.link import LinkProxy
from remote_executors.testing.mirror_watch import MirrorWatch
from remote_executors.testing.model import ScriptedModel, text, tool_use
from remote_executors.testing.plugin import Project
from remote_executors.testing.sshd import FOLLOWER_MARK, RemoteAccount, SSHClientConfig, SSHTestBed

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

STEPS = 12
STEP_DELAY = 0.4


@pytest.fixture(autouse=True)
def local_claude(private_local_claude: Path) -> Path:
    return private_local_claude


def followers(bed: SSHTestBed, account: RemoteAccount) -> list[str]:
    """The account's live followers (follow.pl's first line is in their argv)."""
    return [p.args[:80] for p in bed.processes(account) if FOLLOWER_MARK in p.args]


@pytest.mark.parametrize(
    ("anyio_backend", "rx_ssh_backend"),
    [("asyncio", "openssh"), ("asyncio", "fabric")],
    indirect=["rx_ssh_backend"],
)
async def test_lines_keep_landing_live_after_a_reattach(
    link: LinkProxy,
    rx_ssh_config: SSHClientConfig,
    rx_ssh_backend: str,
    rx_sshd: SSHTestBed,
    rx_account: RemoteAccount,
    rx_project: Project,
    rx_model: ScriptedModel,
    local_claude: Path,
) -> None:
    rx_model.script(
        *(
            tool_use("Bash", {"command": f"echo live-{i}", "description": "e"}, delay=STEP_DELAY)
            for i in range(STEPS)
        ),
        text("All done.", delay=STEP_DELAY),
    )
    cfg = link.client_config(rx_ssh_config)
    executor = rx.SSHExecutor(
        cfg.alias,
        ssh_config=cfg.path,
        backend=rx_ssh_backend,  # type: ignore[arg-type]
        keepalive_interval=1,
        keepalive_count=2,
        reattach_within=60,
    )
    remote_dir, local_dir = project_dirs(rx_sshd, rx_account, rx_project, local_claude)
    options = ClaudeAgentOptions(cwd=str(rx_project.local), allowed_tools=["Bash"])
    messages: list[Any] = []
    reattached_at = result_at = 0.0
    followers_after: list[str] = []
    async with executor:
        with MirrorWatch(remote_dir, local_dir) as watch, anyio.fail_after(120):
            async with anyio.create_task_group() as tg:
                async for m in rx.query(prompt="go", options=options, executor=executor):
                    messages.append(m)
                    status = rx.LinkStatus.from_message(m)
                    if status is not None and status.state == "reattached":
                        reattached_at = time.time()
                    tools = sum(
                        isinstance(b, ToolUseBlock)
                        for x in messages
                        if isinstance(x, AssistantMessage)
                        for b in x.content
                    )
                    if tools == 2 and not link.is_cut and not reattached_at:
                        link.cut()

                        async def restore() -> None:
                            await anyio.sleep(2)
                            link.restore()

                        tg.start_soon(restore)
                    if reattached_at and not followers_after and tools >= STEPS - 2:
                        followers_after = await anyio.to_thread.run_sync(
                            followers, rx_sshd, rx_account
                        )
                    if isinstance(m, ResultMessage):
                        result_at = time.time()
    states = [s.state for m in messages if (s := rx.LinkStatus.from_message(m)) is not None]
    assert states == ["detached", "reattached"], states
    results = [m for m in messages if isinstance(m, ResultMessage)]
    assert len(results) == 1 and results[0].subtype == "success"
    main = f"{results[0].session_id}.jsonl"
    # Lines the CLI wrote after the reattach reached this disk live, well before the result.
    remote_times = watch.remote[main].times
    local_times = watch.local[main].times
    after = [i for i, t in enumerate(remote_times) if reattached_at < t < result_at - 1.0]
    assert len(after) >= 4, (len(after), reattached_at, result_at)
    lags = [local_times[i] - remote_times[i] for i in after]
    assert max(lags) < 1.0, lags
    assert all(local_times[i] < result_at - 0.5 for i in after)
    # Nothing lost or repeated: the copies are equal, the local one never diverged.
    assert not watch.violations, watch.violations
    assert (local_dir / main).read_bytes() == (remote_dir / main).read_bytes()
    # One follower after the reattach (the old one is gone), none once the
    # executor closed (it waits for a next session until then).
    assert len(followers_after) == 1, followers_after
    with anyio.fail_after(15):
        while await anyio.to_thread.run_sync(followers, rx_sshd, rx_account):
            await anyio.sleep(0.1)
