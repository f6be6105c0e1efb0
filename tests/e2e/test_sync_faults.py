"""Faults in the middle of a remote session never lose a transcript line.

Real sshd, real CLI on the remote account, the scripted model; the faults are
real too: a TCP proxy in front of sshd (:class:`~remote_executors.testing.link.LinkProxy`)
that resets or black-holes the link, the sshd listener and its sessions
SIGKILLed, the remote CLI SIGKILLed, a pull cancelled part-way, concurrent
pulls from two processes and two tasks, and copies that diverged.

The invariant checked after every fault: the set of complete transcript lines
on each side (the local synced copy under ``CLAUDE_CONFIG_DIR``, the remote
file in the account's home) is a superset of what it was just before the
fault. Then the session is resumed (``options.resume``): the real CLI
continues the conversation (the model's last request holds the earlier
turns), and afterwards the two copies are byte-identical.

Measured figures (time from the fault to the caller's error, and so on) are
printed at the end of the module.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from claude_agent_sdk import (
    Message,
    ProcessError,
)

import remote_executors as rx
from _sessions import SESSION_TIMEOUT, options_for, result_of, run
from remote_executors.paths import project_dir_from_cwd
from remote_executors.sync import SessionPaths, TailSessionSync, locate
from remote_executors.testing.link import LinkProxy
from remote_executors.testing.model import ModelRequest, ScriptedModel, text, tool_use
from remote_executors.testing.plugin import Project
from remote_executors.testing.sshd import (
    ProcessInfo,
    RemoteAccount,
    SSHClientConfig,
    SSHTestBed,
    live_followers,
    spare_channels,
)

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

#: Session-level faults over both SSH backends (each with its default sync strategy):
#: OpenSSH on both event loops, fabric on asyncio (its trio path is covered elsewhere:
#: the SDK feature, conformance and cleanup suites).
both_backends = pytest.mark.parametrize(
    ("anyio_backend", "rx_ssh_backend"),
    [("asyncio", "openssh"), ("trio", "openssh"), ("asyncio", "fabric")],
    indirect=["rx_ssh_backend"],
)

#: ``SSHExecutor``'s remote watchdog stops a session's processes this long after
#: the last heartbeat; a frozen link leaves the remote CLI running until then.
WATCHDOG_SECONDS = 8


# ---- measuring -------------------------------------------------------------------------

#: Heading for the figures ``record`` keeps (tests/e2e/conftest.py).
FIGURES_TITLE = "sync under faults (test_sync_faults.py)"


# ---- both sides ------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def local_claude(private_local_claude: Path) -> Path:
    return private_local_claude


def remote_project_dir(bed: SSHTestBed, account: RemoteAccount, project: Project) -> Path:
    name = project_dir_from_cwd(os.path.realpath(project.remote))
    return bed.remote_home(account) / ".claude" / "projects" / name


def local_project_dir(config: Path, project: Project) -> Path:
    return config / "projects" / project_dir_from_cwd(os.path.realpath(project.local))


def complete(data: bytes) -> bytes:
    """``data`` up to its last newline (a writer may be half-way through a line)."""
    return data[: data.rfind(b"\n") + 1]


def read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return b""


class Transcript:
    """One session's transcript on both sides."""

    def __init__(self, local: Path, remote: Path) -> None:
        self.local = local
        self.remote = remote

    @classmethod
    def of(
        cls, bed: SSHTestBed, account: RemoteAccount, project: Project, config: Path, sid: str
    ) -> Transcript:
        return cls(
            local_project_dir(config, project) / f"{sid}.jsonl",
            remote_project_dir(bed, account, project) / f"{sid}.jsonl",
        )

    def lines(self) -> tuple[frozenset[bytes], frozenset[bytes]]:
        """(local, remote) sets of complete lines."""
        return (
            frozenset(complete(read(self.local)).splitlines()),
            frozenset(complete(read(self.remote)).splitlines()),
        )

    def assert_superset_of(self, before: tuple[frozenset[bytes], frozenset[bytes]]) -> None:
        local, remote = self.lines()
        assert before[0] <= local, f"local lost {len(before[0] - local)} line(s)"
        assert before[1] <= remote, f"remote lost {len(before[1] - remote)} line(s)"

    def assert_identical(self) -> None:
        local, remote = read(self.local), read(self.remote)
        assert local == remote, (len(local), len(remote))
        assert local.endswith(b"\n")


