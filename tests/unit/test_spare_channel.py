"""The spare bootstrap channel (``warm_spawn``): used, discarded when stale, never left behind.

A ``ShellBackend`` runs the real bootstrap under a local ``/bin/sh``; each
channel's pid is its "remote" shell, so whether a spare is still there is a
question for the process table.
"""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from _shell_backend import ShellBackend, alive, wait_dead

from remote_executors.executors._remote_job import RemoteJob, remote_command
from remote_executors.executors._remote_process import start_job
from remote_executors.executors._run_job import collect as _collect
from remote_executors.executors._spare import SpareChannel

pytestmark = pytest.mark.anyio


@pytest.fixture
async def backend(remote_home: Path, remote_tmp: Path) -> AsyncIterator[ShellBackend]:
    made = ShellBackend(home=str(remote_home), env={"TMPDIR": str(remote_tmp)})
    yield made
    await made.aclose()


def echo_job(word: str) -> RemoteJob:
    return RemoteJob(argv=["sh", "-c", f"echo {word}"], mode="run")


async def run(backend: ShellBackend, spare: SpareChannel, word: str) -> None:
    process = await start_job(
        backend, echo_job(word), pipe_stderr=True, startup_timeout=20, spare=spare
    )
    result = await _collect(process, b"")
    assert (result.returncode, result.stdout) == (0, f"{word}\n".encode())


async def test_the_next_job_runs_on_the_spare_and_a_new_one_waits(
    backend: ShellBackend,
) -> None:
    spare = SpareChannel(backend)
    await run(backend, spare, "one")  # no spare yet: a channel of its own; opens the spare
    assert len(backend.channels) == 2 and spare.taken == 0
    waiting = spare.channel
    assert waiting is backend.channels[1] and alive(waiting.pid)
    await run(backend, spare, "two")
    assert spare.taken == 1 and spare.discarded == 0
    # "two" ran on the spare (that channel has ended) and the next spare waits.
    assert waiting.returncode == 0
    assert len(backend.channels) == 3 and spare.channel is backend.channels[2]
    await spare.aclose()


async def test_a_spare_past_its_age_is_closed_and_the_job_opens_its_own(
    backend: ShellBackend,
) -> None:
    spare = SpareChannel(backend, max_age=0.5)
    await spare.refill(pipe_stderr=True)
    stale = spare.channel
    assert stale is not None
    # Past max_age the spare's stdin is closed: its bootstrap ends by itself,
    # with nobody spawning anything.
    assert await wait_dead(stale.pid, 5)
    assert await stale.wait() == 0
    await run(backend, spare, "fresh")
    assert spare.taken == 0 and spare.discarded == 1
    await spare.aclose()


async def test_a_dead_spare_is_dropped_quietly_and_the_job_runs_once(
    backend: ShellBackend, remote_home: Path
) -> None:
    spare = SpareChannel(backend)
    await spare.refill(pipe_stderr=True)
    dead = spare.channel
    assert dead is not None
    # Its "remote" side goes away under it (the link dropped, the host rebooted).
    os.killpg(dead.pid, signal.SIGKILL)
    counter = remote_home / "runs"
    job = RemoteJob(argv=["sh", "-c", f"echo ran >> '{counter}'; echo ok"], mode="run")
    with anyio.fail_after(20):
        while dead.returncode is None:  # so take() sees it dead, or the handshake does
            await anyio.sleep(0.02)
    process = await start_job(backend, job, pipe_stderr=True, startup_timeout=20, spare=spare)
    result = await _collect(process, b"")
    assert result.stdout == b"ok\n" and counter.read_text() == "ran\n"
    assert spare.discarded == 1
    await spare.aclose()


async def test_a_spare_of_the_other_stderr_kind_is_not_used(backend: ShellBackend) -> None:
    spare = SpareChannel(backend)
    await spare.refill(pipe_stderr=False)
    other = spare.channel
    assert other is not None
    await run(backend, spare, "piped")  # wants stderr piped
    assert spare.taken == 0 and spare.discarded == 1
    assert await wait_dead(other.pid, 5)
    await spare.aclose()


async def test_closing_leaves_no_process_and_opens_no_new_spare(backend: ShellBackend) -> None:
    spare = SpareChannel(backend)
    await run(backend, spare, "one")
    waiting = spare.channel
    assert waiting is not None
    await spare.aclose()
    assert spare.channel is None and await wait_dead(waiting.pid, 5)
    assert waiting.returncode == 0  # it ended on its own, at the end of its input
    await run(backend, spare, "after")  # works, without a spare
    assert spare.channel is None
    assert all(not alive(channel.pid) for channel in backend.channels)


async def test_a_bootstrap_whose_input_ends_before_a_header_runs_nothing_and_stops_nothing(
    backend: ShellBackend,
) -> None:
    """The end of a spare nobody used. Before, the bootstrap went on with an empty
    nonce, and its cleanup matched every job's tagged processes: it stopped them."""
    job = RemoteJob(argv=["sleep", "30"], mode="spawn", heartbeat_misses=30)
    other = await start_job(backend, job, pipe_stderr=False, startup_timeout=20)
    channel = await backend.open(remote_command(), pipe_stderr=True)
    channel.close_stdin()
    code = await channel.wait()
    assert channel.stdout is not None
    out = await _read_all(channel.stdout)
    await anyio.sleep(0.3)
    assert other.returncode is None  # the other job's process lives on
    assert (code, out) == (0, b"")
    await other.aclose()


async def _read_all(stream: anyio.abc.ByteReceiveStream) -> bytes:
    data = b""
    try:
        while True:
            data += await stream.receive()
    except anyio.EndOfStream:
        return data
