"""Turn end -> local transcript complete, on the loopback test bed.

    sudo .venv/bin/python bench/bench_sync_turn.py [--turns N] [--runs R]
        [--backend openssh|fabric|both]

One ClaudeSDKClient session on a warm SSHExecutor (the real CLI, the scripted
model), N turns; R such sessions per SSH backend, the backends taking turns.
Each turn's result message is held back until the turn's transcript lines are
on the local disk; this measures that hold: the pull the transport runs
between receiving the result and handing it on (target: <= 100 ms on
loopback). Also prints how many bytes each pull moved against the
transcript's size, to show the cost follows new bytes. With both backends it
prints the fabric/openssh ratios.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import anyio
from _bed import backend_name, bench_bed
from claude_agent_sdk import ClaudeAgentOptions, ResultMessage

import remote_executors as rx
from remote_executors.executors.ssh import BACKENDS
from remote_executors.testing.model import ScriptedModel, text, tool_use


class TimedSync:
    """The default strategy, timing every pull."""

    def __init__(self) -> None:
        self.inner = rx.TailSessionSync()
        self.pulls: list[tuple[float, int, int]] = []  # seconds, moved, local size after

    async def pull(self, executor: rx.Executor, paths: rx.SessionPaths) -> rx.SyncReport:
        start = time.perf_counter()
        report = await self.inner.pull(executor, paths)
        size = sum((paths.local_dir / f.path).stat().st_size for f in report.files)
        self.pulls.append((time.perf_counter() - start, report.moved, size))
        return report

    async def push(self, executor: rx.Executor, paths: rx.SessionPaths) -> rx.SyncReport:
        return await self.inner.push(executor, paths)


async def one_session(
    model: ScriptedModel, alias: str, config: str, backend: str, local: Path, turns: int, tag: str
) -> list[tuple[float, int, int]]:
    """The pulls that held back each turn's result, in turn order."""
    # The marker keeps this session's script apart from any other's.
    model.script(
        *(
            reply
            for i in range(turns)
            for reply in (
                tool_use("Bash", {"command": f"echo step {i}", "description": "echo"}),
                text(f"turn {i} done"),
            )
        ),
        when=tag,
    )
    timed = TimedSync()
    at_result: list[int] = []
    async with rx.SSHExecutor(alias, ssh_config=config, backend=backend_name(backend)) as executor:
        options = ClaudeAgentOptions(cwd=str(local), allowed_tools=["Bash"])
        async with rx.ClaudeSDKClient(options, executor=executor, sync=timed) as client:
            for i in range(turns):
                await client.query(f"{tag} turn {i}")
                async for message in client.receive_response():
                    if isinstance(message, ResultMessage):
                        assert not message.is_error, message
                        at_result.append(len(timed.pulls))
    assert len(at_result) == turns, at_result
    return [timed.pulls[n - 1] for n in at_result]


async def measure(turns: int, runs: int, backends: tuple[str, ...]) -> None:
    # backend -> one list of per-turn pulls per run
    found: dict[str, list[list[tuple[float, int, int]]]] = {b: [] for b in backends}
    load = os.getloadavg()
    with bench_bed("local-claude") as (model, _server, _account, cfg, local, _tmp):
        for run in range(runs):
            for backend in backends:
                found[backend].append(
                    await one_session(
                        model,
                        cfg.alias,
                        str(cfg.path),
                        backend,
                        local,
                        turns,
                        f"[{backend}-{run}]",
                    )
                )

    print(f"{turns} turns on a warm connection (Bash tool call + answer each), {runs} run(s)")
    # Other work on the machine skews every figure: say how much there was.
    print(
        f"load average (1 min) at start/end: {load[0]:.1f} / {os.getloadavg()[0]:.1f} "
        f"on {os.cpu_count()} cores"
    )
    medians: dict[str, tuple[float, float]] = {}
    for backend in backends:
        seconds = [t for pulls in found[backend] for t, _, _ in pulls]
        medians[backend] = (statistics.median(seconds), max(seconds))
        print(
            f"[{backend}] turn end -> local complete: median "
            f"{medians[backend][0] * 1000:.1f} ms, max {medians[backend][1] * 1000:.1f} ms "
            "(target <= 100 ms)"
        )
        for i in range(turns):
            # Median over runs; bytes from the last run (they hardly vary).
            t = statistics.median(pulls[i][0] for pulls in found[backend])
            _, moved, size = found[backend][-1][i]
            print(
                f"  turn {i:2}: {t * 1000:6.1f} ms, {moved:7} bytes moved, transcript {size} bytes"
            )
    if set(BACKENDS) <= set(backends):
        (fm, fx), (om, ox) = medians["fabric"], medians["openssh"]
        print(f"fabric/openssh: median {fm / om:.2f}x, max {fx / ox:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=10)
    parser.add_argument("--runs", type=int, default=1, help="sessions per backend")
    parser.add_argument("--backend", choices=[*BACKENDS, "both"], default="both")
    args = parser.parse_args()
    backends = BACKENDS if args.backend == "both" else (args.backend,)
    anyio.run(measure, args.turns, args.runs, backends)


if __name__ == "__main__":
    main()
