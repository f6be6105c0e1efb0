"""Tests for reading fetch.sh's framed output (remote_executors.sync._tail._parse_fetch).

The stream is the only thing a pull trusts from the other side: anything that
is not exactly the framing (headers, exact byte counts, one ``RX-END`` at
the very end) must be refused as a :class:`SyncError`, never misread.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from remote_executors.errors import SessionConflict, SyncError, SyncPermissionDenied
from remote_executors.sync._reconcile import RemoteCopy, Request
from remote_executors.sync._tail import _parse_fetch
from remote_executors.sync.base import Limits, SessionPaths

SID = "0b6a2f4e-8c1d-4e3a-9f7b-2d5c6e8a1b3c"
OTHER = "5d0c8a9e-1f2b-4c3d-8e4f-6a7b8c9d0e1f"
HOST = "box"
PATHS = SessionPaths(local_dir=Path("/nonexistent/local"), remote_project="-p", session_id=SID)
PROJECT = SessionPaths(local_dir=Path("/nonexistent/local"), remote_project="-p")


def frame(
    rel: str, data: bytes, *, size: int | None = None, offset: int = 0, head: bytes = b""
) -> bytes:
    """One file as fetch.sh sends it: ``head``, bytes ``[offset, size)``, then RX-EOF."""
    size = offset + len(data) if size is None else size
    header = f"RX-FILE {size} {offset} {len(head)} {rel}\n".encode()
    return header + head + data + b"RX-EOF\n"


REQUEST = Request("all", {}, Limits())


def parse(out: bytes, paths: SessionPaths = PATHS) -> tuple[dict[str, RemoteCopy], list[SyncError]]:
    copies, errors, big, changed = _parse_fetch(out, HOST, paths, REQUEST)
    assert not big and not changed
    return copies, errors


def refused(out: bytes, paths: SessionPaths = PATHS) -> SyncError:
    with pytest.raises(SyncError) as caught:
        parse(out, paths)
    exc = caught.value
    assert type(exc) is SyncError, "a damaged stream is neither a conflict nor a permission error"
    assert exc.host == HOST
    assert exc.side == HOST
    assert HOST in str(exc) and "Nothing was changed locally" in str(exc)
    return exc


# -- well-formed streams ---------------------------------------------------------


def test_files_whole_and_as_tails() -> None:
    out = (
        frame(f"{SID}.jsonl", b'{"a":1}\n{"b":2}\n', size=100, offset=84)
        + frame(f"{SID}/subagents/agent-1.jsonl", b'{"s":1}\n')
        + frame(f"{SID}/tool-results/toolu 1.txt", b"\x00\xff no newline")
        + b"RX-END\n"
    )
    copies, errors = parse(out)
    assert errors == []
    assert copies == {
        f"{SID}.jsonl": RemoteCopy(100, 84, b'{"a":1}\n{"b":2}\n'),
        f"{SID}/subagents/agent-1.jsonl": RemoteCopy(8, 0, b'{"s":1}\n'),
        f"{SID}/tool-results/toolu 1.txt": RemoteCopy(13, 0, b"\x00\xff no newline"),
    }


def test_nothing_there() -> None:
    assert parse(b"RX-NODIR\nRX-END\n") == ({}, [])
    assert parse(b"RX-END\n") == ({}, [])


def test_empty_file() -> None:
    copies, _ = parse(frame(f"{SID}.jsonl", b"") + b"RX-END\n")
    assert copies == {f"{SID}.jsonl": RemoteCopy(0, 0, b"")}


def test_data_is_taken_by_length_not_by_lines() -> None:
    # A file whose bytes look like framing is still just data.
    tricky = b"RX-END\nRX-FILE 3 0 x\nabcRX-ERR perm y\n"
    out = frame(f"{SID}.jsonl", tricky) + frame(f"{SID}/a.txt", b"z") + b"RX-END\n"
    copies, errors = parse(out)
    assert errors == []
    assert copies[f"{SID}.jsonl"].data == tricky
    assert copies[f"{SID}/a.txt"].data == b"z"


def test_files_outside_the_session_are_read_past_and_dropped() -> None:
    out = (
        frame(f"{OTHER}.jsonl", b'{"other":1}\n')
        + frame(f"{SID}/.rx-store.12.tmp", b"temp")
        + frame(f"{SID}.jsonl.conflict-box-20260101T000000Z", b"old\n")
        + frame(f"{SID}.jsonl", b'{"mine":1}\n')
        + b"RX-END\n"
    )
    copies, errors = parse(out)
    assert list(copies) == [f"{SID}.jsonl"]
    assert copies[f"{SID}.jsonl"].data == b'{"mine":1}\n'
    assert errors == []
    whole, _ = parse(out, PROJECT)
    assert sorted(whole) == sorted([f"{OTHER}.jsonl", f"{SID}.jsonl"])


def test_unreadable_files_are_returned_as_errors() -> None:
    out = (
        b"RX-ERR perm " + f"{SID}/subagents/agent 2.jsonl".encode() + b"\n"
        + frame(f"{SID}.jsonl", b'{"a":1}\n')
        + b"RX-ERR perm .\n"
        + b"RX-END\n"
    )  # fmt: skip
    copies, errors = parse(out)
    assert list(copies) == [f"{SID}.jsonl"]
    assert [type(e) for e in errors] == [SyncPermissionDenied, SyncPermissionDenied]
    assert all(e.host == HOST and e.side == HOST for e in errors)
    assert f"-p/{SID}/subagents/agent 2.jsonl on {HOST}" in str(errors[0])
    assert "permission denied" in str(errors[0])


def test_non_utf8_names_survive() -> None:
    rel = f"{SID}/tool-results/".encode() + b"caf\xe9.txt"
    copies, _ = parse(b"RX-FILE 1 0 0 " + rel + b"\nxRX-EOF\n" + b"RX-END\n")
    [name] = copies
    assert name.encode("utf-8", "surrogateescape") == rel


# -- damaged streams ---------------------------------------------------------------


@pytest.mark.parametrize(
    "out",
    [
        b"",
        b"RX-END",  # no newline: the stream stopped one byte short
        b"RX-NODIR\n",
        frame(f"{SID}.jsonl", b'{"a":1}\n'),  # no end marker
        frame(f"{SID}.jsonl", b'{"a":1}\n') + b"RX-EN",
        b"RX-FILE 12 0 0 " + f"{SID}.jsonl".encode(),  # header without its newline
    ],
    ids=["empty", "end-without-newline", "nodir-only", "no-end", "end-cut", "header-cut"],
)
def test_cut_short(out: bytes) -> None:
    assert "cut short" in str(refused(out))


@pytest.mark.parametrize("missing", [1, 5, 8])
def test_file_shorter_than_announced(missing: int) -> None:
    data = b'{"a":1}\n'
    out = frame(f"{SID}.jsonl", data[: len(data) - missing], size=len(data)) + b"RX-END\n"
    # The shortfall is taken from the end marker, which then no longer parses.
    refused(out)


def test_file_shorter_than_announced_at_the_very_end() -> None:
    out = frame(f"{SID}.jsonl", b"abc", size=10)
    assert "a file was cut short" in str(refused(out))


def test_file_longer_than_announced() -> None:
    out = frame(f"{SID}.jsonl", b'{"a":1}\n', size=5) + b"RX-END\n"
    assert "cut short" in str(refused(out))


@pytest.mark.parametrize(
    "trailer",
    [b"x", b"\n", b"RX-END\n", frame(f"{SID}.jsonl", b"late")],
    ids=["byte", "newline", "second-end", "file-after-end"],
)
def test_bytes_after_the_end(trailer: bytes) -> None:
    out = frame(f"{SID}.jsonl", b'{"a":1}\n') + b"RX-END\n" + trailer
    assert "after the end" in str(refused(out))


@pytest.mark.parametrize(
    "header",
    [
        b"RX-FILE",
        b"RX-FILE ",
        b"RX-FILE 10",
        b"RX-FILE 10 0",
        b"RX-FILE ten 0 0 a.jsonl",
        b"RX-FILE 10 zero 0 a.jsonl",
        b"RX-FILE 1e3 0 0 a.jsonl",
        b"RX-FILE  10 0 0 a.jsonl",
        b"RX-FILE 10 0x0 0 a.jsonl",
    ],
)
def test_garbled_headers(header: bytes) -> None:
    exc = refused(header + b"\n" + b"x" * 10 + b"RX-END\n")
    assert "bad header" in str(exc) or "unexpected line" in str(exc)


@pytest.mark.parametrize(
    "line",
    [
        b"hello",
        b"RX-ERR",
        b"RX-ERR perm",  # no space, no name
        b"RX-ERR disk a.jsonl",
        b"rx-end",
        b"RX-END ",
        b"RX-END\r",
        b"\x1b[0mRX-END",  # an rc file's escape sequence in front
    ],
)
def test_unexpected_lines(line: bytes) -> None:
    exc = refused(line + b"\nRX-END\n")
    assert "unexpected line" in str(exc)


def test_shell_noise_before_the_stream_is_refused() -> None:
    out = b"Welcome to box!\n" + frame(f"{SID}.jsonl", b'{"a":1}\n') + b"RX-END\n"
    refused(out)


def test_offset_past_size_is_refused() -> None:
    out = b"RX-FILE 5 10 0 " + f"{SID}.jsonl".encode() + b"\nRX-END\n"
    refused(out)


def test_negative_size_is_refused() -> None:
    out = b"RX-FILE -7 0 0 " + f"{SID}.jsonl".encode() + b"\nRX-END\n"
    refused(out)


def test_errors_do_not_hide_a_damaged_stream() -> None:
    out = b"RX-ERR perm " + f"{SID}.jsonl".encode() + b"\n" + frame(f"{SID}/a", b"abc", size=9)
    exc = refused(out)
    assert not isinstance(exc, (SyncPermissionDenied, SessionConflict))
