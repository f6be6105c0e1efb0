"""A hostile or unlucky remote cannot hurt the local side: sync, for real.

The remote is the loopback sshd test bed's account; the test plays the remote's
part by writing its files directly (as root). Each test provokes one thing a
remote can do to a pull: claim a file of many gigabytes, hold a session of
thousands of files, rewrite its transcript over and over, or leave our temp
files behind after a ``kill -9``. Local memory is measured for real (Linux
``VmHWM``, reset through ``/proc/self/clear_refs`` before the pull).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import anyio
import pytest

import remote_executors as rx
from remote_executors.executors.base import CommandResult
from remote_executors.sync import (
    RsyncSessionSync,
    SessionPaths,
    SftpSessionSync,
    TailSessionSync,
)
from remote_executors.sync._reconcile import MAX_CONFLICT_COPIES
from remote_executors.sync._sweep import STALE_SECONDS
from remote_executors.testing.sshd import RemoteAccount, SSHClientConfig, SSHTestBed
from remote_executors.testing.sync_conformance import AccountRemoteSide, transcript

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

PROJECT = "-home-rx-code-hostile"
GIB = 1 << 30
MIB = 1 << 20
#: The issue's bound: local peak memory above the level before the pull.
MEMORY_BOUND_MIB = 64
STRATEGIES = {
    "tail": (TailSessionSync, "openssh"),
    "rsync": (RsyncSessionSync, "openssh"),
    "sftp": (SftpSessionSync, "fabric"),
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the subject is the file system and the link, not the event loop


@pytest.fixture(autouse=True)
def _data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REMOTE_EXECUTORS_DATA_DIR", str(tmp_path / "rx-data"))


@pytest.fixture
def remote(rx_sshd: SSHTestBed, rx_account: RemoteAccount) -> AccountRemoteSide:
    return AccountRemoteSide(rx_sshd, rx_account, PROJECT)


@pytest.fixture
def paths(remote: AccountRemoteSide, tmp_path: Path) -> SessionPaths:
    return remote.session_paths(tmp_path / "local" / "-Users-me-code-hostile", str(uuid.uuid4()))


@contextlib.asynccontextmanager
async def executor_for(cfg: SSHClientConfig, backend: str) -> AsyncIterator[rx.SSHExecutor]:
    async with rx.SSHExecutor(cfg.alias, ssh_config=str(cfg.path), backend=backend) as executor:  # type: ignore[arg-type]
        yield executor


def rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/self/status")


async def peak_mib(action: Callable[[], Awaitable[Any]]) -> tuple[float, BaseException | None]:
    """Peak memory above the level before ``action`` (MiB), and what it raised."""
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := current RSS
    before = rss_kib("VmRSS")
    raised: BaseException | None = None
    try:
        await action()
    except rx.SyncError as exc:
        raised = exc
    return (rss_kib("VmHWM") - before) / 1024, raised


def sparse(remote: AccountRemoteSide, rel: str, size: int) -> Path:
    """A file of ``size`` bytes on the remote that takes no disk there (zeros)."""
    remote.write(rel, b"")
    path = remote.base / rel
    os.truncate(path, size)
    return path


# --------------------------------------------------------------------------- size


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
async def test_a_10_gib_file_is_refused_in_bounded_memory_and_the_rest_syncs(
    strategy, remote, paths, rx_ssh_config, record
):
    make, backend = STRATEGIES[strategy]
    sid = paths.session_id
    remote.write(f"{sid}.jsonl", transcript(20))
    sparse(remote, f"{sid}/tool-results/huge.bin", 10 * GIB)
    async with executor_for(rx_ssh_config, backend) as executor:
        started = time.monotonic()
        peak, raised = await peak_mib(lambda: make().pull(executor, paths))
        took = time.monotonic() - started
    record(f"{strategy}: 10 GiB refused after (s)", took)
    record(f"{strategy}: peak memory above baseline (MiB)", peak)
    assert isinstance(raised, rx.SyncTooLarge), raised
    assert raised.path == f"{sid}/tool-results/huge.bin" and raised.limit == GIB
    assert raised.size in (10 * GIB, -1)  # rsync only says it is over the limit
    assert "huge.bin" in str(raised) and executor.name in str(raised)
    assert "max_file_bytes" in str(raised)
    assert peak < MEMORY_BOUND_MIB
    # The rest of the session synced; nothing of the huge file is here.
    assert (paths.local_dir / f"{sid}.jsonl").read_bytes() == transcript(20)
    assert not list(paths.local_dir.rglob("huge.bin*"))
    assert not [p for p in paths.local_dir.rglob(".*") if p.is_file()]


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
async def test_a_large_file_streams_to_disk_in_bounded_memory(
    strategy, remote, paths, rx_ssh_config, record
):
    """300 MiB (past the in-memory budget): copied whole, byte for byte, with memory
    far below its size (the strategies used to hold 1 to 3 times the file)."""
    make, backend = STRATEGIES[strategy]
    sid = paths.session_id
    remote.write(f"{sid}.jsonl", transcript(5))
    size = 300 * MIB
    source = sparse(remote, f"{sid}/tool-results/large.bin", size)
    with open(source, "r+b") as f:  # something that is not zeros, at both ends
        f.write(b"head")
        f.seek(size - 4)
        f.write(b"tail")
    async with executor_for(rx_ssh_config, backend) as executor:
        started = time.monotonic()
        peak, raised = await peak_mib(lambda: make().pull(executor, paths))
        took = time.monotonic() - started
    record(f"{strategy}: 300 MiB pulled in (s)", took)
    record(f"{strategy}: peak memory above baseline (MiB)", peak)
    assert raised is None
    assert peak < MEMORY_BOUND_MIB
    copy = paths.local_dir / sid / "tool-results" / "large.bin"
    assert copy.stat().st_size == size
    with open(copy, "rb") as mine, open(source, "rb") as theirs:
        while block := theirs.read(8 * MIB):
            assert mine.read(len(block)) == block


async def test_a_file_that_grows_past_what_was_announced_is_cut_off(remote, paths, rx_executor):
    """The streamed read stops at the size the listing announced: a remote that
    keeps sending gets a typed error, never unbounded memory or disk."""
    sid = paths.session_id
    remote.write(f"{sid}.jsonl", transcript(3))
    source = sparse(remote, f"{sid}/tool-results/growing.bin", 20 * MIB)
    sync = TailSessionSync()
    # The account's shell puts a `head` first on PATH that, asked for bytes
    # (`head -c`), never stops sending.
    home = remote.base.parent.parent.parent
    fake = home / "fakebin"
    fake.mkdir(exist_ok=True)
    (fake / "head").write_text(
        '#!/bin/sh\ncase $1 in -c) exec cat /dev/zero ;; esac\nexec /usr/bin/head "$@"\n'
    )
    (fake / "head").chmod(0o755)
    for path in (fake, fake / "head"):
        os.chown(path, *_owner(remote))
    bashrc = home / ".bashrc"
    before = bashrc.read_text() if bashrc.exists() else ""
    bashrc.write_text(before + f'\nexport PATH="{fake}:$PATH"\n')
    try:
        started = time.monotonic()
        peak, raised = await peak_mib(lambda: sync.pull(rx_executor, paths))
        took = time.monotonic() - started
    finally:
        bashrc.write_text(before)
    assert isinstance(raised, rx.SyncError), raised
    assert took < 60 and peak < MEMORY_BOUND_MIB * 2
    assert source.stat().st_size == 20 * MIB
    assert not list(paths.local_dir.rglob("growing.bin"))


def _owner(remote: AccountRemoteSide) -> tuple[int, int]:
    info = remote.base.parent.stat()
    return info.st_uid, info.st_gid


# --------------------------------------------------------------------------- many files


class CountingExecutor:
    """Runs everything through ``inner``; keeps the longest argv and stdin it saw."""

    def __init__(self, inner: rx.SSHExecutor) -> None:
        self.inner = inner
        self.longest_argv = 0

    @property
    def name(self) -> str:
        return self.inner.name

    async def run(self, argv: Sequence[str], **kwargs: Any) -> CommandResult:
        self.longest_argv = max(self.longest_argv, sum(len(a) for a in argv))
        return await self.inner.run(argv, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def test_ten_thousand_files_sync_and_a_turn_reads_what_changed(
    remote, paths, rx_executor, record
):
    sid = paths.session_id
    remote.write(f"{sid}.jsonl", transcript(10))
    old = time.time() - 3600
    for i in range(10_000):
        rel = f"{sid}/subagents/agent-{i:05d}.jsonl"
        remote.write(rel, b'{"n":%d}\n' % i)
        os.utime(remote.base / rel, (old, old))  # subagents that ran an hour ago
    counting = CountingExecutor(rx_executor)
    sync = TailSessionSync()
    started = time.monotonic()
    first = await sync.pull(counting, paths)  # type: ignore[arg-type]
    record("10k files: first pull (s)", time.monotonic() - started)
    assert len(first.files) == 10_001
    assert (
        paths.local_dir / sid / "subagents" / "agent-09999.jsonl"
    ).read_bytes() == b'{"n":9999}\n'
    started = time.monotonic()
    again = await sync.pull(counting, paths)  # type: ignore[arg-type]
    record("10k files: pull with nothing new (s)", time.monotonic() - started)
    assert again.moved == 0
    # A turn: the transcript grows, one subagent writes.
    remote.append(f"{sid}.jsonl", transcript(2, tag="turn"))
    remote.append(f"{sid}/subagents/agent-04242.jsonl", b'{"more":1}\n')
    started = time.monotonic()
    turn = await sync.pull_recent(counting, paths)  # type: ignore[arg-type]  # as after a turn
    record("10k files: a turn's pull (s)", time.monotonic() - started)
    assert {f.path for f in turn.files if f.moved} == {
        f"{sid}.jsonl",
        f"{sid}/subagents/agent-04242.jsonl",
    }
    assert len(turn.files) < 300  # only what changed (and what moved last time) was looked at
    assert (paths.local_dir / sid / "subagents" / "agent-04242.jsonl").read_bytes() == (
        b'{"n":4242}\n{"more":1}\n'
    )
    # Names travel on stdin: the command line stays the size of the scripts.
    assert counting.longest_argv < 20_000


# --------------------------------------------------------------------------- conflicts


async def test_a_remote_that_keeps_rewriting_cannot_pile_up_conflict_copies(
    remote, paths, rx_executor
):
    sid = paths.session_id
    rel = f"{sid}.jsonl"
    remote.write(rel, transcript(50))
    sync = TailSessionSync()
    await sync.pull(rx_executor, paths)
    local = paths.local_dir / rel
    mine = transcript(50) + b'{"from":"local"}\n'
    local.write_bytes(mine)
    messages = []
    for round_ in range(MAX_CONFLICT_COPIES + 3):
        remote.write(rel, transcript(60, tag=f"rewrite-{round_}"))  # a new history each time
        with pytest.raises(rx.SessionConflict) as caught:
            await sync.pull(rx_executor, paths)
        messages.append(str(caught.value))
    copies = sorted(paths.local_dir.glob(f"{rel}.conflict-*"))
    assert len(copies) == MAX_CONFLICT_COPIES
    assert local.read_bytes() == mine  # never touched
    assert "was not saved again" in messages[-1] and "was not saved again" not in messages[0]
    # The same remote state again saves nothing new either.
    with pytest.raises(rx.SessionConflict):
        await sync.pull(rx_executor, paths)
    assert len(sorted(paths.local_dir.glob(f"{rel}.conflict-*"))) == MAX_CONFLICT_COPIES


# --------------------------------------------------------------------------- kill -9


PULL_IN_A_CHILD = """
import sys
from pathlib import Path
import anyio
import remote_executors as rx
from remote_executors.sync import SessionPaths, TailSessionSync
alias, config, local_dir, project, sid = sys.argv[1:]
paths = SessionPaths(local_dir=Path(local_dir), remote_project=project, session_id=sid)
async def main():
    async with rx.SSHExecutor(alias, ssh_config=config) as executor:
        await TailSessionSync().pull(executor, paths)
