"""Tests for the session metadata store (remote_executors.records).

Contention is real: threads in this process and child Python processes
updating the same record through the same code.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import attrs
import platformdirs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from remote_executors.errors import InvalidInput
from remote_executors.executors.ssh._spec import options_from_spec
from remote_executors.records import (
    DATA_DIR_ENV,
    LOCAL,
    SessionRecord,
    SessionRecords,
    data_dir,
    get_session_record,
    list_session_records,
)

SID = "0b6a2f4e-8c1d-4e3a-9f7b-2d5c6e8a1b3c"
SID2 = "1c7b3f5a-9d2e-4f4b-8a8c-3e6d7f9b2c4d"
SID3 = "2d8c4a6b-ae3f-4a5c-9b9d-4f7e8a0c3d5e"
T0 = dt.datetime(2026, 5, 9, 7, 35, 12, 123_456, tzinfo=dt.timezone.utc)
LOGGER = "remote_executors.records"


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def remote(sid: str = SID, **kw: object) -> SessionRecord:
    fields: dict[str, object] = {
        "executor": "box",
        "local_cwd": "/home/me/shop",
        "remote_cwd": "/srv/me/shop",
        "remote_project_dir": "/srv/me/.claude/projects/-srv-me-shop",
        "created_at": T0,
    }
    fields.update(kw)
    return SessionRecord(sid, **fields)  # type: ignore[arg-type]


def record_file(root: Path, sid: str = SID) -> Path:
    return root / "sessions" / f"{sid}.json"


def snapshot(directory: Path) -> dict[str, bytes]:
    """Every file under ``directory`` with its bytes (missing directory: empty)."""
    if not directory.exists():
        return {}
    return {
        str(p.relative_to(directory)): p.read_bytes() for p in directory.rglob("*") if p.is_file()
    }


# -- the record ------------------------------------------------------------


def test_record_defaults_are_now_in_utc_and_local_means_not_remote() -> None:
    before = dt.datetime.now(dt.timezone.utc)
    rec = SessionRecord(SID, LOCAL, "/home/me/shop")
    after = dt.datetime.now(dt.timezone.utc)

    assert before <= rec.created_at <= after
    assert rec.updated_at == rec.created_at
    assert rec.created_at.tzinfo is dt.timezone.utc
    assert (rec.remote_cwd, rec.remote_project_dir, rec.sync_error) == (None, None, None)
    assert rec.is_remote is False
    assert remote().is_remote is True


def test_record_converts_aware_times_to_utc_and_refuses_naive_ones() -> None:
    paris = dt.timezone(dt.timedelta(hours=2))
    rec = remote(created_at=dt.datetime(2026, 5, 9, 9, 35, tzinfo=paris))
    assert rec.created_at == dt.datetime(2026, 5, 9, 7, 35, tzinfo=dt.timezone.utc)
    assert rec.created_at.utcoffset() == dt.timedelta(0)

    with pytest.raises(InvalidInput, match="timezone-aware"):
        remote(updated_at=dt.datetime(2026, 5, 9, 7, 35))


@pytest.mark.parametrize(
    "sid",
    [
        "../" + SID,
        SID + "/x",
        "-" + SID[1:],
        SID.upper(),
        "not-a-uuid",
        "",
        SID + "\n",
    ],
)
def test_invalid_session_ids_are_refused_before_any_path_is_touched(
    tmp_path: Path, sid: str
) -> None:
    store = SessionRecords(tmp_path / "data")

    with pytest.raises(InvalidInput, match="Invalid session id"):
        SessionRecord(sid, LOCAL, "/x")
    for call in (store.get, store.delete, lambda s: store.update(s, sync_error="x")):
        with pytest.raises(InvalidInput, match="Invalid session id"):
            call(sid)

    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("alias", ["", "-oProxyCommand=x", "a/b", "box\n", "b\tox", "bo\x7fx"])
def test_bad_host_aliases_are_refused_and_nothing_is_written(tmp_path: Path, alias: str) -> None:
    store = SessionRecords(tmp_path)
    store.put(remote())
    before = snapshot(tmp_path)

    with pytest.raises(InvalidInput) as info:
        remote(SID2, executor=alias)
    assert info.value.host == (alias or repr(alias))
    with pytest.raises(InvalidInput):
        store.update(SID, executor=alias)

    assert snapshot(tmp_path) == before
    assert store.get(SID) == remote()


def test_host_aliases_are_recorded_as_ssh_specs_that_give_the_alias_back(tmp_path: Path) -> None:
    store = SessionRecords(tmp_path)
    cases = [
        (SID, "me@build-box.example:2222", "ssh://me@build-box.example:2222"),
        (SID2, "Bäckerei ☕", "ssh://B%C3%A4ckerei%20%E2%98%95"),
        (SID3, "local", "local"),
    ]
    for sid, alias, spec in cases:
        store.put(remote(sid, executor=alias))
        got = store.get(sid)
        assert got is not None and got.executor == spec
        if alias != LOCAL:
            assert options_from_spec(got.executor) == (alias, {})


def test_specs_of_every_kind_are_recorded_as_given(tmp_path: Path) -> None:
    store = SessionRecords(tmp_path)
    for sid, spec in (
        (SID, "docker://web-1"),
        (SID2, "k8s://team/pod-7/claude?context=prod"),
        (SID3, "ssh://box?ssh_config=/home/me/.ssh/work&path_map:/home/me/code=/srv/code"),
    ):
        store.put(remote(sid, executor=spec))
        got = store.get(sid)
        assert got is not None and got.executor == spec and got.is_remote


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("local_cwd", "relative/dir"),
        ("local_cwd", None),
        ("local_cwd", "/a\0b"),
        ("remote_cwd", "~/shop"),
        ("remote_project_dir", ""),
        ("sync_error", 42),
    ],
)
def test_bad_paths_and_types_are_refused(field: str, value: object) -> None:
    with pytest.raises(InvalidInput, match=field):
        remote(SID, **{field: value})


# -- round trips -----------------------------------------------------------


def test_put_then_get_round_trips_and_writes_the_versioned_format(tmp_path: Path) -> None:
    store = SessionRecords(tmp_path)
    rec = remote(sync_error="rsync: connection unexpectedly closed")

    store.put(rec)

    assert store.get(rec.session_id) == rec
    assert store.get(SID2) is None
    on_disk = json.loads(record_file(tmp_path).read_text())
    assert on_disk == {
        "version": 2,
        "session_id": SID,
        "executor": "ssh://box",
        "local_cwd": "/home/me/shop",
        "remote_cwd": "/srv/me/shop",
        "remote_project_dir": "/srv/me/.claude/projects/-srv-me-shop",
        "created_at": "2026-05-09T07:35:12.123456+00:00",
        "updated_at": "2026-05-09T07:35:12.123456+00:00",
        "sync_error": "rsync: connection unexpectedly closed",
    }


abs_paths = st.text(st.characters(blacklist_characters="\0"), max_size=40).map(lambda s: "/" + s)
aliases = st.text(
    st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="/"), min_size=1
).filter(lambda s: not s.startswith("-"))


# No deadline: each example writes and fsyncs a file, slow on a loaded 2-core runner.
@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    executor=aliases,
    local_cwd=abs_paths | st.sampled_from(['/home/me/"quoted" \\ dir', "/tmp/🚀/ünï/\u200d"]),
    remote_cwd=st.none() | abs_paths,
    remote_project_dir=st.none() | abs_paths,
    sync_error=st.none() | st.text(),
    created_at=st.datetimes(
        min_value=dt.datetime(1970, 1, 2),
        max_value=dt.datetime(9999, 12, 30),
        timezones=st.builds(
            dt.timezone,
            st.timedeltas(min_value=dt.timedelta(hours=-23), max_value=dt.timedelta(hours=23)),
        ),
    ),
)
def test_any_valid_record_round_trips(tmp_path: Path, **fields: object) -> None:
    store = SessionRecords(tmp_path)
    rec = SessionRecord(SID, **fields)  # type: ignore[arg-type]
    store.put(rec)
    assert store.get(SID) == rec
    assert store.list() == [rec]


def test_undecodable_path_names_survive_the_round_trip(tmp_path: Path) -> None:
    # A file name that is not UTF-8 reaches Python as lone surrogates.
    cwd = os.fsdecode(b"/home/me/caf\xe9")
    store = SessionRecords(tmp_path)
    rec = SessionRecord(SID, LOCAL, cwd)
    store.put(rec)
    got = store.get(SID)
    assert got is not None and got.local_cwd == cwd
    assert os.fsencode(got.local_cwd) == b"/home/me/caf\xe9"


def test_unknown_keys_are_ignored_and_missing_optionals_read_as_none(tmp_path: Path) -> None:
    path = record_file(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text(
        json.dumps(
            {
                "version": 1,
                "session_id": SID,
                "executor": LOCAL,
                "local_cwd": "/w",
                "created_at": "2026-05-09T07:35:12+00:00",
                "updated_at": "2026-05-09T08:00:00+00:00",
                "added_in_a_later_release": {"anything": [1, 2]},
            }
        )
    )

    rec = SessionRecords(tmp_path).get(SID)

    assert rec == SessionRecord(
        SID,
        LOCAL,
        "/w",
        created_at=dt.datetime(2026, 5, 9, 7, 35, 12, tzinfo=dt.timezone.utc),
        updated_at=dt.datetime(2026, 5, 9, 8, tzinfo=dt.timezone.utc),
    )


# -- update, delete --------------------------------------------------------


def test_update_changes_fields_and_stamps_updated_at(tmp_path: Path) -> None:
    store = SessionRecords(tmp_path)
    store.put(remote(sync_error="stale"))

    before = dt.datetime.now(dt.timezone.utc)
    new = store.update(SID, sync_error=None, remote_cwd="/srv/me/shop2")
    after = dt.datetime.now(dt.timezone.utc)

    assert new is not None
    assert store.get(SID) == new
    assert new.sync_error is None and new.remote_cwd == "/srv/me/shop2"
    assert new.created_at == T0
    assert before <= new.updated_at <= after
    assert attrs.evolve(new, updated_at=T0, sync_error="stale", remote_cwd="/srv/me/shop") == (
        remote(sync_error="stale")
    )


def test_update_keeps_an_explicit_updated_at(tmp_path: Path) -> None:
    store = SessionRecords(tmp_path)
    store.put(remote())
    later = T0 + dt.timedelta(hours=1)
    new = store.update(SID, updated_at=later)
    assert new is not None and new.updated_at == later
    assert store.get(SID) == new


def test_update_of_a_missing_record_returns_none_and_writes_nothing(tmp_path: Path) -> None:
    store = SessionRecords(tmp_path)
    store.put(remote(SID2))
    assert store.update(SID, sync_error="x") is None
    assert store.get(SID) is None
    assert not record_file(tmp_path, SID).exists()


def test_update_refuses_renames_and_unknown_fields(tmp_path: Path) -> None:
    store = SessionRecords(tmp_path)
    store.put(remote())
    before = snapshot(tmp_path)

    with pytest.raises(InvalidInput, match="cannot be changed"):
        store.update(SID, session_id=SID2)
    with pytest.raises(TypeError):
        store.update(SID, no_such_field=1)

    assert snapshot(tmp_path) == before
    assert store.update(SID, session_id=SID) is not None  # same id: allowed, a no-op rename


def test_delete_removes_only_that_record(tmp_path: Path) -> None:
    store = SessionRecords(tmp_path)
    store.put(remote(SID))
    store.put(remote(SID2))

    assert store.delete(SID) is True
    assert store.delete(SID) is False
    assert store.get(SID) is None
    assert store.get(SID2) == remote(SID2)
    assert sorted(os.listdir(tmp_path / "sessions")) == [".lock", f"{SID2}.json"]


def test_put_replaces_the_whole_record(tmp_path: Path) -> None:
    store = SessionRecords(tmp_path)
    store.put(remote(sync_error="old"))
    local = SessionRecord(SID, LOCAL, "/home/me/shop", created_at=T0)
    store.put(local)
    assert store.get(SID) == local


def test_put_refuses_a_record_tampered_with_after_construction(tmp_path: Path) -> None:
    rec = remote()
    object.__setattr__(rec, "executor", "-oProxyCommand=evil")
    store = SessionRecords(tmp_path)
    with pytest.raises(InvalidInput):
        store.put(rec)
    assert snapshot(tmp_path) == {}


# -- list ------------------------------------------------------------------


def test_list_is_newest_updated_first(tmp_path: Path) -> None:
    store = SessionRecords(tmp_path)
    store.put(remote(SID, updated_at=T0 + dt.timedelta(minutes=1)))
    store.put(remote(SID2, updated_at=T0 + dt.timedelta(minutes=3)))
    store.put(remote(SID3, updated_at=T0 + dt.timedelta(minutes=2)))
    assert [r.session_id for r in store.list()] == [SID2, SID3, SID]

    store.update(SID)  # now: the newest
    assert [r.session_id for r in store.list()] == [SID, SID2, SID3]


def test_list_filters_by_real_local_cwd(tmp_path: Path) -> None:
    shop = tmp_path / "code" / "shop"
    other = tmp_path / "code" / "other"
    shop.mkdir(parents=True)
    other.mkdir()
    link = tmp_path / "shortcut"
    link.symlink_to(shop)
    store = SessionRecords(tmp_path / "data")
    store.put(remote(SID, local_cwd=str(shop), updated_at=T0))
    store.put(remote(SID2, local_cwd=str(link), updated_at=T0 + dt.timedelta(seconds=1)))
    store.put(remote(SID3, local_cwd=str(other)))

    by_real = store.list(local_cwd=str(shop))
    by_link = store.list(local_cwd=str(link) + "/")

    assert [r.session_id for r in by_real] == [SID2, SID]
    assert by_link == by_real
    assert [r.session_id for r in store.list(local_cwd=str(other))] == [SID3]
    assert store.list(local_cwd=str(tmp_path / "nowhere")) == []


def test_list_of_an_empty_store_creates_nothing(tmp_path: Path) -> None:
    store = SessionRecords(tmp_path / "data")
    assert store.list() == []
    assert store.get(SID) is None
    assert not (tmp_path / "data").exists()


def test_list_ignores_temp_lock_and_foreign_files(tmp_path: Path) -> None:
    store = SessionRecords(tmp_path)
    store.put(remote())
    sessions = tmp_path / "sessions"
    (sessions / f".{SID2}.json.abc123.tmp").write_text("{")
    (sessions / "notes.json").write_text("{")
    (sessions / "README").write_text("hi")
    assert store.list() == [remote()]


# -- data dir and module-level helpers -------------------------------------


def test_data_dir_honours_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "rx"))
    assert data_dir() == tmp_path / "rx"
    assert SessionRecords().root == tmp_path / "rx"

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv(DATA_DIR_ENV, "~/rx-data")
    assert data_dir() == tmp_path / "home" / "rx-data"

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(DATA_DIR_ENV, "relative")
    assert data_dir() == tmp_path / "relative"

    for unset in ("", None):
        if unset is None:
            monkeypatch.delenv(DATA_DIR_ENV)
        else:
            monkeypatch.setenv(DATA_DIR_ENV, unset)
        expected = Path(platformdirs.user_data_dir("remote-executors", appauthor=False))
        assert data_dir() == expected
        assert expected.name == "remote-executors"


def test_module_helpers_use_the_default_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    project = tmp_path / "project"
    project.mkdir()
    SessionRecords(tmp_path).put(remote(local_cwd=str(project)))
    SessionRecords(tmp_path).put(remote(SID2, local_cwd="/elsewhere"))

    assert get_session_record(SID) == remote(local_cwd=str(project))
    assert get_session_record(SID3) is None
    assert [r.session_id for r in list_session_records(str(project))] == [SID]
    assert {r.session_id for r in list_session_records()} == {SID, SID2}


# -- version 1 files (before specs) ------------------------------------------


def _v1(sid: str, **fields: object) -> bytes:
    """A record file exactly as versions before specs wrote it."""
    data = {
        "version": 1,
        "session_id": sid,
        "executor": "box",
        "local_cwd": "/home/me/shop",
        "remote_cwd": "/srv/me/shop",
        "remote_project_dir": "/srv/me/.claude/projects/-srv-me-shop",
        "created_at": "2026-05-09T07:35:12.123456+00:00",
        "updated_at": "2026-05-09T07:35:12.123456+00:00",
        "sync_error": None,
        "ssh_config": None,
        **fields,
    }
    return (json.dumps(data, indent=2) + "\n").encode()


def test_version_1_records_read_as_specs_with_nothing_lost(tmp_path: Path) -> None:
    store = SessionRecords(tmp_path)
    (tmp_path / "sessions").mkdir()
    files = {
        SID: _v1(SID, ssh_config="/home/me/.ssh/work config", sync_error="link down"),
        SID2: _v1(SID2, executor="local", remote_cwd=None, remote_project_dir=None),
        SID3: _v1(SID3, executor="me@box:2222"),
    }
    for sid, content in files.items():
        record_file(tmp_path, sid).write_bytes(content)

    first = store.get(SID)
    assert first is not None
    assert first.executor == "ssh://box?ssh_config=/home/me/.ssh/work%20config"
    assert options_from_spec(first.executor) == ("box", {"ssh_config": "/home/me/.ssh/work config"})
    assert (first.remote_cwd, first.sync_error) == ("/srv/me/shop", "link down")
    assert first.updated_at == T0
    second = store.get(SID2)
    assert second is not None and second.executor == LOCAL and not second.is_remote
    third = store.get(SID3)
    assert third is not None and third.executor == "ssh://me@box:2222"
    # Reading changes nothing on disk; the first change writes version 2.
    assert {sid: record_file(tmp_path, sid).read_bytes() for sid in files} == files
    store.update(SID, sync_error=None)
    on_disk = json.loads(record_file(tmp_path, SID).read_text())
    assert on_disk["version"] == 2 and on_disk["executor"] == first.executor
    assert "ssh_config" not in on_disk
    assert store.get(SID) == attrs.evolve(
        first, sync_error=None, updated_at=store.get(SID).updated_at
    )  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"executor": "ssh://box"}, "not a version 1 SSH alias"),
        ({"ssh_config": "relative/cfg"}, "absolute"),
        ({"ssh_config": 3}, "ssh_config"),
    ],
)
def test_version_1_records_that_never_were_valid_are_ignored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, fields: dict[str, object], reason: str
) -> None:
    store = SessionRecords(tmp_path)
    path = record_file(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_bytes(_v1(SID, **fields))
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert store.get(SID) is None
    assert reason in caplog.text


# -- files that cannot be trusted ------------------------------------------

GOOD = {
    "version": 1,
    "session_id": SID,
    "executor": "box",
    "local_cwd": "/w",
    "created_at": "2026-05-09T07:35:12+00:00",
    "updated_at": "2026-05-09T07:35:12+00:00",
}


def _bad(**changes: object) -> bytes:
    data: dict[str, object] = {**GOOD, **changes}
    return json.dumps({k: v for k, v in data.items() if v is not ...}).encode()


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "Expecting value"),
        (b'{"version": 1, "session_id": "0b6a', "Unterminated string"),
        (b'{"version": 1, "executor": "\xff"}', "can't decode"),
        (b"[1, 2]", "not a JSON object"),
        (b"[" * 100_000 + b"]" * 100_000, "recursion"),
        (_bad(version=...), "version"),
        (_bad(version="1"), "version"),
        (_bad(version=True), "version"),
        (_bad(version=0), "version"),
        (_bad(local_cwd=...), "missing field"),
        (_bad(executor=None), "executor"),
        (_bad(remote_cwd=7), "remote_cwd"),
        (_bad(created_at="yesterday"), "isoformat"),
        (_bad(created_at="2026-05-09T07:35:12"), "timezone-aware"),
        (_bad(executor="-oProxyCommand=x"), "Refusing executor"),
        (_bad(local_cwd="relative"), "local_cwd"),
        (_bad(session_id=SID2), "holds session"),
    ],
)
def test_corrupt_files_are_reported_and_left_untouched(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, content: bytes, reason: str
) -> None:
    store = SessionRecords(tmp_path)
    store.put(remote(SID2, updated_at=T0))
    path = record_file(tmp_path)
    path.write_bytes(content)
    os.utime(path, (1_000_000, 1_000_000))

    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert store.get(SID) is None
        assert store.list() == [remote(SID2, updated_at=T0)]
        assert store.update(SID, sync_error="would overwrite") is None

    warnings = [r for r in caplog.records if r.name == LOGGER]
    assert len(warnings) == 3
    assert all(r.levelno == logging.WARNING for r in warnings)
    assert all(str(path) in r.getMessage() for r in warnings)
    assert reason.lower() in warnings[0].getMessage().lower()
    assert path.read_bytes() == content
    assert path.stat().st_mtime == 1_000_000

    store.put(remote())  # the explicit full write may replace it
    assert store.get(SID) == remote()


def test_a_newer_format_is_ignored_with_a_warning_not_overwritten(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = SessionRecords(tmp_path)
    path = record_file(tmp_path)
    path.parent.mkdir(parents=True)
    content = _bad(version=3, executor={"kind": "ssh", "alias": "box"})
    path.write_bytes(content)

    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert store.get(SID) is None
        assert store.list() == []
        assert store.update(SID, sync_error="x") is None

    messages = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert len(messages) == 3
    assert all("format version 3 is newer" in m and "upgrade" in m for m in messages)
    assert path.read_bytes() == content


def test_delete_removes_even_a_corrupt_record(tmp_path: Path) -> None:
    path = record_file(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"{")
    assert SessionRecords(tmp_path).delete(SID) is True
    assert not path.exists()


def test_an_unreadable_record_raises_on_get_and_is_skipped_by_list(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A directory where the file should be: unreadable even for root.
    store = SessionRecords(tmp_path)
    store.put(remote(SID2))
    record_file(tmp_path).mkdir()

    with pytest.raises(IsADirectoryError):
        store.get(SID)
    with pytest.raises(IsADirectoryError):
        store.update(SID, sync_error="x")
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert store.list() == [remote(SID2)]

    assert any("cannot read" in r.getMessage() for r in caplog.records)
    assert record_file(tmp_path).is_dir()


# -- durability, modes, concurrency ----------------------------------------


def test_files_are_private(tmp_path: Path) -> None:
    root = tmp_path / "deep" / "data"
    old = os.umask(0o022)
    try:
        SessionRecords(root).put(remote())
    finally:
        os.umask(old)
    assert mode_of(tmp_path / "deep") == 0o700
    assert mode_of(root) == 0o700
    assert mode_of(root / "sessions") == 0o700
    assert mode_of(record_file(root)) == 0o600
    assert mode_of(root / "sessions" / ".lock") == 0o600


def test_writes_leave_no_temp_files(tmp_path: Path) -> None:
    store = SessionRecords(tmp_path)
    store.put(remote())
    for i in range(5):
        store.update(SID, sync_error=f"try {i}")
    store.delete(SID)
    store.put(remote(SID2))
    assert sorted(os.listdir(tmp_path / "sessions")) == [".lock", f"{SID2}.json"]


def test_a_failed_write_keeps_the_old_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = SessionRecords(tmp_path)
    store.put(remote())
    before = snapshot(tmp_path)

    def no_space(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", no_space)
    with pytest.raises(OSError, match="No space"):
        store.update(SID, sync_error="lost")
    monkeypatch.undo()

    assert snapshot(tmp_path) == before
    assert store.get(SID) == remote()


# Each worker owns one field: it checks the field still holds what it last
# wrote, then writes the next value. Every other worker rewrites the whole
# record too, so an update based on a stale read would put an old value back
# and the owner would see it. "Touchers" change no field, only updated_at.
WORKER = r"""
import os, sys, time
from remote_executors.records import SessionRecords

