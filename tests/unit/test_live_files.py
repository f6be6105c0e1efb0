"""Applying live frames: the local file is a byte-prefix of the remote one after every
frame, grows in place, holds only complete lines, and is left alone when a frame
does not fit."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from remote_executors.sync import _live_files
from remote_executors.sync._live_files import LiveFiles
from remote_executors.sync._live_frames import Data, Head, Problem

SID = "0f0e0d0c-0b0a-4908-8706-050403020100"
MAIN = f"{SID}.jsonl"


@pytest.fixture
def files(tmp_path: Path) -> LiveFiles:
    return LiveFiles(tmp_path, max_file_bytes=1 << 20, host="box")


def test_a_new_file_then_appends_in_place_complete_lines_only(files: LiveFiles) -> None:
    path = files.local_dir / MAIN
    assert files.data(Data(1, MAIN, 0, b'{"a":1}\n{"b"')) == 8
    assert path.read_bytes() == b'{"a":1}\n'
    inode = os.stat(path).st_ino
    assert files.data(Data(1, MAIN, 12, b":2}\n{")) == 8
    assert path.read_bytes() == b'{"a":1}\n{"b":2}\n'
    assert files.data(Data(1, MAIN, 17, b'"c":3}\n')) == 8
    assert path.read_bytes() == b'{"a":1}\n{"b":2}\n{"c":3}\n'
    assert os.stat(path).st_ino == inode
    assert files.in_step and files.landed == 24


def test_an_unfinished_line_alone_creates_nothing(files: LiveFiles) -> None:
    assert files.data(Data(1, MAIN, 0, b'{"half')) == 0
    assert not (files.local_dir / MAIN).exists()


def test_non_jsonl_files_take_every_byte(files: LiveFiles) -> None:
    rel = f"{SID}/tool-results/out.txt"
    assert files.data(Data(1, rel, 0, b"no newline")) == 10
    assert (files.local_dir / rel).read_bytes() == b"no newline"


def test_the_overlap_window_is_checked_then_skipped(files: LiveFiles) -> None:
    path = files.local_dir / MAIN
    path.write_bytes(b"one\ntwo\n")
    files.head(Head(1, MAIN, b"one\ntwo\n"))
    assert files.data(Data(1, MAIN, 4, b"two\nthree\n")) == 6
    assert path.read_bytes() == b"one\ntwo\nthree\n"
    assert files.in_step


@pytest.mark.parametrize(
    ("frame", "why"),
    [
        (Data(1, MAIN, 4, b"TWO\nthree\n"), "differ"),  # overlap differs: diverged
        (Data(1, MAIN, 20, b"later\n"), "missing"),  # a gap
    ],
)
def test_a_frame_that_does_not_fit_changes_nothing(files: LiveFiles, frame: Data, why: str) -> None:
    path = files.local_dir / MAIN
    path.write_bytes(b"one\ntwo\n")
    assert files.data(frame) == 0
    assert path.read_bytes() == b"one\ntwo\n"
    assert why in files.stale[MAIN] and not files.in_step
    # Later frames for it are ignored until a pull resets the follower's view.
    assert files.data(Data(1, MAIN, 8, b"three\n")) == 0
    assert path.read_bytes() == b"one\ntwo\n"
    files.reset()
    assert files.data(Data(1, MAIN, 8, b"three\n")) == 6
    assert path.read_bytes() == b"one\ntwo\nthree\n"


def test_a_different_head_leaves_the_file_to_the_pull(files: LiveFiles) -> None:
    path = files.local_dir / MAIN
    path.write_bytes(b"one\ntwo\n")
    files.head(Head(1, MAIN, b"ONE\ntwo\n"))
    assert files.data(Data(1, MAIN, 8, b"three\n")) == 0
    assert path.read_bytes() == b"one\ntwo\n" and not files.in_step


def test_problems_leave_the_file_to_the_pull(files: LiveFiles) -> None:
    files.problem(Problem(1, MAIN, "shrunk", 3))
    assert "shrunk" in files.stale[MAIN]


def test_a_pull_that_appended_meanwhile_is_continued_after(files: LiveFiles) -> None:
    path = files.local_dir / MAIN
    path.write_bytes(b"one\n")
    assert files.data(Data(1, MAIN, 4, b"two\nthr")) == 4  # "thr" pending
    with open(path, "ab") as f:  # a pull brings the rest of "three", and more
        f.write(b"three\nfour\n")
    assert files.data(Data(1, MAIN, 11, b"ee\nfour\nfive\n")) == 5
    assert path.read_bytes() == b"one\ntwo\nthree\nfour\nfive\n"
    assert files.in_step


def test_a_local_file_changed_by_someone_else_is_not_appended_to(files: LiveFiles) -> None:
    path = files.local_dir / MAIN
    path.write_bytes(b"one\n")
    assert files.data(Data(1, MAIN, 4, b"two\nthr")) == 4
    with open(path, "ab") as f:
        f.write(b"XXX\n")  # not what the remote holds
    assert files.data(Data(1, MAIN, 11, b"ee\n")) == 0
    assert path.read_bytes() == b"one\ntwo\nXXX\n" and not files.in_step


def test_files_past_the_size_limit_are_not_followed(tmp_path: Path) -> None:
    files = LiveFiles(tmp_path, max_file_bytes=10, host="box")
    assert files.data(Data(1, MAIN, 0, b"0123456789\n")) == 0
    assert not (tmp_path / MAIN).exists() and "too large" in files.stale[MAIN]


def test_an_endless_line_is_held_only_up_to_a_bound(
    files: LiveFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_live_files, "MAX_PENDING", 100)
    offset = 0
    for _ in range(5):
        files.data(Data(1, MAIN, offset, b"x" * 30))
        offset += 30
    assert "too long" in files.stale[MAIN]
    assert not (files.local_dir / MAIN).exists()
    assert not files._files  # nothing held any more


def test_a_session_past_its_size_limit_is_not_followed(tmp_path: Path) -> None:
    files = LiveFiles(tmp_path, max_file_bytes=100, max_session_bytes=10, host="box")
    assert files.data(Data(1, MAIN, 0, b"01234\n")) == 6
    other = f"{SID}/subagents/a.jsonl"
    assert files.data(Data(1, other, 0, b"56789\n")) == 0
    assert "session is too large" in files.stale[other]
    assert not (tmp_path / other).exists()