def write_remote(account: RemoteAccount, path: Path, data: bytes, *, append: bool = False) -> None:
    """Write a file in the account's home as the account would own it."""
    missing = []
    parent = path.parent
    while not parent.exists():
        missing.append(parent)
        parent = parent.parent
    for directory in reversed(missing):
        directory.mkdir(mode=0o700)
        os.chown(directory, account.uid, account.gid)
    with path.open("ab" if append else "wb") as f:
        f.write(data)
    os.chown(path, account.uid, account.gid)
    path.chmod(0o600)


# ---- the remote side -------------------------------------------------------------------


def claude_processes(procs: list[ProcessInfo]) -> list[ProcessInfo]:
    return [p for p in procs if p.comm == "claude" or p.args.split(" ", 1)[0].endswith("/claude")]


def brief(procs: list[ProcessInfo]) -> str:
    return "; ".join(f"{p.pid}/{p.ppid} {p.state} {p.args[:100]}" for p in procs)


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


async def remote_cli_gone(bed: SSHTestBed, account: RemoteAccount, timeout: float = 20) -> float:
    """Wait until no CLI of the account runs (so its transcript stops changing)."""
    return await wait_until(
        lambda: not claude_processes(bed.processes(account)),
        timeout,
        lambda: f"the remote CLI still runs: {brief(bed.processes(account))}",
    )


# ---- sessions --------------------------------------------------------------------------


def conversation(request: ModelRequest) -> str:
    return repr(request.messages)


class FaultedSession:
    """A client session whose first turn completes and whose second turn runs a Bash
    ``sleep`` on the remote; the test breaks something while it sleeps.

    The scripted model continues the second turn with a text answer, should the
    CLI get that far, and answers the resume with a third.
    """

    def __init__(self, model: ScriptedModel, project: Project, *, sleep: float) -> None:
        self.marker = secrets.token_hex(4)
        # Unique, so the test can find exactly this sleep among the account's processes.
        self.sleep = f"{sleep:.0f}.{secrets.randbelow(900) + 100}"
        self.first_prompt = f"first question {self.marker}"
        model.script(
            text(f"first answer {self.marker}"),
            tool_use(
                "Bash",
                {"command": f"echo tool-{self.marker}; sleep {self.sleep}", "description": "Wait"},
            ),
            text(f"second answer {self.marker}"),
            text(f"resumed answer {self.marker}"),
            when=self.marker,
        )
        self.project = project
        self.session_id = ""
        self.error: BaseException | None = None
        self.error_at = 0.0
        self.messages: list[Message] = []

    def sleeping(self, bed: SSHTestBed, account: RemoteAccount) -> bool:
        return any(p.args == f"sleep {self.sleep}" for p in bed.processes(account))

    async def run(
        self,
        executor: rx.Executor,
        bed: SSHTestBed,
        account: RemoteAccount,
        transcript: Callable[[str], Transcript],
        inject: Callable[[], Any],
    ) -> tuple[tuple[frozenset[bytes], frozenset[bytes]], float]:
        """Run both turns, call ``inject`` mid-turn; return the lines before it and when."""
        client = rx.ClaudeSDKClient(options_for(self.project), executor=executor)
        before: tuple[frozenset[bytes], frozenset[bytes]] = (frozenset(), frozenset())
        injected_at = 0.0

        async def second_turn() -> None:
            try:
                async for m in client.receive_response():
                    self.messages.append(m)
            except Exception as exc:
                self.error = exc
            finally:
                self.error_at = time.monotonic()

        with anyio.fail_after(SESSION_TIMEOUT):
            async with client:
                await client.query(self.first_prompt)
                first = [m async for m in client.receive_response()]
                self.session_id = result_of(first).session_id
                await client.query(f"second question {self.marker}")
                async with anyio.create_task_group() as tg:
                    tg.start_soon(second_turn)
                    await wait_until(
                        lambda: self.sleeping(bed, account),
                        30,
                        lambda: f"sleep {self.sleep} never ran: {brief(bed.processes(account))}",
                    )
                    # The CLI writes its transcript asynchronously: the tool call
                    # may run before its line is on disk. Break things once it is,
                    # so the interrupted turn is in what must be kept.
                    call = f"echo tool-{self.marker}".encode()
                    await wait_until(
                        lambda: any(
                            call in line for line in transcript(self.session_id).lines()[1]
                        ),
                        30,
                        "the tool call never reached the remote transcript",
                    )
                    before = transcript(self.session_id).lines()
                    injected_at = time.monotonic()
                    inject()
        return before, injected_at

    async def resume(
        self, executor: rx.Executor, model: ScriptedModel, transcript: Transcript
    ) -> None:
        """Resume: the CLI sees the earlier turns; afterwards both copies are identical."""
        messages = await run(
            f"third question {self.marker}",
            options_for(self.project, resume=self.session_id),
            executor,
        )
        assert result_of(messages).session_id == self.session_id
        seen = conversation(model.main_requests[-1])
        assert f"first answer {self.marker}" in seen
        assert f"echo tool-{self.marker}" in seen  # the interrupted turn
        assert f"third question {self.marker}" in seen
        transcript.assert_identical()


