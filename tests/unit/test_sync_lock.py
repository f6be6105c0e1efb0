"""Tests for the per-session sync lock (remote_executors.sync._lock).

Contention is real: tasks in this process, and child Python processes that
take the same lock through the same code.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import anyio
import anyio.abc
import pytest

from remote_executors.sync import _lock
from remote_executors.sync._lock import session_lock

pytestmark = pytest.mark.anyio

# The child loads _lock.py by file path: importing the whole package would cost
# more than a second per process, and _lock needs only anyio.
CHILD = r"""
import importlib.util, sys, anyio

spec = importlib.util.spec_from_file_location("_lock", sys.argv[1])
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)

async def hold(path, timeout):
    try:
        async with mod.session_lock(path, timeout=timeout):
            print("locked", flush=True)
            await anyio.to_thread.run_sync(sys.stdin.readline)
    except TimeoutError:
        print("timeout", flush=True)
        return
    print("released", flush=True)

async def count(path, rounds):
    # Read-modify-write with a pause in between: any overlap loses increments.
    for _ in range(rounds):
        async with mod.session_lock(path + ".lock", timeout=10):
            n = int(open(path).read())
            await anyio.sleep(0.001)
            with open(path, "w") as f:
                f.write(str(n + 1))

if sys.argv[2] == "hold":
    anyio.run(hold, sys.argv[3], float(sys.argv[4]))
else:
    anyio.run(count, sys.argv[3], int(sys.argv[4]))
