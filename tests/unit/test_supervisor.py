"""The supervisor and ReattachingProcess, under a local shell standing in for sshd.

A "cut" here closes the local end of the attachment's stdout: the remote follower dies on
its next write, the relay sees its stdin end, and the local side sees the channel end
without the job's end frame, exactly what a dropped link shows both sides. The e2e tier
(tests/e2e/test_reattach.py) does the same with real sshd and real TCP resets.
"""

from __future__ import annotations

import base64
import contextlib
import math
import os
import signal
import stat
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest
from _shell_backend import ShellBackend, reader_of, wait_dead
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import remote_executors as rx
from _tmpfs import tmpfs
from remote_executors import SpawnOptions, SSHExecutor
from remote_executors.errors import InvalidInput, ProcessLost
from remote_executors.executors._frames import FrameDecoder, encode_frames, frame_tag
from remote_executors.executors._remote_job import RemoteJob
from remote_executors.executors._remote_process import RemoteProcess
from remote_executors.executors.ssh._reattach import ReattachingProcess
from remote_executors.settings import HostSettings

pytestmark = pytest.mark.anyio

ECHO = 'while IFS= read -r l; do echo "got $l"; done; echo end; exit 3'


def executor(backend: ShellBackend, reattach_within: float = 30.0) -> SSHExecutor:
    ex = SSHExecutor("shellbox", reattach_within=reattach_within)
    ex._backend = backend
    return ex


async def cut(process: ReattachingProcess) -> None:
    att = process._att
    if att is not None:
        await att._channel.stdout.aclose()


async def read_all(process: ReattachingProcess) -> bytes:
    out = b""
    while True:
        try:
            out += await process.stdout.receive()
        except anyio.EndOfStream:
            return out


# ---- pieces --------------------------------------------------------------------------


def test_end_frame_and_trailer() -> None:
    nonce = "ab" * 16
    tag = frame_tag(nonce)
    assert FrameDecoder(nonce).feed(tag + b"0000") == b""  # unsupervised: noise
    assert not FrameDecoder(nonce).ended
    decoder = FrameDecoder(nonce, end_frames=True)
    data = encode_frames(nonce, b"hello\n") + tag + b"0000" + tag + b"0001" + b"7"
    assert decoder.feed(data[:9]) + decoder.feed(data[9:]) == b"hello\n"
    assert decoder.ended and decoder.trailer == b"7"
    # Frames after the end never reach the caller; the trailer stays small.
    assert decoder.feed(encode_frames(nonce, b"x" * 5000)) == b""
    assert len(decoder.trailer) <= 32


def test_link_status_round_trip() -> None:
    status = rx.LinkStatus(state="reattached", host="box", message="m", seconds=1.5, grace=300)

    class Message:
        subtype = rx.LINK_SUBTYPE
        data = status.to_raw()

    assert rx.LinkStatus.from_message(Message()) == status
    assert rx.LinkStatus.from_message(object()) is None
    assert status.to_line().endswith(b"\n") and status.to_line().count(b"\n") == 1


def test_supervisor_only_in_headers_that_need_it() -> None:
    plain = base64.b64decode(RemoteJob(argv=["x"]).header())
    supervised = base64.b64decode(RemoteJob(argv=["x"], grace=5).header())
    assert b"rx_supervise" not in plain and b"RX_GRACE=0" in plain
    assert b"rx_supervise" in supervised and b"RX_GRACE=5" in supervised


@pytest.mark.parametrize("bad", [-1, math.nan, math.inf, "300", 10**9])
def test_reattach_within_is_checked(bad: object) -> None:
    with pytest.raises(InvalidInput, match="reattach_within"):
        SSHExecutor("box", reattach_within=bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="reattach_within"):
        HostSettings("box", reattach_within=bad)  # type: ignore[arg-type]


def test_reattach_within_in_settings() -> None:
    host = HostSettings("box", reattach_within=30)
    assert host.reattach_within == 30.0
    assert host.options() == {"reattach_within": 30.0}
    assert host.executor().reattach_within == 30.0
    assert HostSettings("box").executor().reattach_within == 300.0


# ---- through the bootstrap -------------------------------------------------------------


