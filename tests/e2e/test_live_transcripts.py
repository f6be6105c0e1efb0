"""A remote session's files reach the local disk while the turn runs.

Real sshd, real CLI, the scripted model answering slowly over several tool
calls. A thread watches both copies every millisecond (both are on this
machine): it notes when each line appeared on each side, and checks that the
local file is always a byte-prefix of the remote one, never ends in a partial
line and keeps its inode.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from claude_agent_sdk import AssistantMessage, ClaudeAgentOptions, ResultMessage, SystemMessage

import remote_executors as rx
from remote_executors.executors.ssh import BACKENDS
from remote_executors.paths import project_dir_from_cwd
from remote_executors.sync import _follow_channel, _per_session
from remote_executors.sync._follower import LiveFollower
from remote_executors.testing.mirror_watch import MirrorWatch, percentile
from remote_executors.testing.model import ScriptedModel, text, tool_use
from remote_executors.testing.plugin import Project
from remote_executors.testing.sshd import FOLLOWER_MARK, RemoteAccount, SSHClientConfig, SSHTestBed

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]
both_backends = pytest.mark.parametrize("rx_ssh_backend", BACKENDS, indirect=True)

FIGURES_TITLE = "live transcripts (loopback, under test load)"
SESSION_TIMEOUT = 120
STEPS = 6


@pytest.fixture(autouse=True)
def local_claude(private_local_claude: Path) -> Path:
    return private_local_claude


def dirs(
    bed: SSHTestBed, account: RemoteAccount, project: Project, config: Path
) -> tuple[Path, Path]:
    remote = (
        bed.remote_home(account)
        / ".claude"
        / "projects"
        / project_dir_from_cwd(os.path.realpath(project.remote))
    )
    local = config / "projects" / project_dir_from_cwd(os.path.realpath(project.local))
    return remote, local


def long_turn(model: ScriptedModel) -> None:
    """Several slow steps: each a Bash call whose answer comes 0.4 s later."""
    model.script(
        *(
            tool_use("Bash", {"command": f"echo live-{i}", "description": "echo"}, delay=0.4)
            for i in range(STEPS)
        ),
        text("All done.", delay=0.4),
    )


def followers(bed: SSHTestBed, account: RemoteAccount) -> list[str]:
    """The account's live followers (follow.pl's first line is in their argv)."""
    return [p.args[:80] for p in bed.processes(account) if FOLLOWER_MARK in p.args]


def follower_pids(bed: SSHTestBed, account: RemoteAccount) -> list[int]:
    return [p.pid for p in bed.processes(account) if FOLLOWER_MARK in p.args]


def project_watches(bed: SSHTestBed, account: RemoteAccount, project_dir: Path) -> list[int]:
    """The inotifywait processes watching ``project_dir`` (the follower's, non-recursive)."""
    end = f"/projects/{project_dir.name}"
    return [
        p.pid for p in bed.processes(account) if p.comm == "inotifywait" and p.args.endswith(end)
    ]


async def run_watched(
    bed: SSHTestBed,
    account: RemoteAccount,
    project: Project,
    executor: rx.Executor,
    config: Path,
    **kw: Any,
) -> tuple[MirrorWatch, str, float, list[str]]:
    """One long turn under a :class:`MirrorWatch`: (watch, session id, result time,
    the remote followers seen mid-turn)."""
    remote_dir, local_dir = dirs(bed, account, project, config)
    sid, result_at, seen = "", 0.0, []
    options = ClaudeAgentOptions(cwd=str(project.local), allowed_tools=["Bash"])
    with MirrorWatch(remote_dir, local_dir) as watch:
        with anyio.fail_after(SESSION_TIMEOUT):
            async for m in rx.query(prompt="go", options=options, executor=executor, **kw):
                if isinstance(m, AssistantMessage) and not seen:
                    seen = await anyio.to_thread.run_sync(followers, bed, account)
                if isinstance(m, ResultMessage):
                    assert not m.is_error, m
                    sid, result_at = m.session_id, time.time()
    return watch, sid, result_at, seen


@both_backends
@pytest.mark.parametrize("wait", ["auto", "poll"])
async def test_lines_land_locally_while_the_turn_runs(
    rx_sshd: SSHTestBed,
    rx_account: RemoteAccount,
    rx_project: Project,
    rx_executor: rx.SSHExecutor,
    rx_model: ScriptedModel,
    local_claude: Path,
    rx_ssh_backend: str,
    record: Any,
    wait: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``auto`` waits on inotifywait where the remote has it (CI installs it), ``poll`` polls."""
    monkeypatch.setattr(_per_session, "LiveFollower", functools.partial(LiveFollower, wait=wait))
    long_turn(rx_model)
    watch, sid, result_at, seen = await run_watched(
        rx_sshd, rx_account, rx_project, rx_executor, local_claude
    )
    main = f"{sid}.jsonl"
    remote_dir, local_dir = dirs(rx_sshd, rx_account, rx_project, local_claude)
    # Most of the turn was on the local disk well before its result.
    total = len(watch.remote[main].times)
    early = watch.lines_at(main, result_at - 0.5)
    assert early >= total // 2, (early, total)
    assert not watch.violations, watch.violations
    lags = watch.lags()
    assert len(lags) >= total
    p95 = percentile(lags, 95)
    where = f"[{rx_ssh_backend}, {wait}]"
    record(f"{where} live lag p50 (ms)", percentile(lags, 50) * 1000)
    record(f"{where} live lag p95 (ms)", p95 * 1000)
    record(f"{where} live lag max (ms)", max(lags) * 1000)
    # The target (p95 <= 100 ms) is measured by bench/bench_live.py on a quiet
    # machine; under a loaded test run, stay within a generous bound.
    assert p95 < 1.0, sorted(lags)
    assert (local_dir / main).read_bytes() == (remote_dir / main).read_bytes()
    # One follower ran during the turn. It waits for the executor's next
    # session (warm_spawn) and is gone once the executor closes.
    assert len(seen) == 1, seen
    assert await anyio.to_thread.run_sync(followers, rx_sshd, rx_account) == seen
    await rx_executor.aclose()
    with anyio.fail_after(10):
        while left := await anyio.to_thread.run_sync(followers, rx_sshd, rx_account):
            await anyio.sleep(0.1)
    assert not left


@both_backends
async def test_without_live_lines_wait_for_the_result(
    rx_sshd: SSHTestBed,
    rx_account: RemoteAccount,
    rx_project: Project,
    rx_executor: rx.SSHExecutor,
    rx_model: ScriptedModel,
    local_claude: Path,
) -> None:
    """The control: with live=False the watch sees nothing before the result."""
    long_turn(rx_model)
    watch, sid, result_at, seen = await run_watched(
        rx_sshd, rx_account, rx_project, rx_executor, local_claude, live=False
    )
    assert watch.lines_at(f"{sid}.jsonl", result_at - 0.5) == 0
    assert seen == []
    assert not watch.violations, watch.violations


@pytest.mark.parametrize("where", ["local", "remote"])
async def test_follow_transcript_yields_entries_before_the_result(
    rx_executor: rx.SSHExecutor,
    rx_project: Project,
    rx_model: ScriptedModel,
    local_claude: Path,
    where: str,
) -> None:
    """The public iterator, on the local file, for a local and a remote session alike."""
    long_turn(rx_model)
    options = ClaudeAgentOptions(cwd=str(rx_project.local), allowed_tools=["Bash"])
    executor: rx.Executor = rx_executor
    if where == "local":
        executor = rx.LocalExecutor()
        options.env.update(rx_model.cli_env())
    arrived: list[tuple[float, dict[str, Any]]] = []
    result_at = 0.0

    async def follow(sid: str) -> None:
        async for entry in rx.follow_transcript(sid, directory=rx_project.local):
            arrived.append((time.time(), entry))

    with anyio.fail_after(SESSION_TIMEOUT):
        async with anyio.create_task_group() as tg:
            async for m in rx.query(prompt="go", options=options, executor=executor):
                if isinstance(m, SystemMessage) and m.subtype == "init":
                    tg.start_soon(follow, m.data["session_id"])
                if isinstance(m, ResultMessage):
                    assert not m.is_error, m
                    result_at = time.time()
            await anyio.sleep(0.3)  # the last lines, written as the CLI exits
            tg.cancel_scope.cancel()
    early = [e for t, e in arrived if t < result_at - 0.5]
    commands = repr([e.get("message") for e in early])
    # The first steps' tool calls were readable locally well before the result.
    assert "live-0" in commands and "live-1" in commands, commands
    uuids = [e["uuid"] for _, e in arrived if "uuid" in e]
    assert len(uuids) == len(set(uuids))  # each entry once


@pytest.mark.parametrize("rx_ssh_backend", ["openssh"], indirect=True)
async def test_a_local_copy_changed_mid_turn_is_kept_as_a_conflict(
    rx_sshd: SSHTestBed,
    rx_account: RemoteAccount,
    rx_project: Project,
    rx_executor: rx.SSHExecutor,
    rx_model: ScriptedModel,
    local_claude: Path,
) -> None:
    """Someone writes into the local copy mid-turn: the follower stops appending to
    it, and the turn end keeps both copies, as the turn-end sync always has."""
    long_turn(rx_model)
    remote_dir, local_dir = dirs(rx_sshd, rx_account, rx_project, local_claude)
    options = ClaudeAgentOptions(cwd=str(rx_project.local), allowed_tools=["Bash"])
    sid, statuses, mine = "", [], b""
    with anyio.fail_after(SESSION_TIMEOUT):
        async for m in rx.query(prompt="go", options=options, executor=rx_executor):
            if isinstance(m, SystemMessage) and m.subtype == "init":
                sid = m.data["session_id"]
            status = rx.SessionSyncStatus.from_message(m)
            if status is not None:
                statuses.append(status)
            if isinstance(m, ResultMessage):
                assert mine, "the local copy never had three lines before the result"
            local = local_dir / f"{sid}.jsonl"
            if sid and not mine and local.exists() and local.read_bytes().count(b"\n") >= 3:
                with open(local, "ab") as f:
                    f.write(b'{"type":"written-here"}\n')
                mine = local.read_bytes()
    local_bytes = (local_dir / f"{sid}.jsonl").read_bytes()
    assert local_bytes == mine  # nothing appended after the local write
    remote_bytes = (remote_dir / f"{sid}.jsonl").read_bytes()
    assert any(not s.ok and s.conflict_copies for s in statuses), statuses
    copies = sorted(local_dir.glob(f"{sid}.jsonl.conflict-*"))
    assert copies and copies[-1].read_bytes() == remote_bytes


class CountingSync:
    """The default strategy, counting pulls."""

    def __init__(self) -> None:
        self.inner = rx.TailSessionSync()
        self.limits = self.inner.limits
        self.pulls = 0

    async def pull(self, executor: rx.Executor, paths: rx.SessionPaths) -> rx.SyncReport:
        self.pulls += 1
        return await self.inner.pull(executor, paths)

    async def pull_recent(self, executor: rx.Executor, paths: rx.SessionPaths) -> rx.SyncReport:
        self.pulls += 1
        return await self.inner.pull_recent(executor, paths)

    async def push(self, executor: rx.Executor, paths: rx.SessionPaths) -> rx.SyncReport:
        return await self.inner.push(executor, paths)


@both_backends
async def test_results_are_confirmed_without_a_pull(
    rx_sshd: SSHTestBed,
    rx_account: RemoteAccount,
    rx_project: Project,
    rx_executor: rx.SSHExecutor,
    rx_model: ScriptedModel,
    local_claude: Path,
) -> None:
    """Two turns: at each result the local copy is already whole, and nothing pulled."""
    remote_dir, local_dir = dirs(rx_sshd, rx_account, rx_project, local_claude)
    rx_model.script(
        tool_use("Bash", {"command": "echo one", "description": "echo"}),
        text("first done"),
        tool_use("Bash", {"command": "echo two", "description": "echo"}),
        text("second done"),
    )
    sync = CountingSync()
    options = ClaudeAgentOptions(cwd=str(rx_project.local), allowed_tools=["Bash"])
    with anyio.fail_after(SESSION_TIMEOUT):
        async with rx.ClaudeSDKClient(options, executor=rx_executor, sync=sync) as client:
            for prompt in ("first", "second"):
                await client.query(prompt)
                async for m in client.receive_response():
                    if isinstance(m, ResultMessage):
                        name = f"{m.session_id}.jsonl"
                        here = (local_dir / name).read_bytes()
                        assert (remote_dir / name).read_bytes().startswith(here)
                        assert f"{prompt} done".encode() in here
    assert sync.pulls == 0


async def one_turn(
    model: ScriptedModel,
    project: Project,
    executor: rx.Executor,
    pids: Callable[[], list[int]],
) -> list[int]:
    """A short session whose turn runs a command; the followers seen during the turn."""
    model.script(
        tool_use("Bash", {"command": "echo one", "description": "echo"}, delay=0.3),
        text("done", delay=0.2),
    )
    options = ClaudeAgentOptions(cwd=str(project.local), allowed_tools=["Bash"])
    seen: list[int] = []
    with anyio.fail_after(SESSION_TIMEOUT):
        async for m in rx.query(prompt="go", options=options, executor=executor):
            if isinstance(m, AssistantMessage) and not seen:
                seen = await anyio.to_thread.run_sync(pids)
            if isinstance(m, ResultMessage):
                assert not m.is_error, m
    return seen


@both_backends
async def test_the_next_session_joins_the_waiting_follower(
    rx_sshd: SSHTestBed,
    rx_account: RemoteAccount,
    rx_project: Project,
    rx_executor: rx.SSHExecutor,
    rx_model: ScriptedModel,
    local_claude: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A warm executor's follower outlives its last session by LINGER_SECONDS, so
    the next session does not start one in the middle of its turn; then it stops
    by itself."""
    monkeypatch.setattr(_follow_channel, "LINGER_SECONDS", 3.0)
    pids = functools.partial(follower_pids, rx_sshd, rx_account)
    remote_dir, local_dir = dirs(rx_sshd, rx_account, rx_project, local_claude)
    first = await one_turn(rx_model, rx_project, rx_executor, pids)
    assert len(first) == 1, first
    assert await anyio.to_thread.run_sync(pids) == first  # waiting for the next session
    # It keeps its watch on the project dir (CI installs inotifywait) for the next one.
    watching = await anyio.to_thread.run_sync(project_watches, rx_sshd, rx_account, remote_dir)
    assert len(watching) == 1, watching
    second = await one_turn(rx_model, rx_project, rx_executor, pids)
    assert second == first  # the same process followed it
    assert project_watches(rx_sshd, rx_account, remote_dir) == watching
    with anyio.fail_after(15):
        while await anyio.to_thread.run_sync(pids):
            await anyio.sleep(0.1)
    third = await one_turn(rx_model, rx_project, rx_executor, pids)  # a new one starts
    assert len(third) == 1 and third != first, (first, third)
    for path in remote_dir.glob("*.jsonl"):
        assert (local_dir / path.name).read_bytes() == path.read_bytes()


async def test_without_warm_spawn_the_follower_stops_with_the_session(
    rx_sshd: SSHTestBed,
    rx_account: RemoteAccount,
    rx_project: Project,
    rx_ssh_config: SSHClientConfig,
    rx_model: ScriptedModel,
) -> None:
    pids = functools.partial(follower_pids, rx_sshd, rx_account)
    executor = rx.SSHExecutor(
        rx_ssh_config.alias, ssh_config=str(rx_ssh_config.path), warm_spawn=False
    )
    async with executor:
        seen = await one_turn(rx_model, rx_project, executor, pids)
        assert len(seen) == 1, seen
        with anyio.fail_after(10):
            while left := await anyio.to_thread.run_sync(pids):
                await anyio.sleep(0.1)
        assert not left
