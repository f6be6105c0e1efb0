"""RsyncSessionSync over a real sshd: the shared connection, and real tool problems.

The remote is a test-bed account (its own uid and home). Its rsync problems
are made real for that account only: execute permission on /usr/bin/rsync is
taken from its uid with a POSIX ACL (root, and every other account, can still
run it), or an older-looking ``rsync`` sits first on the PATH its ssh
commands get (``~/.bashrc``, which bash reads for ssh commands), where the
strategy then really runs it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from _rsync_faults import RelayExecutor, relay_log
from remote_executors.errors import SessionConflict, SyncDiskFull, SyncError, SyncToolMissing
from remote_executors.executors.ssh import SSHExecutor
from remote_executors.sync import RsyncSessionSync, SessionPaths, TailSessionSync
from remote_executors.sync._rsync import staging_dir
from remote_executors.testing.sshd import RemoteAccount, SSHClientConfig, SSHTestBed
from remote_executors.testing.sync_conformance import AccountRemoteSide, jsonl, transcript

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.anyio,
    pytest.mark.skipif(shutil.which("rsync") is None, reason="rsync is not installed"),
]

SID = "5c0ffee0-1d2e-4f3a-8b9c-0d1e2f3a4b5c"
PROJECT = "-home-rx-code-shop"


@pytest.fixture(autouse=True)
def _data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REMOTE_EXECUTORS_DATA_DIR", str(tmp_path / "rx-data"))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # each test pays for ssh round trips; the backends are covered in unit


@pytest.fixture
def remote(rx_sshd: SSHTestBed, rx_account: RemoteAccount) -> AccountRemoteSide:
    return AccountRemoteSide(rx_sshd, rx_account, PROJECT)


@pytest.fixture
def paths(remote: AccountRemoteSide, tmp_path: Path) -> SessionPaths:
    return remote.session_paths(tmp_path / "local" / "-Users-me-code-shop", SID)


def local_files(paths: SessionPaths) -> dict[str, bytes]:
    top = paths.local_dir
    return {
        p.relative_to(top).as_posix(): p.read_bytes() for p in sorted(top.rglob("*")) if p.is_file()
    }


def logins(bed: SSHTestBed, account: RemoteAccount) -> int:
    """Public-key logins sshd accepted for the account (one per TCP connection)."""
    return bed.log_text().count(f"Accepted publickey for {account.user} ")


# -- the shared connection -----------------------------------------------------------


async def test_pull_and_push_ride_the_executors_master_connection(
    rx_executor: SSHExecutor,
    rx_sshd: SSHTestBed,
    rx_account: RemoteAccount,
    rx_ssh_config: SSHClientConfig,
    remote: AccountRemoteSide,
    paths: SessionPaths,
) -> None:
    sync = RsyncSessionSync(timeout=60)
    sub = f"{SID}/subagents/agent-1.jsonl"
    remote.write(f"{SID}.jsonl", transcript(500))
    remote.write(sub, transcript(3, tag="sub"))
    before = logins(rx_sshd, rx_account)  # the bed's log holds earlier tests' logins too

    await sync.pull(rx_executor, paths)
    assert local_files(paths) == remote.snapshot()
    remote.append(f"{SID}.jsonl", transcript(5, tag="remote"))
    report = await sync.pull(rx_executor, paths)
    assert report.moved == len(transcript(5, tag="remote"))
    added = transcript(4, tag="local")
    with open(paths.local_dir / f"{SID}.jsonl", "ab") as f:
        f.write(added)
    report = await sync.push(rx_executor, paths)
    assert report.moved == len(added)
    assert remote.snapshot() == local_files(paths)

    # Every rsync went through the master: one login, one connection, and the
    # master still answers on its control socket.
    assert logins(rx_sshd, rx_account) - before == 1
    assert len(rx_sshd.connections(rx_account)) == 1
    argv = await rx_executor.rsync_rsh()
    assert argv is not None
    control = next(a for a in argv if a.startswith("-oControlPath="))
    check = subprocess.run(
        [*argv[:1], "-F", str(rx_ssh_config.path), control, "-O", "check", "--", rx_executor.host],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0 and "Master running" in check.stderr, check.stderr
    assert (staging_dir(paths, rx_executor.name) / "current" / f"{SID}.jsonl").is_file()


async def test_cost_follows_new_bytes_over_ssh(
    rx_executor: SSHExecutor,
    rx_sshd: SSHTestBed,
    rx_account: RemoteAccount,
    remote: AccountRemoteSide,
    paths: SessionPaths,
    tmp_path: Path,
) -> None:
    """rsync's own stream, counted on its way into ssh: 1 KB synced moves about 1 KB."""
    log = tmp_path / "relay.log"
    relayed = RelayExecutor(rx_executor, log=log)
    before = logins(rx_sshd, rx_account)
    sync = RsyncSessionSync(timeout=60)
    big = transcript(12_000, pad=80)  # about 1.3 MB
    remote.write(f"{SID}.jsonl", big)
    paths.local_dir.mkdir(parents=True)
    (paths.local_dir / f"{SID}.jsonl").write_bytes(big)
    await sync.pull(relayed, paths)  # the local copy is the first basis
    remote.append(f"{SID}.jsonl", transcript(10, tag="remote", pad=70))
    await sync.pull(relayed, paths)
    with open(paths.local_dir / f"{SID}.jsonl", "ab") as f:
        f.write(transcript(10, tag="local", pad=70))
    await sync.push(relayed, paths)
    assert remote.snapshot() == local_files(paths)
    runs = relay_log(log)
    assert len(runs) == 4
    for run in runs:
        assert run["up"] < 64 * 1024 and run["down"] < 64 * 1024, run
        assert run["argv"][0].endswith("/ssh") and "-oControlMaster=no" in run["argv"]
    assert logins(rx_sshd, rx_account) - before == 1


