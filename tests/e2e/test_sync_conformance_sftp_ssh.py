"""The SessionSync conformance suite: SftpSessionSync over a real sshd (fabric backend).

As for TailSessionSync (``test_sync_conformance_ssh.py``): a real test-bed
account, its files written as root and handed to it; the executor is
``SSHExecutor(alias, ssh_config=..., backend="fabric")`` and every byte moves
as SFTP requests on its pooled connection. The fault hooks damage those
requests for real (``_sftp_faults.py``): reads that end before the listed
size, an upload cut half-way with the server answering a failure, a remote
append just before the push creates its temp file. Each fault test also
checks that its fault was injected.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from _account_sync import AccountSyncFixtures
from _sftp_faults import READ_CUTS, SftpFaultExecutor
from remote_executors.executors.base import Executor
from remote_executors.executors.ssh import SSHExecutor
from remote_executors.sync import SftpSessionSync
from remote_executors.testing.sshd import SSHClientConfig
from remote_executors.testing.sync_conformance import (
    SessionSyncConformance,
    SyncHarness,
)

pytestmark = [pytest.mark.e2e]


class TestSftpSyncSSH(AccountSyncFixtures, SessionSyncConformance):
    cuts = READ_CUTS

    # Like TailSessionSync's ssh run: the property exercises the shared decisions,
    # which the local suite runs at length (tests/unit).
    test_random_operations_never_lose_a_line = None

    @pytest.fixture
    def rx_ssh_backend(self) -> str:
        return "fabric"

    @pytest.fixture
    def sync(self) -> SftpSessionSync:
        return SftpSessionSync(timeout=30)

    @pytest.fixture
    def executor(self, rx_executor: SSHExecutor) -> SSHExecutor:
        assert rx_executor.backend == "fabric"
        return rx_executor

    @pytest.fixture
    def child_setup(self, rx_ssh_config: SSHClientConfig) -> str:
        return (
            "from remote_executors.executors.ssh import SSHExecutor\n"
            "from remote_executors.sync import SftpSessionSync\n"
            "sync = SftpSessionSync(timeout=30)\n"
            f"executor = SSHExecutor({rx_ssh_config.alias!r}, "
            f"ssh_config={str(rx_ssh_config.path)!r}, backend='fabric')\n"
        )

    # -- the faults, injected in the SFTP requests ---------------------------------

    @pytest.fixture(autouse=True)
    def _faults(self) -> None:
        self.faults: list[SftpFaultExecutor] = []

    def _made(self, fault: SftpFaultExecutor) -> SftpFaultExecutor:
        self.faults.append(fault)
        return fault

    def _assert_injected(self) -> None:
        assert self.faults, "the test used no faulty executor"
        for fault in self.faults:
            assert fault.injected, f"{fault!r} injected nothing: the test proved nothing"

    def cut_transfer(self, executor: Executor, how: str) -> Executor:
        return self._made(SftpFaultExecutor(executor, read_cut=how))

    def cut_upload(self, executor: Executor) -> Executor:
        return self._made(SftpFaultExecutor(executor, cut_upload=True))

    def race_upload(self, executor: Executor, hook: Callable[[], None]) -> Executor:
        return self._made(SftpFaultExecutor(executor, before_create=hook))

    async def test_interrupted_pull_changes_nothing(self, harness: SyncHarness, how: str) -> None:
        await super().test_interrupted_pull_changes_nothing(harness, how)
        self._assert_injected()

    async def test_interrupted_push_changes_nothing(self, harness: SyncHarness) -> None:
        await super().test_interrupted_push_changes_nothing(harness)
        self._assert_injected()

    async def test_push_never_overwrites_what_the_remote_wrote_meanwhile(
        self, harness: SyncHarness
    ) -> None:
        await super().test_push_never_overwrites_what_the_remote_wrote_meanwhile(harness)
        self._assert_injected()
