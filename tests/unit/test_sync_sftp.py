"""SftpSessionSync without a server: which executors it takes, and its SFTP wire layer.

The wire layer is driven here by a stand-in for paramiko's ``SFTPClient``
that serves one in-memory file and can answer the way servers may: replies
shorter than asked, replies in another order, a file that ends before the
size the caller expects, a write that fails. Everything else runs over a
real sshd (tests/e2e/test_sync_conformance_sftp_ssh.py, test_sync_sftp_ssh.py).
"""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Any

import paramiko
import pytest

from remote_executors.errors import SyncError
from remote_executors.executors.local import LocalExecutor
from remote_executors.executors.ssh import SSHExecutor
from remote_executors.sync import SessionPaths, SftpSessionSync
from remote_executors.sync._sftp import _CHUNK, _IN_FLIGHT, _MAX_CHUNK, _Status, _Wire

pytestmark = pytest.mark.anyio

SID = "3f1e2d4c-5b6a-4978-8a9b-0c1d2e3f4a5b"
HANDLE = b"h1"


def _msg(*fields: object) -> paramiko.Message:
    msg = paramiko.Message()
    for field in fields:
        if isinstance(field, int):
            msg.add_int(field)
        else:
            msg.add_string(field)
    msg.rewind()
    return msg


class FakeClient:
    """Serves reads and writes of one file, with ``_async_request``/``_read_response``
    as paramiko's client has them (the owner's ``_async_response`` gets each reply).

    ``most``: the longest reply to a read. ``reverse``: answer outstanding
    requests newest first. ``fail_write``: the n-th write (from 1) fails.
    ``limits``: what ``limits@openssh.com`` says (packet, read, write), None:
    the extension is unsupported.
    """

    def __init__(
        self,
        data: bytes,
        *,
        most: int = _CHUNK,
        reverse: bool = False,
        fail_write: int = 0,
        limits: tuple[int, int, int] | None = None,
    ) -> None:
        self.data = bytearray(data)
        self.most = most
        self.limits = limits
        self.asked: list[tuple[int, int]] = []  # (request type, bytes asked or sent)
        self.reverse = reverse
        self.fail_write = fail_write
        self.writes = 0
        self.queue: deque[tuple[int, Any, int, tuple[Any, ...]]] = deque()
        self.num = 0
        self.outstanding = 0
        self.max_outstanding = 0

    def _async_request(self, owner: Any, t: int, *args: Any) -> int:
        self.num += 1
        self.queue.append((self.num, owner, t, args))
        self.outstanding += 1
        self.max_outstanding = max(self.max_outstanding, self.outstanding)
        return self.num

    def _read_response(self) -> None:
        num, owner, t, args = self.queue.pop() if self.reverse else self.queue.popleft()
        self.outstanding -= 1
        owner._async_response(*self._answer(t, args), num)

    def _answer(self, t: int, args: tuple[Any, ...]) -> tuple[int, paramiko.Message]:
        if t == 200:  # EXTENDED name ...
            assert args[0] == "limits@openssh.com", args
            if self.limits is None:
                return 101, _msg(8, "Operation unsupported", "")
            reply = paramiko.Message()
            for n in (*self.limits, 64):
                reply.add_int64(n)
            reply.rewind()
            return 201, reply
        if t == 5:  # READ handle offset length
            _, offset, length = args
            self.asked.append((t, length))
            if offset >= len(self.data):
                return 101, _msg(1, "End of file", "")
            return 103, _msg(bytes(self.data[offset : offset + min(length, self.most)]))
        if t == 6:  # WRITE handle offset data
            self.writes += 1
            if self.writes == self.fail_write:
                return 101, _msg(4, "Failure", "")
            _, offset, data = args
            self.asked.append((t, len(data)))
            self.data[offset : offset + len(data)] = data
            return 101, _msg(0, "", "")
        raise AssertionError(f"unexpected request {t}")


BIG = bytes(range(256)) * 1000  # 256,000 bytes: several chunks


