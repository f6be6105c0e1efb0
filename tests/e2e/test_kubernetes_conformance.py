"""Both conformance suites over ``KubernetesExecutor``, through the Kubernetes stand-in.

The real ``kubernetes`` client talks to :mod:`remote_executors.testing.kube_standin`
(pod reads, ``pods/exec`` over WebSocket, v5 negotiated) whose pod
``rx-test/shop-0`` is the Docker bed's shared container: the processes, the
watchdog and the files are real, reached as its user ``agent`` (home
``/home/agent``). The processes to watch are read from this machine's /proc,
as for Docker. trio runs the stopping subset.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import pytest

from remote_executors.executors.kubernetes import KubernetesExecutor
from remote_executors.sync import SessionPaths, TailSessionSync
from remote_executors.testing.docker import TestContainer
from remote_executors.testing.executor_conformance import ExecutorConformance
from remote_executors.testing.kube_standin import StandinPod
from remote_executors.testing.plugin import Project
from remote_executors.testing.sync_conformance import ContainerRemoteSide, SessionSyncConformance

pytestmark = [pytest.mark.e2e]

TRIO_SUBSET = frozenset(
    {
        "test_spawn_round_trip_is_binary_exact",
        "test_terminate",
        "test_closing_the_executor_stops_its_processes",
        "test_run_timeout_stops_the_command",
        "test_cancelling_run_stops_the_command",
    }
)


def _executor(pod: StandinPod, kubeconfig: Path) -> KubernetesExecutor:
    return KubernetesExecutor(
        pod.name, namespace=pod.namespace, container=pod.containers[0], kubeconfig=str(kubeconfig)
    )


class TestKubernetesExecutor(ExecutorConformance):
    inherits_local_environment = False
    stops_descendants = True
    signal_status = "shell"
    missing_command = "exit-127"
    stdin_line_buffered = True
    private_args_as_files = True

    @pytest.fixture
    def anyio_backend(self) -> str:
        return "asyncio"

    @pytest.fixture
    async def executor(
        self, rx_kube_pod: StandinPod, rx_kubeconfig: Path
    ) -> AsyncIterator[KubernetesExecutor]:
        executor = _executor(rx_kube_pod, rx_kubeconfig)
        try:
            yield executor
        finally:
            await executor.aclose()

    @pytest.fixture
    def workdir(self, rx_container_project: Project) -> Path:
        return rx_container_project.local

    @pytest.fixture
    def remote_processes(self, rx_container: TestContainer) -> Callable[[], Sequence[str]]:
        return rx_container.processes


class TestKubernetesExecutorTrio(TestKubernetesExecutor):
    @pytest.fixture
    def anyio_backend(self) -> str:
        return "trio"


_unknown = TRIO_SUBSET - set(dir(ExecutorConformance))
assert not _unknown, f"no such tests in the suite: {_unknown}"
for _name in dir(ExecutorConformance):
    if _name.startswith("test_") and _name not in TRIO_SUBSET:
        setattr(TestKubernetesExecutorTrio, _name, None)


class TestTailSyncKubernetes(SessionSyncConformance):
    test_random_operations_never_lose_a_line = None  # local suite only (as for Docker)

    @pytest.fixture
    def anyio_backend(self) -> str:
        return "asyncio"

    @pytest.fixture
    def sync(self) -> TailSessionSync:
        return TailSessionSync(timeout=30)

    @pytest.fixture
    async def executor(
        self, rx_kube_pod: StandinPod, rx_kubeconfig: Path
    ) -> AsyncIterator[KubernetesExecutor]:
        executor = _executor(rx_kube_pod, rx_kubeconfig)
        try:
            yield executor
        finally:
            await executor.aclose()

    @pytest.fixture
    def remote(self, rx_container: TestContainer) -> ContainerRemoteSide:
        return ContainerRemoteSide(rx_container, f"-home-agent-code-shop-{uuid.uuid4().hex[:8]}")

    @pytest.fixture
    def paths(self, remote: ContainerRemoteSide, tmp_path: Path) -> SessionPaths:
        local = tmp_path / "local-claude" / "projects" / "-Users-me-code-shop"
        return remote.session_paths(local, str(uuid.uuid4()))

    @pytest.fixture
    def child_setup(self, rx_kube_pod: StandinPod, rx_kubeconfig: Path) -> str:
        return (
            "from remote_executors.executors.kubernetes import KubernetesExecutor\n"
            "from remote_executors.sync import TailSessionSync\n"
            "sync = TailSessionSync(timeout=30)\n"
            f"executor = KubernetesExecutor({rx_kube_pod.name!r}, "
            f"namespace={rx_kube_pod.namespace!r}, container={rx_kube_pod.containers[0]!r}, "
            f"kubeconfig={str(rx_kubeconfig)!r})\n"
        )
