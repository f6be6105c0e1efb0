"""SftpSessionSync over a real sshd: cost, the push's race handling, real faults.

The conformance suite (test_sync_conformance_sftp_ssh.py) covers the rules;
this module covers what is particular to SFTP, with real faults: the remote
disk full (a tmpfs) or read-only, files the login user may not read, the TCP
link reset half-way through a pull or a push (a LinkProxy in front of sshd,
cut from inside the transfer), a server without ``copy-data`` or
``statvfs@openssh.com`` (the request renamed so sshd itself answers
"unsupported"), and a writer appending on the remote while a push renames.
After each: no transcript line lost on either side, and the next sync
completes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from paramiko.sftp import CMD_READ, CMD_WRITE

from _sftp_faults import SftpFaultExecutor
from _tmpfs import remount, tmpfs
from remote_executors.errors import (
    ConnectionFailed,
    SessionConflict,
    SyncDiskFull,
    SyncError,
    SyncPermissionDenied,
)
from remote_executors.executors.ssh import SSHExecutor
from remote_executors.sync import SessionPaths, SftpSessionSync, TailSessionSync
from remote_executors.testing.link import LinkProxy
from remote_executors.testing.sshd import RemoteAccount, SSHClientConfig, SSHTestBed
from remote_executors.testing.sync_conformance import AccountRemoteSide, jsonl, transcript

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

SID = "5f7c0a1e-9d2b-4c3e-8f4a-6b5c4d3e2f1a"
PROJECT = "-home-rx-code-shop"
T = f"{SID}.jsonl"


@pytest.fixture(autouse=True)
def _data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REMOTE_EXECUTORS_DATA_DIR", str(tmp_path / "rx-data"))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def rx_ssh_backend() -> str:
    return "fabric"


@pytest.fixture
def remote(rx_sshd: SSHTestBed, rx_account: RemoteAccount) -> AccountRemoteSide:
    return AccountRemoteSide(rx_sshd, rx_account, PROJECT)


@pytest.fixture
def paths(remote: AccountRemoteSide, tmp_path: Path) -> SessionPaths:
    return remote.session_paths(tmp_path / "local" / "-Users-me-code-shop", SID)


def local_files(paths: SessionPaths) -> dict[str, bytes]:
    top = paths.local_dir
    if not top.is_dir():
        return {}
    return {p.relative_to(top).as_posix(): p.read_bytes() for p in top.rglob("*") if p.is_file()}


def write_local(paths: SessionPaths, rel: str, data: bytes) -> None:
    path = paths.local_dir / rel
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.write_bytes(data)


def temps(remote: AccountRemoteSide) -> list[str]:
    return [rel for rel in remote.files() if ".rx-sftp-" in rel]


class Counter:
    """Bytes asked for by READ requests and sent by WRITE requests."""

    def __init__(self) -> None:
        self.read = 0
        self.written = 0

    def __call__(self, t: int, args: list[Any]) -> None:
        if t == CMD_READ:
            self.read += int(args[2])
        elif t == CMD_WRITE:
            self.written += len(args[2])


# -- cost ---------------------------------------------------------------------------


async def test_cost_follows_new_bytes(
    rx_executor: SSHExecutor, remote: AccountRemoteSide, paths: SessionPaths
) -> None:
    big = transcript(12_000, pad=80)  # about 1.3 MB
    remote.write(T, big)
    write_local(paths, T, big)
    sync = SftpSessionSync(timeout=30)
    await sync.pull(rx_executor, paths)
    new = transcript(10, tag="remote", pad=70)
    remote.append(T, new)
    counted = Counter()
    report = await sync.pull(SftpFaultExecutor(rx_executor, before_request=counted), paths)
    assert report.moved == len(new)
    # The first 4 KiB, the 4 KiB window, the new bytes: nothing else is read.
    assert counted.read == 4096 + 4096 + len(new)

    added = transcript(10, tag="local", pad=70)
    with open(paths.local_dir / T, "ab") as f:
        f.write(added)
    counted = Counter()
    report = await sync.push(SftpFaultExecutor(rx_executor, before_request=counted), paths)
    assert report.moved == len(added)
    assert remote.snapshot() == local_files(paths)
    # The decision reads the shorter remote whole (after its window, as
    # TailSessionSync's does); the remote's own bytes are copied there by the
    # server, only the new ones travel.
    remote_size = len(big) + len(new)
    assert remote_size <= counted.read <= remote_size + 2 * 4096
    assert counted.written == len(added)


async def test_without_copy_data_and_fsync(
    rx_executor: SSHExecutor, remote: AccountRemoteSide, paths: SessionPaths
) -> None:
    """A server lacking both extensions: the prefix is uploaded from the local copy."""
    first = transcript(300)
    remote.write(T, first)
    write_local(paths, T, first + transcript(5, tag="local"))
    counted = Counter()
    lacking = SftpFaultExecutor(
        rx_executor, unsupported={"copy-data", "fsync@openssh.com"}, before_request=counted
    )
    report = await SftpSessionSync(timeout=30).push(lacking, paths)
    assert lacking.injected >= 2
    assert report.moved == len(transcript(5, tag="local"))
    assert counted.written == len(first + transcript(5, tag="local"))
    assert remote.snapshot() == local_files(paths)
    assert remote.mode(T) == 0o600


# -- a writer on the remote during the push's rename ---------------------------------


async def test_append_during_the_rename_is_put_back(
    rx_executor: SSHExecutor, remote: AccountRemoteSide, paths: SessionPaths
) -> None:
    """The line lands between the push's last size check and its rename: the old
    file is put back with it, and the push reports the change."""
    common = transcript(50)
    late = jsonl({"from": "remote, during the rename"})
    remote.write(T, common)
    write_local(paths, T, common + jsonl({"from": "local"}))
    racing = SftpFaultExecutor(rx_executor, before_rename=[lambda: remote.append(T, late)])
    with pytest.raises(SyncError) as caught:
        await SftpSessionSync(timeout=30).push(racing, paths)
    assert racing.injected == 1
    assert not isinstance(caught.value, SessionConflict)
    assert "put back" in str(caught.value) and rx_executor.name in str(caught.value)
    assert remote.read(T) == common + late
    assert (paths.local_dir / T).read_bytes() == common + jsonl({"from": "local"})
    assert temps(remote) == []
    with pytest.raises(SessionConflict):  # the two copies diverged: both kept
        await SftpSessionSync(timeout=30).push(rx_executor, paths)


async def test_appends_to_both_copies_during_the_rename_are_all_kept(
    rx_executor: SSHExecutor, remote: AccountRemoteSide, paths: SessionPaths
) -> None:
    """A line lands in the old file before the rename, and another in the pushed
    copy before it is put back: the path gets the old file back, the pushed copy
    with its line is saved here as a conflict copy."""
    common = transcript(50)
    mine = common + jsonl({"from": "local"})
    first, second = jsonl({"late": 1}), jsonl({"late": 2})
    remote.write(T, common)
    write_local(paths, T, mine)
    racing = SftpFaultExecutor(
        rx_executor,
        before_rename=[lambda: remote.append(T, first), lambda: remote.append(T, second)],
    )
    with pytest.raises(SessionConflict) as caught:
        await SftpSessionSync(timeout=30).push(racing, paths)
    assert racing.injected == 2
    [(local, copy)] = caught.value.copies
    assert Path(local).read_bytes() == mine
    assert Path(copy).read_bytes() == mine + second
    assert remote.read(T) == common + first
    assert temps(remote) == []


# -- the remote disk: full, read-only -------------------------------------------------


@pytest.mark.parametrize("free_space", ["statvfs", "df"])
async def test_remote_disk_full_on_push(
    rx_executor: SSHExecutor,
    rx_account: RemoteAccount,
    remote: AccountRemoteSide,
    paths: SessionPaths,
    free_space: str,
) -> None:
    """``df``: a server without statvfs@openssh.com; the free space comes from ``df -P``."""
    first = transcript(10)
    ahead = first + transcript(4000, tag="resumed")  # ~360 KB, more than the 128 KB disk
    executor: Any = rx_executor
    if free_space == "df":
        executor = SftpFaultExecutor(rx_executor, unsupported={"statvfs@openssh.com"})
    with tmpfs(remote.base, "128k", rx_account.uid, rx_account.gid):
        remote.write(T, first)
        write_local(paths, T, ahead)
        before = remote.snapshot()
        with pytest.raises(SyncDiskFull) as caught:
            await SftpSessionSync(timeout=30).push(executor, paths)
        exc = caught.value
        assert (exc.host, exc.side) == (rx_executor.name, rx_executor.name)
        assert f"No space left on {rx_executor.name}" in str(exc) and "free some" in str(exc)
        if free_space == "df":
            assert executor.injected == 1
        assert remote.snapshot() == before  # untouched, no temp file left
        assert (paths.local_dir / T).read_bytes() == ahead
        remount(remote.base, "size=4m")  # space again: the next push completes
        report = await SftpSessionSync(timeout=30).push(rx_executor, paths)
        assert report.moved == len(ahead) - len(first)
        assert remote.snapshot() == local_files(paths)


async def test_remote_read_only_file_system(
    rx_executor: SSHExecutor,
    rx_account: RemoteAccount,
    remote: AccountRemoteSide,
    paths: SessionPaths,
) -> None:
    first = transcript(10)
    with tmpfs(remote.base, "1m", rx_account.uid, rx_account.gid):
        remote.write(T, first)
        remount(remote.base, "ro")
        write_local(paths, T, first + transcript(3, tag="resumed"))
        with pytest.raises(SyncPermissionDenied) as caught:
            await SftpSessionSync(timeout=30).push(rx_executor, paths)
        assert caught.value.side == rx_executor.name
        assert "read-only" in str(caught.value)
        assert remote.read(T) == first


async def test_local_disk_full_on_pull(
    rx_executor: SSHExecutor, remote: AccountRemoteSide, paths: SessionPaths
) -> None:
    first = transcript(10)
    remote.write(T, first)
    big = transcript(4000, tag="big")
    sync = SftpSessionSync(timeout=30)
    with tmpfs(paths.local_dir, "128k"):
        await sync.pull(rx_executor, paths)
        remote.append(T, big)
        with pytest.raises(SyncDiskFull) as caught:
            await sync.pull(rx_executor, paths)
        assert caught.value.side == "local" and "No space left on local" in str(caught.value)
        assert (first + big).startswith((paths.local_dir / T).read_bytes())
    report = await sync.pull(rx_executor, paths)
    assert report.moved == len(first + big)
    assert local_files(paths) == remote.snapshot()


# -- permissions ------------------------------------------------------------------------


async def test_unreadable_session_directory(
    rx_executor: SSHExecutor, remote: AccountRemoteSide, paths: SessionPaths
) -> None:
    """A subagents dir the login user may not list: the rest is synced, then it is reported."""
    remote.write(T, transcript(5))
    remote.write(f"{SID}/subagents/agent-1.jsonl", transcript(2, tag="sub"))
    remote.chmod(f"{SID}/subagents", 0o000)
    try:
        with pytest.raises(SyncPermissionDenied) as caught:
            await SftpSessionSync(timeout=30).pull(rx_executor, paths)
    finally:
        remote.chmod(f"{SID}/subagents", 0o700)
    assert caught.value.side == rx_executor.name
    assert f"{SID}/subagents" in str(caught.value)
    assert local_files(paths) == {T: transcript(5)}


# -- the link reset in the middle of a transfer ------------------------------------------


@pytest.fixture
async def through_link(
    rx_sshd: SSHTestBed, rx_ssh_config: SSHClientConfig
) -> AsyncIterator[tuple[LinkProxy, SSHExecutor]]:
    with LinkProxy(rx_sshd.host, rx_sshd.port) as link:
        config = link.client_config(rx_ssh_config)
        executor = SSHExecutor(
            config.alias, ssh_config=str(config.path), backend="fabric", connect_timeout=3
        )
        try:
            yield link, executor
        finally:
            await executor.aclose()


def cut_after(link: LinkProxy, kind: int, limit: int) -> Any:
    """A request hook that resets the link once requests of ``kind`` (READ or WRITE)
    have asked for or carried more than ``limit`` bytes: half-way through a transfer."""
    moved = Counter()

    def hook(t: int, args: list[Any]) -> None:
        if t == kind:
            moved(t, args)
            if moved.read + moved.written > limit and not link.is_cut:
                link.cut()

    return hook


@pytest.mark.parametrize("local_has", ["nothing", "a prefix"])
async def test_link_cut_mid_pull(
    through_link: tuple[LinkProxy, SSHExecutor],
    remote: AccountRemoteSide,
    paths: SessionPaths,
    local_has: str,
) -> None:
    link, executor = through_link
    whole = transcript(40_000, pad=100)  # about 5 MB
    remote.write(T, whole)
    start = b""
    if local_has == "a prefix":
        start = whole[: whole.index(b"\n", len(whole) // 5) + 1]
        write_local(paths, T, start)
    cutting = SftpFaultExecutor(executor, before_request=cut_after(link, CMD_READ, 1 << 20))
    with pytest.raises(ConnectionFailed):
        await SftpSessionSync(timeout=30).pull(cutting, paths)
    assert link.resets >= 1, "the link was not cut"
    # Nothing installed from the cut transfer: the local side is as it was.
    assert local_files(paths) == ({T: start} if start else {})
    assert remote.read(T) == whole
    link.restore()
    report = await SftpSessionSync(timeout=30).pull(executor, paths)
    assert report.moved == len(whole) - len(start)
    assert local_files(paths) == remote.snapshot()


async def test_link_cut_mid_push(
    through_link: tuple[LinkProxy, SSHExecutor],
    remote: AccountRemoteSide,
    paths: SessionPaths,
) -> None:
    link, executor = through_link
    first = transcript(1000)
    ahead = first + transcript(30_000, tag="resumed", pad=100)  # about 4 MB to send
    remote.write(T, first)
    write_local(paths, T, ahead)
    cutting = SftpFaultExecutor(executor, before_request=cut_after(link, CMD_WRITE, 1 << 20))
    with pytest.raises(ConnectionFailed):
        await SftpSessionSync(timeout=30).push(cutting, paths)
    assert link.resets >= 1, "the link was not cut"
    assert remote.read(T) == first  # the cut copy was never renamed in
    assert (paths.local_dir / T).read_bytes() == ahead
    assert temps(remote), "the cut left no temp file: the clean-up below proves nothing"
    link.restore()
    report = await SftpSessionSync(timeout=30).push(executor, paths)
    assert report.moved == len(ahead) - len(first)
    assert remote.read(T) == ahead
    assert temps(remote) == [], "the cut push's temp file was not cleaned up"


# -- where the remote keeps sessions ---------------------------------------------------------


@pytest.mark.parametrize("rx_account", [{"claude_config_dir": "alt-claude"}], indirect=True)
async def test_the_logins_claude_config_dir(
    rx_executor: SSHExecutor, remote: AccountRemoteSide, paths: SessionPaths
) -> None:
    """``remote_config_dir`` None: the login's ``$CLAUDE_CONFIG_DIR``, as fetch.sh finds it."""
    assert remote.base.parts[-3] == "alt-claude"
    remote.write(T, transcript(5))
    await SftpSessionSync(timeout=30).pull(rx_executor, paths)
    assert local_files(paths) == remote.snapshot()


async def test_a_relative_config_dir_is_under_the_login_dir(
    rx_executor: SSHExecutor,
    rx_sshd: SSHTestBed,
    rx_account: RemoteAccount,
    tmp_path: Path,
) -> None:
    """As for TailSessionSync, whose commands run in the login dir."""
    side = AccountRemoteSide(rx_sshd, rx_account, PROJECT)
    side.base = rx_sshd.remote_home(rx_account) / "rel-cfg" / "projects" / PROJECT
    side.write(T, transcript(5))
    for name, sync in (("tail", TailSessionSync()), ("sftp", SftpSessionSync(timeout=30))):
        paths = SessionPaths(tmp_path / name, PROJECT, SID, remote_config_dir="rel-cfg")
        await sync.pull(rx_executor, paths)
        assert local_files(paths) == side.snapshot(), name
