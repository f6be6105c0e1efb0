"""The Executor conformance suite over ``DockerExecutor`` on a real Docker engine.

The machine is a container of the test bed (a debootstrapped Debian with only
perl-base, procps and the bundled CLI), reached through ``docker exec``; the
wiring every container executor shares is in ``_container_suites``. trio runs
the stopping subset, as for SSH.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from _container_suites import TRIO_SUBSET, ContainerExecutorSuite
from _trio import on_trio
from remote_executors.executors.docker import DockerExecutor
from remote_executors.testing._docker_fixtures import docker_executor
from remote_executors.testing.docker import TestContainer

pytestmark = [pytest.mark.e2e]


class TestDockerExecutor(ContainerExecutorSuite):
    @pytest.fixture
    async def executor(self, rx_container: TestContainer) -> AsyncIterator[DockerExecutor]:
        async with docker_executor(rx_container) as executor:
            yield executor


TestDockerExecutorTrio = on_trio(TestDockerExecutor, TRIO_SUBSET)
