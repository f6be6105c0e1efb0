"""KubeChannel over a scripted socket: channels, exit status, back-pressure, stopping.

The socket is a fake (the e2e tier runs the real client against the
stand-in); what is checked here is the channel's own bookkeeping, which a
real server would make hard to provoke on demand.
"""

from __future__ import annotations

import json
import queue
import threading
import types
from typing import Any

import anyio
import pytest

from remote_executors.executors._kube_channel import (
    EXEC_FAILED,
    V4,
    V5,
    KubeChannel,
    exit_code_of,
)

pytestmark = pytest.mark.anyio

_CLOSE = object()


class FakeSocket:
    """Frames handed out one by one; blocks until the test gives the next."""

    def __init__(self) -> None:
        self.frames: queue.Queue[Any] = queue.Queue()
        self.closed = threading.Event()

    def give(self, channel: int, data: bytes) -> None:
        self.frames.put(bytes([channel]) + data)

    def recv_data_frame(self, _control: bool) -> tuple[int, Any]:
        while True:
            if self.closed.is_set():
                raise ConnectionError("closed")
            try:
                item = self.frames.get(timeout=0.05)
            except queue.Empty:
                continue
            if item is _CLOSE:
                return 0x8, types.SimpleNamespace(data=b"")
            return 0x2, types.SimpleNamespace(data=item)

    def close(self, **_: Any) -> None:
        self.closed.set()

    def shutdown(self) -> None:
        self.closed.set()


class FakeClient:
    def __init__(self, protocol: str) -> None:
        self.sock = FakeSocket()
        self.subprotocol = protocol
        self.written: list[tuple[int, bytes]] = []
        self.closed_channels: list[int] = []

    def write_channel(self, channel: int, data: bytes) -> None:
        self.written.append((channel, data))

    def close_channel(self, channel: int) -> None:
        self.closed_channels.append(channel)

    def close(self) -> None:
        self.sock.close()


def status(code: int) -> bytes:
    if code == 0:
        return b'{"metadata":{},"status":"Success"}'
    return json.dumps(
        {
            "status": "Failure",
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
        }
    ).encode()


def test_exit_code_of_status_objects() -> None:
    assert exit_code_of(status(0)) == (0, "")
    assert exit_code_of(status(42))[0] == 42
    code, message = exit_code_of(
        b'{"status":"Failure","reason":"InternalError","message":"no such container"}'
    )
    assert (code, message) == (EXEC_FAILED, "no such container")
    assert exit_code_of(b"not json")[0] == EXEC_FAILED


async def test_streams_and_status() -> None:
    client = FakeClient(V5)
    channel = KubeChannel(client, pipe_stderr=True)
    client.sock.give(1, b"out ")
    client.sock.give(2, b"err")
    client.sock.give(4, b"ignored")
    client.sock.give(1, b"more")
    client.sock.give(3, status(3))
    client.sock.frames.put(_CLOSE)
    assert channel.stderr is not None
    with anyio.fail_after(10):
        assert await channel.wait() == 3
        out = b""
        try:
            while True:
                out += await channel.stdout.receive()
        except anyio.EndOfStream:
            pass
        assert out == b"out more"
        assert await channel.stderr.receive() == b"err"
    with pytest.raises(BrokenPipeError):  # stdin is closed once the exec ended
        channel.write_stdin(b"late")
    await channel.aclose()


async def test_stdin_close_is_a_frame_under_v5_only() -> None:
    for protocol, frames in ((V5, [0]), (V4, [])):
        client = FakeClient(protocol)
        channel = KubeChannel(client, pipe_stderr=False)
        channel.write_stdin(b"data")
        channel.close_stdin()
        assert client.written == [(0, b"data")]
        assert client.closed_channels == frames
        assert channel.closes_stdin is (protocol == V5)
        client.sock.give(2, b"kept aside")
        client.sock.give(3, status(0))
        client.sock.frames.put(_CLOSE)
        with anyio.fail_after(10):
            assert await channel.wait() == 0
        assert channel.stderr_text() == "kept aside"
        await channel.aclose()


async def test_an_end_without_status_is_a_lost_link() -> None:
    client = FakeClient(V5)
    channel = KubeChannel(client, pipe_stderr=False)
    client.sock.frames.put(_CLOSE)
    with anyio.fail_after(10):
        assert await channel.wait() == EXEC_FAILED
    assert "without an exit status" in channel.stderr_text()
    await channel.aclose()


async def test_an_unread_stream_holds_back_and_a_stop_still_ends_it() -> None:
    # Nobody reads stdout: the reader thread blocks on the full pipe (memory
    # stays bounded), and stopping the exec must still let wait() return.
    client = FakeClient(V5)
    channel = KubeChannel(client, pipe_stderr=False)
    for _ in range(64):
        client.sock.give(1, b"\0" * 65536)  # 4 MiB, far past a pipe's 64 KiB
    await anyio.sleep(0.5)
    assert client.sock.frames.qsize() > 50  # held back, not buffered in memory
    channel.send_signal(9)
    with anyio.fail_after(10):
        assert await channel.wait() == -9
    await channel.aclose()


async def test_several_tasks_may_wait() -> None:
    client = FakeClient(V5)
    channel = KubeChannel(client, pipe_stderr=False)
    codes: list[int] = []

    async def waiter() -> None:
        codes.append(await channel.wait())

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(waiter)
            await anyio.sleep(0.1)
            client.sock.give(3, status(5))
            client.sock.frames.put(_CLOSE)
    assert codes == [5, 5, 5]
    await channel.aclose()
