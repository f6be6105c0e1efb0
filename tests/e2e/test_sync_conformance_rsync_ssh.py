"""The SessionSync conformance suite: RsyncSessionSync over a real sshd.

As for TailSessionSync (``test_sync_conformance_ssh.py``): a real test-bed
account, its files written as root and handed to it. rsync rides the
executor's ssh master; the fault hooks put ``_rsync_relay.py`` between rsync
and that ssh, so cuts happen to rsync's real stream.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest

from _rsync_conformance import RsyncConformance
from remote_executors.executors.ssh import SSHExecutor
from remote_executors.sync import RsyncSessionSync, SessionPaths
from remote_executors.testing.sshd import RemoteAccount, SSHClientConfig, SSHTestBed
from remote_executors.testing.sync_conformance import AccountRemoteSide, random_operations_test

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("rsync") is None, reason="rsync is not installed"),
]


class TestRsyncSyncSSH(RsyncConformance):
    @pytest.fixture
    def anyio_backend(self) -> str:
        # The event loop does not change what a strategy does to files; both
        # loops run the whole suite locally (tests/unit). Over ssh, once.
        return "asyncio"

    test_random_operations_never_lose_a_line = random_operations_test(max_examples=5)

    @pytest.fixture
    def sync(self) -> RsyncSessionSync:
        return RsyncSessionSync(timeout=30)

    @pytest.fixture
    def executor(self, rx_executor: SSHExecutor) -> SSHExecutor:
        return rx_executor

    @pytest.fixture
    def remote(self, rx_sshd: SSHTestBed, rx_account: RemoteAccount) -> AccountRemoteSide:
        return AccountRemoteSide(rx_sshd, rx_account, "-home-rx-code-shop")

    @pytest.fixture
    def paths(self, remote: AccountRemoteSide, tmp_path: Path) -> SessionPaths:
        local = tmp_path / "local-claude" / "projects" / "-Users-me-code-shop"
        return remote.session_paths(local, str(uuid.uuid4()))

    @pytest.fixture
    def child_setup(self, rx_ssh_config: SSHClientConfig) -> str:
        return (
            "from remote_executors.executors.ssh import SSHExecutor\n"
            "from remote_executors.sync import RsyncSessionSync\n"
            "sync = RsyncSessionSync(timeout=30)\n"
            f"executor = SSHExecutor({rx_ssh_config.alias!r}, "
            f"ssh_config={str(rx_ssh_config.path)!r})\n"
        )
