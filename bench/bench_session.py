"""Session latency: LocalExecutor vs SSHExecutor on the loopback test bed.

    sudo .venv/bin/python bench/bench_session.py [--runs N]

For each executor it runs N one-turn sessions (the real CLI, the scripted
model) and reports the median time to the first message and to the result.
"cold" builds a new SSHExecutor per session (a new SSH connection each time);
"warm" reuses one (its ControlMaster is up). Ratios are remote/local; the
target for warm is <= 1.10.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import tempfile
import time
from contextlib import aclosing
from pathlib import Path

import anyio
from claude_agent_sdk import ClaudeAgentOptions, ResultMessage

import remote_executors as rx
from remote_executors.testing.model import ScriptedModel
from remote_executors.testing.sshd import SSHTestBed


async def one_session(executor: rx.Executor, options: ClaudeAgentOptions) -> tuple[float, float]:
    start = time.perf_counter()
    first = None
    # aclosing: the session must be over before the executor may be closed.
    async with aclosing(rx.query(prompt="hello", options=options, executor=executor)) as stream:
        async for message in stream:
            if first is None:
                first = time.perf_counter() - start
            if isinstance(message, ResultMessage):
                break
    assert first is not None
    return first, time.perf_counter() - start


async def measure(runs: int) -> None:
    with ScriptedModel() as model, SSHTestBed() as bed, tempfile.TemporaryDirectory() as tmp:
        # Remote sessions are synced to the local disk before their result is
        # passed on (part of what is measured): keep them out of ~/.claude.
        os.environ["CLAUDE_CONFIG_DIR"] = str(Path(tmp) / "synced-claude")
        os.environ["REMOTE_EXECUTORS_DATA_DIR"] = str(Path(tmp) / "rx-data")
        account = bed.account("bash", model_url=model.url)
        cfg = bed.client_config(account, Path(tmp) / "ssh")
        rel = Path(f"rx-bench-{time.time_ns()}")
        local = Path.home() / rel
        local.mkdir()
        bed.run_as(account, ["mkdir", "-p", str(bed.remote_home(account) / rel)], check=True)
        local_options = ClaudeAgentOptions(
            cwd=str(local),
            env={**model.cli_env(), "CLAUDE_CONFIG_DIR": str(Path(tmp) / "local-claude")},
        )
        remote_options = ClaudeAgentOptions(cwd=str(local))

        def ssh() -> rx.SSHExecutor:
            return rx.SSHExecutor(cfg.alias, ssh_config=str(cfg.path))

        results: dict[str, list[tuple[float, float]]] = {"local": [], "cold": [], "warm": []}
        # Warm-up: page the CLI binary into the cache for both sides.
        await one_session(rx.LocalExecutor(), local_options)
        warm = ssh()
        await one_session(warm, remote_options)
        for _ in range(runs):
            results["local"].append(await one_session(rx.LocalExecutor(), local_options))
            cold = ssh()
            results["cold"].append(await one_session(cold, remote_options))
            await cold.aclose()
            results["warm"].append(await one_session(warm, remote_options))
        await warm.aclose()
        with contextlib.suppress(OSError):
            local.rmdir()

    def med(kind: str, index: int) -> float:
        return statistics.median(r[index] for r in results[kind])

    print(f"{runs} runs each, medians (seconds)")
    print(f"{'':8}{'first message':>15}{'result':>10}")
    for kind in ("local", "cold", "warm"):
        print(f"{kind:8}{med(kind, 0):15.3f}{med(kind, 1):10.3f}")
    for kind in ("cold", "warm"):
        print(
            f"{kind}/local: first message {med(kind, 0) / med('local', 0):.2f}x, "
            f"result {med(kind, 1) / med('local', 1):.2f}x"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    anyio.run(measure, args.runs)


if __name__ == "__main__":
    main()
