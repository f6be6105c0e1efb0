"""Tests for the settings store (remote_executors.settings).

Files are real (under tmp_path); contention is real: child Python processes
adding hosts to the same file through the same code.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import attrs
import platformdirs
import pytest

from remote_executors.errors import ExecutorError, InvalidInput
from remote_executors.executors.ssh import SSHExecutor
from remote_executors.settings import (
    CONFIG_DIR_ENV,
    FORMAT_VERSION,
    HostSettings,
    Settings,
    SettingsError,
    SettingsStore,
    config_dir,
    executor_for,
)

FULL: dict[str, Any] = {
    "ssh_config": "/home/me/.ssh/work_config",
    "claude_path": "/opt/claude/bin/claude",
    "path_map": {"/home/me/code": "/srv/me/code", "/data": "/mnt/data"},
    "accept_new_host_keys": True,
    "connect_timeout": 7.5,
    "reattach_within": 30.0,
    "warm_spawn": False,
}

BAD_ALIASES = ["-oProxyCommand=x", "a b", "", "x\ny", "box;rm", "a/b", "tab\there"]

BAD_OPTIONS: list[tuple[str, object]] = [
    ("ssh_config", "relative/config"),
    ("ssh_config", "~/.ssh/config"),  # '~' is not expanded: refused, not guessed
    ("ssh_config", 5),
    ("ssh_config", "/etc/ssh\nconfig"),
    ("claude_path", "claude"),
    ("claude_path", "bin/claude"),
    ("claude_path", ["/opt/claude"]),
    ("claude_path", "-/opt/claude"),
    ("path_map", {"code": "/srv/code"}),
    ("path_map", {"/home/me/code": "../code"}),  # relative to the remote home, but out of it
    ("path_map", {"/home/me/code": "~root/code"}),
    ("path_map", {"/home/me/code": 3}),
    ("path_map", {5: "/srv/code"}),
    ("path_map", [("/a", "/b")]),
    ("path_map", "/a=/b"),
    ("accept_new_host_keys", "yes"),
    ("accept_new_host_keys", 1),
    ("connect_timeout", "10"),
    ("connect_timeout", 0),
    ("connect_timeout", -1.0),
    ("connect_timeout", float("nan")),
    ("connect_timeout", float("inf")),
    ("connect_timeout", True),
    ("reattach_within", -1.0),
    ("warm_spawn", "no"),
    ("warm_spawn", 0),
    ("no_such_option", "x"),
    ("host", "other"),
]


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def write(path: Path, data: object) -> bytes:
    raw = (data if isinstance(data, str) else json.dumps(data, indent=2)).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(raw)
    return raw


@pytest.fixture
def store(tmp_path: Path) -> SettingsStore:
    return SettingsStore(tmp_path / "config" / "settings.json")


@pytest.fixture
def seeded(store: SettingsStore) -> SettingsStore:
    store.add("box", claude_path="/opt/claude")
    store.add("gpu")
    return store


# -- the directory --------------------------------------------------------------


def test_config_dir_follows_the_environment_override(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CONFIG_DIR_ENV, str(tmp_path / "cfg"))
    assert config_dir() == tmp_path / "cfg"
    assert SettingsStore().path == tmp_path / "cfg" / "settings.json"

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(CONFIG_DIR_ENV, "relative")
    assert config_dir() == tmp_path / "relative"  # made absolute at once

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv(CONFIG_DIR_ENV, "~/profile")
    assert config_dir() == tmp_path / "home" / "profile"


def test_config_dir_defaults_to_platformdirs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CONFIG_DIR_ENV, raising=False)
    expected = Path(platformdirs.user_config_dir("remote-executors", appauthor=False))
    assert config_dir() == expected
    monkeypatch.setenv(CONFIG_DIR_ENV, "")  # empty means unset
    assert config_dir() == expected
    assert SettingsStore().path == expected / "settings.json"


def test_default_store_uses_the_overridden_dir_for_real(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CONFIG_DIR_ENV, str(tmp_path / "cfg"))
    SettingsStore().add("box")
    assert json.loads((tmp_path / "cfg" / "settings.json").read_text())["remote_executors"] == [
        "box"
    ]


def test_relative_store_path_is_made_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = SettingsStore("settings.json")
    monkeypatch.chdir("/")
    store.add("box")
    assert store.path == tmp_path / "settings.json"
    assert (tmp_path / "settings.json").exists()


# -- reading and writing --------------------------------------------------------


def test_missing_file_reads_as_empty_and_leaves_no_trace(store: SettingsStore) -> None:
    assert store.load() == Settings()
    assert store.list() == []
    assert store.load().hosts == []
    assert not store.path.parent.exists()


def test_round_trip_through_the_file(store: SettingsStore) -> None:
    added = store.add("box", **FULL)
    store.add("gpu")

    loaded = SettingsStore(store.path).load()
    assert loaded.hosts == ["box", "gpu"]
    assert loaded.get("box") == added
    assert loaded.get("gpu") == HostSettings("gpu")
    assert loaded.get("nope") is None
    box = loaded.get("box")
    assert box is not None
    assert dict(box.path_map) == FULL["path_map"]
    assert box.connect_timeout == 7.5
    assert box.accept_new_host_keys is True
    assert (box.reattach_within, box.warm_spawn) == (30.0, False)
    executor = box.executor()
    assert isinstance(executor, SSHExecutor)
    assert (executor.reattach_within, executor.warm_spawn) == (30.0, False)
    assert "warm_spawn=0" in box.spec
    assert HostSettings("gpu").executor().warm_spawn is True  # type: ignore[attr-defined]


def test_file_shape_is_the_documented_one(store: SettingsStore) -> None:
    store.add("box", claude_path="/opt/claude", path_map={"/l": "/r"})
    store.add("gpu")
    text = store.path.read_text()
    assert text.endswith("\n")
    assert json.loads(text) == {
        "version": 1,  # only aliases: still readable by versions before specs
        "remote_executors": ["box", "gpu"],
        "hosts": {"box": {"claude_path": "/opt/claude", "path_map": {"/l": "/r"}}},
    }


def test_file_is_private_and_the_lock_sits_beside_it(store: SettingsStore) -> None:
    store.add("box")
    assert mode_of(store.path) == 0o600
    assert mode_of(store.path.parent) == 0o700
    assert sorted(os.listdir(store.path.parent)) == [".settings.json.lock", "settings.json"]
    assert mode_of(store.path.parent / ".settings.json.lock") == 0o600


def test_nulls_in_the_file_read_as_defaults(store: SettingsStore) -> None:
    write(
        store.path,
        {
            "version": 1,
            "remote_executors": ["box"],
            "hosts": {
                "box": {
                    "ssh_config": None,
                    "claude_path": None,
                    "path_map": None,
                    "accept_new_host_keys": None,
                    "connect_timeout": None,
                    "warm_spawn": None,
                }
            },
        },
    )
    assert store.load() == Settings((HostSettings("box"),))


def test_a_file_with_only_a_version_is_empty(store: SettingsStore) -> None:
    write(store.path, {"version": 1})
    assert store.load() == Settings()


def test_unicode_paths_survive(store: SettingsStore) -> None:
    store.add("box", path_map={"/home/me/Projets/été": "/srv/日本"})
    assert store.path.read_bytes().isascii()
    box = store.load().get("box")
    assert box is not None
    assert dict(box.path_map) == {"/home/me/Projets/été": "/srv/日本"}


# -- add / update / remove / list -------------------------------------------------


def test_add_list_update_remove(store: SettingsStore) -> None:
    assert store.add("box") == HostSettings("box")
    store.add("gpu", connect_timeout=3)
    store.add("user@build.example:22")
    assert [h.host for h in store.list()] == ["box", "gpu", "user@build.example:22"]

    updated = store.update("box", claude_path="/opt/claude", accept_new_host_keys=True)
    assert updated == HostSettings("box", claude_path="/opt/claude", accept_new_host_keys=True)
    assert store.load().get("box") == updated
    assert store.load().get("gpu") == HostSettings("gpu", connect_timeout=3.0)

    # Options not given are kept; None resets one to the default.
    again = store.update("box", path_map={"/l": "/r"}, claude_path=None)
    assert again == HostSettings("box", path_map={"/l": "/r"}, accept_new_host_keys=True)
    assert store.update("box", path_map=None, accept_new_host_keys=None) == HostSettings("box")

    assert store.remove("gpu") is True
    assert store.remove("gpu") is False
    assert store.load().hosts == ["box", "user@build.example:22"]
    assert store.remove("box") is True
    assert store.remove("user@build.example:22") is True
    assert json.loads(store.path.read_text()) == {
        "version": 1,
        "remote_executors": [],
        "hosts": {},
    }


def test_add_keeps_insertion_order_after_removals(store: SettingsStore) -> None:
    for name in ["a", "b", "c"]:
        store.add(name)
    store.remove("b")
    store.add("b")
    assert store.load().hosts == ["a", "c", "b"]


def test_adding_an_existing_alias_is_refused(seeded: SettingsStore) -> None:
    before = seeded.path.read_bytes()
    with pytest.raises(SettingsError, match=r"already configured.*use update") as info:
        seeded.add("box", claude_path="/elsewhere/claude")
    assert info.value.host == "box"
    assert info.value.path == seeded.path
    assert seeded.path.read_bytes() == before


def test_updating_an_unknown_alias_is_refused(seeded: SettingsStore, tmp_path: Path) -> None:
    before = seeded.path.read_bytes()
    with pytest.raises(SettingsError, match=r"not configured.*use add") as info:
        seeded.update("nope", claude_path="/opt/claude")
    assert info.value.host == "nope"
    assert seeded.path.read_bytes() == before

    empty = SettingsStore(tmp_path / "other" / "settings.json")
    with pytest.raises(SettingsError):
        empty.update("box")
    assert not empty.path.exists()


def test_remove_of_an_unknown_alias_writes_nothing(store: SettingsStore) -> None:
    assert store.remove("box") is False
    assert not store.path.exists()


def test_update_with_nothing_changed_keeps_the_file(seeded: SettingsStore) -> None:
    before = seeded.path.stat()
    assert seeded.update("box", claude_path="/opt/claude") == HostSettings(
        "box", claude_path="/opt/claude"
    )
    after = seeded.path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_store_accepts_pathlike_local_paths(store: SettingsStore, tmp_path: Path) -> None:
    cfg = tmp_path / "ssh_config"
    added = store.add("box", ssh_config=cfg, path_map={tmp_path / "code": "/srv/code"})
    assert added.ssh_config == str(cfg)
    assert dict(added.path_map) == {str(tmp_path / "code"): "/srv/code"}
    assert store.load().get("box") == added


# -- invalid input ----------------------------------------------------------------


@pytest.mark.parametrize("alias", BAD_ALIASES)
def test_bad_aliases_are_refused_and_nothing_is_written(store: SettingsStore, alias: str) -> None:
    with pytest.raises(InvalidInput, match=r"SSH host|host alias"):
        store.add(alias)
    assert not store.path.parent.exists()

    store.add("box")
    before = store.path.read_bytes()
    with pytest.raises(InvalidInput):
        store.add(alias, claude_path="/opt/claude")
    with pytest.raises(InvalidInput):
        store.update(alias, claude_path="/opt/claude")
    with pytest.raises(InvalidInput):
        store.remove(alias)
    with pytest.raises(InvalidInput):
        executor_for(alias, store)
    with pytest.raises(InvalidInput):
        HostSettings(alias)
    assert store.path.read_bytes() == before


def test_bad_alias_message_is_clear(store: SettingsStore) -> None:
    with pytest.raises(InvalidInput) as info:
        store.add("-oProxyCommand=x")
    assert info.value.host == "-oProxyCommand=x"
    assert "starts with '-'" in str(info.value)
    assert "~/.ssh/config" in str(info.value)


@pytest.mark.parametrize(("option", "value"), BAD_OPTIONS)
def test_bad_option_values_are_refused_and_nothing_is_written(
    store: SettingsStore, option: str, value: object
) -> None:
    with pytest.raises(InvalidInput) as info:
        store.add("box", **{option: value})
    assert info.value.host == "box"
    assert option in str(info.value) or option == "path_map"
    assert not store.path.parent.exists()

    store.add("box", claude_path="/opt/claude")
    before = store.path.read_bytes()
    with pytest.raises(InvalidInput):
        store.update("box", **{option: value})
    with pytest.raises(InvalidInput):
        store.add("gpu", **{option: value})
    assert store.path.read_bytes() == before


def test_path_map_message_names_the_bad_side(store: SettingsStore) -> None:
    with pytest.raises(InvalidInput, match=r"remote path.*in path_map.*inside"):
        store.add("box", path_map={"/home/me/code": "../code"})
    with pytest.raises(InvalidInput, match=r"local path in path_map.*absolute local path"):
        store.add("box", path_map={"code": "/srv/code"})


def test_path_map_remote_paths_may_be_relative_to_the_remote_home(store: SettingsStore) -> None:
    added = store.add("box", path_map={"/home/me/code": "~/code", "/home/me/lab": "lab"})
    assert dict(added.path_map) == {"/home/me/code": "~/code", "/home/me/lab": "lab"}
    assert dict(store.load().remote_executors[0].path_map) == dict(added.path_map)
    executor = added.executor()  # the executor takes them as they are
    assert executor._cwd_target("/home/me/lab/x") == (None, "lab/x")


def test_relative_path_message_says_what_to_give(store: SettingsStore) -> None:
    with pytest.raises(InvalidInput) as info:
        store.add("box", ssh_config="~/.ssh/config")
    assert "must be an absolute local path" in info.value.message
    assert "'~' is not expanded" in info.value.message


# -- the records ----------------------------------------------------------------


def test_host_settings_are_immutable_and_hashable() -> None:
    source = {"/l": "/r"}
    entry = HostSettings("box", path_map=source)
    source["/x"] = "/y"  # the record holds its own copy
    assert dict(entry.path_map) == {"/l": "/r"}
    with pytest.raises(TypeError):
        entry.path_map["/z"] = "/w"  # type: ignore[index]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        entry.host = "other"  # type: ignore[misc]
    assert hash(entry) == hash(HostSettings("box", path_map={"/l": "/r"}))
    assert entry == HostSettings("box", path_map={"/l": "/r"})
    assert entry != HostSettings("box", path_map={"/l": "/other"})
    assert {entry, HostSettings("box", path_map={"/l": "/r"})} == {entry}


def test_evolve_validates_too() -> None:
    with pytest.raises(InvalidInput):
        attrs.evolve(HostSettings("box"), claude_path="claude")
    with pytest.raises(InvalidInput):
        attrs.evolve(HostSettings("box"), host="-x")


def test_int_timeout_becomes_float() -> None:
    entry = HostSettings("box", connect_timeout=10)
    assert entry.connect_timeout == 10.0
    assert isinstance(entry.connect_timeout, float)


def test_settings_refuse_duplicates_and_strangers() -> None:
    with pytest.raises(InvalidInput, match="listed twice"):
        Settings((HostSettings("box"), HostSettings("box", claude_path="/c")))
    with pytest.raises(InvalidInput, match="expected HostSettings"):
        Settings(("box",))  # type: ignore[arg-type]
    settings = Settings([HostSettings("a"), HostSettings("b")])
    assert settings.remote_executors == (HostSettings("a"), HostSettings("b"))
    assert settings.hosts == ["a", "b"]
    assert settings.get("b") == HostSettings("b")


def test_settings_error_is_an_executor_error() -> None:
    assert issubclass(SettingsError, ExecutorError)
    assert not issubclass(SettingsError, InvalidInput)


# -- executors --------------------------------------------------------------------


def test_executor_is_built_with_the_options() -> None:
    executor = HostSettings("box", **FULL).executor()
    assert isinstance(executor, SSHExecutor)
    assert executor.host == "box"
    assert executor.ssh_config == FULL["ssh_config"]
    assert executor._claude_path == FULL["claude_path"]
    # Longest local prefix first, as SSHExecutor orders them.
    assert executor._path_map == (("/home/me/code", "/srv/me/code"), ("/data", "/mnt/data"))
    backend: Any = executor._backend
    assert backend._link.accept_new_host_keys is True
    assert backend._link.connect_timeout == 7.5


def test_executor_without_options_has_the_ssh_executor_defaults() -> None:
    executor = HostSettings("box").executor()
    default = SSHExecutor("box")
    assert executor.host == "box"
    assert executor.ssh_config is None
    assert executor._claude_path is None
    assert executor._path_map == ()
    mine: Any = executor._backend
    theirs: Any = default._backend
    # Every link setting (host keys, timeouts, keepalives, options, config file).
    assert mine._link == theirs._link
    assert HostSettings("box").options() == {}


def test_executor_for_uses_configured_options_or_defaults(store: SettingsStore) -> None:
    store.add("box", claude_path="/opt/claude", connect_timeout=4)
    configured = executor_for("box", store)
    assert configured.host == "box"
    assert configured._claude_path == "/opt/claude"
    backend: Any = configured._backend
    assert backend._link.connect_timeout == 4.0

    plain = executor_for("elsewhere", store)
    assert plain.host == "elsewhere"
    assert plain._claude_path is None
    assert plain._path_map == ()


def test_executor_for_reads_the_default_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CONFIG_DIR_ENV, str(tmp_path / "cfg"))
    SettingsStore().add("box", path_map={"/l": "/r"})
    assert executor_for("box")._path_map == (("/l", "/r"),)


def test_executor_for_reports_a_corrupt_file(store: SettingsStore) -> None:
    before = write(store.path, "{not json")
    with pytest.raises(SettingsError, match="not valid JSON"):
        executor_for("box", store)
    assert store.path.read_bytes() == before


# -- corrupt files ----------------------------------------------------------------

CORRUPT: list[tuple[str, object, str]] = [
    ("invalid JSON", '{\n  "version": 1,\n  "remote_executors": ["box",]\n}\n', r"line 3"),
    ("truncated", '{"version": 1, "remote_executors": ["bo', "not valid JSON"),
    ("empty", "", "not valid JSON"),
    ("a list", ["box"], "JSON array, not an object"),
    ("no version", {"remote_executors": ["box"]}, "version"),
    ("string version", {"version": "1", "remote_executors": []}, "version"),
    (
        "newer version",
        {"version": FORMAT_VERSION + 1, "remote_executors": []},
        "upgrade remote-executors",
    ),
    ("aliases not a list", {"version": 1, "remote_executors": "box"}, "not a list"),
    ("alias not a string", {"version": 1, "remote_executors": [3]}, r"remote_executors\[0\]"),
    ("bad alias", {"version": 1, "remote_executors": ["ok", "-oProxyCommand=x"]}, "starts"),
    ("duplicate alias", {"version": 1, "remote_executors": ["box", "box"]}, "twice"),
    ("hosts not an object", {"version": 1, "remote_executors": [], "hosts": []}, '"hosts"'),
    (
        "entry not an object",
        {"version": 1, "remote_executors": ["box"], "hosts": {"box": "/opt"}},
        "not an object",
    ),
    (
        "relative path in the file",
        {"version": 1, "remote_executors": ["box"], "hosts": {"box": {"claude_path": "c"}}},
        "claude_path",
    ),
    (
        "wrong option type in the file",
        {"version": 1, "remote_executors": ["box"], "hosts": {"box": {"connect_timeout": "5"}}},
        "connect_timeout",
    ),
    (
        "options for an unlisted alias",
        {"version": 1, "remote_executors": [], "hosts": {"box": {}}},
        "does not list",
    ),
]


@pytest.mark.parametrize(
    ("content", "why"), [(c[1], c[2]) for c in CORRUPT], ids=[c[0] for c in CORRUPT]
)
def test_corrupt_file_is_reported_and_never_changed(
    store: SettingsStore, content: object, why: str
) -> None:
    before = write(store.path, content)
    with pytest.raises(SettingsError, match=why) as info:
        store.load()
    error = info.value
    assert error.host == "local"
    assert error.path == store.path
    assert str(store.path) in error.message
    assert "fix or move it aside; it was not changed." in error.message

    for change in (
        lambda: store.add("new"),
        lambda: store.update("box", claude_path="/opt/claude"),
        lambda: store.remove("box"),
        store.list,
    ):
        with pytest.raises(SettingsError):
            change()
    assert store.path.read_bytes() == before
    assert sorted(os.listdir(store.path.parent)) in (
        ["settings.json"],
        [".settings.json.lock", "settings.json"],
    )


def test_invalid_json_message_names_the_file_as_people_write_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    store = SettingsStore(tmp_path / ".config" / "remote-executors" / "settings.json")
    write(store.path, '{\n  "version": 1,\n  oops\n}')
    with pytest.raises(SettingsError) as info:
        store.load()
    assert info.value.message.startswith(
        "Settings file ~/.config/remote-executors/settings.json is not valid JSON (line 3"
    )


def test_non_utf8_file_is_reported(store: SettingsStore) -> None:
    store.path.parent.mkdir(parents=True)
    store.path.write_bytes(b'{"version": 1, "remote_executors": ["\xff"]}')
    with pytest.raises(SettingsError, match="not valid UTF-8"):
        store.load()
    assert store.path.read_bytes() == b'{"version": 1, "remote_executors": ["\xff"]}'


def test_deeply_nested_file_is_reported(store: SettingsStore) -> None:
    before = write(store.path, "[" * 100_000 + "]" * 100_000)
    with pytest.raises(SettingsError):
        store.load()
    assert store.path.read_bytes() == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file_is_reported(store: SettingsStore) -> None:
    store.add("box")
    store.path.chmod(0)
    try:
        with pytest.raises(SettingsError, match=r"Cannot read.*permissions") as info:
            store.load()
        assert info.value.host == "local"
    finally:
        store.path.chmod(0o600)


def test_directory_in_place_of_the_file_is_reported(store: SettingsStore) -> None:
    store.path.mkdir(parents=True)
    with pytest.raises(SettingsError, match="Cannot read"):
        store.load()
    with pytest.raises(SettingsError):
        store.add("box")
    assert store.path.is_dir()


# -- forward compatibility ----------------------------------------------------------


def test_unknown_keys_are_kept_on_rewrite(store: SettingsStore) -> None:
    write(
        store.path,
        {
            "version": 1,
            "remote_executors": ["box", "old"],
            "hosts": {
                "box": {"claude_path": "/opt/claude", "keepalive_interval": 9},
                "old": {"future": {"nested": [1, 2]}},
            },
            "theme": "dark",
        },
    )
    assert store.load().get("box") == HostSettings("box", claude_path="/opt/claude")

    store.add("gpu")
    store.update("box", claude_path=None, connect_timeout=3)
    assert json.loads(store.path.read_text()) == {
        "version": 1,
        "remote_executors": ["box", "old", "gpu"],
        "hosts": {
            "box": {"keepalive_interval": 9, "connect_timeout": 3.0},
            "old": {"future": {"nested": [1, 2]}},
        },
        "theme": "dark",
    }

    store.remove("old")  # its unknown keys go with it
    store.add("old")
    data = json.loads(store.path.read_text())
    assert data["remote_executors"] == ["box", "gpu", "old"]
    assert "old" not in data["hosts"]
    assert data["theme"] == "dark"


# -- concurrency --------------------------------------------------------------------

WORKER = r"""
import os, sys, time
from remote_executors.settings import SettingsStore