@pytest.mark.parametrize("rx_account", ["sh", "zsh", "fish", "tcsh"], indirect=True)
async def test_any_login_shell(
    rx_executor: SSHExecutor, remote: AccountRemoteSide, paths: SessionPaths
) -> None:
    """-s keeps the remote command line a fixed ``rsync --server ...`` every shell reads."""
    sync = RsyncSessionSync(timeout=60)
    remote.write(f"{SID}.jsonl", transcript(20))
    remote.write(f"{SID}/tool-results/it's a $(file) *.txt", b"odd name\n")
    await sync.pull(rx_executor, paths)
    with open(paths.local_dir / f"{SID}.jsonl", "ab") as f:
        f.write(jsonl({"from": "local"}))
    await sync.push(rx_executor, paths)
    assert remote.snapshot() == local_files(paths)


@pytest.mark.parametrize("rx_account", [{"noisy": True}], indirect=True)
async def test_noisy_login_shell_is_explained(
    rx_executor: SSHExecutor, remote: AccountRemoteSide, paths: SessionPaths
) -> None:
    """rsync needs a login shell that prints nothing for ssh commands (its stream
    shares stdout with ~/.bashrc's output): the error says so, nothing changes."""
    remote.write(f"{SID}.jsonl", transcript(20))
    with pytest.raises(SyncError) as caught:
        await RsyncSessionSync(timeout=60).pull(rx_executor, paths)
    text = str(caught.value)
    assert rx_executor.name in text and "prints" in text and "TailSessionSync" in text
    assert not paths.local_dir.exists()
    await TailSessionSync().pull(rx_executor, paths)  # the default strategy copes
    assert local_files(paths) == remote.snapshot()


# -- conflicts -------------------------------------------------------------------


@pytest.mark.parametrize("direction", ["pull", "push"])
async def test_diverged_copies_are_both_kept(
    rx_executor: SSHExecutor, remote: AccountRemoteSide, paths: SessionPaths, direction: str
) -> None:
    common = transcript(200)
    mine, theirs = common + jsonl({"side": "local"}), common + jsonl({"side": "remote!"})
    paths.local_dir.mkdir(parents=True)
    (paths.local_dir / f"{SID}.jsonl").write_bytes(mine)
    remote.write(f"{SID}.jsonl", theirs)
    with pytest.raises(SessionConflict) as caught:
        await getattr(RsyncSessionSync(timeout=60), direction)(rx_executor, paths)
    exc = caught.value
    assert exc.host == rx_executor.name and exc.session_id == SID
    [(local, copy)] = exc.copies
    assert Path(local).read_bytes() == mine
    assert Path(copy).read_bytes() == theirs
    assert f".conflict-{rx_executor.name}-" in copy
    assert remote.read(f"{SID}.jsonl") == theirs
    assert [rel for rel in remote.files() if ".rx-push-" in rel] == []


