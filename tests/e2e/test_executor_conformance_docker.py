"""The Executor conformance suite over ``DockerExecutor`` on a real Docker engine.

The machine is a container of the test bed (a debootstrapped Debian with only
perl-base, procps and the bundled CLI), reached as its user ``agent`` (home
``/home/agent``, not the local one) through ``docker exec``. ``workdir`` is
``rx_container_project``; the processes to watch are those in the container's
pid namespace, read from this machine's /proc (not through the engine, which
could hide a leftover). Containers have no login scripts, so the default
``chatty_executor`` applies. trio runs the stopping subset, as for SSH.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import pytest

from remote_executors.executors.docker import DockerExecutor
from remote_executors.testing.docker import TestContainer
from remote_executors.testing.executor_conformance import ExecutorConformance
from remote_executors.testing.plugin import Project

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


class TestDockerExecutor(ExecutorConformance):
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
    async def executor(self, rx_container: TestContainer) -> AsyncIterator[DockerExecutor]:
        executor = DockerExecutor(rx_container.name, user=rx_container.user)
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


class TestDockerExecutorTrio(TestDockerExecutor):
    @pytest.fixture
    def anyio_backend(self) -> str:
        return "trio"


_unknown = TRIO_SUBSET - set(dir(ExecutorConformance))
assert not _unknown, f"no such tests in the suite: {_unknown}"
for _name in dir(ExecutorConformance):
    if _name.startswith("test_") and _name not in TRIO_SUBSET:
        setattr(TestDockerExecutorTrio, _name, None)
