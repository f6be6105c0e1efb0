"""Host set-up figures on the loopback test bed: install the CLI, browse, list sessions.

    sudo .venv/bin/python bench/bench_hosts.py [--runs N]

Reports (warm: the connection is up, medians of N runs):

- ``install_cli`` of the bundled CLI into an account that lacks it, against
  a plain ``ssh HOST 'cat > FILE' < CLI`` of the same bytes (the ratio is
  what the checks, the stdin relay and the atomic install cost), and again
  when the version is already there (verified, not sent);
- ``list_dir`` of a directory with 20 entries and of one with 10k entries
  (limit 1000), against ``run(["ls"])`` of the same directory;
- ``list_host_sessions`` on a host with 100 sessions in 10 projects.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import statistics
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
from _bed import bench_bed

import remote_executors as rx
from remote_executors import _sdk_compat
from remote_executors.install import VERSIONS_DIR
from remote_executors.paths import project_dir_from_cwd
from remote_executors.testing.sshd import RemoteAccount


async def median(runs: int, call: Callable[[], Awaitable[object]]) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        await call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def sessions_on(account: RemoteAccount) -> None:
    projects = account.claude_config_dir / "projects"
    for p in range(10):
        d = projects / project_dir_from_cwd(f"/srv/p{p}")
        d.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"type": "user", "cwd": f"/srv/p{p}", "message": {"content": "x"}})
        for _ in range(10):
            (d / f"{uuid.uuid4()}.jsonl").write_text((line + "\n") * 200)
    subprocess.run(["chown", "-R", f"{account.uid}:{account.gid}", str(projects)], check=True)


def copy_plainly(ssh_argv: Callable[..., list[str]], binary: str) -> float:
    """Seconds for ``ssh HOST 'cat > FILE' < binary``: the link's own speed."""
    start = time.perf_counter()
    with open(binary, "rb") as f:
        subprocess.run(ssh_argv("cat > .plain-copy"), stdin=f, check=True)
    return time.perf_counter() - start


async def measure(runs: int) -> None:
    bundled = _sdk_compat.bundled_cli()
    assert bundled is not None, "this SDK wheel bundles no CLI"
    size = os.path.getsize(bundled)
    with bench_bed() as b:
        account = b.bed.account("bash", label="benchinstall", claude=None, model_url=b.model.url)
        cfg = b.bed.client_config(account, Path(b.tmp) / "ssh-install")
        async with rx.SSHExecutor(cfg.alias, ssh_config=cfg.path) as box:
            await box.run(["true"])
            plain = []
            for _ in range(runs):
                plain.append(await anyio.to_thread.run_sync(copy_plainly, cfg.ssh_argv, bundled))
            fresh = []
            for _ in range(runs):
                await anyio.to_thread.run_sync(
                    functools.partial(
                        shutil.rmtree, account.home / VERSIONS_DIR, ignore_errors=True
                    )
                )
                start = time.perf_counter()
                result = await rx.install_cli(box)
                fresh.append(time.perf_counter() - start)
                assert result.uploaded == size
            again = await median(runs, lambda: rx.install_cli(box))
            (account.home / ".plain-copy").unlink()

        # Browsing and sessions on the bench's own account.
        small = b.bed.remote_home(b.account) / "small"
        big = b.bed.remote_home(b.account) / "big"
        b.bed.run_as(
            b.account,
            [
                "/bin/sh",
                "-c",
                f"mkdir -p {small} {big} && cd {small} && for i in $(seq 20); do mkdir d$i; done"
                f" && cd {big} && seq 10000 | xargs touch",
            ],
            check=True,
        )
        sessions_on(b.account)
        async with rx.SSHExecutor(b.cfg.alias, ssh_config=b.cfg.path) as box:
            await box.run(["true"])
            ls_small = await median(runs * 5, lambda: rx.list_dir(box, "~/small"))
            ls_plain = await median(runs * 5, lambda: box.run(["ls", "-A", str(small)]))
            ls_big = await median(runs, lambda: rx.list_dir(box, "~/big"))
            ls_big_plain = await median(runs, lambda: box.run(["ls", "-A", str(big)]))
            listed = await rx.list_host_sessions(box)
            assert len(listed) == 100
            sessions = await median(runs * 3, lambda: rx.list_host_sessions(box))

    mib = size / (1 << 20)
    load = os.getloadavg()[0]
    print(f"load average {load:.2f}; bundled CLI {mib:.0f} MiB, {runs} run(s) each, medians")
    print(f"install_cli, fresh          {statistics.median(fresh):7.2f} s")
    print(f"ssh cat > file, same bytes  {statistics.median(plain):7.2f} s")
    print(f"  ratio install/plain       {statistics.median(fresh) / statistics.median(plain):7.2f}")
    print(f"install_cli, already there  {again:7.2f} s")
    print(
        f"list_dir 20 entries         {ls_small * 1000:7.1f} ms (run ls: {ls_plain * 1000:.1f} ms,"
        f" ratio {ls_small / ls_plain:.2f})"
    )
    print(
        f"list_dir 10k entries        {ls_big * 1000:7.1f} ms "
        f"(run ls: {ls_big_plain * 1000:.1f} ms, ratio {ls_big / ls_big_plain:.2f})"
    )
    print(f"list_host_sessions, 100     {sessions * 1000:7.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    anyio.run(measure, args.runs)


if __name__ == "__main__":
    main()
