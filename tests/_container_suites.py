"""The conformance wiring every container executor shares (Docker, the Kubernetes stand-in).

Both reach the Docker bed's shared container ``rx_container`` as its user
``agent`` (home ``/home/agent``, not the local one). ``workdir`` is
``rx_container_project``; the processes to watch are those in the container's
pid namespace, read from this machine's /proc (not through the engine, which
could hide a leftover). Containers have no login scripts, so the default
``chatty_executor`` applies. A test module adds only an ``executor`` fixture.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from remote_executors.executors.base import Executor
from remote_executors.sync import SessionPaths, TailSessionSync
from remote_executors.testing.docker import TestContainer
from remote_executors.testing.executor_conformance import ExecutorConformance
from remote_executors.testing.plugin import Project
from remote_executors.testing.sync_conformance import ContainerRemoteSide, SessionSyncConformance

#: What trio runs over a container: the stream plumbing and every way of
#: stopping (the event loop changes the local side only; the whole suite runs
#: on both loops over LocalExecutor).
TRIO_SUBSET = frozenset(
    {
        "test_spawn_round_trip_is_binary_exact",
        "test_terminate",
        "test_closing_the_executor_stops_its_processes",
        "test_run_timeout_stops_the_command",
        "test_cancelling_run_stops_the_command",
    }
)


class ContainerExecutorSuite(ExecutorConformance):
    """The Executor conformance suite over a container executor, on asyncio."""

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
    def workdir(self, rx_container_project: Project) -> Path:
        return rx_container_project.local

    @pytest.fixture
    def remote_processes(self, rx_container: TestContainer) -> Callable[[], Sequence[str]]:
        return rx_container.processes


class ContainerSyncSuite(SessionSyncConformance):
    """The SessionSync conformance suite: ``TailSessionSync`` into the container.

    The test's hands write the remote files through the container's root as
    seen from this machine and hand them to its user, as if its CLI had
    written them. The project dir is named as on a Linux host, the local one
    as on a Mac. asyncio only, and no hypothesis property test: both run
    locally (tests/unit), and the decisions do not depend on the executor.
    """

    test_random_operations_never_lose_a_line = None  # local suite only (see above)

    @pytest.fixture
    def anyio_backend(self) -> str:
        return "asyncio"

    @pytest.fixture
    def sync(self) -> TailSessionSync:
        return TailSessionSync(timeout=30)

    @pytest.fixture
    def remote(self, rx_container: TestContainer) -> ContainerRemoteSide:
        # A project of its own per test: the container is shared.
        return ContainerRemoteSide(rx_container, f"-home-agent-code-shop-{uuid.uuid4().hex[:8]}")

    @pytest.fixture
    def paths(self, remote: ContainerRemoteSide, tmp_path: Path) -> SessionPaths:
        local = tmp_path / "local-claude" / "projects" / "-Users-me-code-shop"
        return remote.session_paths(local, str(uuid.uuid4()))

    @pytest.fixture
    def child_setup(self, executor: Executor) -> str:
        # The child reopens the same container from the executor's spec.
        return (
            "from remote_executors import executor_from_spec\n"
            "from remote_executors.sync import TailSessionSync\n"
            "sync = TailSessionSync(timeout=30)\n"
            f"executor = executor_from_spec({executor.spec!r})\n"
        )
