"""The SessionSync conformance suite: TailSessionSync over a LocalExecutor.

The "remote" is a second Claude config dir on this machine
(``SessionPaths.remote_config_dir``), reached through ``LocalExecutor.run``
exactly as an SSH host is reached through ``SSHExecutor.run``: same scripts,
same parsing, same decisions, no network. Permission tests that need the
executor to meet permission bits run its commands without root's bypass.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from remote_executors.executors.local import LocalExecutor
from remote_executors.sync import SessionPaths, TailSessionSync
from remote_executors.testing.sync_conformance import (
    LocalRemoteSide,
    SessionSyncConformance,
)

CHILD_SETUP = """
from remote_executors.executors.local import LocalExecutor
from remote_executors.sync import TailSessionSync
sync = TailSessionSync()
executor = LocalExecutor()
"""


class TestTailSyncLocal(SessionSyncConformance):
    @pytest.fixture
    def sync(self) -> TailSessionSync:
        return TailSessionSync()

    @pytest.fixture
    def executor(self) -> LocalExecutor:
        return LocalExecutor()

    @pytest.fixture
    def remote(self, tmp_path: Path) -> LocalRemoteSide:
        return LocalRemoteSide(tmp_path / "remote-claude", "-home-me-code-shop")

    @pytest.fixture
    def paths(self, remote: LocalRemoteSide, tmp_path: Path) -> SessionPaths:
        local = tmp_path / "local-claude" / "projects" / "-Users-me-code-shop"
        return remote.session_paths(local, str(uuid.uuid4()))

    @pytest.fixture
    def child_setup(self) -> str:
        return CHILD_SETUP