# ---- fixtures --------------------------------------------------------------------------


@pytest.fixture
def link(rx_sshd: SSHTestBed) -> Iterator[LinkProxy]:
    """A LinkProxy in front of the bed's sshd."""
    with LinkProxy(rx_sshd.host, rx_sshd.port) as proxy:
        yield proxy


@pytest.fixture
def link_config(link: LinkProxy, rx_ssh_config: SSHClientConfig) -> SSHClientConfig:
    return link.client_config(rx_ssh_config)


@pytest.fixture
async def link_executor(
    link_config: SSHClientConfig, rx_ssh_backend: str
) -> AsyncIterator[rx.SSHExecutor]:
    """Through the proxy; notices a dead link after about 2 s (keepalive 1 s, 2 misses).

    A short connect timeout too: after a loss, the session tries to pull (up to
    5 s) and, on close, tries again (up to 15 s), and behind a frozen link each
    attempt waits for a banner that never comes. With the default 15 s the
    caller hears ProcessLost about 8 s after the freeze and the session takes
    about 23 s to close (measured); with 3 s, about 6 s and 9 s.
    """
    executor = rx.SSHExecutor(
        link_config.alias,
        ssh_config=link_config.path,
        keepalive_interval=1,
        keepalive_count=2,
        connect_timeout=3,
        backend=rx_ssh_backend,
        reattach_within=0,  # a lost link ends the session (test_reattach.py: it need not)
    )
    try:
        yield executor
    finally:
        await executor.aclose()


@pytest.fixture
async def unsupervised_executor(
    rx_ssh_config: SSHClientConfig, rx_ssh_backend: str
) -> AsyncIterator[rx.SSHExecutor]:
    """A lost link ends the session at once (``reattach_within=0``), as these tests expect."""
    executor = rx.SSHExecutor(
        rx_ssh_config.alias,
        ssh_config=rx_ssh_config.path,
        backend=rx_ssh_backend,  # type: ignore[arg-type]
        reattach_within=0,
    )
    try:
        yield executor
    finally:
        await executor.aclose()


@pytest.fixture
def transcript_of(
    rx_sshd: SSHTestBed, rx_account: RemoteAccount, rx_project: Project, local_claude: Path
) -> Callable[[str], Transcript]:
    return lambda sid: Transcript.of(rx_sshd, rx_account, rx_project, local_claude, sid)


def assert_lost(error: BaseException | None, host: str) -> rx.ProcessLost:
    assert isinstance(error, rx.ProcessLost), repr(error)
    assert isinstance(error, ProcessError)  # what SDK apps already catch
    assert error.host == host and host in str(error)
    return error


# ---- the link fails mid-turn -----------------------------------------------------------


