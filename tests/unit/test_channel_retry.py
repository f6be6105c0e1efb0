"""A channel the connection could not carry is opened again (start_job).

The backend says so by classifying the dead channel as ``ChannelRefused``
(OpenSSH: the mark of the channel's ProxyCommand; see _openssh.py); the job
header goes again on the new channel, so the command runs exactly once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from _shell_backend import ShellBackend, ShellChannel

from remote_executors.errors import ConnectionFailed
from remote_executors.executors._backend import ChannelRefused
from remote_executors.executors._remote_job import RemoteJob
from remote_executors.executors._remote_process import _OPEN_ATTEMPTS, start_job
from remote_executors.executors._run_job import collect as _collect

pytestmark = pytest.mark.anyio

REFUSED = "channel refused here"


class RefusingBackend(ShellBackend):
    """Its first ``refusals`` channels die as a refused channel does: status 255,
    a word on stderr, nothing run."""

    def __init__(self, *args: object, refusals: int, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.refusals = refusals
        self.opened = 0

    async def open(self, remote_command: str, *, pipe_stderr: bool) -> ShellChannel:
        self.opened += 1
        if self.opened <= self.refusals:
            remote_command = f"echo '{REFUSED}' >&2; exit 255"
        return await super().open(remote_command, pipe_stderr=pipe_stderr)

    def connect_failure(self, stderr: str, returncode: int) -> Exception | None:
        if returncode == 255 and REFUSED in stderr:
            return ChannelRefused(REFUSED)
        return None


@pytest.fixture
async def make_refusing(
    remote_home: Path, remote_tmp: Path
) -> AsyncIterator[Callable[..., RefusingBackend]]:
    made: list[RefusingBackend] = []

    def make(refusals: int, host: str = "shellbox") -> RefusingBackend:
        backend = RefusingBackend(
            home=str(remote_home), host=host, env={"TMPDIR": str(remote_tmp)}, refusals=refusals
        )
        made.append(backend)
        return backend

    yield make
    for backend in made:
        await backend.aclose()


@pytest.mark.parametrize("pipe_stderr", [True, False])
async def test_refused_channels_are_opened_again_and_the_job_runs_once(
    make_refusing: Callable[..., RefusingBackend], remote_home: Path, pipe_stderr: bool
) -> None:
    backend = make_refusing(3)
    counter = remote_home / "runs"
    job = RemoteJob(argv=["sh", "-c", f"echo ran >> '{counter}'; echo hello"], mode="run")
    process = await start_job(backend, job, pipe_stderr=pipe_stderr, startup_timeout=20)
    result = await _collect(process, b"")
    assert result.returncode == 0 and result.stdout == b"hello\n"
    assert backend.opened == 4
    assert counter.read_text() == "ran\n"


async def test_a_connection_that_refuses_every_channel_is_a_typed_error(
    make_refusing: Callable[..., RefusingBackend],
) -> None:
    backend = make_refusing(1000, host="busybox")
    job = RemoteJob(argv=["true"], mode="run")
    with pytest.raises(ConnectionFailed) as failed:
        await start_job(backend, job, pipe_stderr=True, startup_timeout=20)
    assert backend.opened == _OPEN_ATTEMPTS
    message = str(failed.value)
    assert message.startswith("busybox refused") and "MaxSessions" in message
