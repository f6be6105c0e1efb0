"""Nothing outlives a session on the remote, however the session ends; secrets never show.

Each test starts a real turn whose Bash tool runs ``sleep <n>`` on the remote (so the remote
process group holds the CLI *and* a grandchild), ends it one way or another while it runs, and
then polls the account's processes: within 5 s nothing may be left but the ControlMaster's
``sshd: <user>@notty`` (gone too once the executor is closed). The latencies are measured and
printed at the end of the module.

Ways a session ends here: the ``rx.query`` generator closed early, ``ClaudeSDKClient``
leaving its ``async with`` or ``disconnect()`` mid-turn, the caller's task cancelled,
``executor.aclose()``, the local ``ssh`` client killed, the link dropped (sshd's session
processes killed: the caller gets ``ProcessLost``) and the link frozen (sshd's session
processes stopped: the caller gets ``ProcessLost`` after the keepalives, and the remote
watchdog stops the CLI once heartbeats stop arriving).
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import pytest
from claude_agent_sdk import (
    AssistantMessage,
    ClaudeAgentOptions,
    ProcessError,
    ResultMessage,
    SystemMessage,
    ToolUseBlock,
)

import remote_executors as rx
from remote_executors.executors.ssh import BACKENDS
from remote_executors.testing.model import DEFAULT_API_KEY, ScriptedModel, slow, text, tool_use
from remote_executors.testing.plugin import Project
from remote_executors.testing.sshd import (
    FOLLOWER_MARK,
    ProcessInfo,
    RemoteAccount,
    SSHClientConfig,
    SSHTestBed,
    live_followers,
    spare_channels,
)

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

asyncio_only = pytest.mark.parametrize("anyio_backend", ["asyncio"])
#: Every way a session ends, over both SSH implementations.
both_backends = pytest.mark.parametrize("rx_ssh_backend", BACKENDS, indirect=True)
#: For the slow tests that also run on trio: OpenSSH on both loops, fabric on asyncio
#: (fabric's trio path is covered by the SDK feature, conformance and link-drop tests).
loops_and_backends = pytest.mark.parametrize(
    ("anyio_backend", "rx_ssh_backend"),
    [("asyncio", "openssh"), ("trio", "openssh"), ("asyncio", "fabric")],
    indirect=["rx_ssh_backend"],
)

#: How long the remote may take to be clean once a session has ended.
CLEANUP_DEADLINE = 5.0
#: The remote watchdog's limit for missing heartbeats (``SSHExecutor`` WATCHDOG_SECONDS).
WATCHDOG_SECONDS = 8


# ---- measuring -------------------------------------------------------------------------


#: Heading for the figures ``record`` keeps (tests/e2e/conftest.py).
FIGURES_TITLE = "remote cleanup latencies, seconds (test_cleanup.py)"


# ---- the remote side -----------------------------------------------------------------------


def is_master_session(account: RemoteAccount, args: str) -> bool:
    """The connection's own sshd session (ControlMaster, or the fabric backend's
    connection and its SFTP session), allowed while the executor is open."""
    return args in {
        f"{prog}: {account.user}@{what}"
        for prog in ("sshd", "sshd-session")
        for what in ("notty", "internal-sftp")
    }


def remote_left(bed: SSHTestBed, account: RemoteAccount) -> list[ProcessInfo]:
    """The account's processes, the ControlMaster's session, one idle spare and
    the live follower (waiting for the executor's next session) excepted."""
    procs = [p for p in bed.processes(account) if not is_master_session(account, p.args)]
    spares = spare_channels(procs)
    # One executor here: more than one waiting spare would be a leak.
    assert len(spares) <= 2, f"more than one spare channel: {brief(procs)}"
    follower = live_followers(procs)
    assert sum(FOLLOWER_MARK in p.args for p in procs) <= 1, f"two followers: {brief(procs)}"
    return [p for p in procs if p.pid not in spares | follower]


def brief(procs: list[ProcessInfo]) -> str:
    return "; ".join(f"{p.pid}/{p.ppid} {p.state} {p.args[:100]}" for p in procs)


def claude_processes(procs: list[ProcessInfo]) -> list[ProcessInfo]:
    return [p for p in procs if p.comm == "claude" or p.args.split(" ", 1)[0].endswith("/claude")]


async def wait_until(
    check: Callable[[], bool], timeout: float, what: Callable[[], str] | str
) -> float:
    """Poll ``check`` until it holds; return how long that took."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            detail = what() if callable(what) else what
            raise AssertionError(f"not within {timeout} s: {detail}")
        await anyio.sleep(0.05)
    return time.monotonic() - start


async def remote_clean_within(
    bed: SSHTestBed, account: RemoteAccount, timeout: float = CLEANUP_DEADLINE
) -> float:
    return await wait_until(
        lambda: not remote_left(bed, account),
        timeout,
        lambda: f"left on the remote: {brief(remote_left(bed, account))}",
    )


class SlowTurn:
    """A turn whose Bash tool runs ``sleep <n>`` on the remote for far longer than any test."""

    def __init__(self, model: ScriptedModel, project: Project) -> None:
        self.seconds = 100 + secrets.randbelow(19)  # under the Bash tool's 2-minute limit
        self.prompt = f"take your time {secrets.token_hex(4)}"
        model.script(
            # A standalone long `sleep` is refused by the CLI ("Blocked: standalone sleep").
            tool_use(
                "Bash", {"command": f"echo waiting; sleep {self.seconds}", "description": "Wait"}
            ),
            text("finished waiting"),
            when=self.prompt,
        )
        self.options = ClaudeAgentOptions(cwd=str(project.local), allowed_tools=["Bash"])

    def sleeping(self, procs: list[ProcessInfo]) -> list[ProcessInfo]:
        return [p for p in procs if p.args == f"sleep {self.seconds}"]

    async def running(self, bed: SSHTestBed, account: RemoteAccount) -> list[ProcessInfo]:
        """Wait until the CLI and its tool's ``sleep`` run on the remote; return them."""
        await wait_until(
            lambda: bool(self.sleeping(bed.processes(account))),
            30,
            lambda: f"sleep {self.seconds} never started: {brief(bed.processes(account))}",
        )
        procs = remote_left(bed, account)
        assert claude_processes(procs), brief(procs)
        return procs


def started_tool(message: object) -> bool:
    return isinstance(message, AssistantMessage) and any(
        isinstance(block, ToolUseBlock) for block in message.content
    )


class Consumer:
    """Drives an ``rx.query`` in a background task and remembers how it ended."""

    def __init__(self, messages: AsyncIterator[Any]) -> None:
        self._messages = messages
        self.error: BaseException | None = None
        self.ended = anyio.Event()
        self.ended_at = 0.0

    async def run(self) -> None:
        try:
            async for _ in self._messages:
                pass
        except Exception as exc:
            self.error = exc
        finally:
            self.ended_at = time.monotonic()
            self.ended.set()


@pytest.fixture
async def fast_executor(
    rx_ssh_config: SSHClientConfig, rx_ssh_backend: str
) -> AsyncIterator[rx.SSHExecutor]:
    """Notices a dead link after about 2 s (keepalive every second, 2 misses); a lost link
    ends the session, as before reattach existed (``reattach_within=0``: test_reattach.py
    covers the default)."""
    executor = rx.SSHExecutor(
        rx_ssh_config.alias,
        ssh_config=rx_ssh_config.path,
        backend=rx_ssh_backend,
        keepalive_interval=1,
        keepalive_count=2,
        reattach_within=0,
    )
    try:
        yield executor
    finally:
        await executor.aclose()


# ---- the caller ends the session -------------------------------------------------------


@both_backends
@asyncio_only
async def test_query_generator_closed_early(
    rx_sshd: SSHTestBed,
    rx_account: RemoteAccount,
    rx_executor: rx.SSHExecutor,
    rx_project: Project,
    rx_model: ScriptedModel,
    record: Callable[[str, float], None],
) -> None:
    turn = SlowTurn(rx_model, rx_project)
    with anyio.fail_after(60):
        messages = rx.query(prompt=turn.prompt, options=turn.options, executor=rx_executor)
        async with contextlib.aclosing(messages):  # type: ignore[type-var]
            async for message in messages:
                if started_tool(message):
                    await turn.running(rx_sshd, rx_account)
                    ended = time.monotonic()
                    break
    record("query generator closed: aclose() took", time.monotonic() - ended)
    record("... then remote clean after", await remote_clean_within(rx_sshd, rx_account))
    record("break -> remote clean, total", time.monotonic() - ended)


@both_backends
@asyncio_only
@pytest.mark.parametrize("how", ["aexit", "disconnect"])
async def test_client_leaves_mid_turn(
    how: str,
    rx_sshd: SSHTestBed,
    rx_account: RemoteAccount,
    rx_executor: rx.SSHExecutor,
    rx_project: Project,
    rx_model: ScriptedModel,
    record: Callable[[str, float], None],
) -> None:
    turn = SlowTurn(rx_model, rx_project)
    client = rx.ClaudeSDKClient(options=turn.options, executor=rx_executor)
    with anyio.fail_after(60):
        if how == "aexit":
            async with client:
                await client.query(turn.prompt)
                async for message in client.receive_messages():
                    if started_tool(message):
                        await turn.running(rx_sshd, rx_account)
                        ended = time.monotonic()
                        break
        else:
            await client.connect()
            await client.query(turn.prompt)
            async for message in client.receive_messages():
                if started_tool(message):
                    break
            await turn.running(rx_sshd, rx_account)
            ended = time.monotonic()
            await client.disconnect()
    record(f"ClaudeSDKClient {how} mid-turn took", time.monotonic() - ended)
    record("... then remote clean after", await remote_clean_within(rx_sshd, rx_account))


@loops_and_backends
async def test_task_cancelled_mid_turn(
    rx_sshd: SSHTestBed,
    rx_account: RemoteAccount,
    rx_executor: rx.SSHExecutor,
    rx_project: Project,
    rx_model: ScriptedModel,
    record: Callable[[str, float], None],
) -> None:
    turn = SlowTurn(rx_model, rx_project)
    results: list[ResultMessage] = []
    with anyio.fail_after(60), anyio.move_on_after(50) as scope:
        async for message in rx.query(
            prompt=turn.prompt, options=turn.options, executor=rx_executor
        ):
            if isinstance(message, ResultMessage):
                results.append(message)
            if started_tool(message):
                await turn.running(rx_sshd, rx_account)
                # The slow turn goes on; the caller's timeout fires in the middle of it.
                scope.deadline = anyio.current_time() + 0.5
                cancelled_at = scope.deadline
    assert scope.cancelled_caught and not results
    record("cancelled (move_on_after fired) -> scope exited", anyio.current_time() - cancelled_at)
    record("... then remote clean after", await remote_clean_within(rx_sshd, rx_account))


@both_backends
@asyncio_only
async def test_executor_aclose_mid_turn(
    rx_ssh_backend: str,
    rx_sshd: SSHTestBed,
    rx_account: RemoteAccount,
    rx_ssh_config: SSHClientConfig,
    rx_project: Project,
    rx_model: ScriptedModel,
    record: Callable[[str, float], None],
) -> None:
    executor = rx.SSHExecutor(
        rx_ssh_config.alias, ssh_config=rx_ssh_config.path, backend=rx_ssh_backend
    )
    turn = SlowTurn(rx_model, rx_project)
    consumer = Consumer(rx.query(prompt=turn.prompt, options=turn.options, executor=executor))
    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            tg.start_soon(consumer.run)
            await turn.running(rx_sshd, rx_account)
            ended = time.monotonic()
            await executor.aclose()
            record("executor.aclose() mid-turn took", time.monotonic() - ended)
            await consumer.ended.wait()
    record("... the query ended after", consumer.ended_at - ended)
    # The session did not finish: the caller hears so (the SDK's ProcessError).
    assert isinstance(consumer.error, ProcessError), repr(consumer.error)
    # Closed executor: not even the master's session is left.
    record(
        "... remote clean (master too) after",
        await wait_until(
            lambda: not rx_sshd.processes(rx_account),
            CLEANUP_DEADLINE,
            lambda: brief(rx_sshd.processes(rx_account)),
        ),
    )


def our_ssh_channels(cfg: SSHClientConfig) -> list[int]:
    """PIDs of the ``ssh`` channel clients this process started for ``cfg`` (not the master)."""
    out = subprocess.run(
        ["ps", "-ww", "-A", "-o", "pid=,ppid=,comm=,args="],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    pids = []
    for line in out.splitlines():
        pid, ppid, comm, args = [*line.split(None, 3), ""][:4]
        if (
            comm == "ssh"
            and int(ppid) == os.getpid()
            and str(cfg.path) in args
            and "-oControlMaster=no" in args
        ):
            pids.append(int(pid))
    return pids


def started_at(pid: int) -> int:
    """When process ``pid`` started (clock ticks since boot)."""
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[19])


@asyncio_only
async def test_local_ssh_client_killed(
    rx_sshd: SSHTestBed,
    rx_account: RemoteAccount,
    fast_executor: rx.SSHExecutor,
    rx_ssh_config: SSHClientConfig,
    rx_project: Project,
    rx_model: ScriptedModel,
    record: Callable[[str, float], None],
) -> None:
    turn = SlowTurn(rx_model, rx_project)
    consumer = Consumer(rx.query(prompt=turn.prompt, options=turn.options, executor=fast_executor))
    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            tg.start_soon(consumer.run)
            await turn.running(rx_sshd, rx_account)
            # The session's channel and its live follower's (started after init); no
            # spare yet: one opens when a spawned job ends.
            await wait_until(lambda: len(our_ssh_channels(rx_ssh_config)) == 2, 10, "2 channels")
            channels = our_ssh_channels(rx_ssh_config)
            assert len(channels) == 2, channels  # nothing else
            os.kill(min(channels, key=started_at), signal.SIGKILL)  # the session's
            ended = time.monotonic()
            await consumer.ended.wait()
    record("local ssh SIGKILLed -> query ended after", consumer.ended_at - ended)
    # Somebody else killed the link: that is a lost process, naming the host.
    assert isinstance(consumer.error, rx.ProcessLost), repr(consumer.error)
    assert isinstance(consumer.error, ProcessError)
    assert fast_executor.host in str(consumer.error)
    record("... remote clean after", await remote_clean_within(rx_sshd, rx_account))


# ---- the link fails --------------------------------------------------------------------


def assert_process_lost(error: BaseException | None, host: str) -> None:
    assert isinstance(error, rx.ProcessLost), repr(error)
    assert isinstance(error, ProcessError)  # what SDK apps already catch
    assert error.host == host and host in str(error)
    assert "can be resumed" in str(error)


@both_backends
async def test_link_dropped_is_process_lost(
    rx_sshd: SSHTestBed,
    rx_account: RemoteAccount,
    fast_executor: rx.SSHExecutor,
    rx_project: Project,
    rx_model: ScriptedModel,
    record: Callable[[str, float], None],
) -> None:
    turn = SlowTurn(rx_model, rx_project)
    consumer = Consumer(rx.query(prompt=turn.prompt, options=turn.options, executor=fast_executor))
    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            tg.start_soon(consumer.run)
            await turn.running(rx_sshd, rx_account)
            assert rx_sshd.kill_sessions(), "no sshd session process to kill"
            ended = time.monotonic()
            with anyio.fail_after(20):
                await consumer.ended.wait()
    record("link dropped -> ProcessLost after", consumer.ended_at - ended)
    assert_process_lost(consumer.error, fast_executor.host)
    record("... remote clean after", await remote_clean_within(rx_sshd, rx_account))
    record("link dropped -> remote clean, total", time.monotonic() - ended)


def session_sshd(account: RemoteAccount) -> list[int]:
    """The per-connection sshd processes serving ``account`` (privileged monitor and child)."""
    out = subprocess.run(
        ["ps", "-ww", "-A", "-o", "pid=,comm=,args="], capture_output=True, text=True, check=True
    ).stdout
    names = {
        f"{prog}: {account.user}{suffix}"
        for prog in ("sshd", "sshd-session")
        for suffix in ("@notty", " [priv]")
    }
    pids = []
    for line in out.splitlines():
        pid, comm, args = [*line.split(None, 2), ""][:3]
        if comm in ("sshd", "sshd-session", "sshd-auth") and args.strip() in names:
            pids.append(int(pid))
    return pids


@loops_and_backends
async def test_link_frozen_is_process_lost_and_the_watchdog_stops_the_cli(
    rx_sshd: SSHTestBed,
    rx_account: RemoteAccount,
    fast_executor: rx.SSHExecutor,
    rx_project: Project,
    rx_model: ScriptedModel,
    record: Callable[[str, float], None],
) -> None:
    turn = SlowTurn(rx_model, rx_project)
    consumer = Consumer(rx.query(prompt=turn.prompt, options=turn.options, executor=fast_executor))
    frozen: list[int] = []
    try:
        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                tg.start_soon(consumer.run)
                running = await turn.running(rx_sshd, rx_account)
                frozen = session_sshd(rx_account)
                assert len(frozen) == 2, frozen  # one connection: monitor and session
                for pid in frozen:
                    os.kill(pid, signal.SIGSTOP)
                ended = time.monotonic()

                # Local side: the keepalives go unanswered, ssh gives up.
                with anyio.fail_after(15):
                    await consumer.ended.wait()
                record("link frozen -> ProcessLost after", consumer.ended_at - ended)
                assert_process_lost(consumer.error, fast_executor.host)
                assert consumer.ended_at - ended < WATCHDOG_SECONDS

                # Remote side: nobody can tell the CLI the link is gone except the
                # watchdog, which sees no heartbeat any more. It stops the whole
                # group (CLI, tool, relay, itself); only the frozen sshd remains.
                await wait_until(
                    lambda: not remote_left(rx_sshd, rx_account),
                    WATCHDOG_SECONDS + 7,
                    lambda: f"still running: {brief(remote_left(rx_sshd, rx_account))}",
                )
                since_freeze = time.monotonic() - ended
                record("link frozen -> remote stopped by the watchdog", since_freeze)
                # Not sooner than the heartbeats allow (one heartbeat may have just landed).
                assert since_freeze >= WATCHDOG_SECONDS - 4, brief(running)
    finally:
        for pid in frozen:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
    record("... after SIGCONT, remote clean after", await remote_clean_within(rx_sshd, rx_account))


# ---- secrets ---------------------------------------------------------------------------


@both_backends
@asyncio_only
async def test_secrets_reach_the_remote_cli_but_never_a_command_line_or_log(
    rx_sshd: SSHTestBed,
    rx_account: RemoteAccount,
    rx_executor: rx.SSHExecutor,
    rx_project: Project,
    rx_model: ScriptedModel,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.DEBUG, logger="remote_executors")
    api_key = f"sk-ant-rx-secret-{secrets.token_hex(16)}"
    token = f"rx-secret-token-{secrets.token_hex(16)}"
    # Whatever key the CLI ends up sending, the turn must work so the test can run.
    monkeypatch.setattr(rx_model, "api_key", None)
    prompt = f"show the token {secrets.token_hex(4)}"
    rx_model.script(
        tool_use(
            "Bash",
            {"command": 'printf "%s\\n" "$RX_SECRET_TOKEN"; sleep 3', "description": "Show"},
        ),
        text("shown"),
        when=prompt,
    )
    options = ClaudeAgentOptions(
        cwd=str(rx_project.local),
        allowed_tools=["Bash"],
        env={"ANTHROPIC_API_KEY": api_key, "RX_SECRET_TOKEN": token},
    )
    polls = 0
    leaks: list[str] = []
    cli_environ: list[bytes] = []

    async def watch_ps() -> None:
        nonlocal polls
        while True:
            out = await anyio.run_process(["ps", "-ww", "-A", "-o", "pid=,args="], check=True)
            polls += 1
            leaks.extend(
                line
                for line in out.stdout.decode("utf-8", "replace").splitlines()
                if api_key in line or token in line
            )
            for p in claude_processes(rx_sshd.processes(rx_account)):
                with contextlib.suppress(OSError):
                    cli_environ.append(open(f"/proc/{p.pid}/environ", "rb").read())
            await anyio.sleep(0.2)

    results = []
    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            tg.start_soon(watch_ps)
            async for message in rx.query(prompt=prompt, options=options, executor=rx_executor):
                if isinstance(message, ResultMessage):
                    results.append(message.result)
            tg.cancel_scope.cancel()

    assert results == ["shown"]
    assert polls >= 5, polls
    assert leaks == [], leaks
    # They did reach the remote CLI: its environment holds both, its Bash tool saw the token.
    assert cli_environ, "never saw the remote CLI"
    assert any(f"ANTHROPIC_API_KEY={api_key}".encode() in env.split(b"\0") for env in cli_environ)
    assert any(f"RX_SECRET_TOKEN={token}".encode() in env.split(b"\0") for env in cli_environ)
    tool_results = rx_model.main_requests[-1].tool_results
    assert [r.content for r in tool_results] == [token]
    # Fact (Claude Code 2.1.x): the account's settings.json "env" wins over the process
    # environment, so the remote's own ANTHROPIC_API_KEY is what reaches the API.
    assert {r.api_key for r in rx_model.main_requests} == {DEFAULT_API_KEY}
    # Our own log records never carry them either.
    assert caplog.records, "expected debug records from remote_executors"
    for record_ in caplog.records:
        text_ = record_.getMessage() + (record_.exc_text or "")
        assert api_key not in text_ and token not in text_, text_


@both_backends
@asyncio_only
async def test_mcp_header_secret_never_on_a_command_line(
    rx_sshd: SSHTestBed,
    rx_account: RemoteAccount,
    rx_executor: rx.SSHExecutor,
    rx_project: Project,
    rx_model: ScriptedModel,
) -> None:
    secret = f"rx-mcp-secret-{secrets.token_hex(16)}"
    prompt = f"mcp {secrets.token_hex(4)}"
    rx_model.script(slow(text("done"), delay=2), when=prompt)  # time for several polls
    options = ClaudeAgentOptions(
        cwd=str(rx_project.local),
        mcp_servers={
            "rx-probe": {
                "type": "http",
                "url": "http://127.0.0.1:9/mcp",
                "headers": {"Authorization": f"Bearer {secret}"},
            }
        },
    )
    leaks: list[str] = []
    polls = 0

    async def watch_ps() -> None:
        nonlocal polls
        while True:
            out = await anyio.run_process(["ps", "-ww", "-A", "-o", "pid=,args="], check=True)
            polls += 1
            leaks.extend(
                line
                for line in out.stdout.decode("utf-8", "replace").splitlines()
                if secret in line
            )
            await anyio.sleep(0.1)

    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            tg.start_soon(watch_ps)
            servers: list[str] = []
            async for message in rx.query(prompt=prompt, options=options, executor=rx_executor):
                if isinstance(message, SystemMessage) and message.subtype == "init":
                    servers = [s["name"] for s in message.data.get("mcp_servers", [])]
            tg.cancel_scope.cancel()
    assert polls >= 3
    assert leaks == [], leaks[:1]
    # The configuration did reach the CLI (through its private file).
    assert "rx-probe" in servers
