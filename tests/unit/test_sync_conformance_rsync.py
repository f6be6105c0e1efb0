"""The SessionSync conformance suite: RsyncSessionSync over a LocalExecutor.

The "remote" is a second Claude config dir on this machine. The plain
``LocalExecutor`` makes rsync copy between two local paths; the fault hooks
(and the permission tests, as root) use a :class:`RelayExecutor`, whose rsync
goes through a stand-in remote shell that runs rsync's server here, as sshd
would, and can cut or corrupt the protocol stream for real on its way.

Differences from TailSessionSync's run, and why:

- ``cuts`` leaves out ``last-byte``: a relay cannot tell rsync's last byte
  as it passes (see ``RsyncConformance`` in ``tests/_rsync_conformance.py``).
- no ``known_bugs``: a push never replaces a remote file whose partial last
  line the local copy lacks (it is refused instead).
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest

from _rsync_conformance import RelayedRemoteSide, RsyncConformance
from remote_executors.executors.local import LocalExecutor
from remote_executors.sync import RsyncSessionSync, SessionPaths
from remote_executors.testing.sync_conformance import LocalRemoteSide

pytestmark = pytest.mark.skipif(shutil.which("rsync") is None, reason="rsync is not installed")

CHILD_SETUP = """
from remote_executors.executors.local import LocalExecutor
from remote_executors.sync import RsyncSessionSync
sync = RsyncSessionSync()
executor = LocalExecutor()
"""


class TestRsyncSyncLocal(RsyncConformance):
    @pytest.fixture
    def sync(self) -> RsyncSessionSync:
        return RsyncSessionSync()

    @pytest.fixture
    def executor(self) -> LocalExecutor:
        return LocalExecutor()

    @pytest.fixture
    def remote(self, tmp_path: Path) -> LocalRemoteSide:
        return RelayedRemoteSide(tmp_path / "remote-claude", "-home-me-code-shop")

    @pytest.fixture
    def paths(self, remote: LocalRemoteSide, tmp_path: Path) -> SessionPaths:
        local = tmp_path / "local-claude" / "projects" / "-Users-me-code-shop"
        return remote.session_paths(local, str(uuid.uuid4()))

    @pytest.fixture
    def child_setup(self) -> str:
        return CHILD_SETUP
