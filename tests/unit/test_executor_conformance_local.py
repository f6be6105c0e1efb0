"""The Executor conformance suite over ``LocalExecutor``.

The "machine" is this one: ``workdir`` maps to itself and the processes to
watch are this user's own (found by the unique marks the suite's commands
carry). ``LocalExecutor`` runs processes the way the SDK does, so it keeps
the SDK's conventions where an executor may choose (see the class attributes).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import pytest

from remote_executors.executors.local import LocalExecutor
from remote_executors.testing.executor_conformance import (
    ExecutorConformance,
    this_machine_processes,
)


class TestLocalExecutor(ExecutorConformance):
    inherits_local_environment = True
    stops_descendants = False
    signal_status = "negative"
    missing_command = "raises"
    stdin_line_buffered = False
    private_args_as_files = False

    @pytest.fixture
    async def executor(self) -> AsyncIterator[LocalExecutor]:
        executor = LocalExecutor()
        try:
            yield executor
        finally:
            await executor.aclose()

    @pytest.fixture
    def workdir(self, tmp_path: Path) -> Path:
        path = tmp_path / "work"
        path.mkdir()
        return path

    @pytest.fixture
    def remote_processes(self) -> Callable[[], Sequence[str]]:
        return this_machine_processes
