"""Sessions that outlive the link: real cuts through the link proxy, real CLI, real sshd.

Each test runs a turn through ``LinkProxy`` (a TCP proxy in front of the bed's sshd that can
reset every connection and refuse new ones), breaks the link in the middle of the turn, and
checks what the caller saw: the whole turn, once, in order, with a ``detached`` and a
``reattached`` link status, the transcript complete locally; or, past ``reattach_within``,
``ProcessLost`` and nothing left running on the remote.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from claude_agent_sdk import (
    AssistantMessage,
    ClaudeAgentOptions,
    PermissionResultAllow,
    PermissionResultDeny,
    ResultMessage,
    TextBlock,
    ToolPermissionContext,
    ToolUseBlock,
    create_sdk_mcp_server,
    get_session_messages,
    tool,
)

import remote_executors as rx
from remote_executors.executors.base import SpawnOptions
from remote_executors.testing.link import LinkProxy
from remote_executors.testing.model import ScriptedModel, text, tool_use
from remote_executors.testing.plugin import Project
from remote_executors.testing.sshd import RemoteAccount, SSHClientConfig, SSHTestBed

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

asyncio_only = pytest.mark.parametrize("anyio_backend", ["asyncio"])
loops_and_backends = pytest.mark.parametrize(
    ("anyio_backend", "rx_ssh_backend"),
    [("asyncio", "openssh"), ("trio", "openssh"), ("asyncio", "fabric")],
    indirect=["rx_ssh_backend"],
)


@pytest.fixture
def link(rx_sshd: SSHTestBed) -> AsyncIterator[LinkProxy]:
    with LinkProxy(rx_sshd.host, rx_sshd.port) as proxy:
        yield proxy


@pytest.fixture
def link_config(link: LinkProxy, rx_ssh_config: SSHClientConfig) -> SSHClientConfig:
    return link.client_config(rx_ssh_config)


def executor_for(
    cfg: SSHClientConfig, backend: str = "openssh", reattach_within: float = 60.0
) -> rx.SSHExecutor:
    # A dead link is noticed after about 2 s (keepalive every second, 2 misses).
    return rx.SSHExecutor(
        cfg.alias,
        ssh_config=cfg.path,
        backend=backend,  # type: ignore[arg-type]
        keepalive_interval=1,
        keepalive_count=2,
        reattach_within=reattach_within,
    )


def link_states(messages: list[Any]) -> list[str]:
    return [s.state for m in messages if (s := rx.LinkStatus.from_message(m)) is not None]


def tool_uses(messages: list[Any]) -> list[str]:
    return [
        block.id
        for m in messages
        if isinstance(m, AssistantMessage)
        for block in m.content
        if isinstance(block, ToolUseBlock)
    ]


def texts(messages: list[Any]) -> list[str]:
    return [
        block.text
        for m in messages
        if isinstance(m, AssistantMessage)
        for block in m.content
        if isinstance(block, TextBlock)
    ]


class Cut:
    """Cuts the link for ``seconds`` once ``when(message)`` holds, in the background."""

    def __init__(self, link: LinkProxy, seconds: float) -> None:
        self.link = link
        self.seconds = seconds
        self.cut_at: float | None = None
        self.restored_at: float | None = None

    async def _restore_later(self) -> None:
        await anyio.sleep(self.seconds)
        self.link.restore()
        self.restored_at = time.monotonic()

    def start_with_timer(self) -> None:
        """Cut now; restore from a timer thread (for a caller without a task group)."""
        assert self.cut_at is None
        self.link.cut()
        self.cut_at = time.monotonic()
        timer = threading.Timer(self.seconds, self.link.restore)
        timer.daemon = True
        timer.start()

    def start(self, tg: anyio.abc.TaskGroup) -> None:
        assert self.cut_at is None
        self.link.cut()
        self.cut_at = time.monotonic()
        tg.start_soon(self._restore_later)


def bash_turn(model: ScriptedModel, seconds: float) -> str:
    prompt = f"wait a bit {secrets.token_hex(4)}"
    model.script(
        tool_use(
            "Bash", {"command": f"echo started; sleep {seconds}; echo slept", "description": "w"}
        ),
        text("finished waiting"),
        when=prompt,
    )
    return prompt


def started_tool(message: object) -> bool:
    return isinstance(message, AssistantMessage) and any(
        isinstance(b, ToolUseBlock) for b in message.content
    )


async def run_with_cut(
    prompt: str,
    options: ClaudeAgentOptions,
    executor: rx.SSHExecutor,
    cut: Cut,
    when: Callable[[object], bool] = started_tool,
) -> list[Any]:
    messages: list[Any] = []
    error: Exception | None = None
    async with anyio.create_task_group() as tg:
        try:
            async for message in rx.query(prompt=prompt, options=options, executor=executor):
                messages.append(message)
                if cut.cut_at is None and when(message):
                    cut.start(tg)
        except Exception as exc:  # raised as itself, not in the task group's ExceptionGroup
            error = exc
            tg.cancel_scope.cancel()
    if error is not None:
        raise error
    return messages


def assert_one_whole_turn(messages: list[Any], project: Project) -> ResultMessage:
    results = [m for m in messages if isinstance(m, ResultMessage)]
    assert len(results) == 1 and results[0].subtype == "success", messages
    assert len(tool_uses(messages)) == 1
    assert texts(messages).count("finished waiting") == 1
    assert link_states(messages) == ["detached", "reattached"], messages
    # The caller saw the CLI's messages exactly once each (uuids are unique per message).
    uuids = [m.uuid for m in messages if getattr(m, "uuid", None)]
    assert len(uuids) == len(set(uuids))
    # The transcript is whole on this machine too (an oracle nobody here wrote).
    session = results[0].session_id
    entries = get_session_messages(session, directory=str(project.local))
    assert any("finished waiting" in str(e) for e in entries)
    return results[0]


# ---- cuts mid-turn -----------------------------------------------------------------------


# 60 s mostly waits (one worker idle for a minute): cheap enough to run in CI.
@pytest.mark.parametrize("seconds", [1.0, 10.0, 60.0])
@asyncio_only
async def test_cut_mid_turn_is_resumed_whole(
    seconds: float,
    link: LinkProxy,
    link_config: SSHClientConfig,
    rx_project: Project,
    rx_model: ScriptedModel,
    record: Callable[[str, float], None],
) -> None:
    prompt = bash_turn(rx_model, 2)
    options = ClaudeAgentOptions(cwd=str(rx_project.local), allowed_tools=["Bash"])
    cut = Cut(link, seconds)
    async with executor_for(link_config, reattach_within=seconds + 60) as executor:
        with anyio.fail_after(seconds + 60):
            messages = await run_with_cut(prompt, options, executor, cut)
    assert_one_whole_turn(messages, rx_project)
    status = [s for m in messages if (s := rx.LinkStatus.from_message(m)) is not None]
    assert status[1].seconds >= seconds - 0.1
    assert cut.restored_at is not None
    record(f"cut {seconds:g} s: reattached after", status[1].seconds)


@loops_and_backends
async def test_cut_mid_turn_every_loop_and_backend(
    link: LinkProxy,
    rx_ssh_backend: str,
    link_config: SSHClientConfig,
    rx_project: Project,
    rx_model: ScriptedModel,
) -> None:
    prompt = bash_turn(rx_model, 1)
    options = ClaudeAgentOptions(cwd=str(rx_project.local), allowed_tools=["Bash"])
    async with executor_for(link_config, rx_ssh_backend) as executor:
        with anyio.fail_after(90):
            messages = await run_with_cut(prompt, options, executor, Cut(link, 1.0))
    assert_one_whole_turn(messages, rx_project)


@asyncio_only
async def test_cut_while_can_use_tool_is_pending(
    link: LinkProxy,
    link_config: SSHClientConfig,
    rx_project: Project,
    rx_model: ScriptedModel,
    rx_sshd: SSHTestBed,
    rx_account: RemoteAccount,
) -> None:
    """The CLI asks; the link drops before the answer; the answer goes after the reattach."""
    asked = anyio.Event()
    cut = Cut(link, 2.0)
    prompt = f"touch it {secrets.token_hex(4)}"
    name = f"allowed-{secrets.token_hex(3)}"
    rx_model.script(
        tool_use("Bash", {"command": f"touch {name} && echo made", "description": "t"}),
        text("finished waiting"),
        when=prompt,
    )

    async def can_use_tool(
        tool: str, tool_input: dict[str, Any], context: ToolPermissionContext
    ) -> PermissionResultAllow | PermissionResultDeny:
        asked.set()
        # Answer only once the link is down: the answer waits for the reattach.
        while cut.cut_at is None:
            await anyio.sleep(0.05)
        return PermissionResultAllow()

    options = ClaudeAgentOptions(cwd=str(rx_project.local), can_use_tool=can_use_tool)
    async with executor_for(link_config) as executor:
        with anyio.fail_after(90):
            messages: list[Any] = []

            async def consume() -> None:
                async for message in rx.query(prompt=prompt, options=options, executor=executor):
                    messages.append(message)

            async with anyio.create_task_group() as tg:
                tg.start_soon(consume)
                await asked.wait()
                cut.start(tg)
    assert_one_whole_turn(messages, rx_project)
    assert (rx_project.remote / name).exists()


# ---- past the grace --------------------------------------------------------------------


def account_processes(bed: SSHTestBed, account: RemoteAccount) -> list[str]:
    """The account's processes other than the connection's own sshd session."""
    return [
        p.args for p in bed.processes(account) if not p.args.startswith(("sshd:", "sshd-session:"))
    ]


@asyncio_only
async def test_cut_longer_than_the_grace_is_process_lost_and_nothing_is_left(
    link: LinkProxy,
    link_config: SSHClientConfig,
    rx_project: Project,
    rx_model: ScriptedModel,
    rx_sshd: SSHTestBed,
    rx_account: RemoteAccount,
    record: Callable[[str, float], None],
) -> None:
    grace = 3.0
    prompt = bash_turn(rx_model, 100)
    options = ClaudeAgentOptions(cwd=str(rx_project.local), allowed_tools=["Bash"])
    cut = Cut(link, 60.0)
    error: BaseException | None = None
    async with executor_for(link_config, reattach_within=grace) as executor:
        with anyio.fail_after(60):
            try:
                await run_with_cut(prompt, options, executor, cut)
            except rx.ProcessLost as exc:
                error = exc
    assert isinstance(error, rx.ProcessLost), repr(error)
    assert executor.host in str(error) and "reattach_within" in str(error)
    assert cut.cut_at is not None
    record("cut past a 3 s grace: ProcessLost after", time.monotonic() - cut.cut_at)
    # The host stopped the CLI's whole group (the Bash tool's sleep too) within grace + 5 s.
    deadline = cut.cut_at + grace + 5
    while account_processes(rx_sshd, rx_account):
        assert time.monotonic() < deadline, account_processes(rx_sshd, rx_account)
        await anyio.sleep(0.1)
    record("cut past a 3 s grace: remote clean after", time.monotonic() - cut.cut_at)
    link.restore()


# ---- the caller stops ---------------------------------------------------------------------


@asyncio_only
async def test_terminate_stops_the_remote_at_once(
    link: LinkProxy,
    link_config: SSHClientConfig,
    rx_sshd: SSHTestBed,
    rx_account: RemoteAccount,
) -> None:
    async with executor_for(link_config) as executor:
        process = await executor.spawn(
            SpawnOptions(
                "/bin/sh", ["-c", "echo up; sleep 300 & wait"], stderr=True, outlive_link=True
            )
        )
        with anyio.fail_after(20):
            assert await process.stdout.receive() == b"up\n"
            assert any("sleep 300" in a for a in account_processes(rx_sshd, rx_account))
            stopped = time.monotonic()
            process.terminate()
            await process.wait()
            while account_processes(rx_sshd, rx_account):
                assert time.monotonic() - stopped < 5, account_processes(rx_sshd, rx_account)
                await anyio.sleep(0.05)


@asyncio_only
async def test_spool_is_private_and_removed_at_the_end(
    link: LinkProxy,
    link_config: SSHClientConfig,
    rx_sshd: SSHTestBed,
    rx_account: RemoteAccount,
) -> None:
    secret = secrets.token_hex(8)
    async with executor_for(link_config) as executor:
        process = await executor.spawn(
            SpawnOptions(
                "/bin/sh",
                ["-c", 'read x; echo got; read y; echo "$y"'],
                stderr=True,
                outlive_link=True,
            )
        )
        assert isinstance(process, rx.executors.ssh._reattach.ReattachingProcess)
        spool = Path(process.remote_dir)
        with anyio.fail_after(20):
            await process.stdin.send(f"{secret}\n".encode())
            assert await process.stdout.receive() == b"got\n"
            assert spool.stat().st_mode & 0o777 == 0o700
            for entry in spool.iterdir():
                if entry.is_file():
                    assert entry.stat().st_mode & 0o777 == 0o600, entry
                    # stdin never reaches the disk
                    assert secret.encode() not in entry.read_bytes(), entry
            await process.stdin.send(b"bye\n")
            await process.stdin.aclose()
            out = b""
            while True:
                try:
                    out += await process.stdout.receive()
                except anyio.EndOfStream:
                    break
            assert out == b"bye\n"
            assert await process.wait() == 0
            start = time.monotonic()
            while spool.exists():
                assert time.monotonic() - start < 5
                await anyio.sleep(0.05)


@asyncio_only
async def test_local_ssh_master_killed_is_resumed(
    link: LinkProxy,
    link_config: SSHClientConfig,
) -> None:
    """The ControlMaster dies (every channel with it): a new one carries the attachment."""
    script = 'i=0; while [ $i -lt 30 ]; do echo "line $i"; i=$((i+1)); sleep 0.1; done'
    async with executor_for(link_config) as executor:
        process = await executor.spawn(
            SpawnOptions("/bin/sh", ["-c", script], stderr=True, outlive_link=True)
        )
        out = b""
        killed = False
        with anyio.fail_after(60):
            while True:
                try:
                    out += await process.stdout.receive()
                except anyio.EndOfStream:
                    break
                if not killed and b"line 5\n" in out:
                    masters = subprocess.run(
                        ["pgrep", "-f", f"ControlMaster=yes.*{link_config.alias}"],
                        capture_output=True,
                        text=True,
                    ).stdout.split()
                    assert masters
                    for pid in masters:
                        os.kill(int(pid), signal.SIGKILL)
                    killed = True
            assert await process.wait() == 0
    lines = out.decode().splitlines()
    assert [line for line in lines if not line.startswith("{")] == [f"line {i}" for i in range(30)]
    states = [json.loads(line)["state"] for line in lines if line.startswith("{")]
    assert states == ["detached", "reattached"]


# ---- more faults -----------------------------------------------------------------------


@asyncio_only
async def test_cut_while_an_sdk_mcp_tool_runs(
    link: LinkProxy,
    link_config: SSHClientConfig,
    rx_project: Project,
    rx_model: ScriptedModel,
) -> None:
    """The tool's answer is written while the link is down; it reaches the CLI after."""
    cut = Cut(link, 2.0)
    calls: list[dict[str, Any]] = []

    @tool("slow_add", "Add two integers, slowly", {"a": int, "b": int})
    async def slow_add(args: dict[str, Any]) -> dict[str, Any]:
        calls.append(args)
        assert cut.cut_at is None
        cut.start_with_timer()
        await anyio.sleep(0.5)  # answer in the middle of the cut
        return {"content": [{"type": "text", "text": f"sum={args['a'] + args['b']}"}]}

    server = create_sdk_mcp_server("calc", version="1.0.0", tools=[slow_add])
    prompt = f"add slowly {secrets.token_hex(4)}"
    rx_model.script(
        tool_use("mcp__calc__slow_add", {"a": 20, "b": 22}), text("finished waiting"), when=prompt
    )
    options = ClaudeAgentOptions(
        cwd=str(rx_project.local),
        mcp_servers={"calc": server},
        allowed_tools=["mcp__calc__slow_add"],
    )
    async with executor_for(link_config) as executor:
        with anyio.fail_after(90):
            messages = [
                m async for m in rx.query(prompt=prompt, options=options, executor=executor)
            ]
    assert calls == [{"a": 20, "b": 22}]
    assert_one_whole_turn(messages, rx_project)
    [returned] = rx_model.main_requests[-1].tool_results
    assert returned.content == "sum=42"


