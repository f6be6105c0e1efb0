"""The fixtures every SessionSync conformance run over the real sshd shares.

The remote side is a real test-bed account (its own uid and home) reached with
``rx_executor``; its project dir is named as on a Linux host, the local one as
on a Mac, so the two names differ as they do for real. Over ssh the suite runs
on asyncio only: the event loop does not change what a strategy does to files,
and both loops run every strategy's suite locally (tests/unit).
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from remote_executors.executors.ssh import SSHExecutor
from remote_executors.sync import SessionPaths
from remote_executors.testing.sshd import RemoteAccount, SSHTestBed
from remote_executors.testing.sync_conformance import AccountRemoteSide


class AccountSyncFixtures:
    """Mix in before ``SessionSyncConformance``; a run adds ``sync`` and ``child_setup``."""

    @pytest.fixture
    def anyio_backend(self) -> str:
        return "asyncio"

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
