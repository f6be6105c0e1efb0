"""Executors whose SFTP requests can be damaged or raced, for SftpSessionSync's tests.

:class:`SftpFaultExecutor` forwards everything to a real
``SSHExecutor(..., backend="fabric")``; its ``sftp_call`` hands the
strategy's function a stand-in for paramiko's ``SFTPClient`` that passes
every request to the real one, on the real connection, and changes only what
a fault needs: the replies to reads (the file ends before the size that was
listed, as when it shrinks under the reader), the writes of an upload (cut
half-way, the server answering with a failure), or the moment a hook runs
(just before a temp file is created, or just before it is renamed over the
file). ``injected`` counts the faults that actually happened, so a test can
check it did not pass by accident.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import paramiko
from paramiko.sftp import (
    CMD_DATA,
    CMD_EXTENDED,
    CMD_OPEN,
    CMD_READ,
    CMD_STATUS,
    CMD_WRITE,
    SFTP_EOF,
    SFTP_FAILURE,
    SFTP_FLAG_EXCL,
)

from remote_executors.executors.base import Executor, sftp_channel_of
from remote_executors.testing.sync_conformance import _Wrapped

#: How a read can come back (SftpSessionSync's answers to the suite's ``cuts``):
#: the file turns out to end early, after the size was listed.
READ_CUTS = ("empty", "half", "last-byte", "shrunk")


def _reply(t: int, *fields: object) -> tuple[int, paramiko.Message]:
    """A reply message positioned where a reader starts (after the request id)."""
    msg = paramiko.Message()
    for field in fields:
        if isinstance(field, int):
            msg.add_int(field)
        else:
            msg.add_string(field)
    msg.rewind()
    return t, msg


def _eof() -> tuple[int, paramiko.Message]:
    return _reply(CMD_STATUS, SFTP_EOF, "End of file", "")


class _Owner:
    """Stands between the client and the strategy's reply handler for one request."""

    def __init__(self, inner: Any, change: Callable[[int, Any], tuple[int, Any]]) -> None:
        self.inner = inner
        self.change = change

    def _async_response(self, t: int, msg: Any, num: int) -> None:
        t, msg = self.change(t, msg)
        self.inner._async_response(t, msg, num)


class _Client:
    """paramiko's SFTPClient as the strategy sees it, with the faults of ``fault``."""

    def __init__(self, inner: Any, fault: SftpFaultExecutor) -> None:
        self._inner = inner
        self._fault = fault
        self._owners: list[_Owner] = []  # the client holds owners weakly

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def _async_request(self, owner: Any, t: int, *args: Any) -> int:
        change = self._fault.request(t, list(args))
        if change is not None:
            args, rewrite = change
            owner = _Owner(owner, rewrite)
            self._owners.append(owner)
        return int(self._inner._async_request(owner, t, *args))


class SftpFaultExecutor(_Wrapped):
    """``inner`` (a fabric ``SSHExecutor``) with one kind of SFTP fault.

    ``read_cut``: one of :data:`READ_CUTS`, applied to each file read: the
    first read of a file gets what a file shorter than listed gives (nothing,
    half of what was asked, all but its last byte, or three bytes short), and
    every later read of that file the end of file. ``cut_upload``: the first
    write carries half its bytes and fails, as does every write after it.
    ``before_create``: called once, just before a temp file is created
    (exclusively); ``before_rename``: one hook per posix-rename, in order, each
    called just before that rename is sent. ``unsupported``: SFTP extensions
    the server is made to lack (the request goes out under a name no server
    knows, so the server itself answers "unsupported"). ``before_request``:
    called with every request type and its arguments before it is sent.
    """

    def __init__(
        self,
        inner: Executor,
        *,
        read_cut: str | None = None,
        cut_upload: bool = False,
        before_create: Callable[[], None] | None = None,
        before_rename: Sequence[Callable[[], None]] = (),
        unsupported: Iterable[str] = (),
        before_request: Callable[[int, list[Any]], None] | None = None,
    ) -> None:
        super().__init__(inner)
        if read_cut is not None and read_cut not in READ_CUTS:
            raise ValueError(f"unknown read cut {read_cut!r}")
        self.read_cut = read_cut
        self.cut_upload = cut_upload
        self.before_create = before_create
        self.before_rename = list(before_rename)
        self.unsupported = frozenset(unsupported)
        self.before_request = before_request
        self.injected = 0
        self._ended: set[bytes] = set()  # handles whose file "ended"
        self._uploads_cut = False

    def __repr__(self) -> str:
        return f"SftpFaultExecutor({self.inner!r})"

    @property
    def backend(self) -> str:
        return str(getattr(self.inner, "backend", ""))

    @property
    def offers_sftp(self) -> bool:
        return sftp_channel_of(self.inner) is not None

    async def sftp_call(self, fn: Callable[[Any], Any], *, timeout: float = 30.0) -> Any:
        call = self.inner.sftp_call  # type: ignore[attr-defined]
        return await call(lambda sftp: fn(_Client(sftp, self)), timeout=timeout)

    def request(
        self, t: int, args: list[Any]
    ) -> tuple[list[Any], Callable[[int, Any], tuple[int, Any]]] | None:
        """How request ``t`` is changed: its new arguments and what its reply becomes."""
        if self.before_request is not None:
            self.before_request(t, args)
        if t == CMD_OPEN and args[1] & SFTP_FLAG_EXCL and self.before_create is not None:
            hook, self.before_create = self.before_create, None
            self.injected += 1
            hook()
        if t == CMD_EXTENDED and args[0] == "posix-rename@openssh.com" and self.before_rename:
            self.injected += 1
            self.before_rename.pop(0)()
        if t == CMD_EXTENDED and args[0] in self.unsupported:
            self.injected += 1
            args[0] = "rx-test-no-such-extension@example.invalid"
            return args, lambda t, msg: (t, msg)
        if t == CMD_READ and self.read_cut is not None:
            return args, self._read_reply(bytes(args[0]), int(args[2]))
        if t == CMD_WRITE and self.cut_upload:
            data = bytes(args[2])
            if self._uploads_cut:
                args[2] = b""  # nothing more lands
            else:
                self._uploads_cut = True
                self.injected += 1
                args[2] = data[: len(data) // 2]
            return args, lambda _t, _msg: _reply(CMD_STATUS, SFTP_FAILURE, "Failure", "")
        return None

    def _read_reply(self, handle: bytes, asked: int) -> Callable[[int, Any], tuple[int, Any]]:
        def change(t: int, msg: Any) -> tuple[int, Any]:
            if handle in self._ended or t != CMD_DATA:
                return _eof() if handle in self._ended else (t, msg)
            self._ended.add(handle)
            self.injected += 1
            data = bytes(msg.get_string())
            cut = {
                "empty": b"",
                "half": data[: len(data) // 2],
                "last-byte": data[:-1],
                "shrunk": data[:-3],
            }[str(self.read_cut)]
            return _eof() if not cut else _reply(CMD_DATA, cut)

        return change