# -- rsync missing or too old on the remote, for real ------------------------------------

_ACL = "system.posix_acl_access"
_UNDEFINED_ID = 0xFFFFFFFF


@contextlib.contextmanager
def no_execute_for(path: str, uid: int) -> Iterator[None]:
    """Deny ``uid`` (only) execute permission on ``path`` with a POSIX ACL; restore after."""
    mode = os.stat(path).st_mode
    try:
        os.getxattr(path, _ACL)
    except OSError as exc:
        if exc.errno not in (errno.ENODATA, errno.ENOTSUP):
            raise
    else:
        pytest.skip(f"{path} already has an ACL; not touching it")
    group = (mode >> 3) & 7
    entries = [  # (tag, permissions, id): user::, user:<uid>:---, group::, mask::, other::
        (0x01, (mode >> 6) & 7, _UNDEFINED_ID),
        (0x02, 0, uid),
        (0x04, group, _UNDEFINED_ID),
        (0x10, group, _UNDEFINED_ID),
        (0x20, mode & 7, _UNDEFINED_ID),
    ]
    value = struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in entries)
    try:
        os.setxattr(path, _ACL, value)
    except OSError as exc:
        pytest.skip(f"cannot set an ACL on {path}: {exc}")
    try:
        yield
    finally:
        os.removexattr(path, _ACL)
        os.chmod(path, stat.S_IMODE(mode))


@pytest.fixture
def norsync(
    rx_sshd: SSHTestBed, rx_account_factory: object, tmp_path: Path
) -> Iterator[tuple[RemoteAccount, SSHClientConfig]]:
    if os.geteuid() != 0:
        pytest.skip("needs root: the account must be a user of its own")
    account = rx_account_factory("bash", label="norsync")  # type: ignore[operator]
    config = rx_sshd.client_config(account, tmp_path / "ssh-norsync")
    rsync = os.path.realpath(shutil.which("rsync") or "/usr/bin/rsync")
    assert rx_sshd.run_as(account, [rsync, "--version"]).returncode == 0
    with no_execute_for(rsync, account.uid):
        denied = rx_sshd.run_as(account, ["/bin/sh", "-c", f"{rsync} --version"])
        assert denied.returncode == 126, "the ACL did not take"
        assert subprocess.run([rsync, "--version"], capture_output=True).returncode == 0
        yield account, config


async def test_rsync_missing_remotely(
    rx_sshd: SSHTestBed, norsync: tuple[RemoteAccount, SSHClientConfig], tmp_path: Path
) -> None:
    account, config = norsync
    remote = AccountRemoteSide(rx_sshd, account, PROJECT)
    remote.write(f"{SID}.jsonl", transcript(3))
    paths = remote.session_paths(tmp_path / "local" / "-Users-me-shop", SID)
    async with SSHExecutor(config.alias, ssh_config=str(config.path)) as executor:
        with pytest.raises(SyncToolMissing) as caught:
            await RsyncSessionSync(timeout=60).pull(executor, paths)
        exc = caught.value
        assert (exc.host, exc.side) == (config.alias, config.alias)
        text = str(exc)
        assert f"on {config.alias}" in text
        assert "Permission denied" in text or "found nothing" in text, text
        for words in ("apt install rsync", "brew install rsync", "TailSessionSync"):
            assert words in text
        assert not paths.local_dir.exists()
        report = await TailSessionSync().pull(executor, paths)  # needs no rsync
        assert [f.kind.value for f in report.files] == ["pull"]


