"""The ``remote-executors`` command, run for real against the loopback test bed.

Each test runs the installed console script in a subprocess with private
config, data and Claude dirs, and checks its output, exit code and effects.
Sessions, sync, resume and Ctrl-C: ``test_cli_sessions.py``; hosts, hints and
typos: ``test_cli_hosts.py``; what a terminal shows: ``test_cli_terminal.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from _cli import CLI, command, last_line, ok, one_error_line, session_of
from remote_executors.testing.model import ScriptedModel, text, tool_use
from remote_executors.testing.plugin import Project
from remote_executors.testing.sshd import SSHClientConfig, SSHFault

pytestmark = [pytest.mark.e2e]


@pytest.fixture
def cli(tmp_path: Path, rx_model: ScriptedModel) -> CLI:
    return CLI(tmp_path, rx_model)


@pytest.fixture
def host(cli: CLI, rx_ssh_config: SSHClientConfig) -> str:
    """The test account's alias, configured with its ssh_config file."""
    done = cli("executors", "add", rx_ssh_config.alias, "--ssh-config", str(rx_ssh_config.path))
    assert done.returncode == 0, done.stderr
    return rx_ssh_config.alias


def test_help_everywhere(cli: CLI) -> None:
    assert "Usage: remote-executors" in ok(cli("--help"))  # the installed script
    for args in (
        ("executors",),
        ("executors", "add"),
        ("executors", "update"),
        ("executors", "list"),
        ("executors", "remove"),
        ("check",),
        ("run",),
        ("sessions",),
        ("sync",),
    ):
        out = ok(cli.inproc(*args, "--help"))
        assert f"Usage: remote-executors {' '.join(args)}" in out
        assert "--debug" in out  # accepted after the subcommand too


def test_executors_add_list_update_remove(cli: CLI, tmp_path: Path) -> None:
    ok(cli.inproc("executors", "add", "box", "--force", "--claude-path", "/opt/claude/bin/claude"))
    ok(cli.inproc("executors", "add", "gpu", "--force", "--path-map", f"{tmp_path}=/srv/work"))
    listed = json.loads(ok(cli.inproc("executors", "list", "--json")))
    assert [h["host"] for h in listed] == ["box", "gpu"]
    assert listed[0]["claude_path"] == "/opt/claude/bin/claude"
    assert listed[1]["path_map"] == {str(tmp_path): "/srv/work"}
    human = ok(cli.inproc("executors", "list"))
    assert "box" in human and "/opt/claude/bin/claude" in human

    # Adding twice is a "no" (exit 1) that names the command that exists for it.
    again = cli("executors", "add", "box", "--force")
    assert again.returncode == 1, again.stderr
    first = one_error_line(again, "box", "already configured")
    assert "remote-executors executors update box" in first
    assert json.loads(ok(cli.inproc("executors", "list", "--json"))) == listed  # unchanged

    # update changes what is given, keeps the rest; --reset puts one back.
    updated = json.loads(
        ok(
            cli.inproc(
                "executors",
                "update",
                "box",
                "--accept-new-host-keys",
                "--connect-timeout",
                "7",
                "--json",
            )
        )
    )
    assert updated["claude_path"] == "/opt/claude/bin/claude"
    assert updated["accept_new_host_keys"] is True and updated["connect_timeout"] == 7.0
    reset = json.loads(
        ok(cli.inproc("executors", "update", "box", "--reset", "claude-path", "--json"))
    )
    assert reset["claude_path"] is None and reset["accept_new_host_keys"] is True
    # warm_spawn: on by default, stored only when off, and kept in the spec.
    assert reset["warm_spawn"] is True
    cold = json.loads(ok(cli.inproc("executors", "update", "box", "--no-warm-spawn", "--json")))
    assert cold["warm_spawn"] is False and "warm_spawn=0" in cold["spec"]
    assert cold["accept_new_host_keys"] is True  # the rest kept
    warm = json.loads(
        ok(cli.inproc("executors", "update", "box", "--reset", "warm-spawn", "--json"))
    )
    assert warm["warm_spawn"] is True and "warm_spawn" not in warm["spec"]
    nothing = cli.inproc("executors", "update", "box")
    assert nothing.returncode == 2
    missing = cli("executors", "update", "nobox", "--claude-path", "/x")
    assert missing.returncode == 1
    assert "remote-executors executors add nobox" in one_error_line(missing, "nobox")

    ok(cli.inproc("executors", "remove", "box"))
    gone = cli("executors", "remove", "box")
    assert gone.returncode == 1
    one_error_line(gone, "box", "not configured")
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
        tool_use("Bash", {"command": "printf 'cli-marker\\nb\\nc\\n'", "description": "echo"}),
        text("The answer from the model."),
    )
    out = ok(cli("run", "--cwd", str(project), "--allow", "Bash", "what is here?"))
    assert "→ Bash: printf 'cli-marker" in out
    # The tool result: its first line, and how many more there are.
    assert "← cli-marker (+2 lines)" in out
    assert "The answer from the model." in out
    assert " on local " in last_line(out)
    sid = session_of(out)
    sessions = json.loads(ok(cli("sessions", "--cwd", str(project), "--json")))
    assert [(s["session_id"], s["executor"]) for s in sessions] == [(sid, "local")]
    assert "[local]" in ok(cli("sessions", "--cwd", str(project)))