@asyncio_only
async def test_link_frozen_for_10_s_is_resumed(
    link: LinkProxy,
    link_config: SSHClientConfig,
    rx_project: Project,
    rx_model: ScriptedModel,
) -> None:
    prompt = bash_turn(rx_model, 1)
    options = ClaudeAgentOptions(cwd=str(rx_project.local), allowed_tools=["Bash"])
    messages: list[Any] = []
    async with executor_for(link_config) as executor:
        with anyio.fail_after(90):
            async with anyio.create_task_group() as tg:

                async def thaw_later() -> None:
                    await anyio.sleep(10)
                    link.thaw()

                async for message in rx.query(prompt=prompt, options=options, executor=executor):
                    messages.append(message)
                    if started_tool(message):
                        link.freeze()
                        tg.start_soon(thaw_later)
    assert_one_whole_turn(messages, rx_project)


@asyncio_only
async def test_sshd_restarted_mid_turn(
    link: LinkProxy,
    link_config: SSHClientConfig,
    rx_project: Project,
    rx_model: ScriptedModel,
    rx_sshd: SSHTestBed,
) -> None:
    """The daemon restarts (sessions survive it), then the link is cut: the new
    connection goes to the restarted daemon."""
    prompt = bash_turn(rx_model, 2)
    options = ClaudeAgentOptions(cwd=str(rx_project.local), allowed_tools=["Bash"])
    cut = Cut(link, 1.0)
    async with executor_for(link_config) as executor:
        with anyio.fail_after(90):
            messages: list[Any] = []
            async with anyio.create_task_group() as tg:
                async for message in rx.query(prompt=prompt, options=options, executor=executor):
                    messages.append(message)
                    if started_tool(message):
                        rx_sshd.restart()
                        cut.start(tg)
    assert_one_whole_turn(messages, rx_project)


