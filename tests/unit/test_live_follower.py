"""The live follower end to end on this machine: the real follow.pl in a real process
(started by LocalExecutor against a second config dir standing for the remote), and a
remote that lies (a process printing a hostile stream)."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import anyio
import pytest
from anyio.abc import Process

import remote_executors as rx
from remote_executors.sync._follower import LiveFollower
from remote_executors.sync.base import SessionPaths

pytestmark = pytest.mark.anyio

SID = "0f0e0d0c-0b0a-4908-8706-050403020100"
MAIN = f"{SID}.jsonl"
PROJECT = "-home-u-shop"


@pytest.fixture
def sides(tmp_path: Path) -> tuple[Path, SessionPaths]:
    """(the "remote" project dir, the session's paths)."""
    remote = tmp_path / "remote-claude" / "projects" / PROJECT
    remote.mkdir(parents=True)
    local = tmp_path / "local-claude" / "projects" / PROJECT
    local.mkdir(parents=True)
    paths = SessionPaths(local, PROJECT, SID, str(tmp_path / "remote-claude"))
    return remote, paths


INOTIFY = shutil.which("inotifywait") is not None


@pytest.fixture(params=["auto", "poll"])
async def follower(
    sides: tuple[Path, SessionPaths], request: pytest.FixtureRequest
) -> AsyncIterator[LiveFollower]:
    """A follower that waits on inotifywait (when installed here) or polls."""
    _, paths = sides
    follower = LiveFollower(rx.LocalExecutor(), paths, tick=0.01, wait=request.param)
    try:
        yield follower
    finally:
        await follower.stop()


async def until(check: Callable[[], bool], what: str) -> None:
    with anyio.fail_after(10):
        while not check():
            await anyio.sleep(0.01)


def read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return b""


async def test_appends_land_in_place_and_the_confirmation_covers_everything(
    sides: tuple[Path, SessionPaths], follower: LiveFollower
) -> None:
    remote, paths = sides
    (remote / MAIN).write_bytes(b'{"n":0}\n{"n":1}\n')
    (paths.local_dir / MAIN).write_bytes(b'{"n":0}\n')
    inode = os.stat(paths.local_dir / MAIN).st_ino
    follower.begin()
    local = paths.local_dir / MAIN
    await until(lambda: read(local) == b'{"n":0}\n{"n":1}\n', "the missing line")
    with open(remote / MAIN, "ab") as f:
        f.write(b'{"n":2}\n{"n"')  # a line still being written
        f.flush()
        await until(lambda: read(local).endswith(b'{"n":2}\n'), "the new line")
        await anyio.sleep(0.1)
        assert read(local) == b'{"n":0}\n{"n":1}\n{"n":2}\n'  # never the partial line
        f.write(b":3}\n")
    sub = remote / SID / "subagents"
    sub.mkdir(parents=True)
    (sub / "agent-a.jsonl").write_bytes(b'{"a":1}\n')
    (remote / SID / "tool-results").mkdir()
    (remote / SID / "tool-results" / "t.txt").write_bytes(b"output")
    assert await follower.confirm()
    # Right after the confirmation, everything on the remote is here.
    assert read(local) == read(remote / MAIN)
    assert read(paths.local_dir / SID / "subagents" / "agent-a.jsonl") == b'{"a":1}\n'
    assert read(paths.local_dir / SID / "tool-results" / "t.txt") == b"output"
    assert os.stat(local).st_ino == inode
    assert follower.mode == ("inotify" if follower._wait == "auto" and INOTIFY else "poll")


async def test_a_diverged_local_copy_is_never_appended_to(
    sides: tuple[Path, SessionPaths], follower: LiveFollower
) -> None:
    remote, paths = sides
    (remote / MAIN).write_bytes(b'{"n":0}\n{"n":1}\n')
    (paths.local_dir / MAIN).write_bytes(b'{"n":9}\n')
    follower.begin()
    assert not await follower.confirm()  # the turn-end pull must look
    assert read(paths.local_dir / MAIN) == b'{"n":9}\n'
    assert "differ" in follower.files.stale[MAIN]


async def test_stop_leaves_no_process(
    sides: tuple[Path, SessionPaths], follower: LiveFollower
) -> None:
    follower.begin()
    assert await follower.confirm()
    assert follower.channel is not None
    process = follower.channel.process
    assert process is not None
    await follower.stop()
    assert process.returncode is not None
    assert not follower.running


class Liar:
    """An executor whose "follower" prints ``stream``, then waits for the end of its stdin."""

    name = "liar"

    def __init__(self, stream: bytes) -> None:
        self.stream = stream
        self.local = rx.LocalExecutor()

    async def spawn(self, options: rx.SpawnOptions) -> Process:
        script = 'printf "%s" "$1"; exec cat >/dev/null'
        return await self.local.spawn(
            rx.SpawnOptions("/bin/sh", ["-c", script, "liar", self.stream.decode("latin-1")])
        )


@pytest.mark.parametrize(
    "stream",
    [
        pytest.param(b"L 2 poll\nD 1 0 6 ../../../evil\nowned\n", id="escape"),
        pytest.param(b"L 2 poll\nD 1 0 99999999999 " + MAIN.encode() + b"\n", id="huge"),
        pytest.param(b"garbage\n", id="no-hello"),
        pytest.param(b"L 2 poll\nD 1 0 4 " + MAIN.encode() + b"\nok\nX\n", id="bad-frame"),
    ],
)
async def test_a_lying_remote_changes_nothing_here(
    sides: tuple[Path, SessionPaths], stream: bytes
) -> None:
    _, paths = sides
    (paths.local_dir / MAIN).write_bytes(b'{"n":0}\n')
    before = sorted(p.name for p in paths.local_dir.parent.parent.rglob("*"))
    follower = LiveFollower(Liar(stream), paths)  # type: ignore[arg-type]
    follower.begin()
    try:
        assert not await follower.confirm(timeout=5)
        await until(lambda: follower.error is not None, "the follower gives up")
    finally:
        await follower.stop()
    assert read(paths.local_dir / MAIN) == b'{"n":0}\n'
    assert sorted(p.name for p in paths.local_dir.parent.parent.rglob("*")) == before


async def test_without_perl_there_is_no_follower(sides: tuple[Path, SessionPaths]) -> None:
    _, paths = sides

    class NoPerl(rx.LocalExecutor):
        async def spawn(self, options: rx.SpawnOptions) -> Process:
            env = {**options.env, "PATH": "/nonexistent"}
            return await super().spawn(rx.SpawnOptions(options.command, options.args, env=env))

    follower = LiveFollower(NoPerl(), paths)
    follower.begin()
    try:
        assert not await follower.confirm()
    finally:
        await follower.stop()
    assert follower.mode == "noperl" and follower.error is not None


@pytest.mark.skipif(not INOTIFY, reason="needs inotifywait")
async def test_watching_wakes_on_a_write_and_sleeps_otherwise(
    sides: tuple[Path, SessionPaths],
) -> None:
    """With inotifywait, a write lands at once although the poll tick is 5 s."""
    remote, paths = sides
    follower = LiveFollower(rx.LocalExecutor(), paths, tick=5.0)
    follower.begin()
    try:
        assert await follower.confirm()
        assert follower.mode == "inotify"
        await anyio.sleep(0.5)  # the watches are set up
        (remote / MAIN).write_bytes(b'{"n":0}\n')
        sub = remote / SID / "subagents"
        sub.mkdir(parents=True)
        await anyio.sleep(0.5)  # the new directory is watched
        # Without the watch, each would wait for a look at most once a second.
        for n in range(4):
            started = anyio.current_time()
            agent = sub / f"agent-{n}.jsonl"
            agent.write_bytes(b'{"a":1}\n')
            here = paths.local_dir / SID / "subagents" / agent.name
            await until(lambda here=here: read(here) != b"", "the subagent file")  # type: ignore[misc]
            assert anyio.current_time() - started < 0.5
        assert read(paths.local_dir / MAIN) == b'{"n":0}\n'
    finally:
        await follower.stop()


class Reattaching(rx.LocalExecutor):
    """Stands for an executor whose sessions outlive a dropped link."""

    reattach_within = 5.0


@pytest.mark.parametrize("reattach_within", [5.0, 0.0])
async def test_a_dropped_follower_restarts_from_the_local_sizes(
    sides: tuple[Path, SessionPaths], reattach_within: float
) -> None:
    remote, paths = sides
    executor = Reattaching()
    executor.reattach_within = reattach_within
    follower = LiveFollower(executor, paths, tick=0.01, wait="poll")
    local = paths.local_dir / MAIN
    try:
        (remote / MAIN).write_bytes(b'{"n":0}\n')
        follower.begin()
        await until(lambda: read(local) == b'{"n":0}\n', "the first line")
        with open(remote / MAIN, "ab") as f:
            f.write(b'{"n":1}\n{"n"')  # a line in flight when the channel drops
            f.flush()
            await until(lambda: read(local).endswith(b'{"n":1}\n'), "the second line")
            assert follower.channel is not None
            dead = follower.channel.process
            assert dead is not None
            dead.kill()  # the channel ends without a stop: what a dropped link shows
            await dead.wait()
            f.write(b':2}\n{"n":3}\n')
        if reattach_within:
            await until(lambda: read(local) == read(remote / MAIN), "the lines after the drop")
            assert follower.restarts == 1 and follower.running
            assert await follower.confirm()
            assert read(local) == b'{"n":0}\n{"n":1}\n{"n":2}\n{"n":3}\n'  # once each
        else:
            await until(lambda: follower.error is not None, "the follower to give up")
            assert follower.restarts == 0 and not await follower.confirm()
            assert read(local) == b'{"n":0}\n{"n":1}\n'  # the turn-end pull brings the rest
    finally:
        await follower.stop()
    assert follower.channel is not None and follower.channel.process is None


async def test_the_sessions_of_an_executor_share_one_follower(tmp_path: Path) -> None:
    """One remote process per executor (one more channel, not one per session):
    each session gets its own files, one leaving does not stop the others, and
    the last one out stops the process."""
    executor = rx.LocalExecutor()
    remote = tmp_path / "remote-claude" / "projects" / PROJECT
    remote.mkdir(parents=True)
    sids = [f"0f0e0d0c-0b0a-4908-8706-05040302010{n}" for n in range(3)]
    followers = []
    for n, sid in enumerate(sids):
        local = tmp_path / "local-claude" / "projects" / PROJECT
        local.mkdir(parents=True, exist_ok=True)
        (remote / f"{sid}.jsonl").write_bytes(b'{"s":%d}\n' % n)
        paths = SessionPaths(local, PROJECT, sid, str(tmp_path / "remote-claude"))
        followers.append(LiveFollower(executor, paths, tick=0.01, wait="poll"))
    for follower in followers:
        follower.begin()
    channel = followers[0].channel
    assert channel is not None and all(f.channel is channel for f in followers)
    try:
        for follower in followers:
            assert await follower.confirm()
        local = tmp_path / "local-claude" / "projects" / PROJECT
        for n, sid in enumerate(sids):
            assert read(local / f"{sid}.jsonl") == b'{"s":%d}\n' % n
        process = channel.process
        assert process is not None
        await followers[0].stop()
        assert not followers[0].running and process.returncode is None
        with open(remote / f"{sids[1]}.jsonl", "ab") as f:
            f.write(b'{"more":1}\n')
        await until(lambda: read(local / f"{sids[1]}.jsonl").endswith(b'{"more":1}\n'), "it")
        assert await followers[2].confirm() and followers[1].running
        # A session that joins later shares the same process.
        late = LiveFollower(executor, followers[0].paths, tick=0.01, wait="poll")
        late.begin()
        assert late.channel is channel and await late.confirm()
        await late.stop()
    finally:
        for follower in followers[1:]:
            await follower.stop()
    assert channel.process is None and process.returncode is not None


@pytest.mark.parametrize("project", ["-home-u-my shop", "-x A 9 1 p", "-café"])
async def test_a_project_name_follow_pl_would_not_take_is_left_to_the_pull(
    tmp_path: Path, project: str
) -> None:
    """Nothing odd reaches the remote command stream: the session is not followed,
    at once (no confirmation waits for an answer that cannot come)."""
    local = tmp_path / "local"
    local.mkdir()
    follower = LiveFollower(rx.LocalExecutor(), SessionPaths(local, project, SID, None))
    follower.begin()
    try:
        with anyio.fail_after(4):
            assert not await follower.confirm()
        assert isinstance(follower.error, ValueError) and not follower.running
    finally:
        await follower.stop()


async def test_a_pull_of_one_session_does_not_hold_up_the_others(tmp_path: Path) -> None:
    """While a pull holds one session's lock, the shared follower goes on serving
    the other sessions; the held session's frames wait and land after the pull."""
    executor = rx.LocalExecutor()
    remote = tmp_path / "remote-claude" / "projects" / PROJECT
    remote.mkdir(parents=True)
    local = tmp_path / "local-claude" / "projects" / PROJECT
    local.mkdir(parents=True)
    sids = [f"0f0e0d0c-0b0a-4908-8706-05040302010{n}" for n in range(2)]
    held, free = (
        LiveFollower(
            executor,
            SessionPaths(local, PROJECT, sid, str(tmp_path / "remote-claude")),
            tick=0.01,
            wait="poll",
        )
        for sid in sids
    )
    for follower in (held, free):
        follower.begin()
    try:
        assert await held.confirm() and await free.confirm()
        async with held.lock:  # what a pull does
            for sid in sids:
                (remote / f"{sid}.jsonl").write_bytes(b'{"n":1}\n')
            await until(lambda: read(local / f"{sids[1]}.jsonl") == b'{"n":1}\n', "the free one")
            await anyio.sleep(0.2)
            assert read(local / f"{sids[0]}.jsonl") == b""  # held back, not applied
        await held.drain()
        assert read(local / f"{sids[0]}.jsonl") == b'{"n":1}\n'
        assert await held.confirm() and held.files.in_step
    finally:
        await held.stop()
        await free.stop()