async def test_only_processes_that_ask_outlive_the_link(
    make_backend: Callable[..., ShellBackend],
) -> None:
    """Status lines would break any byte stream but a line-based JSON one: a plain
    spawn stays unsupervised whatever reattach_within says."""
    process = await executor(make_backend()).spawn(SpawnOptions("/bin/sh", ["-c", "echo hi"]))
    assert isinstance(process, RemoteProcess)
    with anyio.fail_after(10):
        assert await process.wait() == 0
    await process.aclose()


async def test_reattach_within_zero_is_the_unsupervised_process(
    make_backend: Callable[..., ShellBackend],
) -> None:
    process = await executor(make_backend(), 0).spawn(SpawnOptions("/bin/sh", ["-c", "echo hi"]))
    assert isinstance(process, RemoteProcess)
    with anyio.fail_after(10):
        assert await process.wait() == 0
    await process.aclose()


async def test_stream_survives_cuts_and_ends_with_the_status(
    make_backend: Callable[..., ShellBackend],
) -> None:
    process = await executor(make_backend()).spawn(
        SpawnOptions("/bin/sh", ["-c", ECHO], stderr=True, outlive_link=True)
    )
    assert isinstance(process, ReattachingProcess)
    spool = Path(process.remote_dir)
    assert stat.S_IMODE(spool.stat().st_mode) == 0o700
    with anyio.fail_after(20):
        await process.stdin.send(b"one\n")
        assert await process.stdout.receive() == b"got one\n"
        await cut(process)
        await process.stdin.send(b"two\nthr")  # while detached: kept, resent after
        await process.stdin.send(b"ee\n")
        rest = await read_until(process, b"got three\n")
        await process.stdin.aclose()
        rest += await read_all(process)
        assert await process.wait() == 3
    lines = rest.decode().splitlines()
    assert [line for line in lines if not line.startswith("{")] == [
        "got two",
        "got three",
        "end",
    ]
    assert [line for line in lines if line.startswith("{")] and process.reattached == 1
    with anyio.fail_after(5):
        while spool.exists():  # removed once the local side had everything
            await anyio.sleep(0.05)


async def test_every_drop_gets_the_whole_grace(
    make_backend: Callable[..., ShellBackend],
) -> None:
    """A second cut later than the grace after the first still reattaches: the grace
    counts from each drop, not from the first one."""
    process = await executor(make_backend(), 2).spawn(
        SpawnOptions("/bin/sh", ["-c", ECHO], stderr=True, outlive_link=True)
    )
    assert isinstance(process, ReattachingProcess)
    with anyio.fail_after(30):
        await process.stdin.send(b"one\n")
        assert await process.stdout.receive() == b"got one\n"
        await cut(process)
        await process.stdin.send(b"two\n")
        await read_until(process, b"got two\n")
        await anyio.sleep(2.5)  # past the grace since the first drop
        await cut(process)
        await process.stdin.send(b"three\n")
        await read_until(process, b"got three\n")
        await process.stdin.aclose()
        await read_all(process)
        assert await process.wait() == 3
    assert process.reattached == 2 and process.lost_error() is None
    await process.aclose()


async def read_until(process: ReattachingProcess, end: bytes) -> bytes:
    out = b""
    while not out.endswith(end):
        out += await process.stdout.receive()
    return out


async def test_terminate_stops_the_job_and_removes_the_spool(
    make_backend: Callable[..., ShellBackend],
) -> None:
    process = await executor(make_backend()).spawn(
        SpawnOptions("/bin/sh", ["-c", "echo up; sleep 300 & wait"], stderr=True, outlive_link=True)
    )
    assert isinstance(process, ReattachingProcess)
    spool = Path(process.remote_dir)
    with anyio.fail_after(10):
        assert await process.stdout.receive() == b"up\n"
        process.terminate()
        assert await process.wait() == -15
        while spool.exists():
            await anyio.sleep(0.05)
    await process.aclose()


