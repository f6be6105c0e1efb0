"""The SessionSync conformance suite: TailSessionSync into a real Docker container.

The remote side is the test container's user (``agent``, its own uid and
home), reached with a ``DockerExecutor``; the test's hands write its files
through the container's root as seen from this machine and hand them to that
user, as if its CLI had written them. The project dir is named as on a Linux
host, the local one as on a Mac. asyncio only, and no hypothesis property
test: both run locally (tests/unit), and the decisions do not depend on the
executor.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from remote_executors.executors.docker import DockerExecutor
from remote_executors.sync import SessionPaths, TailSessionSync
from remote_executors.testing.docker import TestContainer
from remote_executors.testing.sync_conformance import ContainerRemoteSide, SessionSyncConformance

pytestmark = [pytest.mark.e2e]


class TestTailSyncDocker(SessionSyncConformance):
    test_random_operations_never_lose_a_line = None  # local suite only (see above)

    @pytest.fixture
    def anyio_backend(self) -> str:
        return "asyncio"

    @pytest.fixture
    def sync(self) -> TailSessionSync:
        return TailSessionSync(timeout=30)

    @pytest.fixture
    async def executor(self, rx_container: TestContainer) -> AsyncIterator[DockerExecutor]:
        executor = DockerExecutor(rx_container.name, user=rx_container.user)
        try:
            yield executor
        finally:
            await executor.aclose()

    @pytest.fixture
    def remote(self, rx_container: TestContainer) -> ContainerRemoteSide:
        # A project of its own per test: the container is shared.
        return ContainerRemoteSide(rx_container, f"-home-agent-code-shop-{uuid.uuid4().hex[:8]}")

    @pytest.fixture
    def paths(self, remote: ContainerRemoteSide, tmp_path: Path) -> SessionPaths:
        local = tmp_path / "local-claude" / "projects" / "-Users-me-code-shop"
        return remote.session_paths(local, str(uuid.uuid4()))

    @pytest.fixture
    def child_setup(self, rx_container: TestContainer) -> str:
        return (
            "from remote_executors.executors.docker import DockerExecutor\n"
            "from remote_executors.sync import TailSessionSync\n"
            "sync = TailSessionSync(timeout=30)\n"
            f"executor = DockerExecutor({rx_container.name!r}, user={rx_container.user!r})\n"
        )

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