@both_backends
async def test_link_cut_mid_turn(
    rx_sshd: SSHTestBed,
    rx_account: RemoteAccount,
    rx_project: Project,
    rx_model: ScriptedModel,
    link: LinkProxy,
    link_executor: rx.SSHExecutor,
    transcript_of: Callable[[str], Transcript],
    record: Callable[[str, float], None],
) -> None:
    session = FaultedSession(rx_model, rx_project, sleep=30)
    before, cut_at = await session.run(link_executor, rx_sshd, rx_account, transcript_of, link.cut)
    assert link.resets >= 1  # the session's connection went through the proxy
    record("link cut -> caller's ProcessLost after (s)", session.error_at - cut_at)
    record("link cut -> session closed after (s)", time.monotonic() - cut_at)
    assert_lost(session.error, link_executor.host)
    # The remote noticed the reset at once: its watchdog stops the CLI.
    await remote_cli_gone(rx_sshd, rx_account)
    record("link cut -> remote CLI gone after (s)", time.monotonic() - cut_at)
    transcript = transcript_of(session.session_id)
    transcript.assert_superset_of(before)
    local_now, remote_now = transcript.lines()
    # The turn's first lines (prompt, tool call) were written remotely before the
    # cut but not pulled: the pull comes with the result, which never came.
    unsynced = remote_now - local_now
    assert unsynced, "expected remote lines the cut kept from being pulled"
    record("lines on the remote only, after the cut", len(unsynced))

    # The failed attempt to save them is on record: the local copy is behind.
    behind = rx.get_session_record(session.session_id)
    assert behind is not None and behind.sync_error

    link.restore()
    await session.resume(link_executor, rx_model, transcript)
    assert unsynced <= transcript.lines()[0]  # pulled on the next contact
    after = rx.get_session_record(session.session_id)
    assert after is not None and after.sync_error is None  # in step again


@both_backends
async def test_link_frozen_mid_turn(
    rx_sshd: SSHTestBed,
    rx_account: RemoteAccount,
    rx_project: Project,
    rx_model: ScriptedModel,
    link: LinkProxy,
    link_executor: rx.SSHExecutor,
    transcript_of: Callable[[str], Transcript],
    record: Callable[[str, float], None],
) -> None:
    # A short tool: the remote CLI, which cannot tell the link is frozen, goes on
    # with the turn (tool result, the model's answer) until the watchdog stops it.
    session = FaultedSession(rx_model, rx_project, sleep=1)
    try:
        before, frozen_at = await session.run(
            link_executor, rx_sshd, rx_account, transcript_of, link.freeze
        )
        closed_at = time.monotonic()
        lost_after = session.error_at - frozen_at
        record("link frozen -> caller's ProcessLost after (s)", lost_after)
        record("link frozen -> session closed after (s)", closed_at - frozen_at)
        assert_lost(session.error, link_executor.host)
        # keepalive 1 s x 2 misses, plus the bounded attempt to save the remote's lines.
        assert lost_after < 12
        await remote_cli_gone(rx_sshd, rx_account, timeout=WATCHDOG_SECONDS + 10)
        record("link frozen -> remote CLI gone after (s)", time.monotonic() - frozen_at)
        transcript = transcript_of(session.session_id)
        transcript.assert_superset_of(before)
        local_now, remote_now = transcript.lines()
        unsynced = remote_now - local_now
        record("lines on the remote only, after the freeze", len(unsynced))
        assert any(f"second answer {session.marker}".encode() in line for line in unsynced), (
            "the remote CLI should have finished the turn behind the frozen link"
        )
    finally:
        link.thaw()
    await session.resume(link_executor, rx_model, transcript)
    assert unsynced <= transcript.lines()[0]
    # The answer the caller never saw is part of the conversation the CLI resumed.
    assert f"second answer {session.marker}" in conversation(rx_model.main_requests[-1])


@both_backends
async def test_sshd_killed_mid_turn(
    rx_sshd: SSHTestBed,
    rx_account: RemoteAccount,
    rx_project: Project,
    rx_model: ScriptedModel,
    unsupervised_executor: rx.SSHExecutor,
    transcript_of: Callable[[str], Transcript],
    record: Callable[[str, float], None],
) -> None:
    def kill() -> None:
        rx_sshd.kill_daemon()
        assert rx_sshd.kill_sessions(), "no sshd session to kill"

    session = FaultedSession(rx_model, rx_project, sleep=30)
    try:
        before, killed_at = await session.run(
            unsupervised_executor, rx_sshd, rx_account, transcript_of, kill
        )
        record("sshd killed -> caller's error after (s)", session.error_at - killed_at)
        assert_lost(session.error, unsupervised_executor.host)
        await remote_cli_gone(rx_sshd, rx_account)
        transcript = transcript_of(session.session_id)
        transcript.assert_superset_of(before)
        unsynced = transcript.lines()[1] - transcript.lines()[0]
        assert unsynced
        # Nobody listens now: a resume fails, typed, and changes nothing.
        snapshot = transcript.lines()
        with pytest.raises(rx.HostUnreachable):
            await run(
                "too early",
                options_for(rx_project, resume=session.session_id),
                unsupervised_executor,
            )
        assert transcript.lines() == snapshot
    finally:
        rx_sshd.restart()
    await session.resume(unsupervised_executor, rx_model, transcript)
    assert unsynced <= transcript.lines()[0]


