"""What ``SSHExecutor.run`` and ``home()`` refuse, for real over the shell backend:
output past ``max_output`` (the command and its process group stopped, a typed
error that names the host, the command and the stream), and a home directory
that is not a plain absolute path (nothing cached).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import anyio
import pytest
from _shell_backend import ShellBackend, wait_dead
from test_bootstrap_extras import ssh_executor, wait_for_file

from remote_executors.errors import InvalidInput, OutputTooLarge, RemoteSetupError
from remote_executors.executors.base import CommandResult

pytestmark = pytest.mark.anyio

MIB = 1 << 20


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# Writes its pid and its child's to $1, then streams zeros forever on $2 (1 or 2).
ENDLESS = 'sleep 300 & echo "$$ $!" >"$1"; cat /dev/zero >&"$2"'


@pytest.mark.parametrize("stream", ["stdout", "stderr"])
async def test_endless_output_is_stopped_at_max_output(
    make_backend: Callable[..., ShellBackend], tmp_path: Path, stream: str
) -> None:
    executor = ssh_executor(make_backend())
    pids = tmp_path / "pids"
    argv = ["sh", "-c", ENDLESS, "rx-endless", str(pids), "1" if stream == "stdout" else "2"]
    with anyio.fail_after(20), pytest.raises(OutputTooLarge) as info:
        await executor.run(argv, max_output=4 * MIB, timeout=60)
    error = info.value
    assert (error.host, error.limit, error.stream) == ("shellbox", 4 * MIB, stream)
    message = str(error)
    assert "shellbox" in message and "sh" in message and stream in message
    assert "max_output=" in message
    # The command and what it started are stopped on the "remote" too.
    shell, child = (int(p) for p in (await wait_for_file(pids)).split())
    assert await wait_dead(shell, 5) and await wait_dead(child, 5)


async def test_output_up_to_max_output_is_returned(
    make_backend: Callable[..., ShellBackend],
) -> None:
    executor = ssh_executor(make_backend())
    script = 'head -c "$1" /dev/zero; head -c "$1" /dev/zero >&2'
    result = await executor.run(["sh", "-c", script, "sh", str(MIB)], max_output=MIB)
    assert result == CommandResult(0, b"\0" * MIB, b"\0" * MIB)
    with pytest.raises(OutputTooLarge):
        await executor.run(["sh", "-c", script, "sh", str(MIB + 1)], max_output=MIB)
    assert (await executor.run(["true"], max_output=0)).ok
    with pytest.raises(OutputTooLarge) as info:
        await executor.run(["echo"], max_output=0)
    assert info.value.limit == 0


@pytest.mark.parametrize("bad", [-1, 1.5, "1", True, None])
async def test_max_output_must_be_a_byte_count(
    make_backend: Callable[..., ShellBackend], tmp_path: Path, bad: object
) -> None:
    backend = make_backend()
    marker = tmp_path / "ran"
    with pytest.raises(InvalidInput) as info:
        await ssh_executor(backend).run(["touch", str(marker)], max_output=bad)  # type: ignore[arg-type]
    assert "shellbox" in str(info.value) and "max_output" in str(info.value)
    assert not marker.exists() and backend.channels == []


# --- home() --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "home",
    ["", "relative/home", "/home/u\nyou have new mail", "/home/u\x1b[31m", "/home/u\r"],
    ids=["empty", "relative", "newline", "escape", "carriage-return"],
)
async def test_home_that_is_not_a_plain_absolute_path_is_refused(
    make_backend: Callable[..., ShellBackend], remote_home: Path, home: str
) -> None:
    executor = ssh_executor(make_backend(env={"HOME": home}))
    with pytest.raises(RemoteSetupError) as info:
        await executor.home()
    message = str(info.value)
    assert info.value.host == "shellbox" and "shellbox" in message
    assert repr(home)[1:-1] in message  # says what it got
    assert "HOME" in message and "path_map" in message  # and what to do
    # Nothing was cached: once the host is fixed, home() answers.
    executor._backend = make_backend()
    assert await executor.home() == str(remote_home)
