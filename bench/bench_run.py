"""Short-command latency and stdout throughput of ``Executor.run`` on the loopback test bed.

    sudo .venv/bin/python bench/bench_run.py [--runs N] [--backend openssh|fabric|both]

Reports, per SSH backend (warm: the connection is up), the median time of
``run(["true"])`` and of ``run`` of a command printing 32 MiB, and the same
for ``LocalExecutor``. The 32 MiB figure shows what relaying the command's
stdout costs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import anyio
from _bed import backend_name, bench_bed

import remote_executors as rx
from remote_executors.executors.ssh import BACKENDS

_BIG = 32 << 20
_PRINT_BIG = ["/bin/sh", "-c", f"head -c {_BIG} /dev/zero"]


async def timed(executor: rx.Executor, argv: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        result = await executor.run(argv, timeout=120)
        times.append(time.perf_counter() - start)
        assert result.ok, result
    return statistics.median(times)


async def measure(runs: int, backends: tuple[str, ...]) -> None:
    load = os.getloadavg()
    rows: list[tuple[str, float, float]] = []
    with bench_bed() as (_model, _server, _account, cfg, _local, _tmp):
        local = rx.LocalExecutor()
        rows.append(
            ("local", await timed(local, ["true"], runs), await timed(local, _PRINT_BIG, 7))
        )
        for backend in backends:
            async with rx.SSHExecutor(
                cfg.alias, ssh_config=str(cfg.path), backend=backend_name(backend)
            ) as ex:
                await ex.home()  # warm: the connection is up
                rows.append(
                    (backend, await timed(ex, ["true"], runs), await timed(ex, _PRINT_BIG, 7))
                )
    print(f"{runs} runs of true, 7 of 32 MiB, medians")
    print(f"load average (1 min) at start/end: {load[0]:.1f} / {os.getloadavg()[0]:.1f}")
    print(f"{'':10}{'true (ms)':>12}{'32 MiB (s)':>12}{'MB/s':>8}")
    for name, true, big in rows:
        print(f"{name:10}{true * 1000:12.1f}{big:12.2f}{_BIG / big / 1e6:8.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=31)
    parser.add_argument("--backend", choices=[*BACKENDS, "both"], default="both")
    args = parser.parse_args()
    backends = BACKENDS if args.backend == "both" else (args.backend,)
    anyio.run(measure, args.runs, backends)


if __name__ == "__main__":
    main()
