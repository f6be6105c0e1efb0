"""Tests for atomic installs, conflict copies and apply_local (remote_executors.sync._install).

Failures are injected for real where the machine allows it (a read-only
directory, a directory where the file should be) and by patching the system
calls otherwise (a failing write or fsync, hard links unsupported).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import os
import re
import shutil
import stat
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from remote_executors import _store_file
from remote_executors.sync import _install
from remote_executors.sync._decide import Kind, decide
from remote_executors.sync._install import (
    LocalResult,
    apply_local,
    install_atomically,
    save_conflict_copy,
)

NOW = dt.datetime(2026, 5, 9, 7, 35, 12, 999_999, tzinfo=dt.timezone.utc)
STAMP = "20260509T073512Z"
SID = "0b6a2f4e-8c1d-4e3a-9f7b-2d5c6e8a1b3c"


def names(directory: Path) -> set[str]:
    return set(os.listdir(directory))


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def fail_with(err: int) -> OSError:
    return OSError(err, os.strerror(err))


@contextlib.contextmanager
def unprivileged() -> Iterator[None]:
    """Run the block without root's power to write anywhere (a no-op for other users)."""
    if os.geteuid() != 0:
        yield
        return
    os.seteuid(65534)  # nobody; the saved uid stays root, so this is undone below
    try:
        yield
    finally:
        os.seteuid(0)