path, worker, count, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
while not os.path.exists(go):
    time.sleep(0.001)
store = SettingsStore(path)
for i in range(count):
    store.add(f"w{worker}-{i}", claude_path=f"/opt/{worker}/{i}")
    if i % 2:
        store.update(f"w{worker}-{i}", connect_timeout=float(i + 1))
"""


def test_concurrent_adds_from_processes_all_land(tmp_path: Path) -> None:
    store = SettingsStore(tmp_path / "cfg" / "settings.json")
    store.add("seed")
    go = tmp_path / "go"
    workers, count = 6, 15
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(store.path), str(w), str(count), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for w in range(workers)
    ]
    time.sleep(0.2)
    go.touch()
    outputs = [p.communicate(timeout=120)[0] for p in procs]

    assert [p.returncode for p in procs] == [0] * workers, outputs
    settings = store.load()
    expected = {"seed"} | {f"w{w}-{i}" for w in range(workers) for i in range(count)}
    assert set(settings.hosts) == expected
    assert len(settings.hosts) == len(expected)
    for w in range(workers):
        for i in range(count):
            entry = settings.get(f"w{w}-{i}")
            assert entry is not None
            assert entry.claude_path == f"/opt/{w}/{i}"
            assert entry.connect_timeout == (float(i + 1) if i % 2 else None)
    # Each worker's own adds stay in its order.
    for w in range(workers):
        mine = [h for h in settings.hosts if h.startswith(f"w{w}-")]
        assert mine == [f"w{w}-{i}" for i in range(count)]
    assert sorted(os.listdir(store.path.parent)) == [".settings.json.lock", "settings.json"]


# -- specs ---------------------------------------------------------------------------

TODAY = {  # a settings file exactly as versions before specs wrote it, with a key they added
    "version": 1,
    "remote_executors": ["box", "gpu"],
    "hosts": {"box": {"claude_path": "/opt/claude", "future_option": [1, 2]}},
    "theme": "dark",
}


def test_a_file_from_before_specs_reads_and_migrates_without_loss(store: SettingsStore) -> None:
    raw = write(store.path, TODAY)
    loaded = store.load()
    assert loaded.hosts == ["box", "gpu"]
    box = loaded.get("ssh://box")  # the spec finds the alias's entry
    assert box is not None and box.spec == "ssh://box?claude_path=/opt/claude"
    assert store.path.read_bytes() == raw

    store.add("docker://web-1")
    data = json.loads(store.path.read_text())
    assert data == {
        **TODAY,
        "version": 2,  # now it lists a spec: versions before specs say "upgrade"
        "remote_executors": ["box", "gpu", "docker://web-1"],
    }
    assert store.remove("docker://web-1") is True
    assert json.loads(store.path.read_text()) == TODAY  # back to version 1


def test_an_ssh_spec_is_kept_as_its_alias_with_its_options(store: SettingsStore) -> None:
    added = store.add("ssh://box?claude_path=/opt/c&path_map:/home/me=/srv/me", connect_timeout=3)
    assert added == HostSettings(
        "box", claude_path="/opt/c", path_map={"/home/me": "/srv/me"}, connect_timeout=3.0
    )
    assert json.loads(store.path.read_text())["remote_executors"] == ["box"]
    updated = store.update("ssh://box", claude_path=None)
    assert updated.claude_path is None and store.load().get("box") == updated
    with pytest.raises(InvalidInput, match="backend"):
        store.add("ssh://gpu?backend=fabric")
    with pytest.raises(InvalidInput, match="kept as its alias"):
        HostSettings("ssh://box")


def test_a_version_1_file_that_lists_a_spec_is_refused(store: SettingsStore) -> None:
    raw = write(store.path, {"version": 1, "remote_executors": ["docker://c"]})
    with pytest.raises(SettingsError, match="version 1 does not hold"):
        store.load()
    assert store.path.read_bytes() == raw


def test_executor_for_prefers_configured_options_and_fills_gaps_from_the_spec(
    store: SettingsStore,
) -> None:
    store.add("box", claude_path="/opt/claude")
    made = executor_for("ssh://box?claude_path=/old&ssh_config=/etc/ssh/other", store)
    assert isinstance(made, SSHExecutor)
    assert made.spec == "ssh://box?ssh_config=/etc/ssh/other&claude_path=/opt/claude"
    plain = executor_for("elsewhere", store, ssh_config="/etc/ssh/cfg")
    assert plain.spec == "ssh://elsewhere?ssh_config=/etc/ssh/cfg"


def test_executor_for_keeps_a_recorded_path_map_entry_beside_the_configured_map(
    store: SettingsStore,
) -> None:
    # A session started in a picked directory records its own map entry; a resume
    # keeps it, while the configured map decides the prefixes it names.
    store.add("box", path_map={"/home/me/code": "~/code", "/home/me/shop": "/srv/shop"})
    made = executor_for(
        "ssh://box?path_map:/home/me/web=~/work/web&path_map:/home/me/shop=/old", store
    )
    assert isinstance(made, SSHExecutor)
    assert dict(made._path_map) == {
        "/home/me/web": "~/work/web",
        "/home/me/shop": "/srv/shop",
        "/home/me/code": "~/code",
    }


def test_replace_hosts_orders_keeps_options_and_writes_nothing_on_a_bad_name(
    store: SettingsStore,
) -> None:
    store.add("a", claude_path="/opt/claude")
    store.add("b")
    assert store.replace_hosts(["c", "a"]) == ["c", "a"]
    assert store.load().get("a") == HostSettings("a", claude_path="/opt/claude")
    assert store.load().get("b") is None
    raw = store.path.read_bytes()
    for bad in (["d", "-oProxyCommand=x"], ["d", "d"]):
        with pytest.raises(InvalidInput):
            store.replace_hosts(bad)
        assert store.path.read_bytes() == raw
    assert store.replace_hosts(["c", "a"]) == ["c", "a"]  # no change: no write
    assert store.path.read_bytes() == raw