@both_backends
async def test_remote_cli_killed_mid_turn(
    rx_sshd: SSHTestBed,
    rx_account: RemoteAccount,
    rx_project: Project,
    rx_model: ScriptedModel,
    rx_executor: rx.SSHExecutor,
    transcript_of: Callable[[str], Transcript],
    record: Callable[[str, float], None],
) -> None:
    def kill() -> None:
        clis = claude_processes(rx_sshd.processes(rx_account))
        assert clis, brief(rx_sshd.processes(rx_account))
        for p in clis:
            os.kill(p.pid, signal.SIGKILL)

    session = FaultedSession(rx_model, rx_project, sleep=30)
    before, killed_at = await session.run(rx_executor, rx_sshd, rx_account, transcript_of, kill)
    record("remote CLI killed -> caller's error after (s)", session.error_at - killed_at)
    # The link is fine, the program died: the SDK's own ProcessError, not ProcessLost.
    assert isinstance(session.error, ProcessError), repr(session.error)
    assert not isinstance(session.error, rx.ProcessLost), repr(session.error)
    transcript = transcript_of(session.session_id)
    transcript.assert_superset_of(before)
    # The link still worked, so the session's end pulled what the CLI wrote.
    await remote_cli_gone(rx_sshd, rx_account)
    transcript.assert_identical()
    await session.resume(rx_executor, rx_model, transcript)


# ---- the sync itself is interrupted or contended ---------------------------------------


def jsonl(start: int, count: int, pad: int = 200) -> bytes:
    filler = "x" * pad
    return b"".join(
        f'{{"type":"user","n":{n},"pad":"{filler}"}}\n'.encode()
        for n in range(start, start + count)
    )


class PrefixWatch:
    """A thread that keeps checking the local copy is a prefix of the remote one.

    It also counts how often it caught the local copy ending in a partial line:
    a fast-forward appends in place (``append_exactly``), so a reader can see an
    append half-done, as it can with the CLI's own appends. Still a prefix.
    """

    def __init__(self, local: Path, remote: Path) -> None:
        self.local = local
        self.remote = remote
        self.checks = 0
        self.violations: list[str] = []
        self.torn = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            local = read(self.local)  # first: the remote only grows
            remote = read(self.remote)
            if not remote.startswith(local):
                self.violations.append(f"local {len(local)} bytes, remote {len(remote)} bytes")
            if local and not local.endswith(b"\n"):
                self.torn += 1
            self.checks += 1
            self._stop.wait(0.002)

    def __enter__(self) -> PrefixWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


