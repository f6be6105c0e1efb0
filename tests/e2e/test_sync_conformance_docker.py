"""The SessionSync conformance suite: TailSessionSync into a real Docker container.

The remote side is the test container's user (``agent``, its own uid and
home), reached with a ``DockerExecutor``; the wiring every container executor
shares (and why it is asyncio only) is in ``_container_suites``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from _container_suites import ContainerSyncSuite
from remote_executors.executors.docker import DockerExecutor
from remote_executors.testing._docker_fixtures import docker_executor
from remote_executors.testing.docker import TestContainer
from remote_executors.testing.sync_conformance import ContainerRemoteSide

pytestmark = [pytest.mark.e2e]


class TestTailSyncDocker(ContainerSyncSuite):
    @pytest.fixture
    async def executor(self, rx_container: TestContainer) -> AsyncIterator[DockerExecutor]:
        async with docker_executor(rx_container) as executor:
            yield executor

    def test_remote_side_writes_as_the_container_user(
        self, remote: ContainerRemoteSide, rx_container: TestContainer
    ) -> None:
        """The test's own hands: what ContainerRemoteSide writes is the user's, private."""
        remote.write("d/a.jsonl", b'{"a":1}\n')
        remote.append("d/a.jsonl", b'{"b":2}\n')
        project = f"{rx_container.claude_config_dir}/projects/{remote.project}"
        done = rx_container.exec(["cat", f"{project}/d/a.jsonl"])
        assert done.stdout == b'{"a":1}\n{"b":2}\n'
        listing = rx_container.exec(["ls", "-ld", project, f"{project}/d", f"{project}/d/a.jsonl"])
        for line in listing.stdout.decode().splitlines():
            mode, _links, owner = line.split()[:3]
            assert owner == rx_container.user, line
            assert mode.endswith("------"), line