async def test_past_the_grace_it_is_process_lost_and_the_job_is_gone(
    make_backend: Callable[..., ShellBackend], monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = make_backend()
    process = await executor(backend, 2).spawn(
        SpawnOptions("/bin/sh", ["-c", "echo up; sleep 300"], stderr=True, outlive_link=True)
    )
    assert isinstance(process, ReattachingProcess)
    spool = Path(process.remote_dir)

    async def refused(*args: object, **kwargs: object) -> None:
        raise rx.HostUnreachable("shellbox refused the connection (test)", host="shellbox")

    with anyio.fail_after(20):
        assert await process.stdout.receive() == b"up\n"
        monkeypatch.setattr(backend, "open", refused)
        await cut(process)
        with pytest.raises(anyio.EndOfStream):
            while True:
                line = await process.stdout.receive()
                assert b"remote_executors_link" in line
        assert await process.wait() == 255
        lost = process.lost_error()
        assert isinstance(lost, rx.ProcessLost) and "reattach_within" in str(lost)
    # The watchdog: grace, then the whole group, then the spool.
    with anyio.move_on_after(20):
        while spool.exists():
            await anyio.sleep(0.1)
    assert not spool.exists(), sorted(p.name for p in spool.iterdir())


# ---- property: random cuts never lose, repeat or reorder a byte --------------------------


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    ops=st.lists(
        st.one_of(
            st.tuples(st.just("send"), st.integers(1, 5)),
            st.tuples(st.just("cut"), st.just(0)),
            st.tuples(st.just("pause"), st.integers(0, 30)),
        ),
        min_size=1,
        max_size=12,
    )
)
async def test_random_cuts_lose_and_repeat_nothing(
    make_backend: Callable[..., ShellBackend], ops: list[tuple[str, int]]
) -> None:
    process = await executor(make_backend()).spawn(
        SpawnOptions("/bin/sh", ["-c", ECHO], stderr=True, outlive_link=True)
    )
    assert isinstance(process, ReattachingProcess)
    sent: list[str] = []
    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            output: list[bytes] = []

            async def reader() -> None:
                output.append(await read_all(process))

            tg.start_soon(reader)
            for op, n in ops:
                if op == "send":
                    lines = [f"{len(sent) + i}-{'x' * (len(sent) * 37 % 300)}" for i in range(n)]
                    sent += lines
                    await process.stdin.send("".join(f"{line}\n" for line in lines).encode())
                elif op == "cut":
                    await cut(process)
                else:
                    await anyio.sleep(n / 1000)
            await process.stdin.aclose()
        assert await process.wait() == 3
    lines = output[0].decode().splitlines()
    assert [line for line in lines if not line.startswith("{")] == [
        *(f"got {line}" for line in sent),
        "end",
    ]


async def test_terminate_while_detached_reaches_the_job_on_aclose(
    make_backend: Callable[..., ShellBackend],
) -> None:
    process = await executor(make_backend()).spawn(
        SpawnOptions("/bin/sh", ["-c", "echo up; sleep 300 & wait"], stderr=True, outlive_link=True)
    )
    assert isinstance(process, ReattachingProcess)
    spool = Path(process.remote_dir)
    with anyio.fail_after(15):
        assert await process.stdout.receive() == b"up\n"
        await cut(process)
        # The reader notices the drop; the caller stops before any reconnect.
        assert process._att is not None
        await process._retire(process._att, wait=False)
        process.terminate()
        assert await process.wait() == -15
        await process.aclose()
        while spool.exists():
            await anyio.sleep(0.05)


async def test_a_last_line_without_newline_arrives_exactly(
    make_backend: Callable[..., ShellBackend],
) -> None:
    process = await executor(make_backend()).spawn(
        SpawnOptions("cat", [], stderr=True, outlive_link=True)
    )
    assert isinstance(process, ReattachingProcess)
    tail = bytes(range(256)) * 3  # every byte, through the relay's own base64 decoder
    with anyio.fail_after(10):
        await process.stdin.send(b"a\n" + tail)
        await process.stdin.aclose()
        assert await read_all(process) == b"a\n" + tail
        assert await process.wait() == 0


# ---- the spooler ---------------------------------------------------------------------


async def test_output_just_before_the_exit_is_all_spooled(
    make_backend: Callable[..., ShellBackend],
) -> None:
    """The process exits right after a burst: the spooler passes the pipes on to
    their end before the exit status is published."""
    burst = 'i=0; while [ $i -lt 3000 ]; do printf "%099d\\n" $i; i=$((i+1)); done; exit 7'
    process = await executor(make_backend()).spawn(
        SpawnOptions("/bin/sh", ["-c", burst], stderr=True, outlive_link=True)
    )
    assert isinstance(process, ReattachingProcess)
    with anyio.fail_after(20):
        out = await read_all(process)
        assert await process.wait() == 7
    assert out == b"".join(b"%099d\n" % i for i in range(3000))


