"""The Executor conformance suite over ``SSHExecutor`` on the real sshd test bed.

The machine is a real bed account (its own uid and home) reached through the
bed's ssh_config; ``workdir`` is ``rx_project`` (a directory under the local
home whose home-relative counterpart exists in the account's home), and the
processes to watch are the account's own (by uid).

Every SSH backend runs the whole suite on asyncio: add a backend's name to
``SSH_BACKENDS`` and that is all. trio runs a cheap subset (``TRIO_SUBSET``):
the event loop changes how the local side drives the ``ssh`` client and its
pipes, not what happens on the remote, and the whole suite runs on both loops
over ``LocalExecutor`` (tests/unit/test_executor_conformance_local.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import pytest

from _chatty import make_chatty
from _trio import on_trio
from remote_executors.executors.ssh import BACKENDS, SSHExecutor
from remote_executors.testing._sshd_fixtures import AccountFactory
from remote_executors.testing.executor_conformance import ExecutorConformance
from remote_executors.testing.plugin import Project
from remote_executors.testing.sshd import RemoteAccount, SSHClientConfig, SSHTestBed

pytestmark = [pytest.mark.e2e]

#: The ``SSHExecutor(backend=...)`` names the suite runs over.
SSH_BACKENDS = BACKENDS

#: What trio runs: the stream plumbing, exit statuses and every way of stopping.
TRIO_SUBSET = frozenset(
    {
        "test_spawn_round_trip_is_binary_exact",
        "test_stdin_reaches_the_process_as_lines_are_sent",
        "test_stderr_is_a_separate_stream_when_asked",
        "test_exit_status",
        "test_terminate",
        "test_closing_the_executor_stops_its_processes",
        "test_run_input",
        "test_run_timeout_stops_the_command",
        "test_cancelling_run_stops_the_command",
        "test_concurrent_spawns_and_runs",
    }
)

#: Tests SSHExecutor is known to fail, with why (strict xfails). None now: the two
#: found by this suite (a last line without a newline got one; a run() killed by a
#: signal reported 255) are fixed in the bootstrap.
KNOWN_FAILURES: dict[str, str] = {}


class TestSSHExecutor(ExecutorConformance):
    inherits_local_environment = False
    stops_descendants = True
    signal_status = "shell"
    missing_command = "exit-127"
    stdin_line_buffered = True
    private_args_as_files = True
    known_failures = KNOWN_FAILURES

    @pytest.fixture
    def anyio_backend(self) -> str:
        return "asyncio"

    @pytest.fixture(params=SSH_BACKENDS)
    def ssh_backend(self, request: pytest.FixtureRequest) -> str:
        return str(request.param)

    @pytest.fixture
    async def executor(
        self, rx_ssh_config: SSHClientConfig, ssh_backend: str
    ) -> AsyncIterator[SSHExecutor]:
        executor = SSHExecutor(
            rx_ssh_config.alias, ssh_config=str(rx_ssh_config.path), backend=ssh_backend
        )
        try:
            yield executor
        finally:
            await executor.aclose()

    @pytest.fixture
    async def chatty_executor(
        self,
        rx_sshd: SSHTestBed,
        rx_account_factory: AccountFactory,
        ssh_backend: str,
        tmp_path: Path,
    ) -> AsyncIterator[SSHExecutor]:
        """An account whose ~/.bashrc starts a job that prints into the channel."""
        account = rx_account_factory("bash", label="chatty")
        make_chatty(account)
        cfg = rx_sshd.client_config(account, tmp_path / "ssh-chatty")
        executor = SSHExecutor(cfg.alias, ssh_config=str(cfg.path), backend=ssh_backend)
        try:
            yield executor
        finally:
            await executor.aclose()

    @pytest.fixture
    def workdir(self, rx_project: Project) -> Path:
        return rx_project.local

    @pytest.fixture
    def remote_processes(
        self, rx_sshd: SSHTestBed, rx_account: RemoteAccount
    ) -> Callable[[], Sequence[str]]:
        return lambda: [p.args for p in rx_sshd.processes(rx_account)]


# Only TRIO_SUBSET runs on trio (see the module docstring).
TestSSHExecutorTrio = on_trio(TestSSHExecutor, TRIO_SUBSET)
_unknown = set(KNOWN_FAILURES) - set(dir(ExecutorConformance))
assert not _unknown, f"no such tests in the suite: {_unknown}"