async def test_interrupted_pull_leaves_a_prefix_and_the_next_one_completes(
    rx_sshd: SSHTestBed,
    rx_account: RemoteAccount,
    rx_project: Project,
    link: LinkProxy,
    link_executor: rx.SSHExecutor,
    local_claude: Path,
    record: Callable[[str, float], None],
) -> None:
    sync = TailSessionSync()
    remote_dir = remote_project_dir(rx_sshd, rx_account, rx_project)
    big = jsonl(0, 90_000)  # about 20 MB
    # Calibrate: how long a whole pull of that much takes here (another session).
    calibration = str(uuid.uuid4())
    write_remote(rx_account, remote_dir / f"{calibration}.jsonl", big)
    paths = await locate(link_executor, local_cwd=rx_project.local, session_id=calibration)
    started = time.monotonic()
    await sync.pull(link_executor, paths)
    whole = time.monotonic() - started
    record(f"whole pull of {len(big) / 1e6:.0f} MB (s)", whole)

    sid = str(uuid.uuid4())
    remote = remote_dir / f"{sid}.jsonl"
    write_remote(rx_account, remote, big)
    paths = SessionPaths(
        local_dir=local_project_dir(local_claude, rx_project),
        remote_project=paths.remote_project,
        session_id=sid,
    )
    local = paths.local_dir / f"{sid}.jsonl"
    transcript = Transcript(local, remote)

    async def interrupted(fractions: list[float]) -> int:
        """Pulls cancelled at those fractions of a whole pull (until one completes);
        how many were cancelled mid-transfer."""
        mid_transfer = 0
        for fraction in fractions:
            if read(local) == read(remote):
                break
            before = transcript.lines()
            moved_before = link.bytes_down
            with anyio.move_on_after(whole * fraction) as scope:
                await sync.pull(link_executor, paths)
            moved = link.bytes_down - moved_before
            if scope.cancelled_caught and moved > 1_000_000:
                mid_transfer += 1
            transcript.assert_superset_of(before)
            assert not [p.name for p in paths.local_dir.iterdir() if p.name.startswith(".")]
        return mid_transfer

    with PrefixWatch(local, remote) as watch:
        mid = await interrupted([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8])
        assert mid >= 1, "no pull was cancelled part-way through the transfer"
        record("pulls cancelled mid-transfer (of 8), fresh local", mid)
        # A partly synced local copy, and a remote that grew: the tail path.
        await sync.pull(link_executor, paths)
        write_remote(rx_account, remote, jsonl(90_000, 45_000), append=True)
        await interrupted([0.05, 0.2, 0.4])
        report = await sync.pull(link_executor, paths)
        assert report.moved > 0 or read(local) == read(remote)
    assert not watch.violations, watch.violations[:3]
    assert watch.checks > 50, watch.checks
    record("prefix checks while pulling", watch.checks)
    record("... of which saw an append half-done", watch.torn)
    transcript.assert_identical()

    # Every cancelled fetch was stopped on the remote too (the executor's spare
    # channel, a bootstrap waiting for its next job, is not one of them).
    def fetch_leftovers() -> list[ProcessInfo]:
        procs = rx_sshd.processes(rx_account)
        keep = spare_channels(procs) | live_followers(procs)
        return [p for p in procs if p.comm in ("sh", "tail", "head", "wc") and p.pid not in keep]

    await wait_until(lambda: not fetch_leftovers(), 5, lambda: brief(rx_sshd.processes(rx_account)))


PULLER = r"""
import sys
from pathlib import Path

import anyio

from remote_executors.executors.ssh import SSHExecutor
from remote_executors.sync import SessionPaths, TailSessionSync


async def main(alias, config, local_dir, project, sid, rounds):
    sync = TailSessionSync()
    paths = SessionPaths(local_dir=Path(local_dir), remote_project=project, session_id=sid)
    async with SSHExecutor(alias, ssh_config=config) as executor:
        for _ in range(int(rounds)):
            report = await sync.pull(executor, paths)
            print(report.moved, flush=True)


anyio.run(main, *sys.argv[1:])
"""


