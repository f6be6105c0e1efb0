"""What an idle job costs on the remote side, and that its clocks still fire.

An idle session used to start `sleep 1` (and `rm`) every second in each of its
watchdogs and poll its spool every 8 ms. Here every command the bootstrap and
the supervisor start goes through a logging wrapper on PATH, so "starts
nothing while idle" is checked exactly; the follower's wakeups are its
voluntary context switches (one per nap). The watchdogs' bounds (heartbeats,
grace) are checked on both relays, perl's and awk's.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest
from _shell_backend import SSH_PATH, ShellBackend, alive, reader_of, wait_dead
from test_bootstrap import read_line
from test_bootstrap_extras import BOOTSTRAP_TOOLS, tools_without_perl

from remote_executors import SpawnOptions, SSHExecutor
from remote_executors.executors import _remote_process
from remote_executors.executors._remote_job import RemoteJob
from remote_executors.executors._remote_process import RemoteProcess, start_job
from remote_executors.executors.ssh._reattach import ReattachingProcess

pytestmark = pytest.mark.anyio

ECHO = 'echo "$$"; while IFS= read -r l; do echo "got $l"; done'
# Everything the scripts may start, each through a wrapper that logs its name.
TOOLS = (*BOOTSTRAP_TOOLS, "perl", "awk", "grep", "mv", "touch", "setsid", "date", "true")


def logging_path(directory: Path, log: Path, *, perl: bool = True) -> str:
    directory.mkdir()
    for name in TOOLS:
        real = shutil.which(name, path=SSH_PATH)
        if real is None or (name == "perl" and not perl):
            continue
        wrapper = directory / name
        wrapper.write_text(f"#!/bin/sh\necho {name} >>'{log}'\nexec '{real}' \"$@\"\n")
        wrapper.chmod(0o755)
    return str(directory)


def started(log: Path) -> list[str]:
    return log.read_text().split() if log.exists() else []


def wakeups(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("voluntary_ctxt_switches:"):
                return int(line.split()[1])
    raise AssertionError(f"no context switches for {pid}")


async def spawn_echo(backend: ShellBackend, **job: object) -> tuple[RemoteProcess, bytearray, int]:
    process = await start_job(backend, RemoteJob(argv=["sh", "-c", ECHO], **job), pipe_stderr=True)
    pending = bytearray()
    assert process.stdout is not None
    with anyio.fail_after(10):
        pid = int(await read_line(process.stdout, pending))
    return process, pending, pid


async def echo(process: RemoteProcess, pending: bytearray, word: bytes) -> None:
    assert process.stdin is not None and process.stdout is not None
    with anyio.fail_after(10):
        await process.stdin.send(word + b"\n")
        assert await read_line(process.stdout, pending) == b"got " + word


# --- spawn without the supervisor: the heartbeat clock --------------------------------


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_an_idle_job_with_perl_starts_nothing(
    make_backend: Callable[..., ShellBackend], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """perl's relay keeps the heartbeat clock itself: no watchdog loop, no `sleep`."""
    monkeypatch.setattr(_remote_process, "HEARTBEAT_INTERVAL", 0.2)
    log = tmp_path / "started.log"
    backend = make_backend(env={"PATH": logging_path(tmp_path / "bin", log)})
    process, pending, pid = await spawn_echo(backend, heartbeat_misses=2)
    await echo(process, pending, b"one")
    before = started(log)
    assert "perl" in before  # the wrappers do see what the bootstrap starts
    await anyio.sleep(3)  # 15 heartbeats, each re-arming the clock
    assert started(log)[len(before) :] == []
    assert alive(pid)
    await echo(process, pending, b"two")
    with anyio.fail_after(15):
        await process.aclose()


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_an_idle_job_without_perl_only_sleeps(
    make_backend: Callable[..., ShellBackend], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """awk has no clock: a loop of `sleep 1`, and nothing else (no `rm` per heartbeat)."""
    monkeypatch.setattr(_remote_process, "HEARTBEAT_INTERVAL", 0.2)
    log = tmp_path / "started.log"
    backend = make_backend(env={"PATH": logging_path(tmp_path / "bin", log, perl=False)})
    process, pending, pid = await spawn_echo(backend, heartbeat_misses=2)
    await echo(process, pending, b"one")
    await anyio.sleep(0.5)  # the dd framer's next read is started after each frame
    before = started(log)
    assert "awk" in before
    await anyio.sleep(3)
    idle = started(log)[len(before) :]
    assert set(idle) == {"sleep"} and len(idle) <= 5, idle
    assert alive(pid)  # the heartbeats were seen
    await echo(process, pending, b"two")
    with anyio.fail_after(15):
        await process.aclose()


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_missing_heartbeats_stop_the_job_without_perl(
    make_backend: Callable[..., ShellBackend], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_remote_process, "HEARTBEAT_INTERVAL", 0.1)
    path = tools_without_perl(tmp_path / "bin", tmp_path / "awk.log")
    backend = make_backend(env={"PATH": path})
    process, _pending, pid = await spawn_echo(backend, heartbeat_misses=2)
    await anyio.sleep(2.5)
    assert alive(pid)
    process._stop_heartbeat()  # a frozen link: the channel stays open, nothing arrives
    frozen = time.monotonic()
    assert await wait_dead(pid, 6), "the awk relay's watchdog ignored the missing heartbeats"
    assert time.monotonic() - frozen >= 1.5  # not before the misses ran out (2 s)
    assert backend.channels[-1]._stdin_fd is not None
    with anyio.fail_after(10):
        await process.wait()


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_missing_heartbeats_stop_a_job_whose_relay_is_blocked(
    make_backend: Callable[..., ShellBackend], monkeypatch: pytest.MonkeyPatch
) -> None:
    """perl's clock is an alarm: it fires while the relay is stuck writing to a
    process that does not read, as the separate watchdog loop did."""
    monkeypatch.setattr(_remote_process, "HEARTBEAT_INTERVAL", 0.1)
    job = RemoteJob(argv=["sh", "-c", 'echo "$$"; exec sleep 300'], heartbeat_misses=1)
    process = await start_job(make_backend(), job, pipe_stderr=True)
    assert process.stdin is not None and process.stdout is not None
    with anyio.fail_after(10):
        pid = int(await read_line(process.stdout, bytearray()))
        process._stop_heartbeat()
        await process.stdin.send(b"x" * 100_000 + b"\n")  # more than the FIFO holds
    assert await wait_dead(pid, 5), "the relay's clock did not fire while it was blocked"
    with anyio.fail_after(10):
        await process.wait()


# --- the supervisor: follower naps, the grace in whole naps ----------------------------


def executor(backend: ShellBackend, reattach_within: float) -> SSHExecutor:
    ex = SSHExecutor("shellbox", reattach_within=reattach_within)
    ex._backend = backend
    return ex


async def receive_line(process: ReattachingProcess, pending: bytearray) -> bytes:
    while b"\n" not in pending:
        pending += await process.stdout.receive()
    line, _, rest = bytes(pending).partition(b"\n")
    pending[:] = rest
    return line


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_an_idle_supervised_job_starts_nothing_and_naps(
    make_backend: Callable[..., ShellBackend], tmp_path: Path
) -> None:
    log = tmp_path / "started.log"
    backend = make_backend(env={"PATH": logging_path(tmp_path / "bin", log)})
    # A 300 s grace: the watchdog looks every 5 s (one `sleep` each).
    process = await executor(backend, 300).spawn(
        SpawnOptions("/bin/sh", ["-c", ECHO], stderr=True, outlive_link=True)
    )
    assert isinstance(process, ReattachingProcess)
    pending = bytearray()
    try:
        with anyio.fail_after(40):
            await receive_line(process, pending)  # the pid
            follower = int((Path(process.remote_dir) / "attach").read_text().split()[1])
            await process.stdin.send(b"one\n")
            assert await receive_line(process, pending) == b"got one"
            await anyio.sleep(1.5)
            spooler = reader_of(Path(process.remote_dir) / "out.p")
            before, naps, spooler_naps = started(log), wakeups(follower), wakeups(spooler)
            await anyio.sleep(3)
            assert started(log)[len(before) :] in ([], ["sleep"])
            # Each looks once a second while nothing happens (the follower polled
            # every 64 ms before the spooler poked it).
            idle_naps = wakeups(follower) - naps
            assert idle_naps <= 8, f"the follower woke {idle_naps} times in 3 idle seconds"
            spooler_naps = wakeups(spooler) - spooler_naps
            assert spooler_naps <= 8, f"the spooler woke {spooler_naps} times in 3 idle seconds"
            # Output wakes it at once, however long it napped.
            await process.stdin.send(b"two\n")
            assert await receive_line(process, pending) == b"got two"
    finally:
        with anyio.fail_after(15):
            await process.aclose()


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_the_grace_is_whole_naps_whatever_signals_the_watchdog_gets(
    make_backend: Callable[..., ShellBackend],
) -> None:
    """A 20 s grace: the watchdog looks every 2 s. USR2 ("eof": close the process's
    input) cuts a nap short; counted as a whole one, a few would end the job early."""
    backend = make_backend()
    process = await executor(backend, 20).spawn(
        SpawnOptions("/bin/sh", ["-c", 'echo "$$"; exec sleep 300'], stderr=True, outlive_link=True)
    )
    assert isinstance(process, ReattachingProcess)
    job = Path(process.remote_dir)
    try:
        with anyio.fail_after(10):
            pid = int(await receive_line(process, bytearray()))
            while not (job / "wd").exists() or not (job / "wd").read_text().strip():
                await anyio.sleep(0.05)  # written once the watchdog runs
            watchdog = int((job / "wd").read_text())
        att = process._att
        assert att is not None
        att._stop_heartbeat()  # the link freezes
        frozen = time.monotonic()
        for _ in range(15):
            os.kill(watchdog, signal.SIGUSR2)
            await anyio.sleep(0.1)
        await anyio.sleep(16.5 - (time.monotonic() - frozen))
        assert alive(pid), "the watchdog ended the job before the grace"
        assert await wait_dead(pid, 9), "the watchdog let the job outlive the grace"
        # Between the grace and one look (2 s) more, with slack for a loaded machine.
        assert 17.5 <= time.monotonic() - frozen <= 25  # its last heartbeat: up to 2 s before
    finally:
        with anyio.fail_after(15):
            await process.aclose()