def test_run_reads_the_prompt_from_stdin_for_dash(
    cli: CLI, rx_model: ScriptedModel, tmp_path: Path
) -> None:
    rx_model.script(text("read it"))
    out = ok(cli("run", "--cwd", str(tmp_path), "-", input="a prompt from stdin\nline two\n"))
    assert "read it" in out
    assert "a prompt from stdin\nline two" in rx_model.main_requests[-1].last_user_text
    empty = cli("run", "--cwd", str(tmp_path), "-", input="")
    assert empty.returncode == 2 and "stdin" in empty.stderr


def test_on_local_means_this_machine(cli: CLI, rx_model: ScriptedModel, tmp_path: Path) -> None:
    rx_model.script(text("here"))
    out = ok(cli("run", "--on", "local", "--cwd", str(tmp_path), "hi"))
    assert " on local " in last_line(out)
    sessions = json.loads(ok(cli("sessions", "--cwd", str(tmp_path), "--json")))
    assert [s["executor"] for s in sessions] == ["local"]
    checked = json.loads(ok(cli("check", "local", "--json")))
    assert checked["host"] == "local"
    assert {s["name"]: s["detail"] for s in checked["steps"]}["connect"] == "local"
    # Nothing to sync with this machine, and no set-up for it: said, not attempted.
    for args in (("sync", "local"), ("executors", "add", "local")):
        refused = cli(*args)
        assert refused.returncode == 2, refused.stderr
        assert "means this machine" in refused.stderr and "ssh://local" in refused.stderr


def test_unreachable_host_is_one_clear_line_and_its_own_exit_code(
    cli: CLI, rx_ssh_config: SSHClientConfig, tmp_path: Path
) -> None:
    alias = rx_ssh_config.alias_for(SSHFault.CONNECTION_REFUSED)
    ok(cli("executors", "add", alias, "--ssh-config", str(rx_ssh_config.path)))
    result = cli("run", "--on", alias, "--cwd", str(tmp_path), "hello")
    assert result.returncode == 3, (result.stdout, result.stderr)
    one_error_line(result, alias)
    assert "Connection refused" in result.stderr  # what ssh said, under the line
    for debug in (("--debug", "run"), ("run", "--debug")):  # before or after the subcommand
        run = cli(*debug, "--on", alias, "--cwd", str(tmp_path), "hello")
        assert run.returncode == 3
        assert "Traceback" in run.stderr


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


def _shape(obj: dict[str, object]) -> tuple[object, ...]:
    """What a stream-json object looks like: its type, subtype and content block types."""
    message = obj.get("message")
    blocks: tuple[object, ...] = ()
    if isinstance(message, dict) and isinstance(message.get("content"), list):
        blocks = tuple(b["type"] for b in message["content"])
    return (obj["type"], obj.get("subtype"), blocks)


