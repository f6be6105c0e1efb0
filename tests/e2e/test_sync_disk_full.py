"""The default strategy on a full disk, for real (a tiny tmpfs), on each side.

Nothing may be lost or torn: the typed error names the side and the fix, the
full side keeps a prefix of what it should hold (or its old content), and the
next sync after space is freed completes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from _tmpfs import tmpfs
from remote_executors.errors import SyncDiskFull
from remote_executors.executors.ssh import SSHExecutor
from remote_executors.sync import SessionPaths, TailSessionSync
from remote_executors.testing.sshd import RemoteAccount, SSHTestBed
from remote_executors.testing.sync_conformance import AccountRemoteSide, transcript

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

SID = "7e57d15c-0f00-4b1a-9c2d-3e4f5a6b7c8d"
PROJECT = "-home-rx-code-shop"


@pytest.fixture(autouse=True)
def _data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REMOTE_EXECUTORS_DATA_DIR", str(tmp_path / "rx-data"))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the file system is the subject here, not the event loop


@pytest.fixture
def remote(rx_sshd: SSHTestBed, rx_account: RemoteAccount) -> AccountRemoteSide:
    return AccountRemoteSide(rx_sshd, rx_account, PROJECT)


@pytest.fixture
def paths(remote: AccountRemoteSide, tmp_path: Path) -> SessionPaths:
    return remote.session_paths(tmp_path / "local" / "-Users-me-code-shop", SID)


async def test_local_disk_full_on_pull(
    rx_executor: SSHExecutor, remote: AccountRemoteSide, paths: SessionPaths
) -> None:
    first = transcript(10)
    remote.write(f"{SID}.jsonl", first)
    big = transcript(4000, tag="big")  # ~360 KB, more than the 128 KB disk
    with tmpfs(paths.local_dir, "128k"):
        await TailSessionSync().pull(rx_executor, paths)
        local = paths.local_dir / f"{SID}.jsonl"
        assert local.read_bytes() == first
        remote.append(f"{SID}.jsonl", big)
        with pytest.raises(SyncDiskFull) as caught:
            await TailSessionSync().pull(rx_executor, paths)
        exc = caught.value
        assert exc.side == "local" and exc.host == rx_executor.name
        assert "No space left on local" in str(exc)
        # Still a prefix of the remote, and of whole lines: nothing torn, nothing lost.
        assert (first + big).startswith(local.read_bytes())
        assert local.read_bytes().endswith(b"\n")
        assert not [p for p in paths.local_dir.iterdir() if p.name.startswith(".")]
    # Space again (the tmpfs is gone; the dir underneath is empty): the next pull completes.
    report = await TailSessionSync().pull(rx_executor, paths)
    assert report.moved == len(first + big)
    assert (paths.local_dir / f"{SID}.jsonl").read_bytes() == first + big


async def test_remote_disk_full_on_push(
    rx_executor: SSHExecutor,
    rx_account: RemoteAccount,
    remote: AccountRemoteSide,
    paths: SessionPaths,
) -> None:
    first = transcript(10)
    with tmpfs(remote.base, "128k", rx_account.uid, rx_account.gid):
        remote.write(f"{SID}.jsonl", first)
        paths.local_dir.mkdir(parents=True)
        ahead = first + transcript(4000, tag="resumed")
        (paths.local_dir / f"{SID}.jsonl").write_bytes(ahead)
        before = remote.snapshot()
        with pytest.raises(SyncDiskFull) as caught:
            await TailSessionSync().push(rx_executor, paths)
        exc = caught.value
        assert (exc.host, exc.side) == (rx_executor.name, rx_executor.name)
        assert f"No space left on {rx_executor.name}" in str(exc)
        assert remote.snapshot() == before  # untouched, no temp file left
        assert (paths.local_dir / f"{SID}.jsonl").read_bytes() == ahead


async def test_local_disk_full_while_streaming_a_large_file(
    rx_executor: SSHExecutor, remote: AccountRemoteSide, paths: SessionPaths
) -> None:
    """Past the in-memory budget the new bytes are streamed to a temp file first:
    the disk fills there, the transcript keeps whole lines, the temp file goes."""
    first = transcript(10)
    remote.write(f"{SID}.jsonl", first)
    sync = TailSessionSync()
    with tmpfs(paths.local_dir, "4m"):
        await sync.pull(rx_executor, paths)
        local = paths.local_dir / f"{SID}.jsonl"
        big = transcript(120_000, tag="big")  # ~10 MB: streamed, more than the disk
        remote.append(f"{SID}.jsonl", big)
        with pytest.raises(SyncDiskFull) as caught:
            await sync.pull(rx_executor, paths)
        assert caught.value.side == "local"
        assert local.read_bytes() == first  # untouched: never a torn line
        assert not [p for p in paths.local_dir.rglob(".*") if p.is_file()]
