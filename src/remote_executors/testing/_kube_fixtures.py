"""pytest fixtures for the Kubernetes stand-in (see :mod:`remote_executors.testing.kube_standin`).

- ``rx_kube_standin`` (session): a started :class:`KubeStandin` over the
  Docker bed (skipped where Docker does not answer, a failure under ``CI``,
  as for ``rx_container_bed``), offering both v5 and v4.
- ``rx_kube_pod`` (session): ``rx_container`` as pod ``rx-test/shop-0``
  (container ``claude``, exec'd as the bed's user, as a pod's
  ``runAsUser``), so Kubernetes tests share the Docker tests' container.
- ``rx_kubeconfig`` (session): a kubeconfig file (context ``standin``) that
  reaches the stand-in with its token.
- ``rx_kube_executor``: a ``KubernetesExecutor`` for ``rx_kube_pod`` through
  ``rx_kubeconfig``, closed afterwards.

``kube_executor(pod, kubeconfig)`` is that executor, for fixtures of their own
(``async with`` closes it).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from ..executors.kubernetes import KubernetesExecutor
    from ._sshd_fixtures import Isolated
    from .docker import ContainerBed, TestContainer
    from .kube_standin import KubeStandin, StandinPod

__all__ = ["kube_executor", "rx_kube_executor", "rx_kube_pod", "rx_kube_standin", "rx_kubeconfig"]

#: Where ``rx_kube_pod`` lives.
NAMESPACE = "rx-test"
POD = "shop-0"
CONTAINER = "claude"


@pytest.fixture(scope="session")
def rx_kube_standin(rx_container_bed: ContainerBed) -> Iterator[KubeStandin]:
    """The stand-in API server over the session's Docker bed."""
    from .kube_standin import KubeStandin

    with KubeStandin(rx_container_bed.engine) as standin:
        yield standin


@pytest.fixture(scope="session")
def rx_kube_pod(rx_kube_standin: KubeStandin, rx_container: TestContainer) -> StandinPod:
    """``rx_container`` as the pod ``rx-test/shop-0`` (container ``claude``)."""
    return rx_kube_standin.add_pod(
        NAMESPACE, POD, rx_container.name, containers=(CONTAINER,), user=rx_container.user
    )


@pytest.fixture(scope="session")
def rx_kubeconfig(rx_kube_standin: KubeStandin, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A kubeconfig (current context ``standin``) for the stand-in."""
    return rx_kube_standin.kubeconfig(tmp_path_factory.mktemp("kube") / "config")


def kube_executor(pod: StandinPod, kubeconfig: Path) -> KubernetesExecutor:
    """A ``KubernetesExecutor`` for ``pod``'s first container through ``kubeconfig``."""
    from ..executors.kubernetes import KubernetesExecutor

    return KubernetesExecutor(
        pod.name, namespace=pod.namespace, container=pod.containers[0], kubeconfig=str(kubeconfig)
    )


@pytest.fixture
async def rx_kube_executor(
    rx_kube_pod: StandinPod, rx_kubeconfig: Path, rx_isolated: Isolated
) -> AsyncIterator[KubernetesExecutor]:
    """A ``KubernetesExecutor`` for ``rx_kube_pod`` (needs an anyio test), closed afterwards."""
    async with kube_executor(rx_kube_pod, rx_kubeconfig) as executor:
        yield executor