def test_run_json_matches_the_cli_stream_json(
    cli: CLI, rx_model: ScriptedModel, tmp_path: Path
) -> None:
    """The oracle: the bundled CLI's own ``-p --output-format stream-json`` for the same script."""
    from remote_executors.testing.sshd import bundled_claude_binary

    def script() -> None:
        rx_model.script(
            tool_use("Bash", {"command": "echo json-marker", "description": "echo"}),
            text("json answer"),
        )

    script()
    ours = [
        json.loads(line)
        for line in _lines(
            ok(cli("run", "--cwd", str(tmp_path), "--allow", "Bash", "--json", "hi"))
        )
    ]
    script()
    theirs_out = subprocess.run(
        [
            str(bundled_claude_binary()),
            "-p",
            "hi",
            "--output-format",
            "stream-json",
            "--verbose",
            "--allowedTools",
            "Bash",
        ],
        env={**cli.env, "CLAUDE_CONFIG_DIR": str(tmp_path / "oracle")},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    theirs = [json.loads(line) for line in _lines(theirs_out)]
    assert [_shape(o) for o in ours] == [_shape(o) for o in theirs]
    for mine, real in zip(ours, theirs, strict=True):
        assert set(mine) <= set(real), (mine["type"], set(mine) - set(real))
        if mine["type"] in ("assistant", "user"):
            assert set(mine["message"]) <= set(real["message"])
            for block, real_block in zip(
                mine["message"]["content"], real["message"]["content"], strict=True
            ):
                assert set(block) <= set(real_block) and block["type"] == real_block["type"]
    assert ours[-1]["type"] == "result" and ours[-1]["session_id"]
    assert "json-marker" in json.dumps(ours) and "json answer" in json.dumps(ours)


def test_errors_in_json_mode_are_json_too(
    cli: CLI, rx_ssh_config: SSHClientConfig, tmp_path: Path
) -> None:
    alias = rx_ssh_config.alias_for(SSHFault.CONNECTION_REFUSED)
    ok(cli("executors", "add", alias, "--ssh-config", str(rx_ssh_config.path)))
    for args in (
        ("run", "--on", alias, "--cwd", str(tmp_path), "--json", "hello"),
        ("sync", alias, "--cwd", str(tmp_path), "--json"),
        ("executors", "remove", "nobox", "--json"),
    ):
        result = cli(*args)
        assert result.returncode != 0
        error = json.loads(_lines(result.stdout)[-1])
        assert error["type"] == "error" and error["exit_code"] == result.returncode
        assert error["message"] and error["message"] in result.stderr  # people still see it


def test_check_reports_step_by_step_and_exits_by_outcome(
    cli: CLI, host: str, rx_ssh_config: SSHClientConfig, rx_project: Project
) -> None:
    report = json.loads(ok(cli("check", host, "--cwd", str(rx_project.local), "--json")))
    steps = {s["name"]: s["status"] for s in report["steps"]}
    assert steps["connect"] == steps["auth"] == steps["claude"] == steps["project"] == "ok"
    assert report["ok"] is True and report["exit_code"] == 0
    human = ok(cli("check", host))
    assert "SSH reachable" in human and f"{host} is ready." in human

    # Unreachable: the same code as run's for it (3), not a plain "no".
    refused = rx_ssh_config.alias_for(SSHFault.CONNECTION_REFUSED)
    ok(cli("executors", "add", refused, "--ssh-config", str(rx_ssh_config.path)))
    failed = cli("check", refused, "--json")
    assert failed.returncode == 3, failed.stderr
    report = json.loads(failed.stdout)
    steps = {s["name"]: s["status"] for s in report["steps"]}
    assert steps["connect"] == "fail" and steps["auth"] == "skip"
    assert report["exit_code"] == 3
    human = cli("check", refused)
    assert human.returncode == 3 and "not ready" in human.stdout

    # A project directory the host lacks: 4, as run says for it.
    missing = rx_project.local.parent / "not-there"
    missing.mkdir()
    nodir = cli("check", host, "--cwd", str(missing))
    assert nodir.returncode == 4, nodir.stdout


def test_a_closed_pipe_ends_quietly(cli: CLI, host: str, tmp_path: Path) -> None:
    """``sessions | head -1``, ``check box | head``: the reader left; no error, exit 141."""
    for i in range(3):
        (tmp_path / f"p{i}").mkdir()
    for args in (("sessions", "--cwd", str(tmp_path)), ("check", host), ("executors", "list")):
        read, write = os.pipe()
        os.close(read)  # the reader is gone before the first line
        try:
            result = cli(*args, stdout=write)
        finally:
            os.close(write)
        assert result.returncode == 141, (args, result.stderr)
        assert result.stderr == "", (args, result.stderr)
    # And through a real shell pipeline, the way people type it.
    piped = subprocess.run(
        ["bash", "-o", "pipefail", "-c", f"{command()[0]} check {host} | head -1"],
        env=cli.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "SSH reachable" in piped.stdout and "Error" not in piped.stderr, piped.stderr
    assert piped.returncode in (0, 141), piped