STOPPED_SCRIPT = """
import sys, anyio
from claude_agent_sdk import ClaudeAgentOptions, ResultMessage
import remote_executors as rx

async def main():
    alias, config, cwd, prompt = sys.argv[1:5]
    async with rx.SSHExecutor(alias, ssh_config=config) as executor:
        async for m in rx.query(prompt=prompt, executor=executor,
                                options=ClaudeAgentOptions(cwd=cwd, allowed_tools=["Bash"])):
            print(type(m).__name__, getattr(m, "subtype", ""), flush=True)

anyio.run(main)
"""


@asyncio_only
async def test_local_process_stopped_then_continued(
    rx_ssh_config: SSHClientConfig,
    rx_project: Project,
    rx_model: ScriptedModel,
    tmp_path: Path,
) -> None:
    """SIGSTOP for 12 s (past the 8 s heartbeat watchdog of reattach_within=0), then SIGCONT:
    the session goes on."""
    prompt = bash_turn(rx_model, 3)
    script = tmp_path / "app.py"
    script.write_text(STOPPED_SCRIPT)
    process = await anyio.open_process(
        [
            sys.executable,
            str(script),
            rx_ssh_config.alias,
            str(rx_ssh_config.path),
            str(rx_project.local),
            prompt,
        ],
        env=os.environ.copy(),
    )
    lines: list[str] = []
    with anyio.fail_after(90):
        assert process.stdout is not None
        buffer = b""
        stopped = False
        while True:
            try:
                buffer += await process.stdout.receive()
            except anyio.EndOfStream:
                break
            *done, buffer = buffer.split(b"\n")
            lines += [line.decode() for line in done]
            if not stopped and any(line.startswith("AssistantMessage") for line in lines):
                process.send_signal(signal.SIGSTOP)
                await anyio.sleep(12)
                process.send_signal(signal.SIGCONT)
                stopped = True
        assert await process.wait() == 0, lines
    assert "ResultMessage success" in lines, lines
