"""The spare ``docker exec`` (``warm_spawn``) in a real container: used, and gone on close."""

from __future__ import annotations

import time

import anyio
import pytest

import remote_executors as rx
from remote_executors.executors.base import SpawnOptions
from remote_executors.testing.docker import TestContainer

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def waiting(box: TestContainer) -> int:
    """Bootstraps in the container blocked on their job header."""
    return sum(1 for args in box.processes() if args == "head -n 1")


async def echo(executor: rx.DockerExecutor, word: str) -> float:
    start = time.monotonic()
    process = await executor.spawn(SpawnOptions("/bin/sh", ["-c", f"echo {word}"]))
    took = time.monotonic() - start
    assert process.stdout is not None
    out = b""
    async for chunk in process.stdout:
        out += chunk
    assert await process.wait() == 0
    await process.aclose()  # type: ignore[attr-defined]
    assert out == f"{word}\n".encode()
    return took


async def test_a_spawn_runs_on_the_spare_exec_and_closing_leaves_nothing(
    rx_container: TestContainer,
) -> None:
    before = waiting(rx_container)
    executor = rx.DockerExecutor(rx_container.name, user=rx_container.user)
    spare = executor._spare
    assert spare is not None
    try:
        await echo(executor, "first")  # a fresh exec; the spare starts when it ends
        with anyio.fail_after(10):
            while waiting(rx_container) != before + 1:
                await anyio.sleep(0.05)
        await echo(executor, "second")
        assert spare.taken == 1 and spare.discarded == 0
    finally:
        await executor.aclose()
    with anyio.fail_after(5):
        while waiting(rx_container) != before:
            await anyio.sleep(0.05)


async def test_without_warm_spawn_no_exec_waits(rx_container: TestContainer) -> None:
    before = waiting(rx_container)
    executor = rx.DockerExecutor(rx_container.name, user=rx_container.user, warm_spawn=False)
    try:
        await echo(executor, "plain")
        await anyio.sleep(0.5)
        assert waiting(rx_container) == before
    finally:
        await executor.aclose()
