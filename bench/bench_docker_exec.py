"""The fixed cost of one process in a container: Engine API carrier vs docker CLI.

    sudo .venv/bin/python bench/bench_docker_exec.py [--runs N]

Two ``DockerExecutor``s on the test bed's container, one on each carrier
(the in-process Engine API, and one ``docker exec`` client per process),
interleaved in an order that turns every round. Per carrier, the median of:

- ``run(["true"])``: a short command, start to exit status;
- spawn to first byte: ``spawn`` of ``echo``-like ``/bin/sh -c 'echo x; cat'``
  until its first output line, then end of stdin and its exit.

It prints the medians and the API/CLI ratios. No CLI, no model: this is the
carrier alone, which is what the first message of a session pays for on top
of the CLI's own start.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import time
from collections.abc import Awaitable, Callable

import anyio

import remote_executors as rx
from remote_executors.executors._container_engine import EngineBackend
from remote_executors.executors._docker_api import DockerAPIBackend
from remote_executors.executors.base import SpawnOptions
from remote_executors.testing.docker import ContainerBed


async def short_run(executor: rx.DockerExecutor) -> float:
    start = time.perf_counter()
    result = await executor.run(["true"])
    assert result.returncode == 0, result
    return time.perf_counter() - start


async def spawn_first_byte(executor: rx.DockerExecutor) -> float:
    start = time.perf_counter()
    process = await executor.spawn(SpawnOptions("/bin/sh", ["-c", "echo x; cat"]))
    assert process.stdout is not None and process.stdin is not None
    assert await process.stdout.receive() == b"x\n"
    took = time.perf_counter() - start
    await process.stdin.aclose()
    await process.wait()
    return took


async def measure(runs: int) -> None:
    load = os.getloadavg()
    with ContainerBed() as bed:
        box = bed.container(claude=False)
        api = rx.DockerExecutor(box.name, user=box.user)
        assert isinstance(api._backend, DockerAPIBackend), "the API carrier does not apply here"
        cli = rx.DockerExecutor(box.name, user=box.user)
        cli._backend = EngineBackend(cli.name, "docker", box.name, box.user)
        kinds: dict[str, Callable[[], Awaitable[float]]] = {}
        for carrier, executor in (("api", api), ("cli", cli)):
            kinds[f"run {carrier}"] = functools.partial(short_run, executor)
            kinds[f"spawn {carrier}"] = functools.partial(spawn_first_byte, executor)
        results: dict[str, list[float]] = {kind: [] for kind in kinds}
        try:
            for kind in kinds:  # warm-up
                await kinds[kind]()
            order = list(kinds)
            for round_ in range(runs):
                turn = round_ % len(order)
                for kind in order[turn:] + order[:turn]:
                    results[kind].append(await kinds[kind]())
        finally:
            await api.aclose()
            await cli.aclose()

    med = {kind: statistics.median(values) for kind, values in results.items()}
    print(f"{runs} runs each; load average {load[0]:.1f} on {os.cpu_count()} cores")
    for kind, value in med.items():
        print(f"{kind:12}{value * 1000:9.1f} ms")
    for what in ("run", "spawn"):
        print(
            f"{what}: API/CLI {med[f'{what} api'] / med[f'{what} cli']:.2f}x "
            f"({(med[f'{what} cli'] - med[f'{what} api']) * 1000:.0f} ms less)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    anyio.run(measure, args.runs)


if __name__ == "__main__":
    main()
