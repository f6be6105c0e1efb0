"""Sync cost against the number and the size of a session's files, per strategy.

    sudo .venv/bin/python bench/bench_sync_scale.py [--counts 10,1000,10000,100000]
        [--sizes 50KB,50MB,1GB,10GB] [--strategies tail,rsync,sftp] [--max-file 12GB]

On the loopback sshd test bed, a session is made on the "remote" account:

- counts: a 50 KB transcript plus N small files under ``<sid>/subagents``;
- sizes: a 50 KB transcript plus one tool result of that size (sparse: no disk
  is used for it there; what a pull copies is real data here).

For each, with a warm connection, it times the first pull (everything is
new), a full pull with nothing new, a per-turn pull (``pull_recent`` where the
strategy has it) with nothing new, and two after 1 KB was appended to the
transcript (a turn: the subagents' files are an hour old), and records the
peak memory above the process's level before the pull (Linux: VmHWM, reset
through /proc/self/clear_refs before each pull).
Files over the strategy's ``max_file_bytes`` (1 GiB unless --max-file) are
refused with SyncTooLarge, and that is timed too. The targets: a no-change
pull of 100k files under 10 s and of 10k under 2 s, a 1 KB pull within 100 ms
whatever the file count, and peak memory under 64 MiB above the baseline
whatever the file size.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio

import remote_executors as rx
from remote_executors.errors import SyncTooLarge
from remote_executors.sync import (
    RsyncSessionSync,
    SessionPaths,
    SessionSync,
    SftpSessionSync,
    TailSessionSync,
)
from remote_executors.testing.sshd import RemoteAccount, SSHTestBed

PROJECT = "-home-rx-bench-scale"
UNITS = {"KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30}


def parse_size(text: str) -> int:
    for unit, scale in UNITS.items():
        if text.upper().endswith(unit):
            return int(float(text[: -len(unit)]) * scale)
    return int(text)


def rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


async def measured(action: Callable[[], Awaitable[object]]) -> tuple[float, float, str]:
    """(seconds, peak MiB above the level before, outcome) of one sync."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    before = rss_kib("VmRSS")
    started = time.perf_counter()
    outcome = "ok"
    try:
        await action()
    except SyncTooLarge:
        outcome = "refused (too large)"
    seconds = time.perf_counter() - started
    return seconds, max(0, rss_kib("VmHWM") - before) / 1024, outcome


class Session:
    def __init__(self, account: RemoteAccount, local_root: Path) -> None:
        self.sid = str(uuid.uuid4())
        self.account = account
        self.remote_dir = account.claude_config_dir / "projects" / PROJECT
        self.local_dir = local_root / self.sid
        self.paths = SessionPaths(self.local_dir, PROJECT, self.sid, None)
        self.remote_dir.mkdir(parents=True, exist_ok=True)
        self.local_dir.mkdir(parents=True)
        self.write(f"{self.sid}.jsonl", b'{"type":"user","n":0}\n' * 2400)
        self.own()

    def write(self, rel: str, data: bytes = b"", size: int | None = None) -> None:
        """Write a file there (call :meth:`own` once done)."""
        path = self.remote_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
            if size is not None:
                f.truncate(size)  # sparse

    def own(self) -> None:
        for root, dirs, files in os.walk(self.remote_dir.parent):
            for name in [*dirs, *files]:
                os.lchown(os.path.join(root, name), self.account.uid, self.account.gid)
        os.lchown(self.remote_dir.parent, self.account.uid, self.account.gid)

    def append_transcript(self) -> None:
        with open(self.remote_dir / f"{self.sid}.jsonl", "ab") as f:
            f.write(b'{"type":"assistant","text":"' + b"z" * 990 + b'"}\n')


async def run(args: argparse.Namespace) -> None:
    counts = [int(c) for c in args.counts.split(",") if c]
    sizes = [s for s in args.sizes.split(",") if s]
    max_file = parse_size(args.max_file) if args.max_file else None
    limits: dict[str, Any] = {} if max_file is None else {"max_file_bytes": max_file,
                                          "max_session_bytes": 4 * max_file}  # fmt: skip
    makers: dict[str, Callable[[], SessionSync]] = {
        "tail": lambda: TailSessionSync(**limits),
        "rsync": lambda: RsyncSessionSync(**limits),
        "sftp": lambda: SftpSessionSync(**limits),
    }
    names = [s for s in args.strategies.split(",") if s]
    rows: list[tuple[str, str, str, float, float, str]] = []
    with SSHTestBed() as bed, tempfile.TemporaryDirectory() as tmp:
        os.environ["REMOTE_EXECUTORS_DATA_DIR"] = str(Path(tmp) / "rx-data")
        account = bed.account("bash")
        cfg = bed.client_config(account, Path(tmp) / "ssh")
        async with (
            rx.SSHExecutor(cfg.alias, ssh_config=str(cfg.path)) as openssh,
            rx.SSHExecutor(cfg.alias, ssh_config=str(cfg.path), backend="fabric") as fabric,
        ):
            for name in names:
                executor = fabric if name == "sftp" else openssh
                sync = makers[name]()
                warm = Session(account, Path(tmp) / name / "warm")
                await sync.pull(executor, warm.paths)
                cases: list[tuple[str, Callable[[Session], None]]] = []
                for count in counts:

                    def many(s: Session, count: int = count) -> None:
                        # Subagents that ran an hour ago, as in a long session.
                        old = time.time() - 3600
                        for i in range(count):
                            rel = f"{s.sid}/subagents/agent-{i:06d}.jsonl"
                            s.write(rel, b'{"n":1}\n' * 4)
                            os.utime(s.remote_dir / rel, (old, old))

                    cases.append((f"{count} files", many))
                for size in sizes:

                    def big(s: Session, size: str = size) -> None:
                        s.write(f"{s.sid}/tool-results/big.bin", size=parse_size(size))

                    cases.append((f"one {size} file", big))
                for label, make in cases:
                    session = Session(account, Path(tmp) / name / label.replace(" ", "-"))
                    make(session)
                    session.own()
                    os.sync()
                    steps = ("first pull", "full, no change", "nothing new", "1 KB new",
                             "1 KB new again")  # fmt: skip
                    for step in steps:
                        if step.startswith("1 KB new"):
                            session.append_transcript()
                        # After a turn a session pulls what changed, where it can.
                        pull = getattr(sync, "pull_recent", sync.pull)
                        if step in ("first pull", "full, no change"):
                            pull = sync.pull
                        seconds, peak, outcome = await measured(
                            functools.partial(pull, executor, session.paths)
                        )
                        rows.append((name, label, step, seconds, peak, outcome))
                        print(f"{name:6} {label:16} {step:12} {seconds:8.3f} s "
                              f"{peak:8.1f} MiB  {outcome}", flush=True)  # fmt: skip
                    for path in sorted(session.local_dir.rglob("*"), reverse=True):
                        path.unlink() if path.is_file() else path.rmdir()

    print("\nstrategy  case              step         seconds   peak MiB above baseline")
    for name, label, step, seconds, peak, outcome in rows:
        print(f"{name:9} {label:17} {step:12} {seconds:8.3f}   {peak:8.1f}   {outcome}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--counts", default="10,1000,10000,100000")
    parser.add_argument("--sizes", default="50KB,50MB,1GB,10GB")
    parser.add_argument("--strategies", default="tail,rsync,sftp")
    parser.add_argument("--max-file", default=None, help="raise max_file_bytes (e.g. 12GB)")
    anyio.run(run, parser.parse_args())


if __name__ == "__main__":
    main()
