"""Reattach: how fast the stream flows again after a cut, and what the supervisor costs.

    sudo .venv/bin/python bench/bench_reattach.py [--runs N] [--cuts N] [--backend openssh|fabric]

1. Warm sessions (the real CLI, the scripted model) with ``reattach_within=300``
   (the supervisor) and ``reattach_within=0`` (none), interleaved: medians of the time
   to the first message and to the result, and their ratio (target: first message
   <= 1.05).
2. A process printing a line every 20 ms through ``LinkProxy``; the link is cut for
   1 s, ``--cuts`` times. For each cut: the time from the link restored to the next
   line of output (p50/p95/max; target p95 <= 1 s), and whether every line arrived
   once, in order.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import anyio
from _bed import Timing, backend_name, bench_bed, one_session
from anyio.abc import Process
from claude_agent_sdk import ClaudeAgentOptions

import remote_executors as rx
from remote_executors.executors.base import SpawnOptions
from remote_executors.testing.link import LinkProxy

TICKER = 'i=0; while :; do echo "tick $i"; i=$((i+1)); sleep 0.02; done'


class Ticks:
    """The ticker's stream so far: the partial line, the next tick, all in order."""

    def __init__(self) -> None:
        self.buffer = b""
        self.next = 0
        self.ok = True


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def measure(runs: int, cuts: int, backend: str) -> None:
    load = os.getloadavg()
    with bench_bed() as bench:
        cfg = bench.cfg
        options = ClaudeAgentOptions(cwd=str(bench.local))

        def ssh(within: float, config: object = cfg) -> rx.SSHExecutor:
            return rx.SSHExecutor(
                config.alias,  # type: ignore[attr-defined]
                ssh_config=str(config.path),  # type: ignore[attr-defined]
                backend=backend_name(backend),
                reattach_within=within,
                keepalive_interval=1,
                keepalive_count=2,
            )

        rows: dict[str, list[Timing]] = {"supervised": [], "plain": []}
        async with ssh(300) as supervised, ssh(0) as plain:
            await one_session(supervised, options)
            await one_session(plain, options)
            for _ in range(runs):
                rows["supervised"].append(await one_session(supervised, options))
                rows["plain"].append(await one_session(plain, options))

        flowing: list[float] = []
        state = Ticks()

        async def until(count: int, process: Process) -> None:
            """Read until line ``count`` arrived, checking each is the next one."""
            assert process.stdout is not None
            while state.next < count:
                state.buffer += await process.stdout.receive()
                *lines, state.buffer = state.buffer.split(b"\n")
                for line in lines:
                    if not line.startswith(b"{"):  # link status lines
                        state.ok = state.ok and line == b"tick %d" % state.next
                        state.next += 1

        with LinkProxy(bench.bed.host, bench.bed.port) as link:
            async with ssh(60, link.client_config(cfg)) as executor:
                process = await executor.spawn(
                    SpawnOptions("/bin/sh", ["-c", TICKER], outlive_link=True)
                )
                for _ in range(cuts):
                    await until(state.next + 25, process)
                    link.cut()
                    await anyio.sleep(1.0)
                    link.restore()
                    restored = time.perf_counter()
                    await until(state.next + 1, process)
                    flowing.append(time.perf_counter() - restored)
                process.terminate()
                await process.aclose()
        ok = state.ok

    def med(kind: str, index: int) -> float:
        return statistics.median(r[index] for r in rows[kind])

    print(f"backend {backend}; {runs} warm sessions each, medians (seconds)")
    print(
        f"load average (1 min) at start/end: {load[0]:.1f} / {os.getloadavg()[0]:.1f} "
        f"on {os.cpu_count()} cores"
    )
    print(f"{'':22}{'first message':>15}{'result':>10}")
    for kind in rows:
        label = f"{kind} (reattach_within={'300' if kind == 'supervised' else '0'})"
        print(f"{label:22}{med(kind, 0):15.3f}{med(kind, 1):10.3f}")
    print(
        f"supervised/plain: first message {med('supervised', 0) / med('plain', 0):.3f}x, "
        f"result {med('supervised', 1) / med('plain', 1):.3f}x"
    )
    print(
        f"link restored -> stream flowing over {cuts} cuts of 1 s: "
        f"p50 {pct(flowing, 0.5):.3f} s, p95 {pct(flowing, 0.95):.3f} s, "
        f"max {max(flowing):.3f} s; every line once, in order: {ok}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--cuts", type=int, default=10)
    parser.add_argument("--backend", choices=["openssh", "fabric"], default="openssh")
    args = parser.parse_args()
    anyio.run(measure, args.runs, args.cuts, args.backend)


if __name__ == "__main__":
    main()
