"""TailSessionSync, RsyncSessionSync and SftpSessionSync decide alike, over a real sshd.

The scenarios of tests/_sync_scenarios.py (the unit test compares tail and
rsync on them locally): each strategy gets its own copy of both sides (its
own remote project dir in one test-bed account, its own local dir), runs the
same pull or push, and must report the same outcome and leave the same
files. Tail and SFTP ride a fabric executor, rsync the OpenSSH one (it needs
its master connection). One test per direction runs every scenario, so the
account and connections are set up twice, not forty times.
"""

from __future__ import annotations

import re
import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest

from _sync_scenarios import SCENARIOS, names
from remote_executors.errors import SessionConflict, SyncError
from remote_executors.executors.base import Executor
from remote_executors.executors.ssh import SSHExecutor
from remote_executors.sync import (
    RsyncSessionSync,
    SessionSync,
    SftpSessionSync,
    TailSessionSync,
)
from remote_executors.testing.sshd import RemoteAccount, SSHClientConfig, SSHTestBed
from remote_executors.testing.sync_conformance import AccountRemoteSide

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.anyio,
    pytest.mark.skipif(shutil.which("rsync") is None, reason="rsync is not installed"),
]


@pytest.fixture(autouse=True)
def _data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REMOTE_EXECUTORS_DATA_DIR", str(tmp_path / "rx-data"))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _files(top: Path) -> dict[str, bytes]:
    if not top.is_dir():
        return {}
    return {p.relative_to(top).as_posix(): p.read_bytes() for p in top.rglob("*") if p.is_file()}


async def _outcome(
    sync: SessionSync,
    executor: Executor,
    remote: AccountRemoteSide,
    local_dir: Path,
    scenario: str,
    direction: str,
) -> dict[str, Any]:
    sid = str(uuid.uuid4())
    where = names(sid)
    local, theirs = SCENARIOS[scenario]
    for rel, data in local.items():
        path = local_dir / where[rel]
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.write_bytes(data)
    for rel, data in theirs.items():
        remote.write(where[rel], data)
    paths = remote.session_paths(local_dir, sid)
    try:
        report = await getattr(sync, direction)(executor, paths)
    except SessionConflict as exc:
        result: Any = (
            "conflict",
            sorted(Path(c).relative_to(local_dir).as_posix() for c, _ in exc.copies),
        )
    except SyncError as exc:
        result = ("error", type(exc).__name__)
    else:
        result = [(f.path, f.kind.value, f.moved) for f in report.files]

    def same_names(files: dict[str, bytes]) -> dict[str, bytes]:
        # Session ids differ between runs, and so do conflict copies' times.
        out = {}
        for rel, data in files.items():
            if not (rel.startswith(sid) or rel.startswith(f".{sid}")):
                continue
            rel = re.sub(r"\.conflict-[^/]*-\d{8}T\d{6}Z$", ".conflict", rel.replace(sid, "SID"))
            out[rel] = data
        return out

    flat = repr(result).replace(sid, "SID")
    flat = re.sub(r"\.conflict-[^/']*-\d{8}T\d{6}Z", ".conflict", flat)
    return {
        "result": flat,
        "local": same_names(_files(local_dir)),
        "remote": same_names(remote.snapshot()),
    }


def _diff(got: dict[str, Any], want: dict[str, Any]) -> str:
    """What differs, briefly: the reports, and which files differ on each side."""
    out = []
    if got["result"] != want["result"]:
        out.append(f"reported {got['result']} instead of {want['result']}")
    for side in ("local", "remote"):
        for rel in sorted(got[side].keys() | want[side].keys()):
            a, b = got[side].get(rel), want[side].get(rel)
            if a != b:
                sizes = [None if x is None else len(x) for x in (a, b)]
                out.append(f"{side} {rel}: {sizes[0]} bytes instead of {sizes[1]}")
    return "; ".join(out)


@pytest.mark.parametrize("direction", ["pull", "push"])
async def test_all_three_strategies_decide_alike(
    rx_sshd: SSHTestBed,
    rx_account: RemoteAccount,
    rx_ssh_config: SSHClientConfig,
    rx_executor: SSHExecutor,
    tmp_path: Path,
    direction: str,
) -> None:
    assert rx_executor.backend == "openssh"
    fabric = SSHExecutor(rx_ssh_config.alias, ssh_config=str(rx_ssh_config.path), backend="fabric")
    runs: dict[str, tuple[SessionSync, Executor]] = {
        "tail": (TailSessionSync(timeout=30), fabric),
        "rsync": (RsyncSessionSync(timeout=30), rx_executor),
        "sftp": (SftpSessionSync(timeout=30), fabric),
    }
    differ: list[str] = []
    try:
        for scenario in sorted(SCENARIOS):
            outcomes = {}
            for name, (sync, executor) in runs.items():
                remote = AccountRemoteSide(rx_sshd, rx_account, f"-home-rx-{name}")
                local_dir = tmp_path / name / "-Users-me-shop"
                outcomes[name] = await _outcome(
                    sync, executor, remote, local_dir, scenario, direction
                )
            for name in ("rsync", "sftp"):
                if outcomes[name] != outcomes["tail"]:
                    differ.append(
                        f"{scenario}: {name} vs tail: " + _diff(outcomes[name], outcomes["tail"])
                    )
    finally:
        await fabric.aclose()
    assert not differ, "\n".join(differ)
