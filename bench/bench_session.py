"""Session latency: LocalExecutor vs SSHExecutor on the loopback test bed.

    sudo .venv/bin/python bench/bench_session.py [--runs N] [--backend openssh|fabric|both]

For each executor it runs N one-turn sessions (the real CLI, the scripted
model) and reports the median time to the first message and to the result.
"cold" builds a new SSHExecutor per session (a new SSH connection each time);
"warm" reuses one (its ControlMaster, or its pooled Fabric connection, is up).
Each SSH backend asked for ("openssh": the system ssh; "fabric": paramiko,
in-process) gets its own cold and warm rows. Ratios are remote/local (the
target for warm is <= 1.10) and, with both backends, fabric/openssh.
"""

from __future__ import annotations

import argparse
import os
import statistics
from pathlib import Path

import anyio
from _bed import Timing, backend_name, bench_bed, one_session
from claude_agent_sdk import ClaudeAgentOptions

import remote_executors as rx
from remote_executors.executors.ssh import BACKENDS


async def measure(runs: int, backends: tuple[str, ...]) -> None:
    load = os.getloadavg()
    with bench_bed() as (model, _server, _account, cfg, local, tmp):
        local_options = ClaudeAgentOptions(
            cwd=str(local),
            env={**model.cli_env(), "CLAUDE_CONFIG_DIR": str(Path(tmp) / "local-claude")},
        )
        remote_options = ClaudeAgentOptions(cwd=str(local))

        def ssh(backend: str) -> rx.SSHExecutor:
            return rx.SSHExecutor(
                cfg.alias, ssh_config=str(cfg.path), backend=backend_name(backend)
            )

        results: dict[str, list[Timing]] = {"local": []}
        warm: dict[str, rx.SSHExecutor] = {}
        try:
            # Warm-up: page the CLI binary into the cache for both sides, and
            # import paramiko before any fabric session is timed.
            await one_session(rx.LocalExecutor(), local_options)
            for backend in backends:
                warm[backend] = ssh(backend)
                await one_session(warm[backend], remote_options)
                results[f"cold {backend}"] = []
                results[f"warm {backend}"] = []
            # Interleaved, so drift in machine load spreads over every row alike.
            for _ in range(runs):
                results["local"].append(await one_session(rx.LocalExecutor(), local_options))
                for backend in backends:
                    cold = ssh(backend)
                    try:
                        results[f"cold {backend}"].append(await one_session(cold, remote_options))
                    finally:
                        await cold.aclose()
                    results[f"warm {backend}"].append(
                        await one_session(warm[backend], remote_options)
                    )
        finally:
            for executor in warm.values():
                await executor.aclose()

    def med(kind: str, index: int) -> float:
        return statistics.median(r[index] for r in results[kind])

    print(f"{runs} runs each, medians (seconds)")
    # Other work on the machine skews every figure: say how much there was.
    print(
        f"load average (1 min) at start/end: {load[0]:.1f} / {os.getloadavg()[0]:.1f} "
        f"on {os.cpu_count()} cores"
    )
    print(f"{'':16}{'first message':>15}{'result':>10}{'over':>10}")
    for kind in results:
        print(f"{kind:16}{med(kind, 0):15.3f}{med(kind, 1):10.3f}{med(kind, 2):10.3f}")
    for backend in backends:
        for temp in ("cold", "warm"):
            kind = f"{temp} {backend}"
            print(
                f"{temp}/local ({backend}): first message {med(kind, 0) / med('local', 0):.2f}x, "
                f"result {med(kind, 1) / med('local', 1):.2f}x"
            )
    if set(BACKENDS) <= set(backends):
        for temp in ("cold", "warm"):
            fab, ossh = f"{temp} fabric", f"{temp} openssh"
            print(
                f"fabric/openssh ({temp}): first message {med(fab, 0) / med(ossh, 0):.2f}x, "
                f"result {med(fab, 1) / med(ossh, 1):.2f}x"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--backend", choices=[*BACKENDS, "both"], default="both")
    args = parser.parse_args()
    backends = BACKENDS if args.backend == "both" else (args.backend,)
    anyio.run(measure, args.runs, backends)


if __name__ == "__main__":
    main()