async def test_a_background_child_holding_stdout_does_not_hold_the_end(
    make_backend: Callable[..., ShellBackend],
) -> None:
    """Its pipe never reaches its end: once the process exited, what is in it is
    spooled and the status follows (within about a second), and the child goes
    with the job."""
    process = await executor(make_backend()).spawn(
        SpawnOptions(
            "/bin/sh",
            ["-c", 'echo a; sleep 300 & echo "$!"; echo b; exit 3'],
            stderr=True,
            outlive_link=True,
        )
    )
    assert isinstance(process, ReattachingProcess)
    with anyio.fail_after(10):
        out = (await read_all(process)).decode().split()
        assert await process.wait() == 3
    assert out[0] == "a" and out[2] == "b" and len(out) == 3
    assert await wait_dead(int(out[1]), 10), "the child outlived the job"


async def test_a_killed_spooler_ends_the_job_instead_of_hanging_it(
    make_backend: Callable[..., ShellBackend],
) -> None:
    """The process ignores SIGPIPE, as node does: its output goes nowhere, so
    the watchdog ends the job, and the caller sees it lost."""
    process = await executor(make_backend()).spawn(
        SpawnOptions("/bin/sh", ["-c", f"trap '' PIPE; {ECHO}"], stderr=True, outlive_link=True)
    )
    assert isinstance(process, ReattachingProcess)
    fifo = Path(process.remote_dir) / "out.p"
    with anyio.fail_after(20):
        await process.stdin.send(b"one\n")
        assert await process.stdout.receive() == b"got one\n"
        os.kill(reader_of(fifo), signal.SIGKILL)
        await process.stdin.send(b"two\n")
        await read_all(process)
        assert await process.wait() == 255
    lost = process.lost_error()
    assert isinstance(lost, ProcessLost) and "output" in str(lost) and "shellbox" in str(lost)
    assert "reattach" not in str(lost)  # the link never dropped
    await process.aclose()
    with anyio.fail_after(10):
        while Path(process.remote_dir).exists():  # the job's end removes it
            await anyio.sleep(0.05)


@pytest.mark.skipif(os.geteuid() != 0, reason="mounts a small tmpfs (the CI runs as root)")
async def test_a_full_disk_holds_output_back_and_loses_none(
    make_backend: Callable[..., ShellBackend], tmp_path: Path
) -> None:
    """Spool writes that fail (ENOSPC) are tried again until there is room: the
    process waits on its full pipe, and every byte it printed arrives."""
    disk = tmp_path / "disk"
    lines = 'read go; i=0; while [ $i -lt 2000 ]; do printf "%099d\\n" $i; i=$((i+1)); done'
    with tmpfs(disk, "1m"):
        process = await executor(make_backend(env={"TMPDIR": str(disk)})).spawn(
            SpawnOptions("/bin/sh", ["-c", lines], stderr=True, outlive_link=True)
        )
        assert isinstance(process, ReattachingProcess)
        filler = disk / "filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, b"\0" * 4096)
        os.close(fd)
        with anyio.fail_after(30):
            await process.stdin.send(b"go\n")
            got = bytearray()
            with anyio.move_on_after(1.5):
                while True:
                    got += await process.stdout.receive()
            assert len(got) < 200_000, "the spool could not have held it all"
            filler.unlink()
            got += await read_all(process)
            assert await process.wait() == 0
        assert got == b"".join(b"%099d\n" % i for i in range(2000))


async def test_input_closed_at_once_ends_the_process(
    make_backend: Callable[..., ShellBackend],
) -> None:
    """The relay's "eof" may come before the watchdog has set its trap (it holds
    the FIFO's write end): the signal must not be lost, nor end the watchdog."""
    backend = make_backend()
    for _ in range(6):
        process = await executor(backend).spawn(
            SpawnOptions("/bin/sh", ["-c", ECHO], stderr=True, outlive_link=True)
        )
        assert isinstance(process, ReattachingProcess)
        await process.stdin.aclose()
        with anyio.fail_after(15):
            assert await read_all(process) == b"end\n"
            assert await process.wait() == 3
        await process.aclose()