root, sid, field, rounds, go = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
store = SessionRecords(root)

def value(i):
    if field == "executor":
        return f"ssh://host-{i}"
    return f"/{field}/{i}"

while not os.path.exists(go):
    time.sleep(0.001)
last = getattr(store.get(sid), field) if field != "touch" else None
for i in range(rounds):
    if field == "touch":
        assert store.update(sid) is not None
        continue
    now = getattr(store.get(sid), field)
    if now != last:
        print(f"lost update: {field} is {now!r}, expected {last!r}", flush=True)
        sys.exit(1)
    new = store.update(sid, **{field: value(i)})
    assert getattr(new, field) == value(i)
    last = value(i)
print("ok", flush=True)
"""

OWNED = ("executor", "local_cwd", "remote_cwd", "remote_project_dir", "sync_error")


def test_concurrent_updates_from_processes_are_never_lost(tmp_path: Path) -> None:
    store = SessionRecords(tmp_path / "data")
    store.put(remote(sync_error="/sync_error/start"))
    go = tmp_path / "go"
    rounds = 40
    workers = [*OWNED, "touch", "touch", "touch"]  # 8 processes
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(store.root), SID, field, str(rounds), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for field in workers
    ]
    time.sleep(0.2)
    go.touch()
    outputs = [p.communicate(timeout=120)[0] for p in procs]

    assert [p.returncode for p in procs] == [0] * len(procs), outputs
    final = store.get(SID)
    assert final is not None
    last = rounds - 1
    assert final.executor == f"ssh://host-{last}"
    for field in OWNED[1:]:
        assert getattr(final, field) == f"/{field}/{last}"
    assert sorted(os.listdir(store.root / "sessions")) == [".lock", f"{SID}.json"]


def test_concurrent_updates_from_threads_are_never_lost(tmp_path: Path) -> None:
    root = tmp_path / "data"
    SessionRecords(root).put(remote())
    rounds = 30
    errors: list[str] = []

    def work(field: str) -> None:
        store = SessionRecords(root)  # a store object per thread, as separate callers would
        last = getattr(store.get(SID), field)
        for i in range(rounds):
            now = getattr(store.get(SID), field)
            if now != last:
                errors.append(f"{field}: {now!r} != {last!r}")
                return
            last = f"/{field}/{i}"
            store.update(SID, **{field: last})

    threads = [threading.Thread(target=work, args=(f,)) for f in OWNED[1:]]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    final = SessionRecords(root).get(SID)
    assert final is not None
    assert all(getattr(final, f) == f"/{f}/{rounds - 1}" for f in OWNED[1:])


def test_readers_never_see_a_torn_file(tmp_path: Path) -> None:
    store = SessionRecords(tmp_path)
    store.put(remote())
    stop = threading.Event()
    seen: list[SessionRecord | None] = []

    def read() -> None:
        while not stop.is_set():
            seen.append(store.get(SID))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for i in range(50):
            store.update(SID, sync_error="x" * (i * 997 % 5000))
    finally:
        stop.set()
        reader.join()

    assert seen
    assert None not in seen
