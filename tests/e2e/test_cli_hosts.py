"""HOST on the command line: hints in the command's own terms, typos, ``local``, path maps.

Every failure is provoked for real on the loopback sshd (unknown host keys,
a missing CLI or directory, a broken ssh config, a name nobody knows) and
read through the installed script.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from _cli import CLI, last_line, ok, one_error_line
from remote_executors.cli._hints import PYTHON_RE
from remote_executors.testing.model import ScriptedModel, text
from remote_executors.testing.plugin import Project
from remote_executors.testing.sshd import RemoteAccount, SSHClientConfig, SSHFault, SSHTestBed

pytestmark = [pytest.mark.e2e]


@pytest.fixture
def cli(tmp_path: Path, rx_model: ScriptedModel) -> CLI:
    return CLI(tmp_path, rx_model)


def add(cli: CLI, alias: str, cfg: SSHClientConfig, *options: str) -> None:
    ok(cli("executors", "add", alias, "--ssh-config", str(cfg.path), *options))


def no_python(text: str) -> None:
    """A hint at the command line names flags, not Python calls."""
    assert not PYTHON_RE.search(text), text


@pytest.fixture
def not_on_the_host() -> Iterator[Path]:
    """A project under the local home whose counterpart the host lacks."""
    relative = Path(f"rx-test-{secrets.token_hex(4)}") / "not-cloned-there"
    local = Path.home() / relative
    local.mkdir(parents=True)
    yield local
    shutil.rmtree(local.parent, ignore_errors=True)


def test_hints_name_the_commands_flags(
    cli: CLI,
    rx_ssh_config: SSHClientConfig,
    rx_account: RemoteAccount,
    rx_project: Project,
    not_on_the_host: Path,
) -> None:
    # An unknown host key: trust it with the flag, on the executor as configured.
    unknown = rx_ssh_config.alias_for(SSHFault.UNKNOWN_HOST_KEY)
    add(cli, unknown, rx_ssh_config)
    refused = cli("run", "--on", unknown, "--cwd", str(rx_project.local), "hi")
    assert refused.returncode == 3
    first = one_error_line(refused, unknown)
    assert f"remote-executors executors update {unknown} --accept-new-host-keys" in first
    no_python(refused.stderr)
    # ... and the flag does what the hint says.
    ok(cli("executors", "update", unknown, "--accept-new-host-keys"))
    checked = json.loads(ok(cli("check", unknown, "--json")))
    assert {s["name"]: s["status"] for s in checked["steps"]}["host_key"] == "ok"

    # No CLI where --claude-path says: the flag to fix it, exit 4.
    alias = rx_ssh_config.alias
    add(cli, alias, rx_ssh_config, "--claude-path", f"{rx_account.home}/nowhere/claude")
    missing = cli("run", "--on", alias, "--cwd", str(rx_project.local), "hi")
    assert missing.returncode == 4, missing.stderr
    assert f"executors update {alias} --claude-path" in one_error_line(missing, alias)
    no_python(missing.stderr)
    ok(cli("executors", "update", alias, "--reset", "claude-path"))

    # A directory the host lacks: --path-map, exit 4; check says the same.
    nodir = cli("run", "--on", alias, "--cwd", str(not_on_the_host), "hi")
    assert nodir.returncode == 4, nodir.stderr
    assert f"executors update {alias} --path-map LOCAL=REMOTE" in one_error_line(nodir, alias)
    no_python(nodir.stderr)
    step = cli("check", alias, "--cwd", str(not_on_the_host))
    assert step.returncode == 4
    assert f"--path-map {not_on_the_host}=/path/on/{alias}" in step.stdout
    no_python(step.stdout)


def test_path_map_to_a_directory_relative_to_the_remote_home(
    cli: CLI,
    rx_ssh_config: SSHClientConfig,
    rx_model: ScriptedModel,
    rx_project: Project,
    rx_sshd: SSHTestBed,
    rx_account: RemoteAccount,
    tmp_path: Path,
) -> None:
    """``--path-map LOCAL=code/shop``: LOCAL (outside the home here) runs in ~/code/shop there."""
    elsewhere = tmp_path / "checkout"
    elsewhere.mkdir()
    relative = rx_project.remote.relative_to(rx_sshd.remote_home(rx_account))
    for form in (str(relative), f"~/{relative}"):
        ok(cli("executors", "remove", rx_ssh_config.alias)) if form.startswith("~") else None
        add(cli, rx_ssh_config.alias, rx_ssh_config, "--path-map", f"{elsewhere}={form}")
        listed = json.loads(ok(cli("executors", "list", "--json")))
        assert listed[0]["path_map"] == {str(elsewhere): f"~/{relative}"}
        rx_model.script(text("ran in the mapped directory"))
        out = ok(cli("run", "--on", rx_ssh_config.alias, "--cwd", str(elsewhere), "--json", "pwd?"))
        init = json.loads(out.splitlines()[0])
        assert init["type"] == "system" and init["cwd"] == str(rx_project.remote)
    bad = cli("executors", "update", rx_ssh_config.alias, "--path-map", f"{elsewhere}=../x")
    assert bad.returncode == 2 and "inside" in one_error_line(bad)


def test_a_typo_in_the_host_is_unknown_and_close_names_are_suggested(
    cli: CLI, rx_ssh_config: SSHClientConfig, tmp_path: Path
) -> None:
    alias = rx_ssh_config.alias  # "rx-box"
    add(cli, alias, rx_ssh_config)
    typo = alias[:-1] + "x" + alias[-1]  # "rx-boxx"-like: in no config, resolves nowhere
    result = cli("run", "--on", typo, "--cwd", str(tmp_path), "hi")
    assert result.returncode == 3, result.stderr
    first = one_error_line(result, typo)
    assert "Unknown host" in first and f"Did you mean {alias}?" in first
    assert "HostName" not in first  # not "check the HostName", which it has none of

    # executors add refuses it up front, changing nothing ...
    refused = cli("executors", "add", typo)
    assert refused.returncode == 2
    assert f"Did you mean {alias}?" in one_error_line(refused, typo)
    assert [h["host"] for h in json.loads(ok(cli("executors", "list", "--json")))] == [alias]
    # ... and an ssh config file that does not exist.
    nofile = cli("executors", "add", "other", "--ssh-config", str(tmp_path / "no-such-config"))
    assert nofile.returncode == 2 and "does not exist" in nofile.stderr
    # A name the config does know is fine (through Include and Match too); so is one
    # that resolves.
    for known in (f"{alias}-include", f"{alias}-match"):
        ok(cli("executors", "add", known, "--ssh-config", str(rx_ssh_config.path)))
    ok(cli("executors", "add", "localhost"))
    # check says the same as run.
    checked = cli("check", typo)
    assert checked.returncode == 3 and "Unknown host" in checked.stdout


def test_a_broken_ssh_config_is_named(cli: CLI, tmp_path: Path) -> None:
    config = tmp_path / "broken_config"
    config.write_text("Host box2\n    HostName 127.0.0.1\n    NoSuchOption yes\n")
    ok(cli("executors", "add", "box2", "--ssh-config", str(config)))
    result = cli("run", "--on", "box2", "--cwd", str(tmp_path), "hi")
    assert result.returncode == 3, result.stderr
    one_error_line(result, "box2")
    # "the ssh config file named below": and it is named below, with the line.
    assert str(config) in result.stderr and re.search(r"line 3", result.stderr), result.stderr


def test_an_alias_named_local_is_reachable_as_ssh_local(
    cli: CLI,
    rx_sshd: SSHTestBed,
    rx_account: RemoteAccount,
    rx_model: ScriptedModel,
    rx_project: Project,
    tmp_path: Path,
) -> None:
    cfg = rx_sshd.client_config(rx_account, tmp_path / "ssh-local", alias="local")
    ok(cli("executors", "add", "ssh://local", "--ssh-config", str(cfg.path)))
    assert [h["host"] for h in json.loads(ok(cli("executors", "list", "--json")))] == ["local"]
    rx_model.script(text("on the alias called local"))
    out = ok(cli("run", "--on", "ssh://local", "--cwd", str(rx_project.local), "--json", "hi"))
    init = json.loads(out.splitlines()[0])
    assert init["cwd"] == str(rx_project.remote)  # ran there, not here
    checked = json.loads(ok(cli("check", "ssh://local", "--json")))
    assert {s["name"]: s["status"] for s in checked["steps"]}["auth"] == "ok"
    here = ok(cli("run", "--on", "local", "--cwd", str(tmp_path), "hi"))
    assert " on local " in last_line(here)
