"""The SessionSync conformance suite: TailSessionSync over a real sshd.

The remote side is a real test-bed account (its own uid and home), reached
with an ``SSHExecutor`` through the bed's ssh_config; its files are written
by the test as root and handed to the account, as if its CLI had written
them. ``remote_config_dir`` is left None: the account's default config dir.

The hypothesis property test runs only in the local suite
(tests/unit/test_sync_conformance_local.py): it exercises the decisions, which
are the same here, and over ssh it would add several seconds per event loop
to a suite that already takes about 40.
"""

from __future__ import annotations

import pytest

from _account_sync import AccountSyncFixtures
from remote_executors.sync import TailSessionSync
from remote_executors.testing.sshd import SSHClientConfig
from remote_executors.testing.sync_conformance import (
    AccountRemoteSide,
    SessionSyncConformance,
)

pytestmark = [pytest.mark.e2e]


class TestTailSyncSSH(AccountSyncFixtures, SessionSyncConformance):
    test_random_operations_never_lose_a_line = None  # local suite only (see above)

    @pytest.fixture
    def sync(self) -> TailSessionSync:
        return TailSessionSync(timeout=30)

    @pytest.fixture
    def child_setup(self, rx_ssh_config: SSHClientConfig) -> str:
        return (
            "from remote_executors.executors.ssh import SSHExecutor\n"
            "from remote_executors.sync import TailSessionSync\n"
            "sync = TailSessionSync(timeout=30)\n"
            f"executor = SSHExecutor({rx_ssh_config.alias!r}, "
            f"ssh_config={str(rx_ssh_config.path)!r})\n"
        )

    def test_remote_side_writes_as_the_account(self, remote: AccountRemoteSide) -> None:
        """The test's own hands: what AccountRemoteSide writes is the account's, private."""
        remote.write("d/a.jsonl", b'{"a":1}\n')
        remote.append("d/a.jsonl", b'{"b":2}\n')
        assert remote.run_as(["cat", "d/a.jsonl"]) == '{"a":1}\n{"b":2}\n'
        listing = remote.run_as(["ls", "-ld", ".", "d", "d/a.jsonl"]).splitlines()
        for line in listing:
            mode, _links, owner = line.split()[:3]
            assert owner == remote.account.user, line
            assert mode.endswith("------"), line
