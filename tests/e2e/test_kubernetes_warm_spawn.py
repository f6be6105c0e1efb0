"""The spare ``pods/exec`` (``warm_spawn``) through the stand-in API server.

The stand-in stands in for the Kubernetes control plane (which cannot be
installed here); the pod is a real container, and every exec a real process
in it. Used, gone on close, and ended when old even where the exec protocol
(v4) cannot end a command's stdin on its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from remote_executors.executors._spare import SpareChannel
from remote_executors.executors.base import SpawnOptions
from remote_executors.executors.kubernetes import KubernetesExecutor
from remote_executors.testing.docker import TestContainer
from remote_executors.testing.executor_conformance import read_all
from remote_executors.testing.kube_standin import V4, KubeStandin, StandinPod

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def v4_kubeconfig(rx_container: TestContainer, tmp_path: Path) -> Iterator[Path]:
    """A stand-in that speaks only v4 (no way to end stdin alone), pod old/box-0."""
    standin = KubeStandin(protocols=(V4,)).start()
    try:
        standin.add_pod(
            "old", "box-0", rx_container.name, containers=("c",), user=rx_container.user
        )
        yield standin.kubeconfig(tmp_path / "kubeconfig")
    finally:
        standin.close()


def waiting(box: TestContainer) -> int:
    """Bootstraps in the pod's container blocked on their job header."""
    return sum(1 for args in box.processes() if args == "head -n 1")


async def until_waiting(box: TestContainer, count: int, what: str) -> None:
    with anyio.move_on_after(15):
        while waiting(box) != count:
            await anyio.sleep(0.05)
    assert waiting(box) == count, what


async def echo(executor: KubernetesExecutor, word: str) -> None:
    process = await executor.spawn(SpawnOptions("/bin/sh", ["-c", f"echo {word}"]))
    assert process.stdout is not None
    with anyio.fail_after(30):
        assert await read_all(process.stdout) == f"{word}\n".encode()
        assert await process.wait() == 0


async def test_a_spawn_runs_on_the_spare_exec_and_closing_leaves_nothing(
    rx_kube_pod: StandinPod, rx_kubeconfig: Path, rx_container: TestContainer
) -> None:
    before = waiting(rx_container)
    executor = KubernetesExecutor(
        rx_kube_pod.name, namespace=rx_kube_pod.namespace, kubeconfig=str(rx_kubeconfig)
    )
    spare = executor._spare
    assert executor.warm_spawn and spare is not None
    try:
        await echo(executor, "first")  # a fresh exec; the spare opens when it ends
        await until_waiting(rx_container, before + 1, "the spare never reached its header")
        await echo(executor, "second")
        assert spare.taken == 1 and spare.discarded == 0
    finally:
        await executor.aclose()
    await until_waiting(rx_container, before, "the spare outlived the executor")


async def test_without_warm_spawn_no_exec_waits(
    rx_kube_pod: StandinPod, rx_kubeconfig: Path, rx_container: TestContainer
) -> None:
    before = waiting(rx_container)
    async with KubernetesExecutor(
        rx_kube_pod.name,
        namespace=rx_kube_pod.namespace,
        kubeconfig=str(rx_kubeconfig),
        warm_spawn=False,
    ) as executor:
        assert not executor.warm_spawn
        await echo(executor, "plain")
        await anyio.sleep(0.5)
        assert waiting(rx_container) == before


async def test_an_old_spare_ends_under_v4_too(
    v4_kubeconfig: Path, rx_container: TestContainer
) -> None:
    # v4 has no way to end the command's stdin alone: closing it is a no-op
    # there, so an old spare must end its whole exec instead, or it would wait
    # in the pod until the executor closes.
    before = waiting(rx_container)
    async with KubernetesExecutor("box-0", namespace="old", kubeconfig=str(v4_kubeconfig)) as ex:
        spare = ex._spare = SpareChannel(ex._backend, max_age=1.0)
        await echo(ex, "first")
        old = spare.channel
        assert old is not None
        await until_waiting(rx_container, before, "the old spare still waits in the pod")
        with anyio.fail_after(10):
            while old.returncode is None:  # its exec's end reached this side too
                await anyio.sleep(0.05)
        assert spare.discarded == 0  # it ended by itself, the executor still open
        await echo(ex, "second")  # the dead spare is dropped; the spawn opens its own
        assert spare.taken == 0 and spare.discarded == 1
