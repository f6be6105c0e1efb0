"""The ``remote-executors`` command, run for real against the loopback test bed.

Each test runs the installed console script in a subprocess with private
config, data and Claude dirs, and checks its output, exit code and effects.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from remote_executors.testing.model import ScriptedModel, text, tool_use
from remote_executors.testing.plugin import Project
from remote_executors.testing.sshd import SSHClientConfig, SSHFault

pytestmark = [pytest.mark.e2e]

TIMEOUT = 120


def command() -> list[str]:
    script = Path(sys.executable).with_name("remote-executors")
    if script.exists():
        return [str(script)]
    found = shutil.which("remote-executors")
    return [found] if found else [sys.executable, "-m", "remote_executors.cli"]


class CLI:
    def __init__(self, tmp: Path, model: ScriptedModel) -> None:
        self.env = {
            **os.environ,
            "CLAUDE_CONFIG_DIR": str(tmp / "claude"),
            "REMOTE_EXECUTORS_DATA_DIR": str(tmp / "data"),
            "REMOTE_EXECUTORS_CONFIG_DIR": str(tmp / "config"),
            # Local sessions talk to the scripted model (remote accounts are set up for it).
            **model.cli_env(),
            "CLAUDE_CODE_MAX_RETRIES": "0",
        }

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The installed command, in a subprocess."""
        return subprocess.run(
            [*command(), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )

    def inproc(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The same command in this process (click's runner): for the many quick
        calls of settings-only tests, which would otherwise spend most of their
        time importing the SDK in a fresh interpreter each time."""
        from click.testing import CliRunner

        from remote_executors.cli import cli

        result = CliRunner().invoke(cli, list(args), env=self.env, prog_name="remote-executors")
        return subprocess.CompletedProcess(args, result.exit_code, result.stdout, result.stderr)


@pytest.fixture
def cli(tmp_path: Path, rx_model: ScriptedModel) -> CLI:
    return CLI(tmp_path, rx_model)


@pytest.fixture
def host(cli: CLI, rx_ssh_config: SSHClientConfig) -> str:
    """The test account's alias, configured with its ssh_config file."""
    done = cli("executors", "add", rx_ssh_config.alias, "--ssh-config", str(rx_ssh_config.path))
    assert done.returncode == 0, done.stderr
    return rx_ssh_config.alias


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
    return result.stdout


def one_error_line(result: subprocess.CompletedProcess[str], *must: str) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    first = result.stderr.strip().splitlines()[0]
    assert first.startswith("error: "), result.stderr
    for word in must:
        assert word in first, first
    return first


def test_help_everywhere(cli: CLI) -> None:
    assert "Usage: remote-executors" in ok(cli("--help"))  # the installed script
    for args in (
        ("executors",),
        ("executors", "add"),
        ("executors", "list"),
        ("executors", "remove"),
        ("check",),
        ("run",),
        ("sessions",),
        ("sync",),
    ):
        out = ok(cli.inproc(*args, "--help"))
        assert f"Usage: remote-executors {' '.join(args)}" in out


def test_executors_add_list_remove(cli: CLI, tmp_path: Path) -> None:
    ok(cli.inproc("executors", "add", "box", "--claude-path", "/opt/claude/bin/claude"))
    ok(cli.inproc("executors", "add", "gpu", "--path-map", f"{tmp_path}=/srv/work"))
    listed = json.loads(ok(cli.inproc("executors", "list", "--json")))
    assert [h["host"] for h in listed] == ["box", "gpu"]
    assert listed[0]["claude_path"] == "/opt/claude/bin/claude"
    assert listed[1]["path_map"] == {str(tmp_path): "/srv/work"}
    human = ok(cli.inproc("executors", "list"))
    assert "box" in human and "/opt/claude/bin/claude" in human
    # Adding twice is refused; removing twice says so.
    again = cli.inproc("executors", "add", "box")
    assert again.returncode != 0
    one_error_line(again, "box")
    ok(cli.inproc("executors", "remove", "box"))
    assert cli.inproc("executors", "remove", "box").returncode == 1
    assert [h["host"] for h in json.loads(ok(cli.inproc("executors", "list", "--json")))] == ["gpu"]


@pytest.mark.parametrize("alias", ["-oProxyCommand=touch x", "a b", "box\nx"])
def test_bad_aliases_are_refused_and_change_nothing(cli: CLI, alias: str) -> None:
    result = cli.inproc("executors", "add", "--", alias)  # "--": past click's option parsing
    assert result.returncode == 2
    one_error_line(result)
    assert json.loads(ok(cli.inproc("executors", "list", "--json"))) == []


def test_run_locally_streams_and_lists_the_session(
    cli: CLI, rx_model: ScriptedModel, tmp_path: Path
) -> None:
    project = tmp_path / "shop"
    project.mkdir()
    rx_model.script(
        tool_use("Bash", {"command": "echo cli-marker", "description": "echo"}),
        text("The answer from the model."),
    )
    out = ok(cli("run", "--cwd", str(project), "--allow", "Bash", "what is here?"))
    assert "→ Bash: echo cli-marker" in out
    assert "cli-marker" in out.split("→ Bash: echo cli-marker", 1)[1]  # the tool result
    assert "The answer from the model." in out
    last = out.strip().splitlines()[-1]
    assert last.startswith("session ") and " on local " in last
    sid = last.split()[1]
    sessions = json.loads(ok(cli("sessions", "--cwd", str(project), "--json")))
    assert [(s["session_id"], s["executor"]) for s in sessions] == [(sid, "local")]
    assert "[local]" in ok(cli("sessions", "--cwd", str(project)))


def test_run_on_a_host_resume_and_sync(
    cli: CLI, host: str, rx_model: ScriptedModel, rx_project: Project
) -> None:
    rx_model.script(text("remote answer one"))
    out = ok(cli("run", "--on", host, "--cwd", str(rx_project.local), "first"))
    assert "remote answer one" in out
    sid = out.strip().splitlines()[-1].split()[1]
    sessions = json.loads(ok(cli("sessions", "--cwd", str(rx_project.local), "--json")))
    assert [(s["session_id"], s["executor"], s["synced"]) for s in sessions] == [(sid, host, True)]
    assert f"[{host}]" in ok(cli("sessions", "--cwd", str(rx_project.local)))

    # --resume without --on continues where it ran.
    rx_model.script(text("remote answer two"))
    out = ok(cli("run", "--cwd", str(rx_project.local), "--resume", sid, "second"))
    assert "remote answer two" in out
    assert "remote answer one" in repr(rx_model.main_requests[-1].messages)

    report = json.loads(
        ok(cli("sync", host, "--cwd", str(rx_project.local), "--session", sid, "--json"))
    )
    assert report["direction"] == "pull" and report["session_id"] == sid
    assert all(f["kind"] == "same" for f in report["files"])  # already in step
    human = ok(cli("sync", host, "--cwd", str(rx_project.local)))
    assert f"in step with {host}" in human
    pushed = json.loads(ok(cli("sync", host, "--cwd", str(rx_project.local), "--push", "--json")))
    assert pushed["direction"] == "push" and pushed["moved"] == 0


def test_unreachable_host_is_one_clear_line_and_its_own_exit_code(
    cli: CLI, rx_ssh_config: SSHClientConfig, tmp_path: Path
) -> None:
    alias = rx_ssh_config.alias_for(SSHFault.CONNECTION_REFUSED)
    ok(cli("executors", "add", alias, "--ssh-config", str(rx_ssh_config.path)))
    result = cli("run", "--on", alias, "--cwd", str(tmp_path), "hello")
    assert result.returncode == 3, (result.stdout, result.stderr)
    one_error_line(result, alias)
    debug = cli("--debug", "run", "--on", alias, "--cwd", str(tmp_path), "hello")
    assert debug.returncode == 3
    assert "Traceback" in debug.stderr


def test_a_corrupt_settings_file_is_reported_not_replaced(cli: CLI, tmp_path: Path) -> None:
    settings = tmp_path / "config" / "settings.json"
    settings.parent.mkdir(parents=True)
    settings.write_text("{not json")
    for args in (("executors", "list"), ("executors", "add", "box")):
        result = cli.inproc(*args)
        assert result.returncode == 6, result.stderr
        one_error_line(result, "settings.json")
    assert settings.read_text() == "{not json"


def _lines(out: str) -> Sequence[str]:
    return [line for line in out.splitlines() if line.strip()]


def test_run_json_is_one_object_per_message(
    cli: CLI, rx_model: ScriptedModel, tmp_path: Path
) -> None:
    rx_model.script(text("json answer"))
    out = ok(cli("run", "--cwd", str(tmp_path), "--json", "hi"))
    objects = [json.loads(line) for line in _lines(out)]
    kinds = [o["kind"] for o in objects]
    assert kinds[0] == "SystemMessage" and kinds[-1] == "ResultMessage"
    assert objects[-1]["session_id"]
    assert "json answer" in json.dumps(objects)


def test_check_reports_step_by_step_and_exits_by_outcome(
    cli: CLI, host: str, rx_ssh_config: SSHClientConfig, rx_project: Project
) -> None:
    report = json.loads(ok(cli("check", host, "--cwd", str(rx_project.local), "--json")))
    steps = {s["name"]: s["status"] for s in report["steps"]}
    assert steps["connect"] == steps["auth"] == steps["claude"] == steps["project"] == "ok"
    assert report["ok"] is True
    human = ok(cli("check", host))
    assert "SSH reachable" in human and f"{host} is ready." in human

    refused = rx_ssh_config.alias_for(SSHFault.CONNECTION_REFUSED)
    ok(cli("executors", "add", refused, "--ssh-config", str(rx_ssh_config.path)))
    failed = cli("check", refused, "--json")
    assert failed.returncode == 1, failed.stderr
    steps = {s["name"]: s["status"] for s in json.loads(failed.stdout)["steps"]}
    assert steps["connect"] == "fail" and steps["auth"] == "skip"
    human = cli("check", refused)
    assert human.returncode == 1 and "not ready" in human.stdout