@pytest.fixture
def public_tmp() -> Iterator[Path]:
    """A scratch dir that ``nobody`` can traverse (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="sync-install-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        for sub in path.rglob("*"):
            if sub.is_dir():
                sub.chmod(0o755)
        shutil.rmtree(path)


# -- install_atomically ---------------------------------------------------------------------


def test_install_creates_a_private_file_and_its_parents(tmp_path: Path) -> None:
    target = tmp_path / "projects" / "-home-u-proj" / SID / "subagents" / "agent-1.jsonl"
    old_umask = os.umask(0)  # even with a permissive umask the result is private
    try:
        install_atomically(target, b'{"a":1}\n')
    finally:
        os.umask(old_umask)
    assert target.read_bytes() == b'{"a":1}\n'
    assert mode_of(target) == 0o600
    assert mode_of(target.parent) == 0o700
    assert mode_of(tmp_path / "projects") == 0o700
    assert names(target.parent) == {"agent-1.jsonl"}


def test_install_replaces_and_keeps_the_existing_mode(tmp_path: Path) -> None:
    target = tmp_path / f"{SID}.jsonl"
    target.write_bytes(b"a\n")
    target.chmod(0o640)
    install_atomically(target, b"a\nb\n")
    assert target.read_bytes() == b"a\nb\n"
    assert mode_of(target) == 0o640
    assert names(tmp_path) == {f"{SID}.jsonl"}


def test_install_accepts_str_paths_and_empty_and_large_data(tmp_path: Path) -> None:
    install_atomically(str(tmp_path / "empty.jsonl"), b"")
    assert (tmp_path / "empty.jsonl").read_bytes() == b""
    big = os.urandom(3 * 1024 * 1024)
    install_atomically(tmp_path / "big.jsonl", big)
    assert (tmp_path / "big.jsonl").read_bytes() == big


def test_install_fsyncs_the_file_before_the_rename_and_the_directory_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[str] = []
    real_fsync, real_replace = _install._fsync, os.replace

    def fsync(fd: int) -> None:
        events.append("fsync dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync file")
        real_fsync(fd)

    def replace(src: str, dst: os.PathLike[str]) -> None:
        events.append("rename")
        real_replace(src, dst)

    monkeypatch.setattr(_install, "_fsync", fsync)
    monkeypatch.setattr(_store_file, "_fsync", fsync)  # directory fsyncs go through it
    monkeypatch.setattr(os, "replace", replace)
    (tmp_path / "d").mkdir()
    install_atomically(tmp_path / "d" / "x.jsonl", b"a\n")
    assert events == ["fsync file", "rename", "fsync dir"]
    # New directories are made durable in their parents too.
    events.clear()
    install_atomically(tmp_path / "new" / "x.jsonl", b"a\n")
    assert events == ["fsync dir", "fsync file", "rename", "fsync dir"]


def test_conflict_copy_is_durable_before_it_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[str] = []
    real_fsync, real_link = _install._fsync, os.link

    def fsync(fd: int) -> None:
        events.append("fsync dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync file")
        real_fsync(fd)

    def link(src: str, dst: Path) -> None:
        events.append("link")
        real_link(src, dst)

    monkeypatch.setattr(_install, "_fsync", fsync)
    monkeypatch.setattr(_store_file, "_fsync", fsync)  # directory fsyncs go through it
    monkeypatch.setattr(os, "link", link)
    save_conflict_copy(tmp_path / "x.jsonl", b"theirs\n", side="remote")
    assert events == ["fsync file", "link", "fsync dir"]


@pytest.mark.parametrize("exc", [fail_with(errno.EIO), KeyboardInterrupt()])
def test_failed_fsync_leaves_no_temp_and_the_old_file_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exc: BaseException
) -> None:
    target = tmp_path / "x.jsonl"
    target.write_bytes(b"old\n")
    target.chmod(0o600)

    def broken_fsync(fd: int) -> None:
        raise exc

    monkeypatch.setattr(os, "fsync", broken_fsync)
    monkeypatch.delattr(fcntl, "F_FULLFSYNC", raising=False)
    with pytest.raises(type(exc)):
        install_atomically(target, b"old\nnew\n")
    assert target.read_bytes() == b"old\n"
    assert names(tmp_path) == {"x.jsonl"}


def test_disk_full_in_the_middle_of_the_write_leaves_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_write = os.write
    calls = 0

    def filling_write(fd: int, data: bytes | memoryview) -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            return real_write(fd, data[:3])  # a short write, which the loop must continue
        raise fail_with(errno.ENOSPC)

    monkeypatch.setattr(os, "write", filling_write)
    with pytest.raises(OSError, match="No space left") as info:
        install_atomically(tmp_path / "x.jsonl", b"0123456789\n")
    assert info.value.errno == errno.ENOSPC
    assert names(tmp_path) == set()


def test_short_writes_are_continued(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_write = os.write
    monkeypatch.setattr(os, "write", lambda fd, data: real_write(fd, data[:2]))
    install_atomically(tmp_path / "x.jsonl", b"0123456789\n")
    assert (tmp_path / "x.jsonl").read_bytes() == b"0123456789\n"


def test_read_only_directory_fails_cleanly(public_tmp: Path) -> None:
    directory = public_tmp / "ro"
    directory.mkdir()
    target = directory / "x.jsonl"
    target.write_bytes(b"old\n")
    directory.chmod(0o555)
    with unprivileged(), pytest.raises(PermissionError):
        install_atomically(target, b"old\nnew\n")
    assert target.read_bytes() == b"old\n"
    assert names(directory) == {"x.jsonl"}
    with unprivileged(), pytest.raises(PermissionError):
        save_conflict_copy(target, b"theirs\n", side="remote")
    assert names(directory) == {"x.jsonl"}


def test_failed_rename_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "x.jsonl"
    target.mkdir()  # a non-empty directory where the file should go: rename fails
    (target / "keep").write_bytes(b"")
    with pytest.raises(OSError):
        install_atomically(target, b"a\n")
    assert names(tmp_path) == {"x.jsonl"}
    assert names(target) == {"keep"}


def test_a_file_in_the_way_of_a_parent_fails_cleanly(tmp_path: Path) -> None:
    (tmp_path / "projects").write_bytes(b"not a dir")
    with pytest.raises(NotADirectoryError):
        install_atomically(tmp_path / "projects" / "p" / "x.jsonl", b"a\n")
    assert names(tmp_path) == {"projects"}


def test_concurrent_installs_never_tear_the_file(tmp_path: Path) -> None:
    target = tmp_path / "x.jsonl"
    contents = [bytes([65 + i]) * 200_000 + b"\n" for i in range(8)]
    seen: list[bytes] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            with contextlib.suppress(FileNotFoundError):
                seen.append(target.read_bytes())

    watcher = threading.Thread(target=reader)
    watcher.start()
    try:
        workers = [
            threading.Thread(target=install_atomically, args=(target, data)) for data in contents
        ]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
    finally:
        stop.set()
        watcher.join()
    assert target.read_bytes() in contents
    assert all(s in contents for s in seen)  # a reader only ever sees a whole version
    assert names(tmp_path) == {"x.jsonl"}


# -- save_conflict_copy ---------------------------------------------------------------------


def test_conflict_copy_is_saved_beside_the_file(tmp_path: Path) -> None:
    target = tmp_path / f"{SID}.jsonl"
    target.write_bytes(b"mine\n")
    copy = save_conflict_copy(target, b"theirs\n", side="remote", now=NOW)
    assert copy == tmp_path / f"{SID}.jsonl.conflict-remote-{STAMP}"
    assert copy.read_bytes() == b"theirs\n"
    assert mode_of(copy) == 0o600
    assert target.read_bytes() == b"mine\n"
    assert names(tmp_path) == {target.name, copy.name}
    # The SDK and the CLI list sessions by *.jsonl: a conflict copy is not one.
    assert not copy.name.endswith(".jsonl")


def test_conflict_copy_time_is_utc(tmp_path: Path) -> None:
    tz = dt.timezone(dt.timedelta(hours=-7))
    copy = save_conflict_copy(tmp_path / "x.jsonl", b"", side="remote", now=NOW.astimezone(tz))
    assert copy.name == f"x.jsonl.conflict-remote-{STAMP}"
    default = save_conflict_copy(tmp_path / "x.jsonl", b"", side="local")
    assert re.fullmatch(r"x\.jsonl\.conflict-local-\d{8}T\d{6}Z(-\d+)?", default.name)


def test_conflict_copies_never_overwrite_each_other(tmp_path: Path) -> None:
    target = tmp_path / "x.jsonl"
    taken = tmp_path / f"x.jsonl.conflict-remote-{STAMP}"
    taken.write_bytes(b"first\n")
    copies = [save_conflict_copy(target, b"%d\n" % i, side="remote", now=NOW) for i in range(3)]
    assert [c.name for c in copies] == [f"{taken.name}-{n}" for n in (1, 2, 3)]
    assert taken.read_bytes() == b"first\n"
    assert [c.read_bytes() for c in copies] == [b"0\n", b"1\n", b"2\n"]
    assert not target.exists()  # the file itself is never touched


def test_concurrent_conflict_copies_all_survive(tmp_path: Path) -> None:
    target = tmp_path / "x.jsonl"
    results: list[Path] = []
    lock = threading.Lock()

    def save(i: int) -> None:
        copy = save_conflict_copy(target, b"copy %d\n" % i, side="remote", now=NOW)
        with lock:
            results.append(copy)

    workers = [threading.Thread(target=save, args=(i,)) for i in range(12)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert len(set(results)) == 12
    assert sorted(c.read_bytes() for c in results) == sorted(b"copy %d\n" % i for i in range(12))
    assert names(tmp_path) == {c.name for c in results}


def test_conflict_copy_without_hard_links(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_links(src: str, dst: Path) -> None:
        raise fail_with(errno.EPERM)

    monkeypatch.setattr(os, "link", no_links)
    taken = tmp_path / f"x.jsonl.conflict-remote-{STAMP}"
    taken.write_bytes(b"first\n")
    copy = save_conflict_copy(tmp_path / "x.jsonl", b"theirs\n", side="remote", now=NOW)
    assert copy.name == f"{taken.name}-1"
    assert copy.read_bytes() == b"theirs\n"
    assert taken.read_bytes() == b"first\n"
    assert mode_of(copy) == 0o600
    assert names(tmp_path) == {taken.name, copy.name}


def test_conflict_copy_link_errors_are_not_swallowed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_link(src: str, dst: Path) -> None:
        raise fail_with(errno.EIO)

    monkeypatch.setattr(os, "link", broken_link)
    with pytest.raises(OSError) as info:
        save_conflict_copy(tmp_path / "x.jsonl", b"theirs\n", side="remote", now=NOW)
    assert info.value.errno == errno.EIO
    assert names(tmp_path) == set()


def test_conflict_copy_failure_leaves_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_fsync(fd: int) -> None:
        raise fail_with(errno.EIO)

    monkeypatch.setattr(os, "fsync", broken_fsync)
    monkeypatch.delattr(fcntl, "F_FULLFSYNC", raising=False)
    with pytest.raises(OSError):
        save_conflict_copy(tmp_path / "x.jsonl", b"theirs\n", side="remote", now=NOW)
    assert names(tmp_path) == set()


@pytest.mark.parametrize("side", ["", "re/mote", "..", ".hidden", "-rf", "a b", "x" * 65])
def test_conflict_copy_side_is_validated(tmp_path: Path, side: str) -> None:
    with pytest.raises(ValueError, match="side"):
        save_conflict_copy(tmp_path / "x.jsonl", b"", side=side)
    assert names(tmp_path) == set()


@pytest.mark.parametrize("side", ["remote", "local", "build-box.example", "me@host", "h_2"])
def test_conflict_copy_side_accepts_host_like_names(tmp_path: Path, side: str) -> None:
    copy = save_conflict_copy(tmp_path / "x.jsonl", b"", side=side, now=NOW)
    assert copy.name == f"x.jsonl.conflict-{side}-{STAMP}"


# -- apply_local ----------------------------------------------------------------------------


def test_apply_pull_installs(tmp_path: Path) -> None:
    target = tmp_path / "p" / "x.jsonl"
    result = apply_local(decide(None, b"a\n"), target, b"a\n")
    assert result == LocalResult(Kind.PULL, target, installed=True)
    assert not result.conflict
    assert target.read_bytes() == b"a\n"
    assert mode_of(target) == 0o600
    result = apply_local(decide(b"a\n", b"a\nb\n"), target, b"a\nb\n")
    assert result.installed and target.read_bytes() == b"a\nb\n"


@pytest.mark.parametrize(
    ("local", "remote"), [(b"a\n", b"a\n"), (b"a\nb\n", b"a\n"), (b"a\n", None)]
)
def test_apply_same_and_push_leave_the_file_alone(
    tmp_path: Path, local: bytes, remote: bytes | None
) -> None:
    target = tmp_path / "x.jsonl"
    target.write_bytes(local)
    before = target.stat()
    result = apply_local(decide(local, remote), target, remote)
    assert result.kind is decide(local, remote).kind
    assert not result.installed and result.conflict_copy is None
    after = target.stat()
    assert (after.st_ino, after.st_mtime_ns, target.read_bytes()) == (
        before.st_ino,
        before.st_mtime_ns,
        local,
    )
    assert names(tmp_path) == {"x.jsonl"}


def test_apply_same_with_the_file_missing_on_both_sides(tmp_path: Path) -> None:
    result = apply_local(decide(None, None), tmp_path / "x.jsonl", None)
    assert result.kind is Kind.SAME
    assert names(tmp_path) == set()


def test_apply_conflict_keeps_both(tmp_path: Path) -> None:
    target = tmp_path / "x.jsonl"
    target.write_bytes(b"a\nmine\n")
    result = apply_local(decide(b"a\nmine\n", b"a\ntheirs\n"), target, b"a\ntheirs\n")
    assert result.conflict and not result.installed
    assert result.conflict_copy is not None
    assert result.conflict_copy.parent == tmp_path
    assert result.conflict_copy.name.startswith("x.jsonl.conflict-remote-")
    assert result.conflict_copy.read_bytes() == b"a\ntheirs\n"
    assert target.read_bytes() == b"a\nmine\n"


def test_apply_conflict_names_the_side(tmp_path: Path) -> None:
    target = tmp_path / "x.jsonl"
    target.write_bytes(b"mine\n")
    result = apply_local(decide(b"mine\n", b"them\n"), target, b"them\n", side="build-box")
    assert result.conflict_copy is not None
    assert ".conflict-build-box-" in result.conflict_copy.name


def test_apply_decides_again_when_a_line_was_appended_meanwhile(tmp_path: Path) -> None:
    target = tmp_path / "x.jsonl"
    target.write_bytes(b"a\n")
    decision = decide(b"a\n", b"a\nb\n")
    assert decision.kind is Kind.PULL
    with target.open("ab") as f:  # a local CLI appends after the decision
        f.write(b"local\n")
    result = apply_local(decision, target, b"a\nb\n")
    assert result.kind is Kind.CONFLICT
    assert target.read_bytes() == b"a\nlocal\n"  # the appended line survives
    assert result.conflict_copy is not None
    assert result.conflict_copy.read_bytes() == b"a\nb\n"


@pytest.mark.parametrize(("appended", "kind"), [(b"b\n", Kind.SAME), (b"b", Kind.PULL)])
def test_apply_redecision_can_still_fast_forward(
    tmp_path: Path, appended: bytes, kind: Kind
) -> None:
    target = tmp_path / "x.jsonl"
    target.write_bytes(b"a\n")
    decision = decide(b"a\n", b"a\nb\n")
    with target.open("ab") as f:
        f.write(appended)
    result = apply_local(decision, target, b"a\nb\n")
    assert result.kind is kind
    assert target.read_bytes() == b"a\nb\n"
    assert names(tmp_path) == {"x.jsonl"}


def test_apply_decides_again_when_the_file_appeared_meanwhile(tmp_path: Path) -> None:
    target = tmp_path / "x.jsonl"
    decision = decide(None, b"a\n")
    target.write_bytes(b"b\n")
    result = apply_local(decision, target, b"a\n")
    assert result.kind is Kind.CONFLICT
    assert target.read_bytes() == b"b\n"


def test_apply_refuses_data_the_decision_was_not_made_on(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not the data"):
        apply_local(decide(None, b"a\n"), tmp_path / "x.jsonl", b"a\nb\n")
    with pytest.raises(ValueError, match="not the data"):
        apply_local(decide(None, b"a\n"), tmp_path / "x.jsonl", None)
    assert names(tmp_path) == set()


line = st.sampled_from([b'{"a":1}\n', b'{"b":2}\n', b"\n"])
content = st.one_of(
    st.none(),
    st.builds(
        lambda ls, p: b"".join(ls) + p, st.lists(line, max_size=4), st.sampled_from([b"", b'{"a'])
    ),
)


@settings(max_examples=60, deadline=None)
@given(content, content, content)
def test_apply_local_on_disk_never_loses_a_line(
    base: bytes | None, local_tail: bytes | None, remote_tail: bytes | None
) -> None:
    local = None if base is None and local_tail is None else (base or b"") + (local_tail or b"")
    remote = None if remote_tail is None else (base or b"") + remote_tail
    with tempfile.TemporaryDirectory() as scratch:
        target = Path(scratch) / "p" / "x.jsonl"
        if local is not None:
            target.parent.mkdir()
            target.write_bytes(local)
        decision = decide(local, remote)
        result = apply_local(decision, target, remote)
        assert result.kind is decision.kind
        now = target.read_bytes() if target.exists() else None
        if decision.kind is Kind.PULL:
            assert now == remote
        else:
            assert now == local
        if local is not None:
            assert now is not None and now.startswith(local)
        if decision.kind is Kind.CONFLICT:
            assert result.conflict_copy is not None
            assert result.conflict_copy.read_bytes() == remote
        else:
            assert result.conflict_copy is None
        if target.parent.exists():
            assert not [n for n in os.listdir(target.parent) if n.endswith(".tmp")]
