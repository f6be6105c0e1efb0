"""Sync cost vs transcript size: the tail, rsync and SFTP strategies over loopback SSH.

    sudo .venv/bin/python bench/bench_sync_strategies.py [--runs N]

A real sshd test bed account holds a 50 KB and a 50 MB transcript; the local
side starts with the same bytes (synced once, which also warms the SSH master
connection and rsync's staging copy). Tail and rsync ride an OpenSSH-backend
executor, SFTP a fabric-backend one (its own pooled connection). Each run
appends 1 KB of complete lines on one side and times one sync with one
executor (warm connection):

- pull: 1 KB appended remotely, then ``pull``;
- push: 1 KB appended locally, then ``push`` (which pulls first, as it must).

It prints the median seconds of N runs per strategy, size and direction, and
the 50MB/50KB ratio: the issue's target is <= 1.5 (cost follows the new bytes,
not the file's size).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import anyio

import remote_executors as rx
from remote_executors.sync import (
    RsyncSessionSync,
    SessionPaths,
    SessionSync,
    SftpSessionSync,
    TailSessionSync,
)
from remote_executors.testing.sshd import RemoteAccount, SSHTestBed

PROJECT = "-home-rx-bench"
SIZES = {"50KB": 50 * 1024, "50MB": 50 * 1024 * 1024}


def jsonl_of_size(size: int, tag: str) -> bytes:
    """Complete JSON lines, about 1 KB each, ``size`` bytes in all (roughly)."""
    out = bytearray()
    n = 0
    while len(out) < size:
        line = json.dumps({"n": n, "tag": tag, "text": "x" * min(950, size)}) + "\n"
        out += line.encode()
        n += 1
    return bytes(out)


def one_kb(tag: str) -> bytes:
    return json.dumps({"tag": tag, "text": "y" * 990}).encode() + b"\n"


class Session:
    """One transcript on both sides."""

    def __init__(self, account: RemoteAccount, local_root: Path, size: int) -> None:
        self.sid = str(uuid.uuid4())
        self.account = account
        self.remote_dir = account.claude_config_dir / "projects" / PROJECT
        self.local_dir = local_root / self.sid / "-Users-me-bench"
        self.paths = SessionPaths(self.local_dir, PROJECT, self.sid, None)
        data = jsonl_of_size(size, "base")
        self.remote_dir.mkdir(parents=True, exist_ok=True)
        for p in (self.remote_dir.parent, self.remote_dir):
            os.chown(p, account.uid, account.gid)
        self.local_dir.mkdir(parents=True)
        self.remote.write_bytes(data)
        os.chown(self.remote, account.uid, account.gid)
        self.local.write_bytes(data)

    @property
    def remote(self) -> Path:
        return self.remote_dir / f"{self.sid}.jsonl"

    @property
    def local(self) -> Path:
        return self.local_dir / f"{self.sid}.jsonl"

    def append(self, side: str, data: bytes) -> None:
        with open(self.remote if side == "remote" else self.local, "ab") as f:
            f.write(data)

    def in_step(self) -> bool:
        return self.remote.stat().st_size == self.local.stat().st_size


async def measure(runs: int) -> None:
    results: dict[tuple[str, str, str], list[float]] = {}
    with SSHTestBed() as bed, tempfile.TemporaryDirectory() as tmp:
        os.environ["REMOTE_EXECUTORS_DATA_DIR"] = str(Path(tmp) / "rx-data")
        account = bed.account("bash")
        cfg = bed.client_config(account, Path(tmp) / "ssh")
        strategies: dict[str, SessionSync] = {
            "tail": TailSessionSync(),
            "rsync": RsyncSessionSync(),
            "sftp": SftpSessionSync(),
        }
        async with (
            rx.SSHExecutor(cfg.alias, ssh_config=str(cfg.path)) as openssh,
            rx.SSHExecutor(cfg.alias, ssh_config=str(cfg.path), backend="fabric") as fabric,
        ):
            for name, sync in strategies.items():
                executor = fabric if name == "sftp" else openssh
                for label, size in SIZES.items():
                    session = Session(account, Path(tmp) / name, size)
                    # Steady state: a transcript's old bytes are on disk already.
                    # Left dirty, the first fsync of a sync would write them all.
                    os.sync()
                    await sync.pull(executor, session.paths)  # warm: connection, staging
                    for direction in ("pull", "push"):
                        times = results.setdefault((name, label, direction), [])
                        for i in range(runs):
                            side = "remote" if direction == "pull" else "local"
                            session.append(side, one_kb(f"{direction}-{i}"))
                            started = time.perf_counter()
                            await getattr(sync, direction)(executor, session.paths)
                            times.append(time.perf_counter() - started)
                            assert session.in_step(), (name, label, direction)

    print(f"1 KB appended, warm connection; median of {runs} runs (seconds)")
    print(f"{'strategy':10}{'direction':11}{'50KB':>9}{'50MB':>9}{'50MB/50KB':>11}")
    for name in strategies:
        for direction in ("pull", "push"):
            small = statistics.median(results[(name, "50KB", direction)])
            large = statistics.median(results[(name, "50MB", direction)])
            print(f"{name:10}{direction:11}{small:9.3f}{large:9.3f}{large / small:10.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    if args.runs < 5:
        parser.error("--runs must be at least 5")
    anyio.run(measure, args.runs)


if __name__ == "__main__":
    main()