anyio.run(main)
"""


async def test_temp_files_a_killed_pull_leaves_are_swept_by_the_next(
    remote, paths, rx_ssh_config, rx_executor
):
    """``kill -9`` of a process in the middle of installing a file leaves its temp
    file; the next sync removes it once no live writer can own it."""
    sid = paths.session_id
    remote.write(f"{sid}.jsonl", transcript(5))
    sparse(remote, f"{sid}/tool-results/big.bin", 200 * MIB)
    child = subprocess.Popen(
        [sys.executable, "-c", PULL_IN_A_CHILD, rx_ssh_config.alias, str(rx_ssh_config.path),
         str(paths.local_dir), PROJECT, sid],
        env={**os.environ},
    )  # fmt: skip
    target_dir = paths.local_dir / sid / "tool-results"
    try:
        with anyio.fail_after(60):
            while (
                not [p for p in target_dir.glob(".big.bin.*.tmp")] if target_dir.exists() else True
            ):
                await anyio.sleep(0.01)
            await anyio.sleep(0.2)  # well into the copy
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait()
    [left] = list(target_dir.glob(".big.bin.*.tmp"))
    # Fresh: it could still be someone's, so it stays.
    await TailSessionSync().pull(rx_executor, paths)
    assert left.exists() or not list(target_dir.glob(".big.bin.*.tmp"))
    if left.exists():
        stale = time.time() - STALE_SECONDS - 60
        os.utime(left, (stale, stale))
        await TailSessionSync().pull(rx_executor, paths)
        assert not left.exists()
    assert (target_dir / "big.bin").stat().st_size == 200 * MIB


# ------------------------------------------------------------- a CLI that never answers


@pytest.mark.parametrize("entry", ["query", "client"])
async def test_a_cli_that_never_answers_is_a_typed_error_in_bounded_time(
    entry, rx_sshd, rx_account, rx_ssh_config, rx_project, rx_model
):
    silent = rx_sshd.remote_home(rx_account) / "bin" / "silent-claude"
    rx_sshd.run_as(
        rx_account,
        ["/bin/sh", "-c", 'mkdir -p "${1%/*}" && printf "#!/bin/sh\\nexec cat >/dev/null\\n" > "$1"'
         ' && chmod 755 "$1"', "sh", str(silent)],
        check=True,
    )  # fmt: skip
    from claude_agent_sdk import ClaudeAgentOptions

    options = ClaudeAgentOptions(cwd=str(rx_project.local))
    async with rx.SSHExecutor(
        rx_ssh_config.alias, ssh_config=str(rx_ssh_config.path), claude_path=str(silent)
    ) as executor:
        started = time.monotonic()
        with pytest.raises(rx.ClaudeNotResponding) as caught, anyio.fail_after(30):
            if entry == "query":
                async for _ in rx.query(
                    prompt="hi", options=options, executor=executor, start_timeout=2
                ):
                    pass
            else:
                async with rx.ClaudeSDKClient(options, executor, start_timeout=2):
                    pass
        took = time.monotonic() - started
    error = caught.value
    assert 2 <= took < 15
    assert error.host == executor.name and error.path == str(silent)
    assert str(silent) in str(error) and executor.name in str(error)
    assert rx_model.requests == []
    with anyio.fail_after(15):  # and it is gone from the host
        while [p for p in rx_sshd.processes(rx_account) if str(silent) in p.args]:
            await anyio.sleep(0.1)
