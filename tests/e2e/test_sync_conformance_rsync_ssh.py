"""The SessionSync conformance suite: RsyncSessionSync over a real sshd.

As for TailSessionSync (``test_sync_conformance_ssh.py``): a real test-bed
account, its files written as root and handed to it. rsync rides the
executor's ssh master; the fault hooks put ``_rsync_relay.py`` between rsync
and that ssh, so cuts happen to rsync's real stream.
"""

from __future__ import annotations

import shutil

import pytest

from _account_sync import AccountSyncFixtures
from _rsync_conformance import RsyncConformance
from remote_executors.sync import RsyncSessionSync
from remote_executors.testing.sshd import SSHClientConfig
from remote_executors.testing.sync_conformance import random_operations_test

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("rsync") is None, reason="rsync is not installed"),
]


class TestRsyncSyncSSH(AccountSyncFixtures, RsyncConformance):
    test_random_operations_never_lose_a_line = random_operations_test(max_examples=5)

    @pytest.fixture
    def sync(self) -> RsyncSessionSync:
        return RsyncSessionSync(timeout=30)

    @pytest.fixture
    def child_setup(self, rx_ssh_config: SSHClientConfig) -> str:
        return (
            "from remote_executors.executors.ssh import SSHExecutor\n"
            "from remote_executors.sync import RsyncSessionSync\n"
            "sync = RsyncSessionSync(timeout=30)\n"
            f"executor = SSHExecutor({rx_ssh_config.alias!r}, "
            f"ssh_config={str(rx_ssh_config.path)!r})\n"
        )