@pytest.mark.parametrize("most", [_CHUNK, 1000, 7], ids=["whole-chunks", "short", "tiny"])
@pytest.mark.parametrize("reverse", [False, True], ids=["in-order", "out-of-order"])
def test_read_regions(most: int, reverse: bool) -> None:
    client = FakeClient(BIG[:60_000] if most == 7 else BIG, most=most, reverse=reverse)
    wire = _Wire(client)
    size = len(client.data)
    regions = [(HANDLE, 0, 4096), (HANDLE, size - 50_000, 50_000), (HANDLE, 10, 0)]
    assert wire.read(regions) == [client.data[:4096], client.data[-50_000:], b""]
    assert not client.queue


def test_read_past_the_end_is_none() -> None:
    """A file shorter than the caller was told: None, never a shorter result."""
    client = FakeClient(BIG[:100_000])
    wire = _Wire(client)
    got = wire.read([(HANDLE, 0, 10), (HANDLE, 90_000, 10_001), (HANDLE, 200_000, 5)])
    assert got == [BIG[:10], None, None]
    assert not client.queue


def test_requests_in_flight_are_bounded() -> None:
    client = FakeClient(bytes(_CHUNK * (_IN_FLIGHT * 2 + 3)))
    wire = _Wire(client)
    [data] = wire.read([(HANDLE, 0, len(client.data))])
    assert data == client.data
    assert client.max_outstanding == _IN_FLIGHT


@pytest.mark.parametrize(
    ("limits", "sizes"),
    [
        (None, (_CHUNK, _CHUNK)),
        ((262144, 261120, 261120), (261120, 261120)),
        ((0, 0, 0), (_MAX_CHUNK, _MAX_CHUNK)),  # 0: no limit
        ((34000, 16384, 8192), (16384, 8192)),
    ],
    ids=["unsupported", "openssh", "unlimited", "small"],
)
def test_request_sizes_follow_the_servers_limits(
    limits: tuple[int, int, int] | None, sizes: tuple[int, int]
) -> None:
    client = FakeClient(BIG, most=10**9, limits=limits)
    wire = _Wire(client)
    assert wire.sizes() == sizes
    [data] = wire.read([(HANDLE, 0, len(BIG))])
    assert data == BIG
    wire.write(HANDLE, len(BIG), BIG)
    reads = [n for t, n in client.asked if t == 5]
    writes = [n for t, n in client.asked if t == 6]
    assert max(reads) == min(sizes[0], len(BIG)) and max(writes) == min(sizes[1], len(BIG))
    assert client.max_outstanding * max(reads) <= 4 << 20 or client.max_outstanding == 1


def test_write_pipelined_and_checked() -> None:
    client = FakeClient(b"")
    _Wire(client).write(HANDLE, 0, BIG)
    assert client.data == BIG
    assert client.writes == -(-len(BIG) // _CHUNK)


def test_write_failure_is_raised_not_dropped() -> None:
    """paramiko's own pipelined writes can lose a failed reply; this one raises it."""
    client = FakeClient(b"", fail_write=3)
    with pytest.raises(_Status) as caught:
        _Wire(client).write(HANDLE, 0, BIG)
    assert caught.value.code == 4 and caught.value.errno is None


@pytest.mark.parametrize(
    "executor",
    [LocalExecutor(), SSHExecutor("box", backend="openssh")],
    ids=["local", "openssh"],
)
@pytest.mark.parametrize("direction", ["pull", "push"])
async def test_needs_the_fabric_backend(executor: Any, direction: str, tmp_path: Path) -> None:
    paths = SessionPaths(tmp_path / "local", "-home-me-shop", SID)
    with pytest.raises(SyncError) as caught:
        await getattr(SftpSessionSync(), direction)(executor, paths)
    text = str(caught.value)
    assert "backend='fabric'" in text and "TailSessionSync" in text
    assert caught.value.host == executor.name
    assert not paths.local_dir.exists()
