"""Executor specs and the scheme registry (remote_executors.executors.registry).

The plugin is a real distribution as pip would leave it: a ``*.dist-info``
with ``entry_points.txt`` next to its module on ``sys.path``, found through
``importlib.metadata`` like any installed package.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from claude_agent_sdk import ClaudeAgentOptions, ResultMessage
from hypothesis import given
from hypothesis import strategies as st

import _acme_plugin
import remote_executors as rx
from remote_executors.executors import registry
from remote_executors.executors.registry import (
    ENTRY_POINT_GROUP,
    check_spec,
    executor_from_spec,
    normalize_spec,
    parse_spec,
)
from remote_executors.executors.ssh._spec import options_from_spec
from remote_executors.records import SessionRecord, SessionRecords
from remote_executors.settings import SettingsStore, executor_for
from remote_executors.testing import FakeExecutor

# -- the spec strings ------------------------------------------------------------


def test_local_and_ssh_executors_reopen_from_their_spec() -> None:
    local = executor_from_spec("local")
    assert isinstance(local, rx.LocalExecutor) and local.spec == "local"
    box = executor_from_spec("ssh://box")
    assert isinstance(box, rx.SSHExecutor) and (box.host, box.spec) == ("box", "ssh://box")
    assert executor_from_spec("box").spec == "ssh://box"  # a bare alias, as before specs


def test_ssh_options_survive_the_round_trip() -> None:
    made = rx.SSHExecutor(
        "me@box:2222",
        backend="fabric",
        ssh_config="/home/me/.ssh/work config",
        claude_path="/opt/claude/bin/claude",
        path_map={"/home/me/a=b&c": "code/x", "/l": "/r?s"},
        accept_new_host_keys=True,
        connect_timeout=7.5,
        keepalive_interval=2,
        ssh_options={"Compression": "yes"},
        forward_credentials="CLAUDE_CODE_OAUTH_TOKEN",
        reattach_within=0,
    )
    again = executor_from_spec(made.spec)
    assert isinstance(again, rx.SSHExecutor)
    assert again.spec == made.spec
    assert (again.forward_credentials, again.reattach_within) == ("CLAUDE_CODE_OAUTH_TOKEN", 0)
    assert made.spec.startswith("ssh://me@box:2222?backend=fabric&ssh_config=/home/me/.ssh/work%20")
    host, options = options_from_spec(made.spec)
    assert host == "me@box:2222"
    assert options == {
        "backend": "fabric",
        "ssh_config": "/home/me/.ssh/work config",
        "claude_path": "/opt/claude/bin/claude",
        "accept_new_host_keys": True,
        "connect_timeout": 7.5,
        "keepalive_interval": 2,
        "path_map": {"/home/me/a=b&c": "code/x", "/l": "/r?s"},
        "ssh_options": {"Compression": "yes"},
        "forward_credentials": "CLAUDE_CODE_OAUTH_TOKEN",
        "reattach_within": 0.0,
    }


paths = st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=30).map(
    lambda s: "/" + s
)


@given(ssh_config=st.none() | paths, path_map=st.dictionaries(paths, paths, max_size=3))
def test_any_paths_survive_the_round_trip(ssh_config: str | None, path_map: dict[str, str]) -> None:
    spec = rx.SSHExecutor("box", ssh_config=ssh_config, path_map=path_map).spec
    check_spec(spec)
    host, options = options_from_spec(spec)
    assert host == "box"
    assert options.get("ssh_config") == (
        None if ssh_config is None else __import__("os").path.abspath(ssh_config)
    )
    assert options.get("path_map", {}) == path_map


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("", "non-empty"),
        ("-oProxyCommand=x", "starts with '-'"),
        ("a/b", "no '/'"),
        ("box\n", "control characters"),
        ("docker://a b", "whitespace"),
        ("Docker://c", "not a scheme"),
        ("docker://", "nothing follows"),
        ("ssh://?ssh_config=/x", "nothing follows"),
    ],
)
def test_malformed_specs_are_invalid_input(spec: str, says: str) -> None:
    with pytest.raises(rx.InvalidInput, match="Refusing executor") as info:
        executor_from_spec(spec)
    assert says in info.value.message


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("ssh://box/path", "no path"),
        ("ssh://box?color=blue", "Unknown option 'color'"),
        ("ssh://box?connect_timeout=soon", "expected a number"),
        ("ssh://box?accept_new_host_keys=maybe", "expected 1 or 0"),
        ("ssh://-oProxyCommand=x", "starts with '-'"),
        ("local://x", "spec is 'local'"),
        ("ssh://box?ssh_config", "not KEY=VALUE"),
    ],
)
def test_bad_ssh_specs_name_what_is_wrong(spec: str, says: str) -> None:
    with pytest.raises(rx.InvalidInput) as info:
        executor_from_spec(spec)
    assert says in info.value.message or says in str(info.value)


def test_parse_spec_leaves_the_target_to_the_executor() -> None:
    parsed = parse_spec("k8s://team/pod-7/claude?context=prod%2Feu&context=dev")
    assert (parsed.scheme, parsed.target) == ("k8s", "team/pod-7/claude")
    assert parsed.option("context") == "dev"
    assert parsed.options == (("context", "prod/eu"), ("context", "dev"))
    assert normalize_spec("Bäckerei") == "ssh://B%C3%A4ckerei"


# -- the registry ------------------------------------------------------------------


def test_an_unknown_scheme_says_what_is_known_and_how_to_add_one() -> None:
    with pytest.raises(rx.ExecutorUnavailable) as info:
        executor_from_spec("nope://x")
    error = info.value
    assert (error.host, error.scheme) == ("nope://x", "nope")
    assert "docker, k8s, local, podman, ssh" in error.message
    assert ENTRY_POINT_GROUP in error.message


def test_a_builtin_scheme_whose_module_is_missing_says_to_upgrade(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(
        registry._BUILTIN, "docker", registry._Builtin("rx_test_no_such_module:X", "docker")
    )
    with pytest.raises(rx.ExecutorUnavailable, match="pip install -U remote-executors") as info:
        executor_from_spec("docker://web")
    assert info.value.host == "docker://web"


def test_a_builtin_scheme_whose_dependency_is_missing_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "rx_test_k8s_module.py").write_text("import rx_test_kubernetes_client\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(
        registry._BUILTIN,
        "k8s",
        registry._Builtin("rx_test_k8s_module:KubernetesExecutor", "kubernetes"),
    )
    with pytest.raises(rx.ExecutorUnavailable) as info:
        executor_from_spec("k8s://team/pod")
    assert "rx_test_kubernetes_client" in info.value.message
    assert "pip install 'remote-executors[kubernetes]'" in info.value.message


def test_register_executor_adds_a_scheme_and_refuses_to_take_one_silently(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(registry, "_registered", {})
    rx.register_executor("fake", FakeExecutor)
    fake = FakeExecutor(name="reg-test")
    assert executor_from_spec("fake://reg-test") is fake  # the live one, by its spec
    with pytest.raises(ValueError, match="already registered"):
        rx.register_executor("ssh", FakeExecutor)
    with pytest.raises(ValueError, match="lowercase"):
        rx.register_executor("Fake", FakeExecutor)
    # Replaced on purpose, by a "module:Class" string imported when used: the
    # class now parses ssh:// specs (a FakeExecutor refuses them, by name).
    rx.register_executor("ssh", "remote_executors.testing.fakes:FakeExecutor", replace=True)
    with pytest.raises(rx.InvalidInput, match="fake://NAME"):
        executor_from_spec("ssh://reg-test")


# -- a third-party package adds a scheme through an entry point ----------------------


@pytest.fixture
def acme_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[type]:
    site = _acme_plugin.install(
        tmp_path / "site",
        entry_points=f"[{ENTRY_POINT_GROUP}]\nacme = rx_acme_plugin:AcmeExecutor\n"
        "ssh = rx_acme_plugin:Nope\n",  # a built-in scheme: ignored
    )
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("REMOTE_EXECUTORS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("REMOTE_EXECUTORS_CONFIG_DIR", str(tmp_path / "config"))
    import rx_acme_plugin

    rx_acme_plugin.AcmeExecutor.opened.clear()
    yield rx_acme_plugin.AcmeExecutor
    sys.modules.pop("rx_acme_plugin", None)


def test_an_entry_point_adds_a_scheme_but_cannot_take_a_builtin_one(acme_plugin: type) -> None:
    assert "acme" in registry.registered_schemes()
    executor = executor_from_spec("acme://one")
    assert isinstance(executor, acme_plugin) and executor.spec == "acme://one"
    assert isinstance(executor_from_spec("ssh://box"), rx.SSHExecutor)


def test_a_broken_plugin_names_its_package(acme_plugin: type, tmp_path: Path) -> None:
    info = tmp_path / "site" / "rx_acme_plugin-1.0.dist-info" / "entry_points.txt"
    info.write_text(f"[{ENTRY_POINT_GROUP}]\nacme = rx_acme_plugin_gone:AcmeExecutor\n")
    with pytest.raises(rx.ExecutorUnavailable, match="reinstall the package rx-acme-plugin"):
        executor_from_spec("acme://one")


def test_records_settings_and_executor_for_speak_the_plugin_spec(acme_plugin: type) -> None:
    store = SettingsStore()
    entry = store.add("acme://two")
    assert (entry.host, entry.spec, entry.is_spec) == ("acme://two", "acme://two", True)
    assert store.load().hosts == ["acme://two"]
    with pytest.raises(rx.InvalidInput, match="takes no SSH options"):
        store.add("acme://three", claude_path="/x")
    made = executor_for("acme://two")
    assert isinstance(made, acme_plugin) and made.spec == "acme://two"
    assert isinstance(executor_for("local"), rx.LocalExecutor)


@pytest.mark.anyio
async def test_a_session_on_a_plugin_executor_resumes_there_by_spec(acme_plugin: type) -> None:
    first = acme_plugin(name="acme-box")
    options = ClaudeAgentOptions(cwd="/tmp")
    results = [
        m
        async for m in rx.query(prompt="hi", options=options, executor=first, sync=False)
        if isinstance(m, ResultMessage)
    ]
    sid = results[0].session_id
    record = SessionRecords().get(sid)
    assert record is not None and record.executor == "acme://box" and record.is_remote

    # No executor given: the record's spec opens the plugin's executor again.
    resumed = ClaudeAgentOptions(cwd="/tmp", resume=sid)
    again = [m async for m in rx.query(prompt="more", options=resumed, sync=False)]
    assert acme_plugin.opened == ["acme://box"]
    assert any(isinstance(m, ResultMessage) and m.session_id == sid for m in again)


def test_a_record_of_an_uninstalled_scheme_is_kept_and_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REMOTE_EXECUTORS_CONFIG_DIR", str(tmp_path / "config"))
    records = SessionRecords(tmp_path / "data")
    sid = "0b6a2f4e-8c1d-4e3a-9f7b-2d5c6e8a1b3c"
    records.put(SessionRecord(sid, "zeta://pod", "/w"))
    got = records.get(sid)
    assert got is not None and got.executor == "zeta://pod"
    with pytest.raises(rx.ExecutorUnavailable, match="'zeta' is not known"):
        executor_for(got.executor)


def test_classes_are_imported_only_when_a_spec_needs_them() -> None:
    import subprocess

    code = (
        "import sys, remote_executors as rx\n"
        "rx.executor_from_spec('local')\n"
        "print('remote_executors.executors.ssh._executor' in sys.modules, end=' ')\n"
        "rx.executor_from_spec('ssh://box')\n"
        "print('remote_executors.executors.ssh._executor' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout == "False True\n"


def test_records_and_specs_load_no_ssh_executor() -> None:
    """Records parse ssh specs with ssh/_spec.py alone: the package is lazy."""
    import subprocess

    code = (
        "import sys\n"
        "from remote_executors.records import SessionRecords\n"
        "from remote_executors.executors.ssh._spec import options_from_spec\n"
        "print('remote_executors.executors.ssh._executor' in sys.modules, end=' ')\n"
        "from remote_executors.executors.ssh import SSHExecutor\n"
        "print(SSHExecutor.__module__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout == "False remote_executors.executors.ssh._executor\n"