def fake_remote_rsync(bed: SSHTestBed, account: RemoteAccount, version: str) -> Path:
    """``~/bin/rsync`` printing ``version`` for --version (else the real rsync, logged),
    first on the PATH of the account's ssh commands."""
    home = bed.remote_home(account)
    fake = home / "bin" / "rsync"
    fake.parent.mkdir()
    lines = " ".join("'" + line + "'" for line in version.splitlines())
    fake.write_text(
        "#!/bin/sh\n"
        'printf "%s\\n" "$*" >> "$HOME/rsync-calls.log"\n'
        f'if [ "$1" = --version ]; then printf "%s\\n" {lines}; exit 0; fi\n'
        f'exec {os.path.realpath(shutil.which("rsync") or "/usr/bin/rsync")} "$@"\n'
    )
    fake.chmod(0o755)
    with open(home / ".bashrc", "a") as f:
        f.write('PATH="$HOME/bin:$PATH"; export PATH\n')
    for p in (fake.parent, fake, home / ".bashrc"):
        os.chown(p, account.uid, account.gid)
    return fake


@pytest.mark.parametrize(
    ("version", "says"),
    [
        ("rsync  version 3.2.3  protocol version 31", ["too old", "3.2.3", "3.2.4"]),
        ("openrsync: protocol version 29\nrsync version 2.6.9 compatible", ["openrsync"]),
    ],
)
async def test_remote_rsync_unusable(
    rx_executor: SSHExecutor,
    rx_sshd: SSHTestBed,
    rx_account: RemoteAccount,
    paths: SessionPaths,
    version: str,
    says: list[str],
) -> None:
    fake = fake_remote_rsync(rx_sshd, rx_account, version)
    with pytest.raises(SyncToolMissing) as caught:
        await RsyncSessionSync(timeout=60).pull(rx_executor, paths)
    exc = caught.value
    assert (exc.host, exc.side) == (rx_executor.name, rx_executor.name)
    for words in [*says, str(fake), f"on {rx_executor.name}", "TailSessionSync"]:
        assert words in str(exc), str(exc)


async def test_the_remote_rsync_checked_is_the_one_run(
    rx_executor: SSHExecutor,
    rx_sshd: SSHTestBed,
    rx_account: RemoteAccount,
    remote: AccountRemoteSide,
    paths: SessionPaths,
) -> None:
    fake_remote_rsync(rx_sshd, rx_account, "rsync  version 3.2.7  protocol version 31")
    remote.write(f"{SID}.jsonl", transcript(5))
    await RsyncSessionSync(timeout=60).pull(rx_executor, paths)
    calls = (rx_sshd.remote_home(rx_account) / "rsync-calls.log").read_text().splitlines()
    assert calls[0] == "--version"
    assert any(c.startswith("--server --sender") for c in calls[1:]), calls
    assert local_files(paths) == remote.snapshot()


# -- disk full on the remote, for real --------------------------------------------------


async def test_remote_disk_full(
    rx_executor: SSHExecutor,
    rx_account: RemoteAccount,
    remote: AccountRemoteSide,
    paths: SessionPaths,
) -> None:
    base = remote.base
    base.mkdir(parents=True)
    os.chown(base, rx_account.uid, rx_account.gid)
    opts = f"size=128k,mode=0700,uid={rx_account.uid},gid={rx_account.gid}"
    if subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(base)]).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        remote.write(f"{SID}.jsonl", transcript(10))
        paths.local_dir.mkdir(parents=True)
        (paths.local_dir / f"{SID}.jsonl").write_bytes(transcript(10) + transcript(3000, tag="x"))
        before = remote.snapshot()
        with pytest.raises(SyncDiskFull) as caught:
            await RsyncSessionSync(timeout=60).push(rx_executor, paths)
        exc = caught.value
        assert (exc.host, exc.side) == (rx_executor.name, rx_executor.name)
        assert f"No space left on {rx_executor.name}" in str(exc)
        assert remote.snapshot() == before
        assert not [rel for rel in remote.files() if ".rx-push-" in rel]
    finally:
        with anyio.CancelScope(shield=True):
            subprocess.run(["umount", "-l", str(base)], check=False)
