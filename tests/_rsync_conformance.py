"""RsyncSessionSync's conformance-suite hooks, shared by the local and the SSH runs."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable

from _rsync_faults import RelayExecutor
from remote_executors.executors.base import Executor
from remote_executors.testing.sync_conformance import LocalRemoteSide, SessionSyncConformance

_NO_DAC = "-dac_override,-dac_read_search"


class RelayedRemoteSide(LocalRemoteSide):
    """A local "remote" whose permission bits apply to rsync's server side too.

    As root, the executor it gives runs rsync's server (through the relay) and
    every command without the capabilities that let root ignore permission bits.
    """

    def enforcing(self, executor: Executor) -> Executor | None:
        if os.geteuid() != 0:
            return executor
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            return None
        prefix = [setpriv, f"--inh-caps={_NO_DAC}", f"--bounding-set={_NO_DAC}", "--"]
        return RelayExecutor(executor, prefix=prefix)


class RsyncConformance(SessionSyncConformance):
    """The suite's fault hooks for a strategy whose bytes travel in rsync's own stream.

    ``cuts`` leaves out ``last-byte``: rsync's stream ends with the sender's
    goodbye, sent after a pause for the receiver's reply, so a relay cannot
    tell the last byte as it passes. ``test_sync_rsync.py`` cuts one byte
    before the measured end instead
    (``test_cut_just_before_the_end_installs_nothing``).
    """

    cuts = ("empty", "half", "shrunk")

    def cut_transfer(self, executor: Executor, how: str) -> Executor:
        # The pulls the suite cuts move about 3 KB from the remote: 1 KB is part-way.
        return RelayExecutor(executor, cut=how, direction="down", budget=1024)

    def cut_upload(self, executor: Executor) -> Executor:
        # The push the suite cuts sends about 14 KB to the remote.
        return RelayExecutor(executor, cut="half", direction="up", budget=4096)

    def race_upload(self, executor: Executor, hook: Callable[[], None]) -> Executor:
        return RelayExecutor(executor, before_install=hook)