"""


class Child:
    """A child process holding or wanting the lock, driven line by line."""

    def __init__(self, process: anyio.abc.Process) -> None:
        self.process = process
        self.buffer = b""

    @classmethod
    async def start(cls, *args: str) -> Child:
        process = await anyio.open_process(
            [sys.executable, "-c", CHILD, _lock.__file__, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=None,
        )
        return cls(process)

    async def expect(self, word: str) -> None:
        assert self.process.stdout is not None
        with anyio.fail_after(10):
            while b"\n" not in self.buffer:
                self.buffer += await self.process.stdout.receive()
        got, _, self.buffer = self.buffer.partition(b"\n")
        assert got.decode() == word

    async def send_line(self) -> None:
        assert self.process.stdin is not None
        await self.process.stdin.send(b"\n")

    async def finish(self) -> int:
        with anyio.fail_after(10):
            return await self.process.wait()

    async def aclose(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
        await self.process.aclose()


def open_fds() -> int:
    return len(os.listdir("/dev/fd"))


# A leak shows as more descriptors after than before. Fewer is no leak: the
# worker runs other tests first, and what they left may be collected meanwhile.


async def test_tasks_are_serialized(tmp_path: Path) -> None:
    lock = tmp_path / "s.lock"
    inside = 0
    most = 0
    order: list[int] = []

    async def sync(i: int) -> None:
        nonlocal inside, most
        async with session_lock(lock, timeout=5):
            inside += 1
            most = max(most, inside)
            order.append(i)
            await anyio.sleep(0.01)
            inside -= 1

    async with anyio.create_task_group() as tg:
        for i in range(5):
            tg.start_soon(sync, i)
    assert most == 1
    assert sorted(order) == list(range(5))


async def test_lock_file_is_created_private_and_kept(tmp_path: Path) -> None:
    lock = tmp_path / "staging" / "deep" / "s.lock"
    async with session_lock(str(lock)):
        assert stat.S_IMODE(lock.stat().st_mode) == 0o600
        assert stat.S_IMODE(lock.parent.stat().st_mode) & 0o077 == 0
    assert lock.exists()  # removing it would let two holders lock different files


async def test_different_sessions_do_not_wait_for_each_other(tmp_path: Path) -> None:
    both_inside = anyio.Event()
    count = 0

    async def sync(name: str) -> None:
        nonlocal count
        async with session_lock(tmp_path / name, timeout=5):
            count += 1
            if count == 2:
                both_inside.set()
            with anyio.fail_after(2):
                await both_inside.wait()

    async with anyio.create_task_group() as tg:
        tg.start_soon(sync, "a.lock")
        tg.start_soon(sync, "b.lock")


async def test_timeout_raises_and_leaves_the_lock_usable(tmp_path: Path) -> None:
    lock = tmp_path / "s.lock"
    fds = open_fds()
    async with session_lock(lock):
        started = time.monotonic()
        with pytest.raises(TimeoutError, match=r"could not lock .*s\.lock within 0\.1 s"):
            async with session_lock(lock, timeout=0.1):
                pytest.fail("got a lock that is held")
        assert 0.09 <= time.monotonic() - started < 1.5
    async with session_lock(lock, timeout=1):
        pass
    assert open_fds() <= fds


async def test_cancelled_wait_ends_promptly_and_leaks_nothing(tmp_path: Path) -> None:
    lock = tmp_path / "s.lock"
    fds = open_fds()
    async with session_lock(lock):
        with anyio.CancelScope() as scope:
            scope.deadline = anyio.current_time() + 0.05
            async with session_lock(lock, timeout=None):
                pytest.fail("got a lock that is held")
        assert scope.cancelled_caught
    # The abandoned wait must not grab the lock later and sit on it.
    await anyio.sleep(0.05)
    async with session_lock(lock, timeout=0.5):
        pass
    assert open_fds() <= fds


def test_a_wait_stopped_before_its_thread_runs_never_takes_the_lock(tmp_path: Path) -> None:
    """Cancellation can win the race against the worker thread starting at all."""
    waiter = _lock._Waiter(tmp_path / "s.lock")
    waiter.stop()
    waiter.wait()  # the thread, late
    assert not waiter.locked and waiter.fd is None
    assert not (tmp_path / "s.lock").exists()


async def test_waiting_does_not_block_the_event_loop(tmp_path: Path) -> None:
    lock = tmp_path / "s.lock"
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await anyio.sleep(0.005)

    async with anyio.create_task_group() as tg:
        tg.start_soon(tick)
        async with session_lock(lock):
            with pytest.raises(TimeoutError):
                async with session_lock(lock, timeout=0.2):
                    pass
        tg.cancel_scope.cancel()
    assert ticks >= 10


async def test_waiter_gets_the_lock_soon_after_release(tmp_path: Path) -> None:
    lock = tmp_path / "s.lock"
    released_at = 0.0
    acquired_at = 0.0
    holding = anyio.Event()

    async def holder() -> None:
        nonlocal released_at
        async with session_lock(lock):
            holding.set()
            await anyio.sleep(0.1)
            released_at = time.monotonic()

    async def waiter() -> None:
        nonlocal acquired_at
        await holding.wait()
        async with session_lock(lock, timeout=5):
            acquired_at = time.monotonic()

    async with anyio.create_task_group() as tg:
        tg.start_soon(holder)
        tg.start_soon(waiter)
    assert 0 <= acquired_at - released_at < 0.1  # one poll interval, plus scheduling


async def test_errors_while_waiting_propagate(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(OSError):
        async with session_lock(tmp_path / "file" / "s.lock"):
            pytest.fail("locked under a file")


async def test_another_process_holding_the_lock_makes_us_wait(tmp_path: Path) -> None:
    lock = str(tmp_path / "s.lock")
    child = await Child.start("hold", lock, "5")
    try:
        await child.expect("locked")
        with pytest.raises(TimeoutError):
            async with session_lock(lock, timeout=0.1):
                pytest.fail("got a lock another process holds")
        await child.send_line()
        async with session_lock(lock, timeout=5):
            await child.expect("released")
        assert await child.finish() == 0
    finally:
        await child.aclose()


async def test_another_process_waits_for_us(tmp_path: Path) -> None:
    lock = str(tmp_path / "s.lock")
    async with session_lock(lock):
        child = await Child.start("hold", lock, "0.1")
        try:
            await child.expect("timeout")
            assert await child.finish() == 0
        finally:
            await child.aclose()


async def test_a_killed_holder_releases_the_lock(tmp_path: Path) -> None:
    lock = str(tmp_path / "s.lock")
    child = await Child.start("hold", lock, "5")
    try:
        await child.expect("locked")
        child.process.send_signal(signal.SIGKILL)
        async with session_lock(lock, timeout=5):
            pass
        assert await child.finish() == -signal.SIGKILL
    finally:
        await child.aclose()


async def test_processes_and_tasks_together_never_overlap(tmp_path: Path) -> None:
    counter = tmp_path / "counter"
    counter.write_text("0")
    rounds = 10

    async def local_task() -> None:
        for _ in range(rounds):
            async with session_lock(f"{counter}.lock", timeout=10):
                n = int(counter.read_text())
                await anyio.sleep(0.001)
                counter.write_text(str(n + 1))

    children = [await Child.start("count", str(counter), str(rounds)) for _ in range(3)]
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(local_task)
            tg.start_soon(local_task)
        for child in children:
            assert await child.finish() == 0
    finally:
        for child in children:
            await child.aclose()
    assert int(counter.read_text()) == 5 * rounds