async def test_concurrent_pulls_from_two_processes_and_two_tasks(
    rx_sshd: SSHTestBed,
    rx_account: RemoteAccount,
    rx_project: Project,
    rx_ssh_config: SSHClientConfig,
    rx_executor: rx.SSHExecutor,
    local_claude: Path,
    record: Callable[[str, float], None],
) -> None:
    sid = str(uuid.uuid4())
    remote = remote_project_dir(rx_sshd, rx_account, rx_project) / f"{sid}.jsonl"
    write_remote(rx_account, remote, jsonl(0, 10_000))
    paths = await locate(rx_executor, local_cwd=rx_project.local, session_id=sid)
    local = paths.local_dir / f"{sid}.jsonl"
    rounds = 6

    growing = threading.Event()
    appended = [10_000]

    def grow() -> None:
        # One write per line, as the CLI appends: a reader may catch a line half-written.
        with remote.open("ab", buffering=0) as f:
            while not growing.is_set():
                n = appended[0]
                line = jsonl(n, 1, pad=secrets.randbelow(3000))
                f.write(line[: len(line) // 2])
                f.write(line[len(line) // 2 :])
                appended[0] += 1
                time.sleep(0.001)

    reports: list[int] = []

    async def task_pulls() -> None:
        sync = TailSessionSync()
        for _ in range(rounds):
            reports.append((await sync.pull(rx_executor, paths)).moved)

    argv = [
        sys.executable,
        "-c",
        PULLER,
        rx_ssh_config.alias,
        str(rx_ssh_config.path),
        str(paths.local_dir),
        paths.remote_project,
        sid,
        str(rounds),
    ]
    grower = threading.Thread(target=grow, daemon=True)
    started = time.monotonic()
    with PrefixWatch(local, remote) as watch:
        grower.start()
        try:
            with anyio.fail_after(120):
                outputs: list[subprocess.CompletedProcess[bytes]] = []

                async def child() -> None:
                    outputs.append(await anyio.run_process(argv, check=False))

                async with anyio.create_task_group() as tg:
                    tg.start_soon(child)
                    tg.start_soon(child)
                    tg.start_soon(task_pulls)
                    tg.start_soon(task_pulls)
        finally:
            growing.set()
            grower.join()
    record("4 concurrent pullers x 6 pulls, remote growing (s)", time.monotonic() - started)
    for out in outputs:
        assert out.returncode == 0, out.stderr.decode()[-3000:]
        assert len(out.stdout.split()) == rounds
    assert len(reports) == 2 * rounds
    assert not watch.violations, watch.violations[:3]
    record("lines appended remotely meanwhile", appended[0] - 10_000)
    moved = sum(reports) + sum(int(n) for out in outputs for n in out.stdout.split())
    record("bytes moved by all pulls", moved)
    # Every pull moved only what local lacked: together, at most the file once.
    assert moved <= remote.stat().st_size
    await TailSessionSync().pull(rx_executor, paths)
    Transcript(local, remote).assert_identical()
    lines = read(local).splitlines()
    assert len(lines) == len(set(lines)) == appended[0]


# ---- diverged copies -------------------------------------------------------------------

DIVERGENCES = {
    # name: (bytes appended locally, bytes appended remotely)
    "same length": (b'{"side":"local","n":1}\n', b'{"side":"remot","n":1}\n'),
    "local longer": (b'{"side":"local","pad":"' + b"l" * 500 + b'"}\n', b'{"side":"remote"}\n'),
    "local shorter": (b'{"side":"l"}\n', b'{"side":"remote","pad":"' + b"r" * 500 + b'"}\n'),
}


@both_backends
async def test_diverged_transcript_at_resume_is_a_conflict_and_nothing_is_overwritten(
    rx_sshd: SSHTestBed,
    rx_account: RemoteAccount,
    rx_project: Project,
    rx_model: ScriptedModel,
    rx_executor: rx.SSHExecutor,
    transcript_of: Callable[[str], Transcript],
    record: Callable[[str, float], None],
) -> None:
    marker = secrets.token_hex(4)
    rx_model.script(text(f"synced answer {marker}"), when=marker)
    sid = result_of(await run(f"hello {marker}", options_for(rx_project), rx_executor)).session_id
    transcript = transcript_of(sid)
    transcript.assert_identical()
    synced = read(transcript.local)

    for name, (local_extra, remote_extra) in DIVERGENCES.items():
        transcript.local.write_bytes(synced + local_extra)
        write_remote(rx_account, transcript.remote, synced + remote_extra)
        requests = len(rx_model.requests)
        started = time.monotonic()
        with pytest.raises(rx.SessionConflict) as caught:
            await run("continue", options_for(rx_project, resume=sid), rx_executor)
        record(f"{name}: resume refused after (s)", time.monotonic() - started)
        error = caught.value
        assert error.host == rx_executor.name and rx_executor.name in str(error), name
        assert error.session_id == sid
        [(local_path, copy)] = error.copies
        assert local_path == str(transcript.local)
        # Both copies kept: the local one untouched, the remote one saved beside it...
        assert transcript.local.read_bytes() == synced + local_extra, name
        assert Path(copy).read_bytes() == synced + remote_extra, name
        assert Path(copy).parent == transcript.local.parent
        # ...and the remote one untouched there. The CLI never started.
        assert transcript.remote.read_bytes() == synced + remote_extra, name
        assert len(rx_model.requests) == requests, name
        assert not claude_processes(rx_sshd.processes(rx_account))
        Path(copy).unlink()
