"""Both conformance suites over ``KubernetesExecutor``, through the Kubernetes stand-in.

The real ``kubernetes`` client talks to :mod:`remote_executors.testing.kube_standin`
(pod reads, ``pods/exec`` over WebSocket, v5 negotiated) whose pod
``rx-test/shop-0`` is the Docker bed's shared container: the processes, the
watchdog and the files are real, and the wiring is the one every container
executor shares (``_container_suites``). trio runs the stopping subset.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from _container_suites import TRIO_SUBSET, ContainerExecutorSuite, ContainerSyncSuite
from _trio import on_trio
from remote_executors.executors.kubernetes import KubernetesExecutor
from remote_executors.testing._kube_fixtures import kube_executor
from remote_executors.testing.kube_standin import StandinPod

pytestmark = [pytest.mark.e2e]


@pytest.fixture
async def executor(
    rx_kube_pod: StandinPod, rx_kubeconfig: Path
) -> AsyncIterator[KubernetesExecutor]:
    async with kube_executor(rx_kube_pod, rx_kubeconfig) as executor:
        yield executor


class TestKubernetesExecutor(ContainerExecutorSuite):
    pass


TestKubernetesExecutorTrio = on_trio(TestKubernetesExecutor, TRIO_SUBSET)


class TestTailSyncKubernetes(ContainerSyncSuite):
    pass
