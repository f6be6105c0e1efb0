"""Warm sessions with and without a spare channel (``warm_spawn``), remote/local.

    sudo .venv/bin/python bench/bench_warm_spawn.py [--runs N] [--docker]

One-turn sessions (the real CLI, the instant scripted model) on warm
executors: local, then SSHExecutor over openssh and fabric, each with
``warm_spawn`` off and on (and DockerExecutor likewise with ``--docker``).
Every round runs each kind once, in a rotated order and after a pause, so a
session's wind-down does not always land on the same row. Prints medians to
the first message, to the result and to the session being over, and
remote/local ratios (issue 15's target for SSH is <= 1.05, issue 16's for
Docker <= 1.10).

A second table times ``spawn()`` alone (``/bin/sh -c 'date +%s.%N'``, under
the supervisor as the CLI's spawns are): from the call to the remote command
running, read off the remote clock (the bed is loopback: one clock). Last,
how many spawns each executor ran on its spare: a "spare" row whose spare
was never taken measured nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
from _bed import Timing, backend_name, bench_bed, one_session
from claude_agent_sdk import ClaudeAgentOptions

import remote_executors as rx
from remote_executors.executors.base import SpawnOptions

SETTLE = 0.5


async def spawn_to_command(executor: rx.Executor) -> float:
    """Seconds from spawn() to the remote command running (remote clock)."""
    start = time.time()
    process = await executor.spawn(
        SpawnOptions("/bin/sh", ["-c", "date +%s.%N"], outlive_link=True)
    )
    assert process.stdout is not None
    out = b""
    async for chunk in process.stdout:
        out += chunk
    await process.wait()
    await process.aclose()
    return float(out.split()[-1]) - start


async def measure(runs: int, docker: bool, backends: tuple[str, ...]) -> None:
    load = os.getloadavg()
    with contextlib.ExitStack() as stack:
        b = stack.enter_context(bench_bed())
        local_options = ClaudeAgentOptions(
            cwd=str(b.local),
            env={**b.model.cli_env(), "CLAUDE_CONFIG_DIR": str(Path(b.tmp) / "local-claude")},
        )
        remote_options = ClaudeAgentOptions(cwd=str(b.local))
        executors: dict[str, Any] = {}
        for backend in backends:
            for warm in (False, True):
                executors[f"{backend} {'spare' if warm else 'plain'}"] = rx.SSHExecutor(
                    b.cfg.alias,
                    ssh_config=str(b.cfg.path),
                    backend=backend_name(backend),
                    warm_spawn=warm,
                )
        if docker:
            from remote_executors.testing.docker import ContainerBed

            bed = stack.enter_context(ContainerBed())
            box = bed.container(model_url=b.model.url)
            rel = b.local.relative_to(Path.home())
            box.exec(["mkdir", "-p", f"{box.home}/{rel}"])
            for warm in (False, True):
                executors[f"docker {'spare' if warm else 'plain'}"] = rx.DockerExecutor(
                    box.name, user=box.user, warm_spawn=warm
                )
        sessions: dict[str, list[Timing]] = {k: [] for k in ("local", *executors)}
        spawns: dict[str, list[float]] = {k: [] for k in executors}
        try:
            await one_session(rx.LocalExecutor(), local_options)
            for executor in executors.values():
                await one_session(executor, remote_options)
            kinds: dict[str, Callable[[], Awaitable[Timing]]] = {
                "local": lambda: one_session(rx.LocalExecutor(), local_options)
            }
            for kind, executor in executors.items():
                kinds[kind] = functools.partial(one_session, executor, remote_options)
            order = list(kinds)
            for round_ in range(runs):
                turn = round_ % len(order)
                for kind in order[turn:] + order[:turn]:
                    await anyio.sleep(SETTLE)
                    sessions[kind].append(await kinds[kind]())
                    if kind in executors:
                        await anyio.sleep(SETTLE)
                        spawns[kind].append(await spawn_to_command(executors[kind]))
        finally:
            taken = {k: e._spare.taken for k, e in executors.items() if e._spare is not None}
            for executor in executors.values():
                await executor.aclose()

    def med(kind: str, index: int) -> float:
        return statistics.median(r[index] for r in sessions[kind])

    end_load = os.getloadavg()[0]
    print(f"{runs} rounds, medians; load average (1 min) {load[0]:.1f} -> {end_load:.1f}")
    print(f"on {os.cpu_count()} cores")
    print(
        f"{'':16}{'first message':>14}{'result':>9}{'over':>8}"
        f"{'ratio first':>13}{'ratio result':>14}{'ratio over':>12}"
    )
    for kind in sessions:
        first, result, over = med(kind, 0), med(kind, 1), med(kind, 2)
        print(
            f"{kind:16}{first:13.3f}s{result:8.3f}s{over:7.3f}s"
            f"{first / med('local', 0):12.2f}x{result / med('local', 1):13.2f}x"
            f"{over / med('local', 2):11.2f}x"
        )
    print(f"{'spawn() -> remote command runs':34}{'median':>8}{'min':>8}")
    for kind, values in spawns.items():
        print(f"  {kind:32}{statistics.median(values) * 1000:6.1f}ms{min(values) * 1000:6.1f}ms")
    spawned = (
        2 * runs
    )  # the rounds' sessions and spawn() calls (the warm-up opened the first spare)
    used = ", ".join(f"{k} {n}/{spawned}" for k, n in taken.items())
    print(f"spawns that ran on the spare: {used}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--docker", action="store_true", help="also DockerExecutor")
    parser.add_argument("--backend", choices=["openssh", "fabric", "both"], default="both")
    args = parser.parse_args()
    backends = ("openssh", "fabric") if args.backend == "both" else (args.backend,)
    anyio.run(measure, args.runs, args.docker, backends)


if __name__ == "__main__":
    main()
