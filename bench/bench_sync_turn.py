"""Turn end -> local transcript complete, on the loopback test bed.

    sudo .venv/bin/python bench/bench_sync_turn.py [--turns N]

One ClaudeSDKClient session on a warm SSHExecutor (the real CLI, the scripted
model), N turns. Each turn's result message is held back until the turn's
transcript lines are on the local disk; this measures that hold: the pull the
transport runs between receiving the result and handing it on (target: <= 100 ms
on loopback). Also prints how many bytes each pull moved against the
transcript's size, to show the cost follows new bytes.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import anyio
from claude_agent_sdk import ClaudeAgentOptions, ResultMessage

import remote_executors as rx
from remote_executors.testing.model import ScriptedModel, text, tool_use
from remote_executors.testing.sshd import SSHTestBed


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


async def measure(turns: int) -> None:
    with ScriptedModel() as model, SSHTestBed() as bed, tempfile.TemporaryDirectory() as tmp:
        os.environ["CLAUDE_CONFIG_DIR"] = str(Path(tmp) / "local-claude")
        os.environ["REMOTE_EXECUTORS_DATA_DIR"] = str(Path(tmp) / "data")
        account = bed.account("bash", model_url=model.url)
        cfg = bed.client_config(account, Path(tmp) / "ssh")
        rel = Path(f"rx-bench-{time.time_ns()}")
        local = Path.home() / rel
        local.mkdir()
        bed.run_as(account, ["mkdir", "-p", str(bed.remote_home(account) / rel)], check=True)
        for i in range(turns):
            model.script(
                tool_use("Bash", {"command": f"echo step {i}", "description": "echo"}),
                text(f"turn {i} done"),
            )
        timed = TimedSync()
        at_result: list[int] = []
        try:
            async with rx.SSHExecutor(cfg.alias, ssh_config=str(cfg.path)) as executor:
                options = ClaudeAgentOptions(cwd=str(local), allowed_tools=["Bash"])
                async with rx.ClaudeSDKClient(options, executor=executor, sync=timed) as client:
                    for i in range(turns):
                        await client.query(f"turn {i}")
                        async for message in client.receive_response():
                            if isinstance(message, ResultMessage):
                                at_result.append(len(timed.pulls))
        finally:
            for path in (local,):
                path.rmdir()
    turn_end = [timed.pulls[n - 1] for n in at_result]
    seconds = [t for t, _, _ in turn_end]
    print(f"{turns} turns on a warm connection (Bash tool call + answer each)")
    print(
        f"turn end -> local complete: median {statistics.median(seconds) * 1000:.1f} ms, "
        f"max {max(seconds) * 1000:.1f} ms (target <= 100 ms)"
    )
    for i, (t, moved, size) in enumerate(turn_end):
        print(f"  turn {i:2}: {t * 1000:6.1f} ms, {moved:7} bytes moved, transcript {size} bytes")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=10)
    anyio.run(measure, parser.parse_args().turns)


if __name__ == "__main__":
    main()
